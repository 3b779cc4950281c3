// quantizeModel(src, dst, { ftype, threads, allowRequantize, pure, imatrix, tensorTypes, … }, onProgress): llama.cpp's
// llama_model_quantize (what llama-quantize runs) on a worker thread, with per-tensor progress.
#pragma once

#include <napi.h>

namespace moe_eval {

void InitQuantize(Napi::Env env, Napi::Object exports);

}  // namespace moe_eval
