// llama.cpp / ggml log → a JS logger (silent by default).
//
// setLogger(fn, minLevel) installs `fn(level, text)`; messages below minLevel are dropped in C++ so a
// silent logger costs nothing. The thread-safe function is unref'd: logging never keeps Node alive.
// The last error-level message of each thread is kept so that failures ("failed to load model")
// can say what llama.cpp said.
#pragma once

#include <napi.h>

#include <string>

namespace moe_eval {

void InitLog(Napi::Env env, Napi::Object exports);

// The last error or warning llama.cpp logged on this thread since ClearLastLogError().
std::string LastLogError();
void ClearLastLogError();

}  // namespace moe_eval
