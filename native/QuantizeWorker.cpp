#include "QuantizeWorker.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "Log.h"
#include "llama.h"
#include "metrics/ImatrixFile.h"
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

// What tools/quantize/quantize.cpp builds into llama_model_quantize_params from its flags.
struct QuantizeSpec {
    int ftype = -1;
    int threads = 1;
    bool allow_requantize = false;
    bool pure = false;
    bool only_copy = false;         // COPY
    bool leave_output = false;      // --leave-output-tensor
    int output_tensor_type = GGML_TYPE_COUNT;
    int token_embedding_type = GGML_TYPE_COUNT;
    std::vector<std::pair<std::string, int>> tensor_types;  // --tensor-type NAME=TYPE (name lower-cased)
    std::string imatrix_path;       // read from here
    std::string imatrix_name;       // stored as quantize.imatrix.file (the path as given)
    std::vector<std::string> include_weights, exclude_weights;
};

class QuantizeWorker final : public PromiseWorker {
public:
    QuantizeWorker(Napi::Env env, std::string src, std::string dst, QuantizeSpec spec, Napi::Value progress)
        : PromiseWorker(env, "moe-eval:quantize"), src_(std::move(src)), dst_(std::move(dst)), spec_(std::move(spec)), progress_(env, progress) {}

protected:
    void Run() override {
        llama_model_quantize_params p = llama_model_quantize_default_params();
        p.nthread = spec_.threads;
        p.ftype = (llama_ftype) spec_.ftype;
        p.allow_requantize = spec_.allow_requantize;
        p.pure = spec_.pure;
        p.only_copy = spec_.only_copy;
        p.quantize_output_tensor = !spec_.leave_output;
        p.output_tensor_type = (ggml_type) spec_.output_tensor_type;
        p.token_embedding_type = (ggml_type) spec_.token_embedding_type;

        // the importance matrix as quantize.cpp prepare_imatrix() makes it
        std::map<std::string, std::vector<float>> imatrix;
        std::vector<llama_model_imatrix_data> i_data;
        std::vector<llama_model_kv_override> kv_overrides;
        if (!spec_.imatrix_path.empty()) {
            const ImatrixData loaded = ReadImatrixFile(spec_.imatrix_path);
            imatrix = ImatrixForQuantize(loaded, spec_.imatrix_path);
            for (const auto & name : spec_.exclude_weights) {
                for (auto it = imatrix.begin(); it != imatrix.end();) it = it->first.find(name) != std::string::npos ? imatrix.erase(it) : std::next(it);
            }
            if (!spec_.include_weights.empty()) {
                std::map<std::string, std::vector<float>> kept;
                for (const auto & name : spec_.include_weights) {
                    for (auto & e : imatrix) if (e.first.find(name) != std::string::npos) kept.emplace(e.first, e.second);
                }
                imatrix = std::move(kept);
            }
            if (!imatrix.empty()) {
                for (const auto & kv : imatrix) i_data.push_back({kv.first.c_str(), kv.second.data(), kv.second.size()});
                i_data.push_back({nullptr, nullptr, 0});
                p.imatrix = i_data.data();
                auto str_kv = [&](const char * key, const std::string & value) {
                    llama_model_kv_override kvo{};
                    std::strcpy(kvo.key, key);
                    kvo.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
                    strncpy(kvo.val_str, value.c_str(), 127);
                    kvo.val_str[127] = '\0';
                    kv_overrides.push_back(kvo);
                };
                auto int_kv = [&](const char * key, int64_t value) {
                    llama_model_kv_override kvo{};
                    std::strcpy(kvo.key, key);
                    kvo.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
                    kvo.val_i64 = value;
                    kv_overrides.push_back(kvo);
                };
                str_kv("quantize.imatrix.file", spec_.imatrix_name);
                if (!loaded.datasets.empty()) str_kv("quantize.imatrix.dataset", loaded.datasets[0]);
                int_kv("quantize.imatrix.entries_count", (int64_t) imatrix.size());
                if (loaded.chunk_count > 0) int_kv("quantize.imatrix.chunks_count", loaded.chunk_count);
            }
        }
        if (!kv_overrides.empty()) {
            kv_overrides.emplace_back();
            kv_overrides.back().key[0] = 0;
            p.kv_overrides = kv_overrides.data();
        }
        std::vector<llama_model_tensor_override> t_override;
        if (!spec_.tensor_types.empty()) {
            for (const auto & [name, type] : spec_.tensor_types) t_override.push_back({name.c_str(), (ggml_type) type});
            t_override.push_back({nullptr, GGML_TYPE_COUNT});
            p.tt_overrides = t_override.data();
        }

        const std::string tmp = dst_ + ".tmp";
        // llama.cpp logs "[  i/  n] tensor name ..." per tensor: that is the progress
        static const std::regex step(R"(^\[\s*(\d+)/\s*(\d+)\])");
        ScopedLogObserver observer([this](const std::string & line) {
            std::smatch m;
            if (std::regex_search(line, m, step)) {
                const double done = std::stod(m[1].str());
                const double total = std::stod(m[2].str());
                progress_.Send<double>(total > 0 ? done / total : 0, [](Napi::Env env, const double & v) { return Napi::Number::New(env, v); });
            }
        });
        ClearLastLogError();
        const uint32_t rc = llama_model_quantize(src_.c_str(), tmp.c_str(), &p);
        if (rc != 0) {
            std::remove(tmp.c_str());
            const std::string why = LastLogError();
            throw NativeError("ERR_QUANTIZE", "llama.cpp could not quantize " + src_ + (why.empty() ? "" : ": " + why));
        }
        if (std::rename(tmp.c_str(), dst_.c_str()) != 0) {
            std::remove(tmp.c_str());
            throw NativeError("ERR_FILE", "cannot rename " + tmp + " to " + dst_);
        }
    }

    void OnSettled() override { progress_.Release(); }

private:
    std::string src_, dst_;
    QuantizeSpec spec_;
    Progress progress_;
};

std::vector<std::string> StringList(Napi::Env env, Napi::Object o, const char * key, const std::string & where) {
    std::vector<std::string> out;
    if (o.Get(key).IsUndefined()) return out;
    Napi::Array a = RequireArray(env, o.Get(key), where + "." + key);
    for (uint32_t i = 0; i < a.Length(); ++i) {
        if (!a.Get(i).IsString()) ThrowInvalidArg(env, where + "." + key + ": strings expected");
        out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
    }
    return out;
}

// quantizeModel(src, dst, { ftype, threads, allowRequantize, pure, onlyCopy, leaveOutputTensor, outputTensorType,
//   tokenEmbeddingType, tensorTypes: [{ pattern, type }], imatrix, imatrixName, includeWeights, excludeWeights }, onProgress)
// Types are llama_ftype / ggml_type numbers resolved by src/quantize.ts.
Napi::Value QuantizeModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string src = RequireString(info, 0, "quantizeModel(src)");
    std::string dst = RequireString(info, 1, "quantizeModel(src, dst)");
    Napi::Object o = RequireObject(info, 2, "quantizeModel(src, dst, options)");
    const std::string where = "quantizeModel options";
    QuantizeSpec s;
    s.ftype = (int) IntegerOption(env, o, "ftype", -1, 0, 1024, where);
    if (s.ftype < 0) ThrowInvalidArg(env, where + ".ftype: required");
    s.threads = (int) IntegerOption(env, o, "threads", 1, 1, 1024, where);
    s.allow_requantize = BoolOption(o, "allowRequantize", false);
    s.pure = BoolOption(o, "pure", false);
    s.only_copy = BoolOption(o, "onlyCopy", false);
    s.leave_output = BoolOption(o, "leaveOutputTensor", false);
    s.output_tensor_type = (int) IntegerOption(env, o, "outputTensorType", GGML_TYPE_COUNT, 0, GGML_TYPE_COUNT, where);
    s.token_embedding_type = (int) IntegerOption(env, o, "tokenEmbeddingType", GGML_TYPE_COUNT, 0, GGML_TYPE_COUNT, where);
    if (!o.Get("tensorTypes").IsUndefined()) {
        Napi::Array a = RequireArray(env, o.Get("tensorTypes"), where + ".tensorTypes");
        for (uint32_t i = 0; i < a.Length(); ++i) {
            Napi::Object t = RequireObject(env, a.Get(i), where + ".tensorTypes[]");
            if (!t.Get("pattern").IsString()) ThrowInvalidArg(env, where + ".tensorTypes[].pattern: string expected");
            const int type = (int) IntegerOption(env, t, "type", -1, 0, GGML_TYPE_COUNT - 1, where + ".tensorTypes[]");
            if (type < 0) ThrowInvalidArg(env, where + ".tensorTypes[].type: required");
            s.tensor_types.emplace_back(t.Get("pattern").As<Napi::String>().Utf8Value(), type);
        }
    }
    s.imatrix_path = StringOption(env, o, "imatrix", where);
    s.imatrix_name = StringOption(env, o, "imatrixName", where);
    if (s.imatrix_name.empty()) s.imatrix_name = s.imatrix_path;
    s.include_weights = StringList(env, o, "includeWeights", where);
    s.exclude_weights = StringList(env, o, "excludeWeights", where);
    return PromiseWorker::Start(new QuantizeWorker(env, std::move(src), std::move(dst), std::move(s), info.Length() > 3 ? info[3] : env.Undefined()));
}

}  // namespace

void InitQuantize(Napi::Env env, Napi::Object exports) {
    exports.Set("quantizeModel", Napi::Function::New(env, QuantizeModel, "quantizeModel"));
}

}  // namespace moe_eval
