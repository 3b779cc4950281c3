// KL-divergence against a base model, exactly as llama.cpp's tools/perplexity/perplexity.cpp computes
// it (--kl-divergence-base / --kl-divergence): the base's log-probabilities are stored per scored
// token as uint16 (a scale, a minimum and 16-bit steps over the top 16 nats), and every statistic is
// accumulated from them the same way, so numbers match llama-perplexity's and files are interchangeable.
#pragma once

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
};

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

// Everything llama-perplexity prints in KL-divergence mode.
struct KldStats {
    double ppl = 0, ppl_unc = 0, ppl_base = 0, ppl_base_unc = 0;
    double cor = 0;                       // Cor(ln PPL(Q), ln PPL(base))
    double log_ratio = 0, log_ratio_unc = 0;  // mean ln(PPL(Q)/PPL(base))
    double ratio = 0, ratio_unc = 0;      // PPL(Q)/PPL(base)
    double diff = 0, diff_unc = 0;        // PPL(Q)-PPL(base)
    double kld = 0, kld_unc = 0;
    double kld_max = 0, kld_999 = 0, kld_99 = 0, kld_95 = 0, kld_90 = 0, kld_median = 0, kld_10 = 0, kld_5 = 0, kld_1 = 0, kld_01 = 0, kld_min = 0;
    double dp = 0, dp_unc = 0;            // mean Δp
    double dp_max = 0, dp_999 = 0, dp_99 = 0, dp_95 = 0, dp_90 = 0, dp_75 = 0, dp_median = 0, dp_25 = 0, dp_10 = 0, dp_5 = 0, dp_1 = 0, dp_01 = 0, dp_min = 0;
    double dp_rms = 0, dp_rms_unc = 0;
    double same_top = 0, same_top_unc = 0;
    size_t count = 0;
};

KldStats Summarize(const KldSums & sums, std::vector<float> kld_values, std::vector<float> p_diff_values);

}  // namespace moe_eval
