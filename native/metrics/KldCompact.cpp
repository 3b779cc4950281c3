#include "KldCompact.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "util/ParallelRows.h"

namespace moe_eval {

namespace {

// a record's fields, read and written with memcpy (the buffer has no alignment guarantee)
struct RecordView {
    uint8_t * p;
    int k;
    float get_f(size_t at) const { float v; std::memcpy(&v, p + at, 4); return v; }
    int32_t get_i(size_t at) const { int32_t v; std::memcpy(&v, p + at, 4); return v; }
    void set_f(size_t at, float v) { std::memcpy(p + at, &v, 4); }
    void set_i(size_t at, int32_t v) { std::memcpy(p + at, &v, 4); }
    float log_p_token() const { return get_f(0); }
    float log_tail() const { return get_f(4); }
    int32_t id(int r) const { return get_i(8 + 4 * (size_t) r); }
    float log_p(int r) const { return get_f(8 + 4 * (size_t) k + 4 * (size_t) r); }
};

// One record from one row of the reference's logits; returns the NLL of `tok`.
double CompactRow(const float * logits, int n_vocab, int32_t tok, int k, uint8_t * out, std::vector<int32_t> & order,
                  std::vector<uint8_t> & mark) {
    float max_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int i = 0; i < n_vocab; ++i) sum_exp += std::exp((double) logits[i] - max_logit);
    const double log_sum_exp = std::log(sum_exp);
    // the k largest, by descending logit, ties by ascending id (the first maximum is llama.cpp's top token)
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [logits](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int r = 0; r < k; ++r) mark[order[r]] = 1;
    double tail = 0.0;  // summed over the complement itself: no cancellation when the top k hold almost all the mass
    for (int i = 0; i < n_vocab; ++i) {
        if (!mark[i]) tail += std::exp((double) logits[i] - max_logit);
    }
    for (int r = 0; r < k; ++r) mark[order[r]] = 0;
    RecordView rec{out, k};
    rec.set_f(0, (float) ((double) logits[tok] - max_logit - log_sum_exp));
    rec.set_f(4, tail > 0 ? (float) (std::log(tail) - log_sum_exp) : -std::numeric_limits<float>::infinity());
    for (int r = 0; r < k; ++r) {
        rec.set_i(8 + 4 * (size_t) r, order[r]);
        rec.set_f(8 + 4 * (size_t) k + 4 * (size_t) r, (float) ((double) logits[order[r]] - max_logit - log_sum_exp));
    }
    return max_logit + log_sum_exp - logits[tok];
}

// llama-perplexity's statistics of one row against one record (Kld.cpp's CompareRow, with the KLD over
// the k reference tokens and the tail). Returns false when the record is malformed.
bool CompareCompactRow(const float * logits, int n_vocab, const uint8_t * record, int k, int tok, KldSums & kld,
                       std::vector<uint8_t> & mark, float & kld_value, float & p_diff_value) {
    RecordView rec{const_cast<uint8_t *>(record), k};
    const float log_tail_base = rec.log_tail();
    const float log_p_tok_base = rec.log_p_token();
    constexpr float kSlack = 1e-4f;  // log-probabilities are rounded to float
    if (!(log_tail_base <= kSlack) || !(log_p_tok_base <= kSlack)) return false;
    int bad = 0;
    for (int r = 0; r < k; ++r) {
        const int32_t id = rec.id(r);
        if (id < 0 || id >= n_vocab || mark[id] || !(rec.log_p(r) <= kSlack)) {
            bad = 1;
            break;
        }
        mark[id] = 1;
    }
    float max_logit = logits[0];
    int imax = 0;
    for (int i = 1; i < n_vocab; ++i) {
        if (logits[i] > max_logit) {
            max_logit = logits[i];
            imax = i;
        }
    }
    double sum_exp = 0.0;
    double tail_exp = 0.0;
    if (!bad) {
        for (int i = 0; i < n_vocab; ++i) {
            const double e = expf(logits[i] - max_logit);
            sum_exp += e;
            if (!mark[i]) tail_exp += e;
        }
    }
    for (int r = 0; r < k; ++r) {
        const int32_t id = rec.id(r);
        if (id >= 0 && id < n_vocab) mark[id] = 0;
    }
    if (bad) return false;

    const float log_sum_exp = log(sum_exp);
    const float nll = max_logit + log_sum_exp - logits[tok];
    kld.sum_nll += nll;
    kld.sum_nll2 += nll * nll;
    const float nll_base = -log_p_tok_base;
    kld.sum_nll_base += nll_base;
    kld.sum_nll_base2 += nll_base * nll_base;
    kld.sum_nll_nll_base += nll * nll_base;

    const double log_norm = (double) max_logit + std::log(sum_exp);
    double sum = 0.0;
    for (int r = 0; r < k; ++r) {
        const double lp_base = rec.log_p(r);
        sum += std::exp(lp_base) * (lp_base - ((double) logits[rec.id(r)] - log_norm));
    }
    if (log_tail_base > -std::numeric_limits<float>::infinity()) {
        // the evaluated model's mass on the same complement; never exactly 0 for finite logits, kept positive anyway
        const double log_tail = std::log(std::max(tail_exp, std::numeric_limits<double>::min())) - std::log(sum_exp);
        sum += std::exp((double) log_tail_base) * ((double) log_tail_base - log_tail);
    }
    kld.sum_kld += sum;
    kld.sum_kld2 += sum * sum;
    ++kld.count;
    if (imax == rec.id(0)) ++kld.n_same_top;

    const float p_base = expf(-nll_base);
    const float p = expf(-nll);
    const float p_diff = p - p_base;
    kld.sum_p_diff += p_diff;
    const double p_diff2 = p_diff * p_diff;
    kld.sum_p_diff2 += p_diff2;
    kld.sum_p_diff4 += p_diff2 * p_diff2;
    kld.max_p_diff = std::max(kld.max_p_diff, std::fabs(p_diff));
    kld_value = (float) sum;
    p_diff_value = p_diff;
    return true;
}

}  // namespace

NllSums CompactRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, int k, int n_threads, uint8_t * out) {
    const size_t rec = CompactRecordBytes(k);
    std::vector<NllSums> partial(std::max(1, n_threads));
    ParallelRows(n, n_threads, [&](int w, int stride) {
        std::vector<int32_t> order(n_vocab);
        std::vector<uint8_t> mark(n_vocab, 0);
        NllSums s;
        for (int i = w; i < n; i += stride) {
            const double v = CompactRow(logits + (size_t) i * n_vocab, n_vocab, next_tokens[i], k, out + (size_t) i * rec, order, mark);
            s.nll += v;
            s.nll2 += v * v;
            s.count++;
        }
        partial[w] = s;
    });
    NllSums total;
    for (const auto & p : partial) total += p;
    return total;
}

std::string CompareCompactRows(const float * logits, int n_vocab, const uint8_t * base, int k, const int32_t * next_tokens, int n,
                               int n_threads, KldSums & sums, float * kld_values, float * p_diff_values) {
    const size_t rec = CompactRecordBytes(k);
    std::vector<KldSums> partial(std::max(1, n_threads));
    std::vector<int> bad_row(std::max(1, n_threads), -1);
    ParallelRows(n, n_threads, [&](int w, int stride) {
        std::vector<uint8_t> mark(n_vocab, 0);
        KldSums s;
        for (int i = w; i < n; i += stride) {
            if (!CompareCompactRow(logits + (size_t) i * n_vocab, n_vocab, base + (size_t) i * rec, k, next_tokens[i], s, mark,
                                   kld_values[i], p_diff_values[i])) {
                bad_row[w] = i;
                break;
            }
        }
        partial[w] = s;
    });
    for (int b : bad_row) {
        if (b >= 0) {
            return "record " + std::to_string(b) +
                   " has a token id outside the vocabulary, a repeated id or a log-probability above 0";
        }
    }
    for (const auto & p : partial) sums += p;
    return std::string();
}

}  // namespace moe_eval
