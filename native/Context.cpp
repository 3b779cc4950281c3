#include "Context.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "BenchWorker.h"
#include "EvaluateWorker.h"
#include "ImatrixFileWorker.h"
#include "LogitsWorker.h"
#include "MultipleChoiceWorker.h"
#include "Log.h"
#include "Model.h"
#include "llama-ext.h"
#include "llama-model.h"
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/ReleaseMemory.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

// Creates the llama_context on a worker thread. Compute buffers are reserved while a routing that
// selects `reserve_experts` experts is active, so later evaluations with up to that many experts need no
// reallocation (more than that still works: ggml's allocator grows the buffers on demand).
class ContextInitWorker final : public PromiseWorker {
public:
    ContextInitWorker(Napi::Env env, Context * owner) : PromiseWorker(env, "moe-eval:create-context"), owner_(owner) {
        owner_->Ref();
        owner_->BeginWork();
    }

protected:
    void Run() override {
        const ContextOptions & o = owner_->options_;
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = o.n_ctx;
        cp.n_batch = o.n_batch;
        cp.n_ubatch = o.n_ubatch;
        cp.n_seq_max = o.n_seq_max;
        cp.kv_unified = o.kv_unified;
        cp.n_threads = o.n_threads;
        cp.n_threads_batch = o.n_threads;
        cp.flash_attn_type = o.flash_attn;
        cp.type_k = o.type_k;
        cp.type_v = o.type_v;
        cp.no_perf = true;
        cp.abort_callback = [](void * data) { return static_cast<std::atomic<bool> *>(data)->load(); };
        cp.abort_callback_data = &owner_->abort_;
        if (owner_->stats_) {
            cp.cb_eval = RoutingStats::Callback;
            cp.cb_eval_user_data = owner_->stats_.get();
        } else if (owner_->imatrix_) {
            cp.cb_eval = ImatrixCollector::Callback;
            cp.cb_eval_user_data = owner_->imatrix_.get();
        }

        llama_model * model = owner_->model_->model();
        Routing reserve;
        const int32_t n_layer = llama_model_n_layer(model);
        if (o.reserve_experts > 0 && (uint32_t) o.reserve_experts > model->hparams.n_expert_used()) {
            reserve.layers.assign(n_layer, LayerRouting{});
            for (auto & l : reserve.layers) l.experts = o.reserve_experts;
            reserve.touch();
        }
        ClearLastLogError();
        llama_context * ctx;
        {
            ScopedRouting scope(reserve.layers.empty() ? nullptr : &reserve);
            ctx = llama_init_from_model(model, cp);
        }
        if (ctx == nullptr) {
            const std::string why = LastLogError();
            throw NativeError("ERR_CONTEXT", "llama.cpp could not create a context" + (why.empty() ? std::string() : ": " + why));
        }
        ctx_ = ctx;
    }

    Napi::Value Result(Napi::Env env) override {
        owner_->ctx_ = ctx_;
        ctx_ = nullptr;
        return env.Undefined();
    }

    void OnSettled() override {
        if (ctx_ != nullptr) llama_free(ctx_);
        owner_->EndWork();
        owner_->Unref();
    }

private:
    Context * owner_;
    llama_context * ctx_ = nullptr;
};

Napi::Function Context::Define(Napi::Env env) {
    return DefineClass(env, "Context", {
        InstanceMethod<&Context::Init>("init"),
        InstanceMethod<&Context::SetRouting>("setRouting"),
        InstanceMethod<&Context::Evaluate>("evaluate"),
        InstanceMethod<&Context::Logits>("logits"),
        InstanceMethod<&Context::MultipleChoice>("multipleChoice"),
        InstanceMethod<&Context::Bench>("bench"),
        InstanceMethod<&Context::TakeRoutingStats>("takeRoutingStats"),
        InstanceMethod<&Context::TakeImatrix>("takeImatrix"),
        InstanceMethod<&Context::Memory>("memory"),
        InstanceMethod<&Context::Abort>("abort"),
        InstanceMethod<&Context::Dispose>("dispose"),
    });
}

// A KV cache type by its ggml name ('f16', 'q8_0', …); f16 when absent. src/context.ts allows only
// llama.cpp's -ctk/-ctv list; any ggml type name is taken here.
static ggml_type CacheTypeOption(Napi::Env env, Napi::Object o, const char * key, const std::string & where) {
    const std::string name = StringOption(env, o, key, where);
    if (name.empty()) return GGML_TYPE_F16;
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const char * n = ggml_type_name(static_cast<ggml_type>(t));
        if (n != nullptr && name == n) return static_cast<ggml_type>(t);
    }
    ThrowInvalidArg(env, where + "." + key + ": not a ggml type name");
}

// new Context(model, { kvSize, batchSize, ubatchSize, sequences, threads, flashAttention, cacheTypeK, cacheTypeV, reserveExperts, collectRoutingStats, collectImatrix, unifiedKv })
// Sizes arrive resolved by src/context.ts; the checks here only keep llama.cpp away from its asserts.
Context::Context(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Context>(info) {
    Napi::Env env = info.Env();
    TagObject(env, info.This().As<Napi::Object>(), kContextTag);
    RequireArgs(info, 2, "new Context(model, options)");
    model_ = UnwrapTagged<Model>(env, info[0], kModelTag, "new Context(model)");
    model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    Napi::Object o = RequireObject(info, 1, "new Context(model, options)");
    const std::string where = "new Context options";
    options_.n_ctx = (uint32_t) IntegerOption(env, o, "kvSize", options_.n_ctx, 1, INT32_MAX, where);
    options_.n_batch = (uint32_t) IntegerOption(env, o, "batchSize", options_.n_batch, 1, INT32_MAX, where);
    options_.n_ubatch = (uint32_t) IntegerOption(env, o, "ubatchSize", options_.n_ubatch, 1, INT32_MAX, where);
    options_.n_seq_max = (uint32_t) IntegerOption(env, o, "sequences", options_.n_seq_max, 1, LLAMA_MAX_SEQ, where);
    options_.n_threads = (int32_t) IntegerOption(env, o, "threads", options_.n_threads, 1, 1024, where);
    options_.reserve_experts = (int32_t) IntegerOption(env, o, "reserveExperts", 0, 0, LLAMA_MAX_EXPERTS, where);
    if (o.Has("flashAttention")) {
        const std::string fa = StringOption(env, o, "flashAttention", where);
        if (fa == "on") options_.flash_attn = LLAMA_FLASH_ATTN_TYPE_ENABLED;
        else if (fa == "off") options_.flash_attn = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        else if (fa != "auto") ThrowInvalidArg(env, where + ": flashAttention must be 'auto', 'on' or 'off'");
    }
    options_.type_k = CacheTypeOption(env, o, "cacheTypeK", where);
    options_.type_v = CacheTypeOption(env, o, "cacheTypeV", where);
    options_.collect_routing_stats = BoolOption(o, "collectRoutingStats", false);
    options_.kv_unified = BoolOption(o, "unifiedKv", false);
    if (options_.collect_routing_stats) stats_ = std::make_unique<RoutingStats>(model_->facts());
    options_.collect_imatrix = BoolOption(o, "collectImatrix", false);
    if (options_.collect_imatrix && stats_) ThrowInvalidArg(env, where + ": collectRoutingStats and collectImatrix exclude each other");
    if (options_.collect_imatrix) imatrix_ = std::make_unique<ImatrixCollector>();
    // the counter chains to the context's own eval callback (statistics or importance matrix) when it
    // takes the scheduler's over for a graph with dynamic routing
    if (stats_) counter_ = std::make_unique<ExpertCounter>(&RoutingStats::Callback, stats_.get());
    else if (imatrix_) counter_ = std::make_unique<ExpertCounter>(&ImatrixCollector::Callback, imatrix_.get());
    else counter_ = std::make_unique<ExpertCounter>(nullptr, nullptr);
}

Context::~Context() { Free(); }

void Context::Free() {
    if (ctx_ != nullptr && !busy_) {
        llama_free(ctx_);
        ctx_ = nullptr;
        ReleaseFreedMemory();
    }
}

void Context::BeginWork() {
    busy_ = true;
    abort_ = false;
    model_->WorkerStarted();
}

void Context::EndWork() {
    busy_ = false;
    model_->WorkerDone();
    if (disposed_) Free();
}

void Context::CheckUsable(Napi::Env env) const {
    if (disposed_) ThrowCoded(env, "ERR_DISPOSED", "the context has been disposed");
    if (model_->model() == nullptr) ThrowCoded(env, "ERR_DISPOSED", "the context's model has been disposed");
    if (busy_) ThrowCoded(env, "ERR_BUSY", "the context is busy with another operation");
}

Napi::Value Context::Init(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (ctx_ != nullptr) ThrowCoded(env, "ERR_STATE", "the context is already initialized");
    try {
        model_->Check();
    } catch (const NativeError & e) {
        ThrowCoded(env, e);
    }
    return PromiseWorker::Start(new ContextInitWorker(env, this));
}

// setRouting([{ experts, expertScale, gateScale, serMin, serRatio, topP, mask }, … one per layer] | [])
// Values arrive validated by src/routing.ts; the checks here only keep llama.cpp away from asserts.
Napi::Value Context::SetRouting(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (info.Length() > 0 && info[0].IsNull()) {  // hook off entirely: llama.cpp's own graph
        hook_active_ = false;
        routing_ = Routing{};
        return env.Undefined();
    }
    Napi::Array arr = RequireArray(env, info.Length() > 0 ? info[0] : env.Undefined(), "setRouting(layers)");
    const llama_model * model = model_->model();
    const uint32_t n_layer = (uint32_t) llama_model_n_layer(model);
    const uint32_t n_expert = model->hparams.n_expert;
    if (arr.Length() != 0 && arr.Length() != n_layer) {
        ThrowInvalidArg(env, "setRouting: expected one entry per layer (" + std::to_string(n_layer) + ")", JsErrorKind::RangeError);
    }
    Routing next;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
        const std::string at = "setRouting layers[" + std::to_string(i) + "]";
        Napi::Object l = RequireObject(env, arr.Get(i), at);
        LayerRouting r;
        r.experts = (int32_t) IntegerOption(env, l, "experts", 0, 0, std::min<int64_t>(n_expert, LLAMA_MAX_EXPERTS), at);
        r.expert_scale = (float) RequireNumber(env, l, "expertScale", at);
        r.gate_scale = (float) RequireNumber(env, l, "gateScale", at);
        r.ser_min = (int32_t) IntegerOption(env, l, "serMin", 0, 0, n_expert, at);
        r.ser_ratio = (float) RequireNumber(env, l, "serRatio", at);
        r.mix_top = (int32_t) IntegerOption(env, l, "mixTop", 0, 0, n_expert, at);
        if (!(r.expert_scale > 0.0f) || !std::isfinite(r.expert_scale) || !(r.gate_scale > 0.0f) || !std::isfinite(r.gate_scale)) {
            ThrowInvalidArg(env, at + ": scales must be finite and > 0", JsErrorKind::RangeError);
        }
        if (!(r.ser_ratio >= 0.0f && r.ser_ratio <= 1.0f)) ThrowInvalidArg(env, at + ": serRatio must be in [0, 1]", JsErrorKind::RangeError);
        const double top_p = l.Get("topP").IsUndefined() ? 0.0 : RequireNumber(env, l, "topP", at);
        if (!(top_p >= 0.0 && top_p <= 1.0)) ThrowInvalidArg(env, at + ": topP must be in [0, 1]", JsErrorKind::RangeError);
        r.top_p = (float) top_p;
        if (!l.Get("mask").IsUndefined()) {
            Napi::Array mask = RequireArray(env, l.Get("mask"), at + ".mask");
            for (uint32_t j = 0; j < mask.Length(); ++j) {
                Napi::Value v = mask.Get(j);
                const double id = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
                if (!(id >= 0 && id < n_expert && id == std::floor(id)) || (!r.mask.empty() && id <= r.mask.back())) {
                    ThrowInvalidArg(env, at + ".mask: expected ascending expert ids in [0, " + std::to_string(n_expert - 1) + "]", JsErrorKind::RangeError);
                }
                r.mask.push_back((int32_t) id);
            }
            const uint32_t used = r.experts > 0 ? (uint32_t) r.experts : model->hparams.n_expert_used(i);
            if (!r.mask.empty() && n_expert - r.mask.size() < used) {
                ThrowInvalidArg(env, at + ".mask: leaves fewer experts than are used per token", JsErrorKind::RangeError);
            }
        }
        next.layers.push_back(r);
    }
    next.touch();
    next.computed = &computed_;
    routing_ = std::move(next);
    hook_active_ = true;
    return env.Undefined();
}

Napi::Value Context::Evaluate(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (ctx_ == nullptr) ThrowCoded(env, "ERR_STATE", "the context is not initialized");
    return PromiseWorker::Start(EvaluateWorker::Create(info, this));
}

Napi::Value Context::Logits(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (ctx_ == nullptr) ThrowCoded(env, "ERR_STATE", "the context is not initialized");
    return PromiseWorker::Start(LogitsWorker::Create(info, this));
}

Napi::Value Context::MultipleChoice(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (ctx_ == nullptr) ThrowCoded(env, "ERR_STATE", "the context is not initialized");
    return PromiseWorker::Start(MultipleChoiceWorker::Create(info, this));
}

Napi::Value Context::Bench(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (ctx_ == nullptr) ThrowCoded(env, "ERR_STATE", "the context is not initialized");
    return PromiseWorker::Start(BenchWorker::Create(info, this));
}

// takeRoutingStats() → per-layer sums collected since the last call (calibration contexts only)
Napi::Value Context::TakeRoutingStats(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (!stats_) ThrowCoded(env, "ERR_STATE", "this context was not created to collect routing statistics");
    auto layers = stats_->Take();
    Napi::Array out = Napi::Array::New(env, layers.size());
    auto arr = [&](const std::vector<double> & v) {
        Napi::Array a = Napi::Array::New(env, v.size());
        for (size_t i = 0; i < v.size(); ++i) a.Set(i, v[i]);
        return a;
    };
    for (size_t i = 0; i < layers.size(); ++i) {
        const auto & l = layers[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("layer", l.layer);
        o.Set("experts", l.n_expert);
        o.Set("computed", l.k);
        o.Set("tokens", (double) l.tokens);
        o.Set("weight", arr(l.weight));
        o.Set("norm", arr(l.norm));
        o.Set("reap", arr(l.reap));
        o.Set("probByRank", arr(l.prob_by_rank));
        o.Set("selected", arr(l.selected));
        o.Set("entropy", l.entropy);
        o.Set("norm2", arr(l.norm2));
        o.Set("dot", l.dot);
        o.Set("self", l.self);
        o.Set("pairs", (double) l.pairs);
        o.Set("singles", (double) l.singles);
        out.Set(i, o);
    }
    return out;
}

// takeImatrix() → [{ name, values: Float32Array, counts: Float64Array }] collected since the last call
// (imatrix contexts only), sorted by tensor name
Napi::Value Context::TakeImatrix(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (!imatrix_) ThrowCoded(env, "ERR_STATE", "this context was not created to collect an importance matrix");
    if (busy_) ThrowCoded(env, "ERR_BUSY", "the context is running an operation");
    std::string error;
    auto entries = imatrix_->Take(error);
    if (!error.empty()) ThrowCoded(env, "ERR_IMATRIX", "importance matrix collection failed: " + error);
    return ImatrixEntriesToJs(env, entries);
}

// memory() → llama.cpp's own accounting of this context (what it prints at exit as its memory
// breakdown), summed over buffer types: the model's weights it uses, the KV cache, the compute buffers.
// Runs on the JS thread; src/context.ts queues it behind running work, and a busy context refuses.
Napi::Value Context::Memory(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    CheckUsable(env);
    if (ctx_ == nullptr) ThrowCoded(env, "ERR_STATE", "the context is not initialized");
    if (busy_) ThrowCoded(env, "ERR_BUSY", "the context is running an operation");
    double model = 0, context = 0, compute = 0;
    Napi::Array buffers = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto & [buft, mb] : llama_get_memory_breakdown(ctx_)) {
        model += (double) mb.model;
        context += (double) mb.context;
        compute += (double) mb.compute;
        Napi::Object b = Napi::Object::New(env);
        b.Set("bufferType", ggml_backend_buft_name(buft));
        b.Set("model", (double) mb.model);
        b.Set("context", (double) mb.context);
        b.Set("compute", (double) mb.compute);
        buffers.Set(i++, b);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("model", model);
    out.Set("context", context);
    out.Set("compute", compute);
    out.Set("buffers", buffers);
    return out;
}

Napi::Value Context::Abort(const Napi::CallbackInfo & info) {
    abort_ = true;
    return info.Env().Undefined();
}

Napi::Value Context::Dispose(const Napi::CallbackInfo & info) {
    if (!disposed_) {
        disposed_ = true;
        abort_ = true;   // a running evaluation stops at the next check and frees the context after
        Free();
    }
    return info.Env().Undefined();
}

}  // namespace moe_eval
