// A llama_context with its own MoE routing (JS class `Context` of the addon).
//
// One operation at a time: src/context.ts queues calls, and the native side refuses overlap
// (ERR_BUSY) as a second line of defence. abort() stops a running evaluation between batches and,
// on CPU, inside a decode (llama's abort callback); the context stays usable.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "llama.h"
#include "routing/Routing.h"
#include "metrics/Imatrix.h"
#include "routing/RoutingStats.h"

namespace moe_eval {

class Model;

struct ContextOptions {
    uint32_t n_ctx = 512;       // KV cache size in tokens (JS kvSize: chunk size × sequences per batch)
    uint32_t n_batch = 512;
    uint32_t n_ubatch = 512;
    uint32_t n_seq_max = 1;
    int32_t n_threads = 4;
    llama_flash_attn_type flash_attn = LLAMA_FLASH_ATTN_TYPE_AUTO;  // JS flashAttention: 'auto' | 'on' | 'off'
    ggml_type type_k = GGML_TYPE_F16;  // JS cacheTypeK / cacheTypeV (ggml type names)
    ggml_type type_v = GGML_TYPE_F16;
    int32_t reserve_experts = 0;  // reserve compute buffers for this many experts per token (0 = model's)
    bool collect_routing_stats = false;  // calibration: read router/expert tensors through the eval callback
    bool collect_imatrix = false;        // importance matrix: read matmul inputs through the eval callback; every token an output
    bool kv_unified = false;             // one KV buffer for all sequences (llama-perplexity's multiple-choice scores)
};

inline constexpr napi_type_tag kContextTag = {0x6d6f652d6576616cULL, 0x436f6e7465787402ULL};

class Context : public Napi::ObjectWrap<Context> {
public:
    static constexpr const char * kJsName = "Context";
    static Napi::Function Define(Napi::Env env);
    explicit Context(const Napi::CallbackInfo & info);
    ~Context() override;

    Model * model() const { return model_; }
    llama_context * ctx() const { return ctx_; }
    const ContextOptions & options() const { return options_; }
    // The routing workers install for llama.cpp's hook: nullptr when the hook is switched off
    // (setRouting(null), used by the test that default routing is bit-identical to no hook at all).
    const Routing * hook_routing() const { return hook_active_ ? &routing_ : nullptr; }
    std::atomic<bool> & abort_flag() { return abort_; }
    // k̄ of the graphs this context computes (see ExpertCounter in routing/Routing.h)
    ExpertCounter & expert_counter() { return *counter_; }
    ComputedExperts & computed_experts() { return computed_; }
    bool busy() const { return busy_; }
    // An imatrix context decodes every token as an output, as llama-imatrix does (the last layer then
    // computes its FFN for every token).
    bool all_outputs() const { return imatrix_ != nullptr; }

    // Called by workers on the JS thread.
    void BeginWork();
    void EndWork();

private:
    friend class ContextInitWorker;

    Napi::Value Init(const Napi::CallbackInfo & info);
    Napi::Value SetRouting(const Napi::CallbackInfo & info);
    Napi::Value Evaluate(const Napi::CallbackInfo & info);
    Napi::Value Logits(const Napi::CallbackInfo & info);
    Napi::Value MultipleChoice(const Napi::CallbackInfo & info);
    Napi::Value Bench(const Napi::CallbackInfo & info);
    Napi::Value TakeRoutingStats(const Napi::CallbackInfo & info);
    Napi::Value TakeImatrix(const Napi::CallbackInfo & info);
    Napi::Value Memory(const Napi::CallbackInfo & info);
    Napi::Value Abort(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    void CheckUsable(Napi::Env env) const;
    void Free();

    Napi::ObjectReference model_ref_;
    Model * model_ = nullptr;
    ContextOptions options_;
    llama_context * ctx_ = nullptr;
    Routing routing_;
    ComputedExperts computed_;  // counted by graphs built under routing_ (vendor/patches/0004)
    bool hook_active_ = true;
    std::unique_ptr<RoutingStats> stats_;
    std::unique_ptr<ImatrixCollector> imatrix_;
    std::unique_ptr<ExpertCounter> counter_;
    std::atomic<bool> abort_{false};
    bool busy_ = false;
    bool disposed_ = false;
};

}  // namespace moe_eval
