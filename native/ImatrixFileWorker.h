// readImatrix(path) and writeImatrix(path, data): llama.cpp's importance matrix files (GGUF or legacy
// .dat, see metrics/ImatrixFile.h) on a worker thread. Data crosses as
// { entries: [{ name, values: Float32Array, counts: Float64Array }], datasets, chunkCount, chunkSize,
//   legacy, hasMetadata }.
#pragma once

#include <napi.h>

#include <map>
#include <string>

#include "metrics/Imatrix.h"

namespace moe_eval {

void InitImatrixFile(Napi::Env env, Napi::Object exports);

// Entries as they cross to JS (here and in Context's takeImatrix()): [{ name, values, counts }] in name order.
Napi::Array ImatrixEntriesToJs(Napi::Env env, const std::map<std::string, ImatrixEntry> & entries);

}  // namespace moe_eval
