#include "RoutingStats.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama-hparams.h"  // llama_expert_gating_func_type

namespace moe_eval {

namespace {

// "ffn_moe_probs-12" → ("ffn_moe_probs", 12)
bool SplitName(const char * name, std::string & base, int & il) {
    const char * dash = std::strrchr(name, '-');
    if (dash == nullptr || dash[1] == '\0') return false;
    char * end = nullptr;
    const long v = std::strtol(dash + 1, &end, 10);
    if (*end != '\0') return false;
    base.assign(name, dash - name);
    il = (int) v;
    return true;
}

// the experts' outputs before mixing: build_moe_ffn renames the tensor when it applies scales or biases
bool IsDown(const std::string & base) {
    return base == "ffn_moe_down" || base == "ffn_moe_down_scaled" || base == "ffn_moe_down_biased";
}

bool Wanted(const std::string & base) {
    return base == "ffn_moe_probs" || base == "ffn_moe_argsort" || IsDown(base) || base == "ffn_moe_weighted";
}

template <typename T>
void Fetch(ggml_tensor * t, std::vector<T> & out) {
    out.resize(ggml_nelements(t));
    ggml_backend_tensor_get(t, out.data(), 0, ggml_nbytes(t));
}

}  // namespace

bool RoutingStats::Callback(ggml_tensor * t, bool ask, void * user_data) {
    std::string base;
    int il = 0;
    if (!SplitName(t->name, base, il) || !Wanted(base)) return !ask;  // ask: not wanted; otherwise: continue
    if (ask) return true;
    static_cast<RoutingStats *>(user_data)->Observe(t);
    return true;
}

const LayerFacts * RoutingStats::FactsFor(int il) const {
    for (const auto & f : facts_) if (f.layer == il) return &f;
    return nullptr;
}

void RoutingStats::Observe(ggml_tensor * t) {
    std::string base;
    int il = 0;
    SplitName(t->name, base, il);
    std::lock_guard<std::mutex> lock(mutex_);
    Pending & p = pending_[il];
    if (base == "ffn_moe_probs") {
        if (!ggml_is_contiguous(t) || t->type != GGML_TYPE_F32) return;
        Fetch(t, p.probs);
        p.n_expert = t->ne[0];
        p.n_tokens = t->ne[1];
    } else if (base == "ffn_moe_argsort") {
        if (!ggml_is_contiguous(t) || t->type != GGML_TYPE_I32) return;
        Fetch(t, p.order);
    } else if (IsDown(base)) {
        if (!ggml_is_contiguous(t) || t->type != GGML_TYPE_F32) return;
        Fetch(t, p.down);  // the biased one, when present, arrives last and wins
        p.n_embd = t->ne[0];
        p.k = t->ne[1];
    } else if (base == "ffn_moe_weighted") {
        Process(il);
    }
}

void RoutingStats::Process(int il) {
    Pending & p = pending_[il];
    const LayerFacts * f = FactsFor(il);
    const int64_t N = p.n_expert, T = p.n_tokens, k = p.k, E = p.n_embd;
    if (f == nullptr || N == 0 || k == 0 || p.probs.size() != (size_t) (N * T) || p.order.size() != (size_t) (N * T) ||
        p.down.size() != (size_t) (E * k * T)) {
        return;  // shapes we do not understand (e.g. weights applied before the experts): no statistics
    }
    const int n = std::min<int>(f->n_expert_used, (int) k);
    const bool softmax_over_chosen = f->gating_op == LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT;
    const bool renorm = f->norm_w;

    LayerRoutingStats & s = stats_[il];
    if (s.n_expert == 0) {
        s.layer = il;
        s.n_expert = (int) N;
        s.k = (int) k;
        s.prob_by_rank.assign(N, 0.0);
        s.selected.assign(N, 0.0);
        s.norm2.assign(k, 0.0);
        s.weight.assign(N, 0.0);
        s.norm.assign(N, 0.0);
        s.reap.assign(N, 0.0);
    }
    std::vector<double> sorted(N), w(k), o(E);
    for (int64_t t = 0; t < T; ++t) {
        const float * prob = p.probs.data() + t * N;
        const int32_t * order = p.order.data() + t * N;
        const float * y = p.down.data() + t * E * k;

        for (int64_t i = 0; i < N; ++i) sorted[i] = prob[i];
        std::sort(sorted.begin(), sorted.end(), std::greater<double>());
        double total = 0;
        for (int64_t i = 0; i < N; ++i) s.prob_by_rank[i] += sorted[i];
        if (!softmax_over_chosen) {
            for (int64_t i = 0; i < N; ++i) total += std::max(0.0, sorted[i]);
            double h = 0;
            for (int64_t i = 0; i < N; ++i) {
                const double q = total > 0 ? std::max(0.0, sorted[i]) / total : 0;
                if (q > 0) h -= q * std::log(q);
            }
            s.entropy += h;
        }
        for (int i = 0; i < n; ++i) s.selected[order[i]] += 1;

        // o_m with the model's own weight rule over the top m, for m = 1..k
        for (int64_t m = 1; m <= k; ++m) {
            if (softmax_over_chosen) {
                double mx = -INFINITY, z = 0;
                for (int64_t i = 0; i < m; ++i) mx = std::max(mx, (double) prob[order[i]]);
                for (int64_t i = 0; i < m; ++i) z += w[i] = std::exp(prob[order[i]] - mx);
                for (int64_t i = 0; i < m; ++i) w[i] /= z;
            } else {
                double sum = 0;
                for (int64_t i = 0; i < m; ++i) sum += w[i] = prob[order[i]];
                if (renorm) {
                    sum = std::max(sum, 6.103515625e-5);
                    for (int64_t i = 0; i < m; ++i) w[i] /= sum;
                }
            }
            std::fill(o.begin(), o.end(), 0.0);
            for (int64_t i = 0; i < m; ++i) {
                const float * yi = y + i * E;
                for (int64_t e = 0; e < E; ++e) o[e] += w[i] * yi[e];
            }
            double nrm = 0;
            for (int64_t e = 0; e < E; ++e) nrm += o[e] * o[e];
            s.norm2[m - 1] += nrm;
            if (m == n) {
                // each routed expert: its weight in the model's own mix, its output norm (REAP)
                for (int64_t i = 0; i < m; ++i) {
                    const float * yi = y + i * E;
                    double sq = 0;
                    for (int64_t e = 0; e < E; ++e) sq += (double) yi[e] * yi[e];
                    const double norm = std::sqrt(sq);
                    const int32_t j = order[i];
                    s.weight[j] += w[i];
                    s.norm[j] += norm;
                    s.reap[j] += w[i] * norm;
                }
            }
        }
        // correlation between the outputs of the experts the model chooses
        for (int i = 0; i < n; ++i) {
            const float * yi = y + i * E;
            double self = 0;
            for (int64_t e = 0; e < E; ++e) self += (double) yi[e] * yi[e];
            s.self += self;
            s.singles++;
            for (int j = i + 1; j < n; ++j) {
                const float * yj = y + j * E;
                double d = 0;
                for (int64_t e = 0; e < E; ++e) d += (double) yi[e] * yj[e];
                s.dot += d;
                s.pairs++;
            }
        }
        s.tokens++;
    }
    pending_.erase(il);
}

std::vector<LayerRoutingStats> RoutingStats::Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<LayerRoutingStats> out;
    for (auto & [il, s] : stats_) out.push_back(std::move(s));
    stats_.clear();
    pending_.clear();
    return out;
}

}  // namespace moe_eval
