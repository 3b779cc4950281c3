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
// returns logits × gateScale (a separate ggml_scale, the form CUDA's fused top-k MoE kernel accepts).
ggml_tensor * gate_logits(ggml_context * ctx, ggml_tensor * logits, int il);

// Weights of the selected experts [1, k, n_tokens], before the model's own normalization: applies the
// -ser style threshold (keep the first Kmin, drop any other whose weight < ratio × the first one's).
ggml_tensor * select_weights(ggml_context * ctx, ggml_tensor * weights, int il);

// The expert ids [k, n_tokens] that the expert matrix multiplications use, once the weights are final
// (after select_weights, the model's normalization and the scales; dropped ones are exactly 0):
// when the layer's routing drops experts dynamically (-ser) and only CPU devices are registered, the
// id of every selected expert whose weight is exactly 0 becomes -1, which the patched CPU kernels
// (vendor/patches/0004) skip: mul_mat_id writes a zero row, add_id adds no bias. The mixed output is
// the same as computing the expert and multiplying by 0. Otherwise returns ids unchanged.
ggml_tensor * mark_dropped(ggml_context * ctx, ggml_tensor * ids, ggml_tensor * weights, int il);

// The model's expert-weights scale (0 means none) → the same times expertScale. Scaling the mixing
// weights by α is exactly scaling ffn_down_exps (and its bias) by α, since the weights multiply each
// expert's down-projection output.
float weights_scale(float w_scale, int il);

}  // namespace moe_eval_hook
