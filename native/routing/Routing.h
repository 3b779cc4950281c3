// A context's MoE routing as plain data, and the thread-local slot the llama.cpp hook reads it from.
//
// Why thread-local: llama.cpp builds (and reserves) graphs synchronously on the thread that calls
// llama_decode / llama_init_from_model, and build_moe_ffn has no handle to the llama_context. Our
// workers install their context's routing around those calls with ScopedRouting; other threads and
// other llama.cpp users in the process see no routing and get llama.cpp's graph unchanged.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe_eval {

struct LayerRouting {
    int32_t experts      = 0;     // experts per token; 0 = the model's own count
    float   expert_scale = 1.0f;  // multiplies the mixed routed-expert output (= scaling ffn_down_exps)
    float   gate_scale   = 1.0f;  // multiplies the router logits (= scaling ffn_gate_inp)
    int32_t ser_min      = 0;     // -ser Kmin: experts always kept (0 = threshold off)
    float   ser_ratio    = 0.0f;  // -ser t: drop an expert whose weight < t × the first one's
    int32_t mix_top      = 0;     // calibration: compute `experts` but mix only the first mix_top, with
                                  // the model's weight rule over them (0 = off)

    bool is_default() const {
        return experts == 0 && expert_scale == 1.0f && gate_scale == 1.0f && ser_min == 0 && mix_top == 0;
    }
};

// Experts actually computed where dropped experts are skipped (vendor/patches/0004): counted while the
// graph runs, summed over the MoE layers whose routing drops experts. k̄ = kept / rows.
struct ComputedExperts {
    std::atomic<uint64_t> rows{0};  // (token, layer) pairs
    std::atomic<uint64_t> kept{0};  // experts computed in them
    void reset() { rows = 0; kept = 0; }
};

struct Routing {
    std::vector<LayerRouting> layers;  // one entry per model layer; missing layers use defaults
    uint64_t version = 0;              // unique per routing value; part of the graph-reuse key
    ComputedExperts * computed = nullptr;  // where graphs built under this routing count skipped experts (may be null)

    const LayerRouting * layer(int il) const {
        if (il < 0 || static_cast<size_t>(il) >= layers.size()) return nullptr;
        const LayerRouting & l = layers[il];
        return l.is_default() ? nullptr : &l;
    }
    // Give this routing a fresh version (call after every change).
    void touch();
};

// What build_moe_ffn was called with for one layer: the routing facts of the model, as llama.cpp
// itself applies them (they are not all in the GGUF: several architectures hard-code them).
struct LayerFacts {
    int32_t layer = -1;
    int32_t n_expert = 0;
    int32_t n_expert_used = 0;
    int32_t gating_op = 0;        // llama_expert_gating_func_type
    bool    norm_w = false;       // chosen top-k weights renormalized to sum 1
    float   w_scale = 0.0f;       // expert-weights scale (0 = none)
    bool    selection_bias = false;  // DeepSeek-V3 style exp_probs_b
    int32_t graph_nodes = 0;      // nodes in the graph when this layer's experts were aggregated
    int32_t graph_size = 0;       // the graph's capacity (llama.cpp aborts beyond it)
};

// While alive on a thread, records LayerFacts for every MoE layer of the graphs built there.
class ScopedFactsRecorder {
public:
    explicit ScopedFactsRecorder(std::vector<LayerFacts> * out);
    ~ScopedFactsRecorder();
    ScopedFactsRecorder(const ScopedFactsRecorder &) = delete;
    ScopedFactsRecorder & operator=(const ScopedFactsRecorder &) = delete;
private:
    std::vector<LayerFacts> * previous_;
};

// The routing graphs built on this thread use (nullptr: llama.cpp's own).
const Routing * current_routing();

class ScopedRouting {
public:
    explicit ScopedRouting(const Routing * routing);
    ~ScopedRouting();
    ScopedRouting(const ScopedRouting &) = delete;
    ScopedRouting & operator=(const ScopedRouting &) = delete;
private:
    const Routing * previous_;
};

}  // namespace moe_eval
