// KL-divergence against a base model, exactly as llama.cpp's tools/perplexity/perplexity.cpp computes
// it (--kl-divergence-base / --kl-divergence): the base's log-probabilities are stored per scored
// token as uint16 (a scale, a minimum and 16-bit steps over the top 16 nats), and every statistic is
// accumulated from them the same way, so numbers match llama-perplexity's and files are interchangeable.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace moe_eval {

// uint16 slots per scored token in a base file: the vocabulary rounded up to even, plus 4 (scale, min).
inline int LogProbRowSize(int n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

struct KldSums {
    double sum_nll = 0.0;
    double sum_nll2 = 0.0;
    double sum_nll_base = 0.0;
    double sum_nll_base2 = 0.0;
    double sum_nll_nll_base = 0.0;
    double sum_kld = 0.0;
    double sum_kld2 = 0.0;
    double sum_p_diff = 0.0;
    double sum_p_diff2 = 0.0;
    double sum_p_diff4 = 0.0;
    float max_p_diff = 0.0f;
    size_t n_same_top = 0;
    size_t count = 0;

    KldSums & operator+=(const KldSums & o);

    // One scored token, as llama-perplexity's log_softmax(…, kld) accumulates it: the NLLs of the token
    // under the evaluated model and the base, the token's KLD, whether both put the same token on top.
    // Returns Δp = p - p_base.
    float Add(float nll, float nll_base, double kld, bool same_top);
};

// llama-perplexity's log_softmax() normalizer of one row of logits: the first maximum and its index,
// Σ exp(logit - max) with float exps summed in double, and its log rounded to float.
struct RowNorm {
    float max_logit = 0.0f;
    int imax = 0;
    double sum_exp = 0.0;
    float log_sum_exp = 0.0f;

    // the NLL of token `tok` (float arithmetic, as llama-perplexity's)
    float nll(const float * logits, int tok) const { return max_logit + log_sum_exp - logits[tok]; }
};

// on_exp(i, e) sees each term of the sum, in id order (a caller may sum a part of the row on the way).
template <typename F>
RowNorm NormalizeRow(const float * logits, int n_vocab, F && on_exp) {
    RowNorm r;
    r.max_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) {
        if (logits[i] > r.max_logit) {
            r.max_logit = logits[i];
            r.imax = i;
        }
    }
    for (int i = 0; i < n_vocab; ++i) {
        const double e = expf(logits[i] - r.max_logit);
        r.sum_exp += e;
        on_exp(i, e);
    }
    r.log_sum_exp = log(r.sum_exp);
    return r;
}

inline RowNorm NormalizeRow(const float * logits, int n_vocab) {
    return NormalizeRow(logits, n_vocab, [](int, double) {});
}

// The base writer: quantizes one row of logits into `out` (LogProbRowSize slots); returns the NLL of
// `token` (as llama-perplexity computes it while writing a base).
double QuantizeLogProbs(const float * logits, int n_vocab, int32_t token, uint16_t * out);

// Quantizes n rows (row i predicts next_tokens[i]) into out; returns the NLL sums of the base.
struct NllSums;
NllSums QuantizeRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, int n_threads, uint16_t * out);

// Compares n rows of logits with n base rows; adds to `sums`; writes each token's KLD and Δp.
void CompareRows(const float * logits, int n_vocab, const uint16_t * base, const int32_t * next_tokens, int n,
                 int n_threads, KldSums & sums, float * kld_values, float * p_diff_values);

// llama-perplexity's mean_and_uncertainty(): the mean of `count` values and its uncertainty, from their
// sum and sum of squares (0 uncertainty for 10 values or fewer).
std::pair<double, double> MeanAndUncertainty(double sum, double sum2, size_t count);

// Percentiles of per-token values, as llama-perplexity's percentile() and median() compute them.
struct Quantiles {
    double max = 0, p999 = 0, p99 = 0, p95 = 0, p90 = 0, p75 = 0, median = 0, p25 = 0, p10 = 0, p5 = 0, p1 = 0, p01 = 0, min = 0;
};

// Everything llama-perplexity prints in KL-divergence mode.
struct KldStats {
    double ppl = 0, ppl_unc = 0, ppl_base = 0, ppl_base_unc = 0;
    double cor = 0;                       // Cor(ln PPL(Q), ln PPL(base))
    double log_ratio = 0, log_ratio_unc = 0;  // mean ln(PPL(Q)/PPL(base))
    double ratio = 0, ratio_unc = 0;      // PPL(Q)/PPL(base)
    double diff = 0, diff_unc = 0;        // PPL(Q)-PPL(base)
    double kld = 0, kld_unc = 0;
    Quantiles kld_q;                      // of the tokens' KLD (llama-perplexity prints all but p75, p25)
    double dp = 0, dp_unc = 0;            // mean Δp
    Quantiles dp_q;                       // of the tokens' Δp
    double dp_rms = 0, dp_rms_unc = 0;
    double same_top = 0, same_top_unc = 0;
    size_t count = 0;
};

KldStats Summarize(const KldSums & sums, std::vector<float> kld_values, std::vector<float> p_diff_values);

}  // namespace moe_eval
