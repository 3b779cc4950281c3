#include "GgufInfo.h"

#include <memory>
#include <string>
#include <vector>

#include "ggml.h"
#include "gguf.h"
#include "Log.h"
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

struct KvValue {
    std::string key;
    std::string type;       // u8 … f64, bool, str, array
    double number = 0;
    bool boolean = false;
    std::string str;
    std::string item_type;  // arrays
    uint64_t length = 0;    // arrays
};

const char * TypeName(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8: return "u8";
        case GGUF_TYPE_INT8: return "i8";
        case GGUF_TYPE_UINT16: return "u16";
        case GGUF_TYPE_INT16: return "i16";
        case GGUF_TYPE_UINT32: return "u32";
        case GGUF_TYPE_INT32: return "i32";
        case GGUF_TYPE_FLOAT32: return "f32";
        case GGUF_TYPE_BOOL: return "bool";
        case GGUF_TYPE_STRING: return "str";
        case GGUF_TYPE_ARRAY: return "array";
        case GGUF_TYPE_UINT64: return "u64";
        case GGUF_TYPE_INT64: return "i64";
        case GGUF_TYPE_FLOAT64: return "f64";
        default: return "unknown";
    }
}

double Number(const gguf_context * g, int64_t k, gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8: return gguf_get_val_u8(g, k);
        case GGUF_TYPE_INT8: return gguf_get_val_i8(g, k);
        case GGUF_TYPE_UINT16: return gguf_get_val_u16(g, k);
        case GGUF_TYPE_INT16: return gguf_get_val_i16(g, k);
        case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, k);
        case GGUF_TYPE_INT32: return gguf_get_val_i32(g, k);
        case GGUF_TYPE_FLOAT32: return gguf_get_val_f32(g, k);
        case GGUF_TYPE_UINT64: return (double) gguf_get_val_u64(g, k);
        case GGUF_TYPE_INT64: return (double) gguf_get_val_i64(g, k);
        case GGUF_TYPE_FLOAT64: return gguf_get_val_f64(g, k);
        default: return 0;
    }
}

class GgufInfoWorker final : public PromiseWorker {
public:
    GgufInfoWorker(Napi::Env env, std::string path) : PromiseWorker(env, "moe-eval:gguf-info"), path_(std::move(path)) {}

protected:
    void Run() override {
        ClearLastLogError();
        gguf_init_params gp = {/*no_alloc =*/true, /*ctx =*/&meta_};
        gguf_context * g = gguf_init_from_file(path_.c_str(), gp);
        if (g == nullptr) {
            const std::string why = LastLogError();
            throw NativeError("ERR_GGUF", "not a valid GGUF file: " + path_ + (why.empty() ? "" : " (" + why + ")"));
        }
        std::unique_ptr<gguf_context, decltype(&gguf_free)> guard(g, gguf_free);
        version_ = gguf_get_version(g);
        for (int64_t k = 0; k < gguf_get_n_kv(g); ++k) {
            KvValue v;
            v.key = gguf_get_key(g, k);
            const gguf_type t = gguf_get_kv_type(g, k);
            v.type = TypeName(t);
            if (t == GGUF_TYPE_STRING) v.str = gguf_get_val_str(g, k);
            else if (t == GGUF_TYPE_BOOL) v.boolean = gguf_get_val_bool(g, k);
            else if (t == GGUF_TYPE_ARRAY) {
                v.item_type = TypeName(gguf_get_arr_type(g, k));
                v.length = gguf_get_arr_n(g, k);
            } else v.number = Number(g, k, t);
            kv_.push_back(std::move(v));
        }
        tensors_ = gguf_get_n_tensors(g);
        for (int64_t i = 0; i < tensors_; ++i) {
            const ggml_tensor * t = ggml_get_tensor(meta_, gguf_get_tensor_name(g, i));
            if (t == nullptr) continue;
            parameters_ += (double) ggml_nelements(t);
            tensor_bytes_ += (double) ggml_nbytes(t);
        }
        ggml_free(meta_);
        meta_ = nullptr;
    }

    Napi::Value Result(Napi::Env env) override {
        Napi::Object o = Napi::Object::New(env);
        o.Set("version", version_);
        o.Set("tensors", (double) tensors_);
        o.Set("parameters", parameters_);
        o.Set("tensorBytes", tensor_bytes_);
        Napi::Object kv = Napi::Object::New(env);
        for (const auto & v : kv_) {
            Napi::Object e = Napi::Object::New(env);
            e.Set("type", v.type);
            if (v.type == "str") e.Set("value", v.str);
            else if (v.type == "bool") e.Set("value", v.boolean);
            else if (v.type == "array") {
                e.Set("itemType", v.item_type);
                e.Set("length", (double) v.length);
            } else e.Set("value", v.number);
            kv.Set(v.key, e);
        }
        o.Set("kv", kv);
        return o;
    }

    void OnSettled() override {
        if (meta_ != nullptr) ggml_free(meta_);
        meta_ = nullptr;
    }

private:
    std::string path_;
    ggml_context * meta_ = nullptr;
    uint32_t version_ = 0;
    int64_t tensors_ = 0;
    double parameters_ = 0;
    double tensor_bytes_ = 0;
    std::vector<KvValue> kv_;
};

Napi::Value ReadGgufInfo(const Napi::CallbackInfo & info) {
    return PromiseWorker::Start(new GgufInfoWorker(info.Env(), RequireString(info, 0, "readGgufInfo(path)")));
}

}  // namespace

void InitGgufInfo(Napi::Env env, Napi::Object exports) {
    exports.Set("readGgufInfo", Napi::Function::New(env, ReadGgufInfo, "readGgufInfo"));
}

}  // namespace moe_eval
