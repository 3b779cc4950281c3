// moe-eval's routing logic at llama.cpp's MoE call sites (see moe-eval-routing-hook.h for the contract).
// Compiled into the llama library; everything here is ggml graph ops, so every backend runs it.
#include "moe-eval-routing-hook.h"
#include "Routing.h"

#include "ggml.h"
#include "ggml-backend.h"
#include "llama-graph.h"
#include "llama-hparams.h"
#include "ggml-backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace moe_eval {

namespace {
thread_local const Routing * t_routing = nullptr;
thread_local std::vector<LayerFacts> * t_facts = nullptr;
thread_local int t_layer_gating = 0;  // of the layer being built (begin_layer → select_weights)
thread_local bool t_layer_norm_w = false;
thread_local bool t_layer_bias = false;   // the layer has a selection bias (exp_probs_b)
thread_local llm_graph_result * t_layer_res = nullptr;  // the graph being built, for its node count
thread_local ggml_tensor * t_layer_mask = nullptr;      // the layer's mask input [n_expert] (0 / -inf), if masked
thread_local ExpertCounter * t_counter = nullptr;
thread_local ggml_backend_sched_t t_sched = nullptr;
constexpr const char * kKeptPrefix = "moe_eval_kept-";
std::atomic<uint64_t> g_next_version{1};
}  // namespace

void Routing::touch() { version = g_next_version.fetch_add(1); }

const Routing * current_routing() { return t_routing; }

ScopedRouting::ScopedRouting(const Routing * routing) : previous_(t_routing) { t_routing = routing; }
ScopedRouting::~ScopedRouting() { t_routing = previous_; }

ScopedExpertCounter::ScopedExpertCounter(ExpertCounter * counter, ggml_backend_sched_t sched)
    : previous_(t_counter), previous_sched_(t_sched) {
    t_counter = counter;
    t_sched = sched;
}
ScopedExpertCounter::~ScopedExpertCounter() {
    t_counter = previous_;
    t_sched = previous_sched_;
}

void ExpertCounter::Reset() {
    for (auto & l : layers_) l.kept = l.tokens = 0;
}

std::vector<double> ExpertCounter::Means() const {
    std::vector<double> out(layers_.size(), -1.0);
    for (size_t i = 0; i < layers_.size(); ++i) {
        const Layer & l = layers_[i];
        if (l.k == 0) continue;
        out[i] = !l.dynamic ? (double) l.k : (l.tokens > 0 ? l.kept / l.tokens : -1.0);
    }
    return out;
}

void ExpertCounter::OnLayerBuilt(int il, int32_t k, bool dynamic) {
    if (il < 0) return;
    if ((size_t) il >= layers_.size()) layers_.resize(il + 1);
    layers_[il].k = k;
    layers_[il].dynamic = dynamic;
}

void ExpertCounter::InstallOn(ggml_backend_sched_t sched) {
    if (sched != nullptr) ggml_backend_sched_set_eval_callback(sched, &ExpertCounter::Callback, this);
}

bool ExpertCounter::Callback(ggml_tensor * t, bool ask, void * user_data) {
    auto * self = static_cast<ExpertCounter *>(user_data);
    if (std::strncmp(t->name, kKeptPrefix, std::strlen(kKeptPrefix)) != 0) {
        return self->chained_ ? self->chained_(t, ask, self->chained_data_) : !ask;
    }
    if (ask) return true;
    const int il = std::atoi(t->name + std::strlen(kKeptPrefix));
    if (il < 0 || (size_t) il >= self->layers_.size() || t->type != GGML_TYPE_F32) return true;
    std::vector<float> kept(ggml_nelements(t));
    ggml_backend_tensor_get(t, kept.data(), 0, ggml_nbytes(t));
    double sum = 0;
    for (float x : kept) sum += x;
    self->layers_[il].kept += sum;
    self->layers_[il].tokens += (double) kept.size();
    return true;
}

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

// The mask as a graph input: [n_expert] F32, 0 for an expert that exists, -inf for a masked one.
class MaskInput final : public llm_graph_input_i {
public:
    MaskInput(ggml_tensor * t, std::vector<int32_t> ids) : tensor_(t), ids_(std::move(ids)) {}
    void set_input(const llama_ubatch *) override {
        std::vector<float> v(ggml_nelements(tensor_), 0.0f);
        for (int32_t id : ids_) {
            if (id >= 0 && (size_t) id < v.size()) v[id] = -INFINITY;
        }
        ggml_backend_tensor_set(tensor_, v.data(), 0, v.size() * sizeof(float));
    }
    bool can_reuse(const llm_graph_params &) override { return true; }  // the RoutingReuseGuard decides
private:
    ggml_tensor * tensor_;
    std::vector<int32_t> ids_;
};

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
    moe_eval::t_layer_bias = has_selection_bias;
    moe_eval::t_layer_res = res;
    moe_eval::t_layer_mask = nullptr;
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

// The layer's mask input, created once per layer and graph (nullptr when nothing is masked).
static ggml_tensor * layer_mask(ggml_context * ctx, int64_t n_expert, int il) {
    const auto * l = layer_routing(il);
    if (!l || l->mask.empty()) return nullptr;
    if (moe_eval::t_layer_mask == nullptr && moe_eval::t_layer_res != nullptr) {
        ggml_tensor * m = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, n_expert);
        ggml_set_input(m);
        ggml_format_name(m, "moe_eval_mask-%d", il);
        moe_eval::t_layer_res->add_input(std::make_unique<moe_eval::MaskInput>(m, l->mask));
        moe_eval::t_layer_mask = m;
    }
    return moe_eval::t_layer_mask;
}

ggml_tensor * gate_logits(ggml_context * ctx, ggml_tensor * logits, int il) {
    const auto * l = layer_routing(il);
    if (!l) return logits;
    if (l->gate_scale != 1.0f) {
        logits = ggml_scale(ctx, logits, l->gate_scale);
        ggml_format_name(logits, "moe_eval_gate_scaled-%d", il);
    }
    if (ggml_tensor * m = layer_mask(ctx, logits->ne[0], il)) {
        // -inf: softmax gives the masked experts probability 0 and renormalizes over the others exactly as
        // if their router rows were removed; sigmoid / softplus give 0; a softmax over the chosen never sees them
        logits = ggml_add(ctx, logits, m);
        ggml_format_name(logits, "moe_eval_masked_logits-%d", il);
    }
    return logits;
}

ggml_tensor * selection_scores(ggml_context * ctx, ggml_tensor * scores, int64_t n_expert_groups, int il) {
    const auto * l = layer_routing(il);
    if (!l || l->mask.empty()) return scores;
    // Without a selection bias or expert groups the scores already rank every masked expert last: they
    // are the gating function of a -inf logit (softmax and sigmoid give 0, a softmax over the chosen reads
    // the logits themselves). Adding the mask again would only put an op between the gating function and
    // the top-k, where the GPU backends' fused top-k MoE op (Vulkan, CUDA) would no longer match.
    if (!moe_eval::t_layer_bias && n_expert_groups <= 1) return scores;
    ggml_tensor * m = layer_mask(ctx, scores->ne[0], il);
    if (m == nullptr) return scores;
    // after a selection bias (exp_probs_b) a masked expert's score would be 0 + b: make it -inf again, so
    // that it is never selected and an expert group scores as llama.cpp scores it, over its survivors
    ggml_tensor * out = ggml_add(ctx, scores, m);
    ggml_format_name(out, "moe_eval_masked_scores-%d", il);
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

// Router probabilities over all experts [N, n_tokens], as top-p reads them: the softmax itself; for
// sigmoid / sqrt-softplus scores, the scores normalized to sum 1; for a softmax over the chosen
// (gpt-oss), the softmax over all the logits. Masked experts have probability 0 in each.
static ggml_tensor * topp_probs(ggml_context * ctx, ggml_tensor * probs) {
    ggml_tensor * p = ggml_reshape_2d(ctx, probs, probs->ne[1], probs->ne[2]);  // probs arrive [1, N, T]
    switch (moe_eval::t_layer_gating) {
        case LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX: return p;
        case LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT: return ggml_soft_max(ctx, p);
        default: return ggml_div(ctx, p, ggml_sum_rows(ctx, p));
    }
}

ggml_tensor * select_weights(ggml_context * ctx, ggml_tensor * weights, ggml_tensor * probs, ggml_tensor * selected, int il) {
    const auto * l = layer_routing(il);
    const int64_t k = weights->ne[1];
    const int64_t n_tokens = weights->ne[2];
    const bool top_p = l && l->top_p > 0.0f && l->top_p < 1.0f && k > 1;
    const bool ser = l && l->ser_min > 0 && l->ser_min < k;
    if (moe_eval::t_counter != nullptr) {
        moe_eval::t_counter->OnLayerBuilt(il, (int32_t) k, top_p || ser);
    }
    if (!l) return weights;
    ggml_tensor * gathered = weights;  // the gating output of the chosen experts, in rank order
    weights = mix_top_only(ctx, weights, l->mix_top, il);
    if (!top_p && !ser) return weights;

    ggml_tensor * w = ggml_reshape_2d(ctx, weights, k, n_tokens);                 // [k, n_tokens]
    ggml_tensor * keep = nullptr;                                                  // 1 = mixed, 0 = dropped
    if (ser) {
        ggml_tensor * first = ggml_cont(ctx, ggml_view_2d(ctx, w, 1, n_tokens, w->nb[1], 0)); // [1, n_tokens]
        // keep_i = step(w_i - t·w_0): 1 where the expert's weight reaches the threshold
        keep = ggml_step(ctx, ggml_sub(ctx, w, ggml_repeat(ctx, ggml_scale(ctx, first, l->ser_ratio), w)));
        // the first Kmin are always kept: step(Kmin - 0.5 - i) over i = 0..k-1
        ggml_tensor * forced = ggml_step(ctx, ggml_scale_bias(ctx, ggml_arange(ctx, 0.0f, (float) k, 1.0f), -1.0f, l->ser_min - 0.5f));
        keep = ggml_clamp(ctx, ggml_add(ctx, keep, forced), 0.0f, 1.0f);
    }
    if (top_p) {
        // the chosen experts' probabilities in rank order, their exclusive running sum, and
        // keep_i = step(p - Σ_{j<i} P_j): an expert is kept while the ones ranked above it sum to < p
        // (a plain softmax: the gathered weights are those probabilities already; reading them rather than
        // the whole softmax keeps the GPU backends' fused softmax + top-k + gather, as for -ser)
        ggml_tensor * ranked = moe_eval::t_layer_gating == LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX
            ? gathered
            : ggml_get_rows(ctx, ggml_reshape_3d(ctx, topp_probs(ctx, probs), 1, probs->ne[1], n_tokens), selected);
        ranked = ggml_reshape_2d(ctx, ranked, k, n_tokens);
        ggml_tensor * before = ggml_sub(ctx, ggml_cumsum(ctx, ranked), ranked);
        ggml_tensor * kp = ggml_step(ctx, ggml_scale_bias(ctx, before, -1.0f, l->top_p));
        keep = keep ? ggml_mul(ctx, keep, kp) : kp;
    }
    ggml_format_name(keep, "moe_eval_keep-%d", il);
    ggml_tensor * out = ggml_mul(ctx, w, keep);
    if (moe_eval::t_layer_gating == LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT && !moe_eval::t_layer_norm_w) {
        // the model's own rule is a softmax over the experts it mixes: renormalize over the kept ones
        out = ggml_div(ctx, out, ggml_sum_rows(ctx, out));
    }
    ggml_format_name(out, "moe_eval_dropped-%d", il);
    if (moe_eval::t_counter != nullptr && moe_eval::t_layer_res != nullptr) {
        ggml_tensor * kept = ggml_sum_rows(ctx, keep);                              // [1, n_tokens]
        ggml_format_name(kept, "%s%d", moe_eval::kKeptPrefix, il);
        ggml_build_forward_expand(moe_eval::t_layer_res->get_gf(), kept);
        moe_eval::t_counter->InstallOn(moe_eval::t_sched);
    }
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
    const bool ser = l && l->ser_min > 0 && l->ser_min < weights->ne[1];
    const bool top_p = l && l->top_p > 0.0f && l->top_p < 1.0f && weights->ne[1] > 1;
    if (!ser && !top_p) return ids;
    if (!can_mark_dropped()) return ids;
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

float weights_scale(float w_scale, bool weight_before_ffn, int il) {
    const auto * l = layer_routing(il);
    // llama4 multiplies the weights into the experts' input: its scale goes on the output (moe_output)
    if (!l || l->expert_scale == 1.0f || weight_before_ffn) return w_scale;
    return (w_scale == 0.0f ? 1.0f : w_scale) * l->expert_scale;
}

ggml_tensor * moe_output(ggml_context * ctx, ggml_tensor * moe_out, bool weight_before_ffn, int il) {
    const auto * l = layer_routing(il);
    if (!l || l->expert_scale == 1.0f || !weight_before_ffn) return moe_out;
    ggml_tensor * out = ggml_scale(ctx, moe_out, l->expert_scale);
    ggml_format_name(out, "moe_eval_out_scaled-%d", il);
    return out;
}

}  // namespace moe_eval_hook
