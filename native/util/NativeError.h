// How native code reports errors: one exception type on worker threads (NativeError), and on the JS
// thread one throw helper (ThrowCoded) that always gives the JS error a stable `code` (see src/errors.ts).
#pragma once

#include <napi.h>

#include <stdexcept>
#include <string>

namespace moe_eval {

// Thrown inside a worker's Run() (never touches JS); PromiseWorker rejects its promise with it.
struct NativeError : std::runtime_error {
    std::string code;
    NativeError(std::string code_, const std::string & message) : std::runtime_error(message), code(std::move(code_)) {}
};

enum class JsErrorKind { Error, TypeError, RangeError };

// The one way to throw from a JS-thread method: an Error (or TypeError/RangeError) carrying `code`.
[[noreturn]] inline void ThrowCoded(Napi::Env env, const std::string & code, const std::string & message,
                                    JsErrorKind kind = JsErrorKind::Error) {
    Napi::Error err = kind == JsErrorKind::TypeError    ? Napi::TypeError::New(env, message)
                      : kind == JsErrorKind::RangeError ? Napi::RangeError::New(env, message)
                                                        : Napi::Error::New(env, message);
    err.Set("code", Napi::String::New(env, code));
    throw err;
}

[[noreturn]] inline void ThrowCoded(Napi::Env env, const NativeError & e) { ThrowCoded(env, e.code, e.what()); }

// An argument the addon cannot use. src/ validates everything before calling the addon, so this means
// a bug in moe-eval or direct use of the addon: ERR_INVALID_ARG, a TypeError unless told otherwise.
[[noreturn]] inline void ThrowInvalidArg(Napi::Env env, const std::string & message, JsErrorKind kind = JsErrorKind::TypeError) {
    ThrowCoded(env, "ERR_INVALID_ARG", message, kind);
}

}  // namespace moe_eval
