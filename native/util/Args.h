// Argument checks for the addon's JS-facing functions, in the style of better-sqlite3's REQUIRE_*
// macros: each reads one argument or option of the expected JS type or throws ERR_INVALID_ARG naming
// the function and the argument. Wrapped native objects are type-tagged when constructed and checked
// before they are unwrapped, so a foreign object is an error, not a bad cast.
#pragma once

#include <napi.h>

#include <cmath>
#include <string>

#include "NativeError.h"

namespace moe_eval {

inline void RequireArgs(const Napi::CallbackInfo & info, size_t n, const char * signature) {
    if (info.Length() < n) ThrowInvalidArg(info.Env(), std::string("expected ") + signature);
}

inline std::string RequireString(const Napi::CallbackInfo & info, size_t i, const char * where) {
    if (info.Length() <= i || !info[i].IsString()) ThrowInvalidArg(info.Env(), std::string(where) + ": expected a string");
    return info[i].As<Napi::String>().Utf8Value();
}

inline Napi::Object RequireObject(const Napi::CallbackInfo & info, size_t i, const char * where) {
    if (info.Length() <= i || !info[i].IsObject()) ThrowInvalidArg(info.Env(), std::string(where) + ": expected an object");
    return info[i].As<Napi::Object>();
}

inline Napi::Array RequireArray(Napi::Env env, Napi::Value v, const std::string & where) {
    if (!v.IsArray()) ThrowInvalidArg(env, where + ": expected an array");
    return v.As<Napi::Array>();
}

// An Int32Array, checked by its element type (a Uint8Array is a typed array too, with other sizes).
inline Napi::Int32Array RequireInt32Array(const Napi::CallbackInfo & info, size_t i, const char * where) {
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        ThrowInvalidArg(info.Env(), std::string(where) + ": expected an Int32Array");
    }
    return info[i].As<Napi::Int32Array>();
}

inline Napi::Object RequireObject(Napi::Env env, Napi::Value v, const std::string & where) {
    if (!v.IsObject()) ThrowInvalidArg(env, where + ": expected an object");
    return v.As<Napi::Object>();
}

inline double RequireNumber(Napi::Env env, Napi::Object o, const char * key, const std::string & where) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber() || std::isnan(v.As<Napi::Number>().DoubleValue())) ThrowInvalidArg(env, where + "." + key + ": expected a number");
    return v.As<Napi::Number>().DoubleValue();
}

// An integer option in [min, max]; `fallback` when absent (undefined).
inline int64_t IntegerOption(Napi::Env env, Napi::Object o, const char * key, int64_t fallback, int64_t min, int64_t max,
                             const std::string & where) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsNumber()) ThrowInvalidArg(env, where + "." + key + ": expected an integer");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d == std::floor(d)) || d < (double) min || d > (double) max) {
        ThrowInvalidArg(env, where + "." + key + ": expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]",
                        JsErrorKind::RangeError);
    }
    return (int64_t) d;
}

inline bool BoolOption(Napi::Object o, const char * key, bool fallback) {
    Napi::Value v = o.Get(key);
    return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

inline std::string StringOption(Napi::Env env, Napi::Object o, const char * key, const std::string & where) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return std::string();
    if (!v.IsString()) ThrowInvalidArg(env, where + "." + key + ": expected a string");
    return v.As<Napi::String>().Utf8Value();
}

// Type tags (napi_type_tag_object): set once on every wrapped object, checked before every Unwrap.
inline void TagObject(Napi::Env env, Napi::Object o, const napi_type_tag & tag) {
    if (napi_type_tag_object(env, o, &tag) != napi_ok) ThrowCoded(env, "ERR_NATIVE", "cannot type-tag a native object");
}

template <typename T>
T * UnwrapTagged(Napi::Env env, Napi::Value v, const napi_type_tag & tag, const std::string & where) {
    bool ok = false;
    if (v.IsObject()) napi_check_object_type_tag(env, v, &tag, &ok);
    if (!ok) ThrowInvalidArg(env, where + ": expected a " + T::kJsName + " created by moe-eval");
    return Napi::ObjectWrap<T>::Unwrap(v.As<Napi::Object>());
}

}  // namespace moe_eval
