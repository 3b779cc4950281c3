// Keeps freed memory from staying resident: large blocks stay mmapped (KeepLargeBlocksMapped, once at
// load) and freed heap pages go back to the OS after a model or context is freed (ReleaseFreedMemory).
// glibc keeps freed blocks in per-thread arenas (ggml's and libuv's worker threads each get one), so
// without this the RSS of a process that loads and frees models in a loop grows for a long time
// before it plateaus.
#pragma once

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace moe_eval {

// glibc raises its mmap threshold to the size of every mmapped block that is freed (up to 32 MiB).
// A context's scheduler and KV/compute buffers are such blocks (2-20 MiB on the demo model); once
// the first context is freed, later ones come from the heap, and a freed heap block stays resident
// in its thread's arena. In a sweep that left a few such blocks resident next to the live context:
// peak RSS 1.12x one evaluation, and 61 MiB instead of 51 for a single one. Pinning the threshold
// at glibc's own default keeps large blocks mmapped, so freeing them returns them to the OS.
// MOE_EVAL_MALLOC_DEFAULTS=1 leaves glibc's dynamic threshold alone (for hosts that tune malloc).
inline void KeepLargeBlocksMapped() {
#if defined(__GLIBC__)
    const char * keep = std::getenv("MOE_EVAL_MALLOC_DEFAULTS");
    if (keep != nullptr && keep[0] == '1') return;
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}

inline void ReleaseFreedMemory() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

}  // namespace moe_eval
