// Gives freed heap pages back to the OS after a model or context is freed. glibc keeps freed large
// blocks in per-thread arenas (ggml's and libuv's worker threads each get one), so without this the
// RSS of a process that loads and frees models in a loop grows for a long time before it plateaus.
#pragma once

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace moe_eval {

inline void ReleaseFreedMemory() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

}  // namespace moe_eval
