// systemInfo(), defaultThreads(), gpuDeviceCount(), devices(): what this machine and build offer.
#pragma once

#include <napi.h>

namespace moe_eval {

// llama.cpp's default thread count (common_cpu_get_num_math): physical cores; on a hybrid x86 CPU, its
// performance cores.
int DefaultThreads();

void InitSystem(Napi::Env env, Napi::Object exports);

}  // namespace moe_eval
