#include "Kld.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "Perplexity.h"
#include "util/ParallelRows.h"

namespace moe_eval {

KldSums & KldSums::operator+=(const KldSums & o) {
    sum_nll += o.sum_nll;
    sum_nll2 += o.sum_nll2;
    sum_nll_base += o.sum_nll_base;
    sum_nll_base2 += o.sum_nll_base2;
    sum_nll_nll_base += o.sum_nll_nll_base;
    sum_kld += o.sum_kld;
    sum_kld2 += o.sum_kld2;
    sum_p_diff += o.sum_p_diff;
    sum_p_diff2 += o.sum_p_diff2;
    sum_p_diff4 += o.sum_p_diff4;
    max_p_diff = std::max(max_p_diff, o.max_p_diff);
    n_same_top += o.n_same_top;
    count += o.count;
    return *this;
}

float KldSums::Add(float nll, float nll_base, double kld, bool same_top) {
    sum_nll += nll;
    sum_nll2 += nll * nll;
    sum_nll_base += nll_base;
    sum_nll_base2 += nll_base * nll_base;
    sum_nll_nll_base += nll * nll_base;
    sum_kld += kld;
    sum_kld2 += kld * kld;
    ++count;
    if (same_top) ++n_same_top;

    const float p_base = expf(-nll_base);
    const float p = expf(-nll);
    const float p_diff = p - p_base;
    sum_p_diff += p_diff;
    const double p_diff2 = p_diff * p_diff;
    sum_p_diff2 += p_diff2;
    sum_p_diff4 += p_diff2 * p_diff2;
    max_p_diff = std::max(max_p_diff, std::fabs(p_diff));
    return p_diff;
}

namespace {

inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    std::memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

// llama-perplexity's log_softmax(n_vocab, logits, tok, kld) for one row against its base row.
std::pair<double, float> CompareRow(const float * logits, int n_vocab, const uint16_t * base_log_prob, int tok, KldSums & kld) {
    const RowNorm r = NormalizeRow(logits, n_vocab);
    const float * d = (const float *) base_log_prob;
    const float scale = d[0];
    const float min_log_prob = d[1];
    base_log_prob += 4;

    const float nll = r.nll(logits, tok);
    const float nll_base = -(scale * base_log_prob[tok] + min_log_prob);

    const float log_norm = r.max_logit + r.log_sum_exp;
    double sum = 0;
    int imax_base = -1;
    float p_log_base_max = 0;
    for (int i = 0; i < n_vocab; ++i) {
        const float p_log_base = scale * base_log_prob[i] + min_log_prob;
        if (i == 0 || p_log_base > p_log_base_max) {
            p_log_base_max = p_log_base;
            imax_base = i;
        }
        if (p_log_base > -16.f) {
            const float p_base = expf(p_log_base);
            sum += p_base * (p_log_base - logits[i] + log_norm);
        }
    }
    const float p_diff = kld.Add(nll, nll_base, sum, r.imax == imax_base);
    return std::make_pair(sum, p_diff);
}

// llama-perplexity's percentile() and median() of sorted values, at the fractions it prints
Quantiles QuantilesOf(const std::vector<float> & values) {
    auto percentile = [&values](float fraction) -> double {
        if (values.empty()) return 0;
        if (fraction <= 0) return values.front();
        if (fraction >= 1) return values.back();
        float p = fraction * (values.size() - 1);
        size_t ip = size_t(p);
        p -= ip;
        return (1 - p) * values[ip] + p * values[std::min(ip + 1, values.size() - 1)];
    };
    auto median = [&values]() -> double {
        if (values.empty()) return 0;
        return values.size() % 2 == 0 ? 0.5f * (values[values.size() / 2] + values[values.size() / 2 - 1]) : values[values.size() / 2];
    };
    Quantiles q;
    q.max = values.back();
    q.p999 = percentile(0.999f);
    q.p99 = percentile(0.990f);
    q.p95 = percentile(0.950f);
    q.p90 = percentile(0.900f);
    q.p75 = percentile(0.750f);
    q.median = median();
    q.p25 = percentile(0.250f);
    q.p10 = percentile(0.100f);
    q.p5 = percentile(0.050f);
    q.p1 = percentile(0.010f);
    q.p01 = percentile(0.001f);
    q.min = values.front();
    return q;
}

}  // namespace

double QuantizeLogProbs(const float * logits, int n_vocab, int32_t tok, uint16_t * log_prob) {
    const RowNorm r = NormalizeRow(logits, n_vocab);
    const float max_logit = r.max_logit;
    float min_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) min_logit = std::min(min_logit, logits[i]);
    min_logit = std::max(min_logit, max_logit - 16);
    const float min_log_prob = min_logit - max_logit - r.log_sum_exp;
    const float scale = (max_logit - min_logit) / 65535.f;
    float * d = (float *) log_prob;
    d[0] = scale;
    d[1] = min_log_prob;
    log_prob += 4;
    if (scale) {
        const float inv_scale = 1 / scale;
        for (int i = 0; i < n_vocab; ++i) {
            log_prob[i] = logits[i] > min_logit ? nearest_int(inv_scale * (logits[i] - min_logit)) : 0;
        }
    } else {
        std::memset(log_prob, 0, n_vocab * sizeof(uint16_t));
    }
    // the padding slot of an odd vocabulary is written too, so files are byte-for-byte deterministic
    const int nv = LogProbRowSize(n_vocab);
    for (int i = n_vocab; i < nv - 4; ++i) log_prob[i] = 0;
    return r.nll(logits, tok);
}

NllSums QuantizeRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, int n_threads, uint16_t * out) {
    const int nv = LogProbRowSize(n_vocab);
    std::vector<NllSums> partial(std::max(1, n_threads));
    ParallelRows(n, n_threads, [&](int w, int stride) {
        NllSums s;
        for (int i = w; i < n; i += stride) {
            s.Add(QuantizeLogProbs(logits + (size_t) i * n_vocab, n_vocab, next_tokens[i], out + (size_t) i * nv));
        }
        partial[w] = s;
    });
    NllSums total;
    for (const auto & p : partial) total += p;
    return total;
}

void CompareRows(const float * logits, int n_vocab, const uint16_t * base, const int32_t * next_tokens, int n, int n_threads,
                 KldSums & sums, float * kld_values, float * p_diff_values) {
    const int nv = LogProbRowSize(n_vocab);
    std::vector<KldSums> partial(std::max(1, n_threads));
    ParallelRows(n, n_threads, [&](int w, int stride) {
        KldSums s;
        for (int i = w; i < n; i += stride) {
            auto v = CompareRow(logits + (size_t) i * n_vocab, n_vocab, base + (size_t) i * nv, next_tokens[i], s);
            kld_values[i] = (float) v.first;
            p_diff_values[i] = v.second;
        }
        partial[w] = s;
    });
    for (const auto & p : partial) sums += p;
}

std::pair<double, double> MeanAndUncertainty(double sum, double sum2, size_t count) {
    if (count < 1) return std::make_pair(0., 0.);
    double f = sum / count;
    double df = sum2 / count - f * f;
    df = df > 0 && count > 10 ? sqrt(df / (count - 1)) : 0.;
    return std::make_pair(f, df);
}

KldStats Summarize(const KldSums & kld, std::vector<float> kld_values, std::vector<float> p_diff_values) {
    // the helpers and formulas of llama-perplexity's kl_divergence()
    const auto mean_and_uncertainty = MeanAndUncertainty;
    auto covariance = [](double suma, double sumb, double sumab, size_t count) {
        if (count < 10) return 0.0;
        double var = sumab / count - (suma / count) * (sumb / count);
        var /= count - 1;
        return var;
    };

    KldStats s;
    s.count = kld.count;
    if (kld.count == 0) return s;
    std::sort(kld_values.begin(), kld_values.end());
    std::sort(p_diff_values.begin(), p_diff_values.end());

    auto log_ppl = mean_and_uncertainty(kld.sum_nll, kld.sum_nll2, kld.count);
    s.ppl = exp(log_ppl.first);
    s.ppl_unc = s.ppl * log_ppl.second;
    auto log_ppl_base = mean_and_uncertainty(kld.sum_nll_base, kld.sum_nll_base2, kld.count);
    s.ppl_base = exp(log_ppl_base.first);
    s.ppl_base_unc = s.ppl_base * log_ppl_base.second;
    const double log_ppl_cov = covariance(kld.sum_nll, kld.sum_nll_base, kld.sum_nll_nll_base, kld.count);
    s.cor = log_ppl.second * log_ppl_base.second > 0 ? log_ppl_cov / (log_ppl.second * log_ppl_base.second) : 0;
    s.log_ratio = log_ppl.first - log_ppl_base.first;
    const double lr2 = log_ppl.second * log_ppl.second + log_ppl_base.second * log_ppl_base.second - 2.0 * log_ppl_cov;
    s.log_ratio_unc = lr2 > 0 ? sqrt(lr2) : 0;
    s.ratio = exp(s.log_ratio);
    s.ratio_unc = s.ratio * s.log_ratio_unc;
    const double ppl_cov = s.ppl * s.ppl_base * log_ppl_cov;
    s.diff = s.ppl - s.ppl_base;
    const double d2 = s.ppl_unc * s.ppl_unc + s.ppl_base_unc * s.ppl_base_unc - 2.0 * ppl_cov;
    s.diff_unc = d2 > 0 ? sqrt(d2) : 0;

    auto kl_div = mean_and_uncertainty(kld.sum_kld, kld.sum_kld2, kld.count);
    s.kld = kl_div.first;
    s.kld_unc = kl_div.second;
    s.kld_q = QuantilesOf(kld_values);

    auto p_diff = mean_and_uncertainty(kld.sum_p_diff, kld.sum_p_diff2, kld.count);
    s.dp = p_diff.first;
    s.dp_unc = p_diff.second;
    s.dp_q = QuantilesOf(p_diff_values);
    auto p_diff_mse = mean_and_uncertainty(kld.sum_p_diff2, kld.sum_p_diff4, kld.count);
    s.dp_rms = sqrt(p_diff_mse.first);
    s.dp_rms_unc = s.dp_rms > 0 ? 0.5 / s.dp_rms * p_diff_mse.second : 0;
    s.same_top = 1.0 * kld.n_same_top / kld.count;
    s.same_top_unc = kld.count > 1 ? sqrt(s.same_top * (1.0 - s.same_top) / (kld.count - 1)) : 0;
    return s;
}

}  // namespace moe_eval
