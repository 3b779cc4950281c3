// The one exception type native code throws. `code` becomes the JS error's `code` (see src/errors.ts).
#pragma once

#include <napi.h>

#include <stdexcept>
#include <string>

namespace moe_eval {

struct NativeError : std::runtime_error {
    std::string code;
    NativeError(std::string code_, const std::string & message) : std::runtime_error(message), code(std::move(code_)) {}
};

// Throws a JS Error with a `code` from a JS-thread method (not inside a worker's Run()).
[[noreturn]] inline void ThrowCoded(Napi::Env env, const std::string & code, const std::string & message) {
    Napi::Error err = Napi::Error::New(env, message);
    err.Set("code", code);
    throw err;
}

}  // namespace moe_eval
