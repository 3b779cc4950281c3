// readGgufInfo(path): a GGUF file's metadata without loading the model (ggml's reference gguf reader,
// no tensor data): scalar key-values, the length and item type of arrays, and the tensor totals. Used to
// check models against each other before any evaluation (compare: vocabularies) and to report sizes.
#pragma once

#include <napi.h>

namespace moe_eval {

void InitGgufInfo(Napi::Env env, Napi::Object exports);

}  // namespace moe_eval
