#include "Perplexity.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace moe_eval {

double TokenNll(const float * logits, int n_vocab, int32_t token) {
    float max_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int i = 0; i < n_vocab; ++i) sum_exp += expf(logits[i] - max_logit);
    // llama-perplexity: log_softmax = logits[tok] - max_logit - log(sum_exp); NLL is its negation
    return -(logits[token] - max_logit - log(sum_exp));
}

NllSums ScoreRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, int n_threads) {
    const int n_workers = std::max(1, std::min(n_threads, n / 16 + 1));
    std::vector<NllSums> partial(n_workers);
    auto work = [&](int w) {
        NllSums s;
        for (int i = w; i < n; i += n_workers) {
            const double v = TokenNll(logits + (size_t) i * n_vocab, n_vocab, next_tokens[i]);
            s.nll += v;
            s.nll2 += v * v;
            s.count++;
        }
        partial[w] = s;
    };
    std::vector<std::thread> threads;
    for (int w = 1; w < n_workers; ++w) threads.emplace_back(work, w);
    work(0);
    for (auto & t : threads) t.join();
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
