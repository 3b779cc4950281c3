// moe-eval's routing logic at llama.cpp's MoE call sites (see moe-eval-routing-hook.h for the contract).
// Compiled into the llama library; everything here is ggml graph ops, so every backend runs it.
#include "moe-eval-routing-hook.h"
#include "Routing.h"

#include "ggml.h"
#include "ggml-backend.h"
#include "llama-graph.h"
#include "llama-hparams.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace moe_eval {

namespace {
thread_local const Routing * t_routing = nullptr;
thread_local std::vector<LayerFacts> * t_facts = nullptr;
thread_local int t_layer_gating = 0;  // of the layer being built (begin_layer → select_weights)
thread_local bool t_layer_norm_w = false;
thread_local llm_graph_result * t_layer_res = nullptr;  // the graph being built, for its node count
std::atomic<uint64_t> g_next_version{1};
}  // namespace

void Routing::touch() { version = g_next_version.fetch_add(1); }

const Routing * current_routing() { return t_routing; }

ScopedRouting::ScopedRouting(const Routing * routing) : previous_(t_routing) { t_routing = routing; }
ScopedRouting::~ScopedRouting() { t_routing = previous_; }

ScopedFactsRecorder::ScopedFactsRecorder(std::vector<LayerFacts> * out) : previous_(t_facts) { t_facts = out; }
ScopedFactsRecorder::~ScopedFactsRecorder() { t_facts = previous_; }

namespace {

// A graph input with no tensor: it only answers "may the graph built under routing R be reused now?".
// llama.cpp reuses the previous graph when every input of it agrees (llm_graph_result::can_reuse).
class RoutingReuseGuard final : public llm_graph_input_i {
public:
    RoutingReuseGuard() : routing_(t_routing), version_(t_routing ? t_routing->version : 0) {}
    void set_input(const llama_ubatch *) override {}
    bool can_reuse(const llm_graph_params &) override {
        const Routing * now = t_routing;
        return now == routing_ && (now == nullptr || now->version == version_);
    }
private:
    const Routing * routing_;
    uint64_t version_;
};

const LayerRouting * layer_routing(int il) {
    return t_routing ? t_routing->layer(il) : nullptr;
}

}  // namespace
}  // namespace moe_eval

namespace moe_eval_hook {

using moe_eval::layer_routing;

static int64_t n_expert_used_for(int64_t n_default, int il) {
    const auto * l = layer_routing(il);
    return (l && l->experts > 0) ? l->experts : n_default;
}

int64_t begin_layer(llm_graph_result * res, int il, int64_t n_expert, int64_t n_expert_used,
                    int gating_op, bool norm_w, float w_scale, bool has_selection_bias) {
    moe_eval::t_layer_gating = gating_op;
    moe_eval::t_layer_norm_w = norm_w;
    moe_eval::t_layer_res = res;
    if (auto * facts = moe_eval::t_facts) {
        bool seen = false;
        for (const auto & f : *facts) seen = seen || f.layer == il;
        if (!seen) {
            facts->push_back({il, (int32_t) n_expert, (int32_t) n_expert_used, gating_op, norm_w, w_scale, has_selection_bias});
        }
    }
    if (res != nullptr && moe_eval::t_routing != nullptr) {
        res->add_input(std::make_unique<moe_eval::RoutingReuseGuard>());
    }
    return n_expert_used_for(n_expert_used, il);
}

int64_t n_expert_used(int64_t n_expert_used, int il) {
    // the facts recorder also notes how full the graph is here, so that moe-eval can refuse an expert
    // count whose extra aggregation nodes would overflow it (llama.cpp would abort)
    if (moe_eval::t_facts != nullptr && moe_eval::t_layer_res != nullptr) {
        ggml_cgraph * gf = moe_eval::t_layer_res->get_gf();
        for (auto & f : *moe_eval::t_facts) {
            if (f.layer == il && gf != nullptr) {
                f.graph_nodes = std::max<int32_t>(f.graph_nodes, ggml_graph_n_nodes(gf));
                f.graph_size = ggml_graph_size(gf);
            }
        }
    }
    return n_expert_used_for(n_expert_used, il);
}

ggml_tensor * gate_logits(ggml_context * ctx, ggml_tensor * logits, int il) {
    const auto * l = layer_routing(il);
    if (!l || l->gate_scale == 1.0f) return logits;
    ggml_tensor * out = ggml_scale(ctx, logits, l->gate_scale);
    ggml_format_name(out, "moe_eval_gate_scaled-%d", il);
    return out;
}

// Calibration: zero the weights of experts mix_top+1..k. Before a renormalizing model's own
// normalization that is exactly mixing the top mix_top; a softmax over the chosen experts (already
// applied here) restricted to the first mix_top and renormalized equals the softmax over those.
static ggml_tensor * mix_top_only(ggml_context * ctx, ggml_tensor * weights, int mix_top, int il) {
    const int64_t k = weights->ne[1];
    const int64_t n_tokens = weights->ne[2];
    if (mix_top <= 0 || mix_top >= k) return weights;
    ggml_tensor * w = ggml_reshape_2d(ctx, weights, k, n_tokens);
    ggml_tensor * keep = ggml_step(ctx, ggml_scale_bias(ctx, ggml_arange(ctx, 0.0f, (float) k, 1.0f), -1.0f, mix_top - 0.5f));
    w = ggml_mul(ctx, w, keep);
    if (moe_eval::t_layer_gating == LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT && !moe_eval::t_layer_norm_w) {
        w = ggml_div(ctx, w, ggml_sum_rows(ctx, w));
    }
    ggml_format_name(w, "moe_eval_mix_top-%d", il);
    return ggml_reshape_3d(ctx, w, 1, k, n_tokens);
}

ggml_tensor * select_weights(ggml_context * ctx, ggml_tensor * weights, int il) {
    const auto * l = layer_routing(il);
    if (!l) return weights;
    weights = mix_top_only(ctx, weights, l->mix_top, il);
    if (l->ser_min <= 0) return weights;
    const int64_t k = weights->ne[1];
    const int64_t n_tokens = weights->ne[2];
    if (l->ser_min >= k) return weights;  // every chosen expert is kept anyway

    ggml_tensor * w = ggml_reshape_2d(ctx, weights, k, n_tokens);                 // [k, n_tokens]
    ggml_tensor * first = ggml_cont(ctx, ggml_view_2d(ctx, w, 1, n_tokens, w->nb[1], 0)); // [1, n_tokens]
    // keep_i = step(w_i - t·w_0): 1 where the expert's weight reaches the threshold
    ggml_tensor * keep = ggml_step(ctx, ggml_sub(ctx, w, ggml_repeat(ctx, ggml_scale(ctx, first, l->ser_ratio), w)));
    // the first Kmin are always kept: step(Kmin - 0.5 - i) over i = 0..k-1
    ggml_tensor * forced = ggml_step(ctx, ggml_scale_bias(ctx, ggml_arange(ctx, 0.0f, (float) k, 1.0f), -1.0f, l->ser_min - 0.5f));
    keep = ggml_clamp(ctx, ggml_add(ctx, keep, forced), 0.0f, 1.0f);
    ggml_tensor * out = ggml_mul(ctx, w, keep);
    ggml_format_name(out, "moe_eval_ser-%d", il);
    return ggml_reshape_3d(ctx, out, 1, k, n_tokens);
}

// Only ggml's CPU kernels know the -1 marker (vendor/patches/0004); a GPU or RPC device could run
// these ops (weights offloaded, or op offload), so any non-CPU device turns marking off.
// MOE_EVAL_COMPUTE_DROPPED=1 turns it off too: dropped experts are computed and weighted by 0, as
// before 0004 (the tests compare both).
static bool can_mark_dropped() {
    const char * env = std::getenv("MOE_EVAL_COMPUTE_DROPPED");
    if (env != nullptr && std::strcmp(env, "1") == 0) return false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        const auto type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type != GGML_BACKEND_DEVICE_TYPE_CPU && type != GGML_BACKEND_DEVICE_TYPE_ACCEL) return false;
    }
    return true;
}

static void count_computed(ggml_tensor * dst, const ggml_tensor * ids, int ith, int nth, void * userdata) {
    if (ith != 0) return;
    auto * computed = static_cast<moe_eval::ComputedExperts *>(userdata);
    const int32_t * in = static_cast<const int32_t *>(ids->data);
    const int64_t n = ggml_nelements(ids);
    uint64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) kept += in[i] >= 0;
    std::memcpy(dst->data, ids->data, ggml_nbytes(ids));
    computed->rows += (uint64_t) ids->ne[1];
    computed->kept += kept;
}

ggml_tensor * mark_dropped(ggml_context * ctx, ggml_tensor * ids, ggml_tensor * weights, int il) {
    const auto * l = layer_routing(il);
    if (!l || l->ser_min <= 0 || l->ser_min >= weights->ne[1] || !can_mark_dropped()) return ids;
    const int64_t k = weights->ne[1];
    const int64_t n_tokens = weights->ne[2];
    // the weights here are final (after the gating function, the model's normalization and the scales),
    // exactly 0 where the rule dropped the expert; step(|w|) is 1 wherever w ≠ 0, whatever its sign
    ggml_tensor * w = ggml_is_contiguous(weights) ? weights : ggml_cont(ctx, weights);
    ggml_tensor * keep = ggml_step(ctx, ggml_abs(ctx, ggml_reshape_2d(ctx, w, k, n_tokens)));  // [k, n_tokens]: 1 kept, 0 dropped
    ggml_tensor * idf = ggml_scale_bias(ctx, ggml_cast(ctx, ids, GGML_TYPE_F32), 1.0f, 1.0f);  // id + 1 (exact in f32)
    ggml_tensor * marked = ggml_scale_bias(ctx, ggml_mul(ctx, idf, keep), 1.0f, -1.0f);      // id, or -1 where dropped
    marked = ggml_cast(ctx, marked, GGML_TYPE_I32);
    if (moe_eval::t_routing->computed != nullptr) {  // passes the ids through, counting the experts kept
        marked = ggml_map_custom1(ctx, marked, count_computed, 1, moe_eval::t_routing->computed);
    }
    ggml_format_name(marked, "moe_eval_marked_ids-%d", il);
    return marked;
}

float weights_scale(float w_scale, int il) {
    const auto * l = layer_routing(il);
    if (!l || l->expert_scale == 1.0f) return w_scale;
    return (w_scale == 0.0f ? 1.0f : w_scale) * l->expert_scale;
}

}  // namespace moe_eval_hook
