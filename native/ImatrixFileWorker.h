// readImatrix(path) and writeImatrix(path, data): llama.cpp's importance matrix files (GGUF or legacy
// .dat, see metrics/ImatrixFile.h) on a worker thread. Data crosses as
// { entries: [{ name, values: Float32Array, counts: Float64Array }], datasets, chunkCount, chunkSize,
//   legacy, hasMetadata }.
#pragma once

#include <napi.h>

namespace moe_eval {

void InitImatrixFile(Napi::Env env, Napi::Object exports);

}  // namespace moe_eval
