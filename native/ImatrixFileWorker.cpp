#include "ImatrixFileWorker.h"

#include <algorithm>
#include <climits>
#include <string>
#include <utility>

#include "metrics/ImatrixFile.h"
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

class ImatrixFileWorker final : public PromiseWorker {
public:
    enum class Mode { Read, WriteGguf, WriteLegacy };
    ImatrixFileWorker(Napi::Env env, Mode mode, std::string path, ImatrixData data)
        : PromiseWorker(env, "moe-eval:imatrix-file"), mode_(mode), path_(std::move(path)), data_(std::move(data)) {}

protected:
    void Run() override {
        switch (mode_) {
            case Mode::Read: data_ = ReadImatrixFile(path_); break;
            case Mode::WriteGguf: WriteImatrixGguf(path_, data_); break;
            case Mode::WriteLegacy: WriteImatrixLegacy(path_, data_); break;
        }
    }

    Napi::Value Result(Napi::Env env) override {
        if (mode_ != Mode::Read) return env.Undefined();
        Napi::Object o = Napi::Object::New(env);
        Napi::Array datasets = Napi::Array::New(env, data_.datasets.size());
        for (size_t j = 0; j < data_.datasets.size(); ++j) datasets.Set(j, data_.datasets[j]);
        o.Set("entries", ImatrixEntriesToJs(env, data_.entries));
        o.Set("datasets", datasets);
        o.Set("chunkCount", data_.chunk_count);
        o.Set("chunkSize", data_.chunk_size);
        o.Set("legacy", data_.is_legacy);
        o.Set("hasMetadata", data_.has_metadata);
        return o;
    }

private:
    Mode mode_;
    std::string path_;
    ImatrixData data_;
};

Napi::Value ReadImatrix(const Napi::CallbackInfo & info) {
    std::string path = RequireString(info, 0, "readImatrix(path)");
    return PromiseWorker::Start(new ImatrixFileWorker(info.Env(), ImatrixFileWorker::Mode::Read, std::move(path), {}));
}

// writeImatrix(path, { entries, datasets, chunkCount, chunkSize, legacy })
Napi::Value WriteImatrix(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string path = RequireString(info, 0, "writeImatrix(path)");
    Napi::Object o = RequireObject(info, 1, "writeImatrix(path, data)");
    const std::string where = "writeImatrix data";
    ImatrixData data;
    data.chunk_count = (int32_t) IntegerOption(env, o, "chunkCount", 0, 0, INT32_MAX, where);
    data.chunk_size = (int32_t) IntegerOption(env, o, "chunkSize", 0, 0, INT32_MAX, where);
    Napi::Array datasets = RequireArray(env, o.Get("datasets"), where + ".datasets");
    for (uint32_t i = 0; i < datasets.Length(); ++i) {
        if (!datasets.Get(i).IsString()) ThrowInvalidArg(env, where + ".datasets: strings expected");
        data.datasets.push_back(datasets.Get(i).As<Napi::String>().Utf8Value());
    }
    Napi::Array entries = RequireArray(env, o.Get("entries"), where + ".entries");
    for (uint32_t i = 0; i < entries.Length(); ++i) {
        Napi::Object x = RequireObject(env, entries.Get(i), where + ".entries[]");
        if (!x.Get("name").IsString() || !x.Get("values").IsTypedArray() || !x.Get("counts").IsTypedArray()) {
            ThrowInvalidArg(env, where + ".entries[]: { name, values: Float32Array, counts: Float64Array } expected");
        }
        Napi::TypedArray tv = x.Get("values").As<Napi::TypedArray>();
        Napi::TypedArray tc = x.Get("counts").As<Napi::TypedArray>();
        if (tv.TypedArrayType() != napi_float32_array || tc.TypedArrayType() != napi_float64_array) {
            ThrowInvalidArg(env, where + ".entries[]: values must be a Float32Array and counts a Float64Array");
        }
        Napi::Float32Array v = tv.As<Napi::Float32Array>();
        Napi::Float64Array c = tc.As<Napi::Float64Array>();
        if (c.ElementLength() == 0 || v.ElementLength() % c.ElementLength() != 0) {
            ThrowInvalidArg(env, where + ".entries[]: values must hold a whole row per count", JsErrorKind::RangeError);
        }
        ImatrixEntry & e = data.entries[x.Get("name").As<Napi::String>().Utf8Value()];
        e.values.assign(v.Data(), v.Data() + v.ElementLength());
        e.counts.resize(c.ElementLength());
        for (size_t j = 0; j < c.ElementLength(); ++j) e.counts[j] = (int64_t) c[j];
    }
    const auto mode = BoolOption(o, "legacy", false) ? ImatrixFileWorker::Mode::WriteLegacy : ImatrixFileWorker::Mode::WriteGguf;
    return PromiseWorker::Start(new ImatrixFileWorker(env, mode, std::move(path), std::move(data)));
}

}  // namespace

Napi::Array ImatrixEntriesToJs(Napi::Env env, const std::map<std::string, ImatrixEntry> & entries) {
    Napi::Array out = Napi::Array::New(env, entries.size());
    uint32_t i = 0;
    for (const auto & [name, e] : entries) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", name);
        Napi::Float32Array values = Napi::Float32Array::New(env, e.values.size());
        std::copy(e.values.begin(), e.values.end(), values.Data());
        Napi::Float64Array counts = Napi::Float64Array::New(env, e.counts.size());
        for (size_t j = 0; j < e.counts.size(); ++j) counts[j] = (double) e.counts[j];
        o.Set("values", values);
        o.Set("counts", counts);
        out.Set(i++, o);
    }
    return out;
}

void InitImatrixFile(Napi::Env env, Napi::Object exports) {
    exports.Set("readImatrix", Napi::Function::New(env, ReadImatrix, "readImatrix"));
    exports.Set("writeImatrix", Napi::Function::New(env, WriteImatrix, "writeImatrix"));
}

}  // namespace moe_eval
