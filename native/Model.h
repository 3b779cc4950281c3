// A loaded llama_model (JS class `Model` of the addon). Loading, tokenizing and facts collection are
// PromiseWorkers; the model is freed by dispose() or when the JS object is collected.
#pragma once

#include <napi.h>

#include <atomic>
#include <string>
#include <vector>

#include "llama.h"
#include "routing/Routing.h"

namespace moe_eval {

struct ModelLoadOptions {
    std::string path;
    int32_t gpu_layers = 0;
    bool use_mmap = true;
    std::vector<llama_model_kv_override> kv_overrides;  // terminated by an empty key when passed on
    std::vector<std::string> rpc_servers;  // host:port of ggml RPC servers that hold the layers
};

// Checked before a JS value is unwrapped as a Model (util/Args.h UnwrapTagged).
// A metadata value of the model as text ("" when the key is absent).
std::string MetaString(const llama_model * model, const char * key);

inline constexpr napi_type_tag kModelTag = {0x6d6f652d6576616cULL, 0x4d6f64656c000001ULL};

class Model : public Napi::ObjectWrap<Model> {
public:
    static constexpr const char * kJsName = "Model";
    static Napi::Function Define(Napi::Env env);
    explicit Model(const Napi::CallbackInfo & info);
    ~Model() override;

    llama_model * model() const { return model_; }
    const std::vector<LayerFacts> & facts() const { return facts_; }
    void Check() const;  // throws (JS) when not loaded or disposed

    // A model is not freed while a worker (tokenize, a context's evaluation) uses it; dispose() during
    // one frees it when the last one ends.
    void WorkerStarted() { active_workers_++; }
    void WorkerDone() {
        if (--active_workers_ == 0 && disposed_) Free();
    }

private:
    friend class ModelLoadWorker;

    Napi::Value Load(const Napi::CallbackInfo & info);
    Napi::Value AbortLoad(const Napi::CallbackInfo & info);
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Tokenize(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    void Free();

    ModelLoadOptions options_;
    llama_model * model_ = nullptr;
    std::vector<LayerFacts> facts_;
    std::atomic<bool> abort_load_{false};
    bool loading_ = false;
    bool disposed_ = false;
    std::atomic<int> active_workers_{0};
};

}  // namespace moe_eval
