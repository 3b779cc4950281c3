// Model.tokenize(): text → token ids with llama.cpp's tokenizer, off the JS thread.
#pragma once

#include <napi.h>

#include <string>

namespace moe_eval {

class Model;

// Starts the worker; the returned promise resolves to an Int32Array. The model is kept alive until it settles.
Napi::Value StartTokenize(Napi::Env env, Model * model, std::string text, bool add_special, bool parse_special);

}  // namespace moe_eval
