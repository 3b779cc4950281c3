// rewriteGguf(src, dst, { kv, scale }): copies a GGUF file with some key-values set and some tensors
// multiplied by a factor, streaming one tensor at a time through ggml's reference gguf API. This is how
// exportModel() bakes a routing into a file, and how tests build the "rewritten file" side of the
// runtime-routing equivalences.
#pragma once

#include <napi.h>

namespace moe_eval {

void InitGgufRewrite(Napi::Env env, Napi::Object exports);

}  // namespace moe_eval
