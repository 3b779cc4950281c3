#include "KldBase.h"

#include <cstdio>

#include "util/NativeError.h"

namespace moe_eval {

KldBase::KldBase(CompactLayout layout, int n_vocab, int n_scored, int n_seq)
    : layout_(layout), n_vocab_(n_vocab), n_scored_(n_scored), nv_(LogProbRowSize(n_vocab)) {
    if (layout_.k > n_vocab) throw NativeError("ERR_KLD_BASE", "the base file keeps more tokens per row than the vocabulary has");
    if (layout_.k > 0) {
        records_.resize((size_t) n_seq * n_scored * layout_.bytes());
    } else {
        rows_.resize((size_t) n_seq * n_scored * nv_);
    }
}

void KldBase::Open(const std::string & path, uint64_t data_offset, int first_chunk) {
    path_ = path;
    file_.reset(fopen(path.c_str(), "rb"));
    if (!file_) throw NativeError("ERR_FILE", "cannot open " + path);
    const uint64_t offset = data_offset + (uint64_t) first_chunk * n_scored_ * (layout_.k > 0 ? layout_.bytes() : nv_ * sizeof(uint16_t));
#ifdef _WIN32
    const int seek = _fseeki64(file_.get(), (__int64) offset, SEEK_SET);
#else
    const int seek = fseeko(file_.get(), (off_t) offset, SEEK_SET);
#endif
    if (seek != 0) throw NativeError("ERR_FILE", "cannot seek in " + path);
}

void KldBase::Read(int n, int end_chunk) {
    const bool compact = layout_.k > 0;
    const size_t want = (size_t) n * n_scored_ * (compact ? layout_.bytes() : (size_t) nv_);
    const size_t got = fread(compact ? (void *) records_.data() : (void *) rows_.data(), compact ? 1 : sizeof(uint16_t), want, file_.get());
    if (got != want) throw NativeError("ERR_GGUF", "the base file " + path_ + " ends before chunk " + std::to_string(end_chunk));
}

void KldBase::Quantize(int seq, const float * logits, const int32_t * next_tokens, int n_threads) {
    QuantizeRows(logits, n_vocab_, next_tokens, n_scored_, n_threads, rows_.data() + (size_t) seq * n_scored_ * nv_);
}

void KldBase::Compare(int seq, int chunk, const float * logits, const int32_t * next_tokens, int n_threads, KldSums & sums,
                      double & bound_sum, float * kld_values, float * p_diff_values) const {
    if (layout_.k > 0) {
        const std::string bad = CompareCompactRows(logits, n_vocab_, records_.data() + (size_t) seq * n_scored_ * layout_.bytes(), layout_,
                                                   next_tokens, n_scored_, n_threads, sums, bound_sum, kld_values, p_diff_values);
        if (!bad.empty()) throw NativeError("ERR_KLD_BASE", "the base file " + path_ + " is damaged in chunk " + std::to_string(chunk) + ": " + bad);
    } else {
        CompareRows(logits, n_vocab_, rows_.data() + (size_t) seq * n_scored_ * nv_, next_tokens, n_scored_, n_threads, sums, kld_values, p_diff_values);
    }
}

}  // namespace moe_eval
