#include "Perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/ParallelRows.h"

// ggml-cpu's vectorized softmax (ggml-cpu/vec.h): writes exp(x[i] - max) to y and returns their sum
// in double; compiled with ggml's own SIMD flags. extern "C" but not ggml's public API, so a llama.cpp
// tree that renames it fails at link time, not silently.
extern "C" double ggml_vec_soft_max_f32(const int n, float * y, const float * x, float max);

namespace moe_eval {

double TokenNll(const float * logits, int n_vocab, int32_t token, float * scratch) {
    float max_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    const double sum_exp = ggml_vec_soft_max_f32(n_vocab, scratch, logits, max_logit);
    return -(logits[token] - max_logit - log(sum_exp));
}

NllSums ScoreRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, int n_threads) {
    std::vector<NllSums> partial(std::max(1, n_threads));
    ParallelRows(n, n_threads, [&](int w, int stride) {
        NllSums s;
        std::vector<float> scratch(n_vocab);
        for (int i = w; i < n; i += stride) s.Add(TokenNll(logits + (size_t) i * n_vocab, n_vocab, next_tokens[i], scratch.data()));
        partial[w] = s;
    });
    NllSums total;
    for (const auto & p : partial) total += p;  // fixed order: deterministic for a given thread count
    return total;
}

PerplexityEstimate Estimate(const NllSums & s) {
    PerplexityEstimate e;
    if (s.count == 0) return e;
    const double nll = s.nll / s.count;
    double var = s.nll2 / s.count - nll * nll;
    e.mean_nll = nll;
    e.perplexity = std::exp(nll);
    e.stderr_ppl = (var > 0 && s.count > 1) ? std::sqrt(var / (s.count - 1)) * e.perplexity : 0.0;
    return e;
}

}  // namespace moe_eval
