// The interface that vendor/patches/0001-moe-routing-hook.patch adds to llama.cpp's build_moe_ffn.
//
// Each function is called at one routing site while a graph is built and returns its input unchanged
// unless a moe-eval routing is active on the building thread (see Routing.h), so a default or unhooked
// graph is exactly llama.cpp's own. Implemented in RoutingHook.cpp, compiled into the llama library.
#pragma once

#include <cstdint>

struct ggml_context;
struct ggml_tensor;
class llm_graph_result;

namespace moe_eval_hook {

// Called first in build_moe_ffn for layer `il`. Records the layer's routing facts as llama.cpp builds
// them (for Model.info: gating function, renormalization, expert-weights scale) when a recorder is
// active, registers the graph-reuse guard in `res` when a routing is active (a graph built under one
// routing is never reused under another), and returns the experts to select per token.
int64_t begin_layer(llm_graph_result * res, int il, int64_t n_expert, int64_t n_expert_used,
                    int gating_op, bool norm_w, float w_scale, bool has_selection_bias);

// Experts aggregated in layer `il` (llama.cpp reads hparams.n_expert_used(il) there): the override, if any.
int64_t n_expert_used(int64_t n_expert_used, int il);

// Router logits [n_expert, n_tokens] after any router bias, before the gating function:
// returns logits × gateScale (a separate ggml_scale, the form CUDA's fused top-k MoE kernel accepts),
// plus the mask (-inf for every masked expert: a graph input of the layer).
ggml_tensor * gate_logits(ggml_context * ctx, ggml_tensor * logits, int il);

// Selection scores [n_expert, n_tokens] (after any selection bias, before expert groups and top-k):
// where the layer has a selection bias or expert groups (n_expert_groups > 1), masked experts get -inf
// again, so a bias cannot bring them back and groups are scored over survivors.
ggml_tensor * selection_scores(ggml_context * ctx, ggml_tensor * scores, int64_t n_expert_groups, int il);

// Weights of the selected experts [1, k, n_tokens], before the model's own normalization; `probs` the
// gating output [1, n_expert, n_tokens] and `selected` the chosen ids [k, n_tokens]. Applies the -ser
// threshold (keep the first Kmin, drop any other whose weight < ratio × the first one's) and top-p
// (keep the fewest ranked experts whose probabilities reach p) by zeroing dropped weights, and counts
// the kept experts for k̄ when an ExpertCounter is active.
ggml_tensor * select_weights(ggml_context * ctx, ggml_tensor * weights, ggml_tensor * probs, ggml_tensor * selected, int il);

// The expert ids [k, n_tokens] that the expert matrix multiplications use, once the weights are final
// (after select_weights, the model's normalization and the scales; dropped ones are exactly 0):
// when the layer's routing drops experts dynamically (-ser) and only CPU devices are registered, the
// id of every selected expert whose weight is exactly 0 becomes -1, which the patched CPU kernels
// (vendor/patches/0004) skip: mul_mat_id writes a zero row, add_id adds no bias. The mixed output is
// the same as computing the expert and multiplying by 0. Otherwise returns ids unchanged.
ggml_tensor * mark_dropped(ggml_context * ctx, ggml_tensor * ids, ggml_tensor * weights, int il);

// The model's expert-weights scale (0 means none) → the same times expertScale. Scaling the mixing
// weights by α is exactly scaling ffn_down_exps (and its bias) by α, since the weights multiply each
// expert's down-projection output. Not where the weights scale the experts' input (llama4): see moe_output.
float weights_scale(float w_scale, bool weight_before_ffn, int il);

// The aggregated routed-expert output [n_embd, n_tokens]: × expertScale where the router weights scale
// the experts' input (llama4), which is exactly scaling ffn_down_exps there.
ggml_tensor * moe_output(ggml_context * ctx, ggml_tensor * moe_out, bool weight_before_ffn, int il);

}  // namespace moe_eval_hook
