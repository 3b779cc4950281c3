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
    CompactLayout l;
    float get_f(size_t at) const { float v; std::memcpy(&v, p + at, 4); return v; }
    int32_t get_i(size_t at) const { int32_t v; std::memcpy(&v, p + at, 4); return v; }
    void set_f(size_t at, float v) { std::memcpy(p + at, &v, 4); }
    void set_i(size_t at, int32_t v) { std::memcpy(p + at, &v, 4); }
    size_t top_id_at(int r) const { return 8 + 4 * (size_t) r; }
    size_t top_lp_at(int r) const { return 8 + 4 * (size_t) l.k + 4 * (size_t) r; }
    size_t sample_id_at(int r) const { return 8 + 8 * (size_t) l.k + 4 * (size_t) r; }
    size_t sample_lp_at(int r) const { return 8 + 8 * (size_t) l.k + 4 * (size_t) l.s + 4 * (size_t) r; }
    float log_p_token() const { return get_f(0); }
    float log_tail() const { return get_f(4); }
    int32_t id(int r) const { return get_i(top_id_at(r)); }
    float log_p(int r) const { return get_f(top_lp_at(r)); }
    int32_t sample_id(int r) const { return get_i(sample_id_at(r)); }
    float sample_log_p(int r) const { return get_f(sample_lp_at(r)); }
};

// a uniform number in [0, 1) from (seed, row): splitmix64
double RowUniform(uint64_t row) {
    uint64_t z = ((uint64_t) kCompactBaseSeed << 32) ^ (row * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double) (z >> 11) * 0x1.0p-53;
}

// One record from one row of the reference's logits; returns the NLL of `tok`.
double CompactRow(const float * logits, int n_vocab, int32_t tok, CompactLayout l, uint64_t row, uint8_t * out,
                  std::vector<int32_t> & order, std::vector<uint8_t> & mark, std::vector<double> & cum) {
    const int k = l.k;
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
    // the tail's cumulative mass in id order, summed over the tail itself (no cancellation when the
    // top k hold almost all the mass)
    double tail = 0.0;
    for (int i = 0; i < n_vocab; ++i) {
        if (!mark[i]) tail += std::exp((double) logits[i] - max_logit);
        cum[i] = tail;
    }
    for (int r = 0; r < k; ++r) mark[order[r]] = 0;
    RecordView rec{out, l};
    auto log_p = [&](int32_t i) { return (float) ((double) logits[i] - max_logit - log_sum_exp); };
    rec.set_f(0, log_p(tok));
    rec.set_f(4, tail > 0 ? (float) (std::log(tail) - log_sum_exp) : -std::numeric_limits<float>::infinity());
    for (int r = 0; r < k; ++r) {
        rec.set_i(rec.top_id_at(r), order[r]);
        rec.set_f(rec.top_lp_at(r), log_p(order[r]));
    }
    // systematic sampling: S evenly spaced points, one random offset, on the tail's cumulative mass;
    // each point falls on a tail token with probability p_i / P_T
    const double u0 = RowUniform(row);
    for (int r = 0; r < l.s; ++r) {
        int32_t id = -1;
        if (tail > 0) {
            const double target = (r + u0) / l.s * tail;
            auto it = std::upper_bound(cum.begin(), cum.begin() + n_vocab, target);
            if (it == cum.begin() + n_vocab) --it;  // rounding at the very end
            id = (int32_t) (it - cum.begin());
            while (id > 0 && cum[id] == cum[id - 1]) --id;  // land on a tail token (its mass raised cum), never on a top one
        }
        rec.set_i(rec.sample_id_at(r), id);
        rec.set_f(rec.sample_lp_at(r), id >= 0 ? log_p(id) : -std::numeric_limits<float>::infinity());
    }
    return max_logit + log_sum_exp - logits[tok];
}

// llama-perplexity's statistics of one row against one record (as Kld.cpp's CompareRow: the same
// NormalizeRow and KldSums::Add, with the KLD of the header). Returns false when the record is malformed.
bool CompareCompactRow(const float * logits, int n_vocab, const uint8_t * record, CompactLayout l, int tok, KldSums & kld,
                       double & bound_sum, std::vector<uint8_t> & mark, float & kld_value, float & p_diff_value) {
    RecordView rec{const_cast<uint8_t *>(record), l};
    const int k = l.k;
    const float log_tail_base = rec.log_tail();
    const float log_p_tok_base = rec.log_p_token();
    const bool has_tail = log_tail_base > -std::numeric_limits<float>::infinity();
    constexpr float kSlack = 1e-4f;  // log-probabilities are rounded to float
    if (!(log_tail_base <= kSlack) || !(log_p_tok_base <= kSlack)) return false;
    bool bad = false;
    int marked = 0;
    for (; marked < k; ++marked) {
        const int32_t id = rec.id(marked);
        if (id < 0 || id >= n_vocab || mark[id] || !(rec.log_p(marked) <= kSlack)) {
            bad = true;
            break;
        }
        mark[id] = 1;
    }
    for (int r = 0; r < l.s && !bad; ++r) {
        const int32_t id = rec.sample_id(r);
        if (has_tail ? (id < 0 || id >= n_vocab || mark[id] || !(rec.sample_log_p(r) <= kSlack)) : id != -1) bad = true;
    }
    if (bad) {
        for (int r = 0; r < marked; ++r) mark[rec.id(r)] = 0;
        return false;
    }
    double tail_exp = 0.0;  // the evaluated model's Σ exp over the tokens outside the record's top K
    const RowNorm norm = NormalizeRow(logits, n_vocab, [&](int i, double e) {
        if (!mark[i]) tail_exp += e;
    });
    for (int r = 0; r < marked; ++r) mark[rec.id(r)] = 0;

    const float nll = norm.nll(logits, tok);
    const float nll_base = -log_p_tok_base;
    const double sum_exp = norm.sum_exp;
    const double log_norm = (double) norm.max_logit + std::log(sum_exp);
    double sum = 0.0;
    for (int r = 0; r < k; ++r) {
        const double lp_base = rec.log_p(r);
        sum += std::exp(lp_base) * (lp_base - ((double) logits[rec.id(r)] - log_norm));
    }
    if (has_tail) {
        // the evaluated model's mass on the same complement; never exactly 0 for finite logits, kept positive anyway
        const double log_tail = std::log(std::max(tail_exp, std::numeric_limits<double>::min())) - std::log(sum_exp);
        sum += std::exp((double) log_tail_base) * ((double) log_tail_base - log_tail);
        bound_sum += sum;
        if (l.s > 0) {
            double c = 0.0;
            for (int r = 0; r < l.s; ++r) {
                const double x = ((double) rec.sample_log_p(r) - log_tail_base) - ((double) logits[rec.sample_id(r)] - log_norm - log_tail);
                c += x + std::exp(-x) - 1.0;
            }
            sum += std::exp((double) log_tail_base) * c / l.s;
        }
    } else {
        bound_sum += sum;
    }
    p_diff_value = kld.Add(nll, nll_base, sum, norm.imax == rec.id(0));
    kld_value = (float) sum;
    return true;
}

}  // namespace

NllSums CompactRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, CompactLayout layout, uint64_t row0,
                    int n_threads, uint8_t * out) {
    const size_t rec = layout.bytes();
    std::vector<NllSums> partial(std::max(1, n_threads));
    ParallelRows(n, n_threads, [&](int w, int stride) {
        std::vector<int32_t> order(n_vocab);
        std::vector<uint8_t> mark(n_vocab, 0);
        std::vector<double> cum(n_vocab);
        NllSums s;
        for (int i = w; i < n; i += stride) {
            s.Add(CompactRow(logits + (size_t) i * n_vocab, n_vocab, next_tokens[i], layout, row0 + i, out + (size_t) i * rec, order, mark, cum));
        }
        partial[w] = s;
    });
    NllSums total;
    for (const auto & p : partial) total += p;
    return total;
}

std::string CompareCompactRows(const float * logits, int n_vocab, const uint8_t * base, CompactLayout layout, const int32_t * next_tokens,
                               int n, int n_threads, KldSums & sums, double & bound_sum, float * kld_values, float * p_diff_values) {
    const size_t rec = layout.bytes();
    std::vector<KldSums> partial(std::max(1, n_threads));
    std::vector<double> bounds(std::max(1, n_threads), 0.0);
    std::vector<int> bad_row(std::max(1, n_threads), -1);
    ParallelRows(n, n_threads, [&](int w, int stride) {
        std::vector<uint8_t> mark(n_vocab, 0);
        KldSums s;
        for (int i = w; i < n; i += stride) {
            if (!CompareCompactRow(logits + (size_t) i * n_vocab, n_vocab, base + (size_t) i * rec, layout, next_tokens[i], s, bounds[w], mark,
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
    for (double b : bounds) bound_sum += b;
    return std::string();
}

}  // namespace moe_eval
