// Routing statistics collected from the graph's own tensors while a calibration context decodes
// (llama.cpp's eval callback, set only on calibration contexts: other contexts pay nothing).
//
// Per MoE layer: mean router probability by rank (the measured prior), how often each expert is chosen
// among the model's n, router entropy, the correlation between chosen experts' outputs, and for every
// m ≤ k the mean squared norm of the routed output o_m that mixes the top-m experts with the model's own
// weight rule — so α_l(m) = sqrt(E‖o_n‖² / E‖o_m‖²) comes from the same tokens. Per expert, over the
// tokens routed to it: its mixing weight, its output norm and their product (REAP's saliency).
//
// The calibration context runs with k experts computed but only the top n mixed (LayerRouting::mix_top),
// so every layer sees the hidden states of the unmodified model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "Routing.h"

struct ggml_tensor;

namespace moe_eval {

struct LayerRoutingStats {
    int layer = 0;
    int n_expert = 0;
    int k = 0;                        // experts computed per token
    size_t tokens = 0;
    std::vector<double> prob_by_rank; // sum over tokens of the router's sorted probabilities
    std::vector<double> selected;     // times each expert was among the model's n
    double entropy = 0;               // sum of the normalized router distribution's entropy (nats)
    std::vector<double> norm2;        // norm2[m-1]: sum of ‖o_m‖², m = 1..k
    double dot = 0;                   // sum of y_i·y_j over chosen pairs i<j (among the model's n)
    double self = 0;                  // sum of ‖y_i‖² over the chosen (among n)
    size_t pairs = 0;
    size_t singles = 0;
    // per expert, over the tokens for which it is among the model's n (count: `selected`):
    std::vector<double> weight;       // sum of its mixing weight g (the model's own rule over the top n)
    std::vector<double> norm;         // sum of ‖y‖, the L2 norm of its output before weighting
    std::vector<double> reap;         // sum of g·‖y‖ (REAP saliency = reap / selected)
};

class RoutingStats {
public:
    // facts: how the model mixes (gating, renormalization) and its n, per layer
    explicit RoutingStats(std::vector<LayerFacts> facts) : facts_(std::move(facts)) {}

    // ggml_backend_sched_eval_callback
    static bool Callback(ggml_tensor * t, bool ask, void * user_data);

    std::vector<LayerRoutingStats> Take();

private:
    struct Pending {
        std::vector<float> probs;     // [N, T]
        std::vector<int32_t> order;   // [N, T] argsort, descending
        std::vector<float> down;      // [n_embd, k, T]
        int64_t n_embd = 0, k = 0, n_tokens = 0, n_expert = 0;
    };
    void Observe(ggml_tensor * t);
    void Process(int il);
    const LayerFacts * FactsFor(int il) const;

    std::vector<LayerFacts> facts_;
    std::map<int, Pending> pending_;
    std::map<int, LayerRoutingStats> stats_;
    std::mutex mutex_;
};

}  // namespace moe_eval
