#include "Model.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <unordered_set>

#include "ggml-rpc.h"
#include "gguf.h"

#include "Log.h"
#include "TokenizeWorker.h"
#include "gguf/KvOverrides.h"
#include "llama-model.h"   // hparams: expert counts, groups, shared experts (not in the C API)
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/ReleaseMemory.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

const char * GatingName(int op) {
    switch (op) {
        case LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX: return "softmax";
        case LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID: return "sigmoid";
        case LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT: return "softmax-over-chosen";
        case LLAMA_EXPERT_GATING_FUNC_TYPE_SQRT_SOFTPLUS: return "sqrt-softplus";
        default: return "none";
    }
}

}  // namespace

std::string MetaString(const llama_model * model, const char * key) {
    char buf[512];
    const int32_t n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
    return n < 0 ? std::string() : std::string(buf);
}

// Loads the model, then builds one small graph with a facts recorder on, so that Model.info can say how
// llama.cpp routes this model (what the GGUF alone does not say for every architecture).
class ModelLoadWorker final : public PromiseWorker {
public:
    ModelLoadWorker(Napi::Env env, Model * owner, Napi::Value progress)
        : PromiseWorker(env, "moe-eval:load-model"), owner_(owner), progress_(env, progress) {
        owner_->Ref();
        owner_->loading_ = true;
    }

protected:
    void Run() override {
        const ModelLoadOptions & o = owner_->options_;
        std::vector<llama_model_kv_override> overrides = o.kv_overrides;
        if (!overrides.empty()) overrides.push_back(llama_model_kv_override{});  // key[0] == 0 ends the list

        llama_model_params params = llama_model_default_params();
        params.n_gpu_layers = o.gpu_layers;
        if (!o.use_mmap) params.load_mode = LLAMA_LOAD_MODE_NONE;  // default: llama.cpp chooses (mmap on CPU)
        params.kv_overrides = overrides.empty() ? nullptr : overrides.data();
        params.progress_callback = [](float p, void * data) -> bool {
            auto * self = static_cast<ModelLoadWorker *>(data);
            self->progress_.Send<double>(p, [](Napi::Env env, const double & v) { return Napi::Number::New(env, v); });
            return !self->owner_->abort_load_.load();
        };
        params.progress_callback_user_data = this;

        KvOverrides kv(o.kv_overrides);
        Preflight(o.path, kv);
        // layers on ggml RPC servers: their devices, in the order given (llama.cpp's --rpc)
        std::vector<ggml_backend_dev_t> devices;
        for (const std::string & endpoint : o.rpc_servers) {
            ggml_backend_reg_t reg = nullptr;
            try {
                reg = ggml_backend_rpc_add_server(endpoint.c_str());
            } catch (const std::exception & e) {
                throw NativeError("ERR_RPC", std::string(e.what()));
            }
            for (size_t i = 0; reg != nullptr && i < ggml_backend_reg_dev_count(reg); ++i) devices.push_back(ggml_backend_reg_dev_get(reg, i));
        }
        if (!devices.empty()) {
            devices.push_back(nullptr);
            params.devices = devices.data();
        }
        ClearLastLogError();
        llama_model * model = nullptr;
        {
            const auto watch = kv.Watch();
            model = llama_model_load_from_file(o.path.c_str(), params);
        }
        if (model != nullptr) {
            try {
                kv.CheckApplied(MetaString(model, "general.architecture"));
            } catch (...) {
                llama_model_free(model);
                throw;
            }
        }
        if (model == nullptr) {
            if (owner_->abort_load_.load()) throw NativeError("ABORT_ERR", "model loading was aborted");
            const std::string why = LastLogError();
            throw NativeError("ERR_MODEL_LOAD", "llama.cpp could not load " + o.path + (why.empty() ? "" : ": " + why));
        }
        model_ = model;
        if (llama_model_n_params(model) > 0 && model->hparams.n_expert > 0) CollectFacts();
    }

    Napi::Value Result(Napi::Env env) override {
        owner_->model_ = model_;
        owner_->facts_ = std::move(facts_);
        model_ = nullptr;
        return env.Undefined();
    }

    void OnSettled() override {
        progress_.Release();
        owner_->loading_ = false;
        if (model_ != nullptr && owner_->model_ != model_) {  // rejected after loading: do not leak
            llama_model_free(model_);
            model_ = nullptr;
        }
        owner_->Unref();
    }

private:
    // Checks that keep llama.cpp away from its asserts (which abort the process): the file must parse
    // with ggml's reference GGUF reader, the kvOverrides must fit the file (native/gguf/KvOverrides.cpp),
    // and a vocabulary llama.cpp builds a tokenizer from must not repeat a token (llama-vocab.cpp asserts
    // id_to_token.size() == token_to_id.size()). A "no_vocab" model's token strings are never read:
    // llama.cpp's own tests/test-llama-archs.cpp writes them all empty.
    static void Preflight(const std::string & path, KvOverrides & kv) {
        ClearLastLogError();
        gguf_init_params gp = {/*no_alloc =*/true, /*ctx =*/nullptr};
        gguf_context * g = gguf_init_from_file(path.c_str(), gp);
        if (g == nullptr) {
            const std::string why = LastLogError();
            throw NativeError("ERR_GGUF", "not a valid GGUF file: " + path + (why.empty() ? "" : " (" + why + ")"));
        }
        std::string problem;
        try {
            kv.Check(g);
            const std::string tokenizer = kv.EffectiveString(g, "tokenizer.ggml.model");
            const int64_t k = gguf_find_key(g, "tokenizer.ggml.tokens");
            if (tokenizer != "no_vocab" && tokenizer != "none" && k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_ARRAY &&
                gguf_get_arr_type(g, k) == GGUF_TYPE_STRING) {
                const size_t n = gguf_get_arr_n(g, k);
                std::unordered_set<std::string> seen;
                seen.reserve(n);
                for (size_t i = 0; i < n && problem.empty(); ++i) {
                    std::string word = gguf_get_arr_str(g, k, i);
                    if (word.empty()) word = "[EMPTY_" + std::to_string(i) + "]";  // llama-vocab.cpp's name for an empty token
                    if (!seen.insert(word).second) {
                        problem = "the vocabulary (tokenizer.ggml.model \"" + tokenizer + "\") repeats token " + std::to_string(i) +
                                  " (llama.cpp aborts on a repeated token string)";
                    }
                }
            }
        } catch (...) {
            gguf_free(g);
            throw;
        }
        gguf_free(g);
        if (!problem.empty()) throw NativeError("ERR_GGUF", path + ": " + problem);
    }

    void CollectFacts() {
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 256;
        cp.n_batch = 32;
        cp.n_ubatch = 32;
        cp.n_seq_max = 1;
        cp.n_threads = cp.n_threads_batch = 1;
        ScopedFactsRecorder recorder(&facts_);
        llama_context * ctx = llama_init_from_model(model_, cp);  // reserving builds the graph once
        if (ctx != nullptr) llama_free(ctx);
    }

    Model * owner_;
    Progress progress_;
    llama_model * model_ = nullptr;
    std::vector<LayerFacts> facts_;
};

Napi::Function Model::Define(Napi::Env env) {
    return DefineClass(env, "Model", {
        InstanceMethod<&Model::Load>("load"),
        InstanceMethod<&Model::AbortLoad>("abortLoad"),
        InstanceMethod<&Model::Info>("info"),
        InstanceMethod<&Model::Tokenize>("tokenize"),
        InstanceMethod<&Model::Dispose>("dispose"),
    });
}

// new Model(path, { gpuLayers, useMmap, kvOverrides: [{ key, type: 'int'|'float'|'bool'|'str', value }], rpcServers })
// Arguments arrive validated from src/model.ts; the checks here only keep C++ safe.
Model::Model(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Model>(info) {
    Napi::Env env = info.Env();
    TagObject(env, info.This().As<Napi::Object>(), kModelTag);
    options_.path = RequireString(info, 0, "new Model(path)");
    if (info.Length() < 2 || info[1].IsUndefined()) return;
    Napi::Object o = RequireObject(info, 1, "new Model(path, options)");
    const std::string where = "new Model options";
    options_.gpu_layers = (int32_t) IntegerOption(env, o, "gpuLayers", options_.gpu_layers, -1, INT32_MAX, where);
    options_.use_mmap = BoolOption(o, "useMmap", options_.use_mmap);
    if (!o.Get("rpcServers").IsUndefined()) {
        Napi::Array arr = RequireArray(env, o.Get("rpcServers"), where + ".rpcServers");
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            if (!arr.Get(i).IsString()) ThrowInvalidArg(env, where + ".rpcServers: expected strings");
            options_.rpc_servers.push_back(arr.Get(i).As<Napi::String>().Utf8Value());
        }
    }
    if (!o.Get("kvOverrides").IsUndefined()) {
        Napi::Array arr = RequireArray(env, o.Get("kvOverrides"), where + ".kvOverrides");
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            const std::string at = where + ".kvOverrides[" + std::to_string(i) + "]";
            Napi::Object kv = RequireObject(env, arr.Get(i), at);
            llama_model_kv_override ov{};
            const std::string key = StringOption(env, kv, "key", at);
            const std::string type = StringOption(env, kv, "type", at);
            if (key.empty() || key.size() >= sizeof(ov.key)) ThrowInvalidArg(env, at + ".key: expected 1 to 127 bytes", JsErrorKind::RangeError);
            std::strncpy(ov.key, key.c_str(), sizeof(ov.key) - 1);
            Napi::Value v = kv.Get("value");
            if (type == "int" && v.IsNumber()) {
                ov.tag = LLAMA_KV_OVERRIDE_TYPE_INT;
                ov.val_i64 = v.As<Napi::Number>().Int64Value();
            } else if (type == "float" && v.IsNumber()) {
                ov.tag = LLAMA_KV_OVERRIDE_TYPE_FLOAT;
                ov.val_f64 = v.As<Napi::Number>().DoubleValue();
            } else if (type == "bool" && v.IsBoolean()) {
                ov.tag = LLAMA_KV_OVERRIDE_TYPE_BOOL;
                ov.val_bool = v.As<Napi::Boolean>().Value();
            } else if (type == "str" && v.IsString()) {
                const std::string str = v.As<Napi::String>().Utf8Value();
                if (str.size() >= sizeof(ov.val_str)) ThrowInvalidArg(env, at + ".value: expected at most 127 bytes", JsErrorKind::RangeError);
                ov.tag = LLAMA_KV_OVERRIDE_TYPE_STR;
                std::strncpy(ov.val_str, str.c_str(), sizeof(ov.val_str) - 1);
            } else {
                ThrowInvalidArg(env, at + ": expected { key, type: 'int'|'float'|'bool'|'str', value } with a value of that type");
            }
            options_.kv_overrides.push_back(ov);
        }
    }
}

Model::~Model() { Free(); }

void Model::Free() {
    if (model_ != nullptr && active_workers_.load() == 0) {
        llama_model_free(model_);
        model_ = nullptr;
        ReleaseFreedMemory();
    }
}

void Model::Check() const {
    if (disposed_) throw NativeError("ERR_DISPOSED", "the model has been disposed");
    if (model_ == nullptr) throw NativeError("ERR_NOT_LOADED", "the model is not loaded");
}

Napi::Value Model::Load(const Napi::CallbackInfo & info) {
    if (disposed_ || loading_ || model_ != nullptr) {
        ThrowCoded(info.Env(), "ERR_STATE", "Model.load: the model is already loaded, loading or disposed");
    }
    abort_load_ = false;
    return PromiseWorker::Start(new ModelLoadWorker(info.Env(), this, info.Length() > 0 ? info[0] : info.Env().Undefined()));
}

Napi::Value Model::AbortLoad(const Napi::CallbackInfo & info) {
    abort_load_ = true;
    return info.Env().Undefined();
}

Napi::Value Model::Info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    try {
        Check();
    } catch (const NativeError & e) {
        ThrowCoded(env, e);
    }
    const llama_model * m = model_;
    const llama_hparams & hp = m->hparams;
    const llama_vocab * vocab = llama_model_get_vocab(m);
    Napi::Object o = Napi::Object::New(env);
    char desc[256];
    llama_model_desc(m, desc, sizeof(desc));
    o.Set("architecture", MetaString(m, "general.architecture"));
    o.Set("name", MetaString(m, "general.name"));
    o.Set("description", std::string(desc));
    o.Set("layers", llama_model_n_layer(m));
    o.Set("embeddingLength", llama_model_n_embd(m));
    o.Set("vocabSize", llama_vocab_n_tokens(vocab));
    o.Set("trainingContextLength", llama_model_n_ctx_train(m));
    o.Set("fileType", (double) llama_model_ftype(m));
    o.Set("sizeBytes", (double) llama_model_size(m));
    o.Set("parameters", (double) llama_model_n_params(m));
    o.Set("tensors", (double) m->n_tensors());
    o.Set("addBos", llama_vocab_get_add_bos(vocab));
    o.Set("addEos", llama_vocab_get_add_eos(vocab));
    o.Set("bosToken", llama_vocab_bos(vocab));
    o.Set("vocabType", (double) llama_vocab_type(vocab));

    o.Set("expertCount", hp.n_expert);
    o.Set("expertsUsed", hp.n_expert > 0 ? hp.n_expert_used() : 0);
    // Some architectures (qwen2moe) have a shared expert without the count key: look at the tensors too.
    uint32_t shared_layers = 0;
    for (const auto & layer : m->layers) shared_layers += (layer.ffn_up_shexp != nullptr || layer.ffn_down_shexp != nullptr) ? 1 : 0;
    o.Set("sharedExperts", std::max<uint32_t>(hp.n_expert_shared, shared_layers > 0 ? 1 : 0));
    o.Set("expertGroups", hp.n_expert_groups);
    o.Set("expertGroupsUsed", hp.n_group_used);
    o.Set("denseLeadingLayers", hp.n_layer_dense_lead);

    // What llama.cpp's graph builder does with this model, as recorded by the routing hook.
    Napi::Array layers = Napi::Array::New(env, facts_.size());
    for (size_t i = 0; i < facts_.size(); ++i) {
        const LayerFacts & f = facts_[i];
        Napi::Object l = Napi::Object::New(env);
        l.Set("layer", f.layer);
        l.Set("expertCount", f.n_expert);
        l.Set("expertsUsed", f.n_expert_used);
        l.Set("gating", GatingName(f.gating_op));
        l.Set("renormalized", f.norm_w || f.gating_op == LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT);
        l.Set("expertWeightsScale", f.w_scale);
        l.Set("selectionBias", f.selection_bias);
        l.Set("graphNodes", f.graph_nodes);
        l.Set("graphSize", f.graph_size);
        layers.Set(i, l);
    }
    o.Set("moeLayers", layers);

    // Where llama.cpp placed the model: the device of each repeating layer and of the output layer, as
    // load_tensors assigned them (its debug log "layer N assigned to device X"; -ngl, the split across
    // devices and --rpc decide). The input layer (token embeddings) is always the CPU's in llama.cpp.
    Napi::Object placement = Napi::Object::New(env);
    Napi::Array per_layer = Napi::Array::New(env, (size_t) llama_model_n_layer(m));
    for (int32_t il = 0; il < llama_model_n_layer(m); ++il) {
        ggml_backend_dev_t dev = m->dev_layer(il);
        per_layer.Set((uint32_t) il, dev ? ggml_backend_dev_name(dev) : "none");
    }
    placement.Set("layers", per_layer);
    placement.Set("output", m->dev_output() ? ggml_backend_dev_name(m->dev_output()) : "none");
    o.Set("placement", placement);
    return o;
}

// tokenize(text, addSpecial, parseSpecial) → Promise<Int32Array>
Napi::Value Model::Tokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (disposed_ || model_ == nullptr) {
        ThrowCoded(env, disposed_ ? "ERR_DISPOSED" : "ERR_NOT_LOADED", disposed_ ? "the model has been disposed" : "the model is not loaded");
    }
    std::string text = RequireString(info, 0, "tokenize(text)");
    return StartTokenize(env, this, std::move(text), info.Length() > 1 && info[1].ToBoolean().Value(),
                         info.Length() > 2 && info[2].ToBoolean().Value());
}

Napi::Value Model::Dispose(const Napi::CallbackInfo & info) {
    disposed_ = true;
    Free();
    return info.Env().Undefined();
}

}  // namespace moe_eval
