#include "KldBaseWriter.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "Kld.h"
#include "util/NativeError.h"

namespace moe_eval {

KldBaseWriter::KldBaseWriter(std::string path, int top_k, int n_ctx, int n_vocab, int n_chunk, int n_scored, const int32_t * tokens)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), n_vocab_(n_vocab), n_scored_(n_scored) {
    const int k = std::min(top_k, n_vocab);  // a K above the vocabulary keeps every token
    layout_ = CompactLayout{k, k < n_vocab ? k : 0};  // as many tail samples as top tokens
    file_.reset(fopen(tmp_.c_str(), "wb"));
    if (!file_) throw NativeError("ERR_FILE", "cannot write " + tmp_);
    try {
        const uint32_t u_ctx = (uint32_t) n_ctx;
        if (layout_.k > 0) {
            const uint32_t head[4] = {(uint32_t) layout_.k, (uint32_t) layout_.s, (uint32_t) layout_.bytes(), kCompactBaseSeed};
            Write(kCompactBaseMagic, 8);
            Write(&kCompactBaseVersion, sizeof(kCompactBaseVersion));
            Write(&u_ctx, sizeof(u_ctx));
            Write(&n_vocab, sizeof(n_vocab));
            Write(&n_chunk, sizeof(n_chunk));
            Write(head, sizeof(head));
            records_.resize((size_t) n_scored * layout_.bytes());
        } else {
            Write("_logits_", 8);
            Write(&u_ctx, sizeof(u_ctx));
            Write(&n_vocab, sizeof(n_vocab));
            Write(&n_chunk, sizeof(n_chunk));
            rows_.resize((size_t) n_scored * LogProbRowSize(n_vocab));
        }
        Write(tokens, (size_t) n_chunk * n_ctx * sizeof(int32_t));
    } catch (...) {
        file_.reset();
        std::remove(tmp_.c_str());
        throw;
    }
}

KldBaseWriter::~KldBaseWriter() {
    if (!finished_) {
        file_.reset();
        std::remove(tmp_.c_str());
    }
}

void KldBaseWriter::Write(const void * data, size_t n) {
    if (fwrite(data, 1, n, file_.get()) != n) throw NativeError("ERR_FILE", "cannot write " + tmp_ + " (disk full?)");
}

NllSums KldBaseWriter::WriteChunk(int chunk, const float * logits, const int32_t * next_tokens, int n_threads) {
    if (layout_.k > 0) {
        const NllSums s = CompactRows(logits, n_vocab_, next_tokens, n_scored_, layout_, (uint64_t) chunk * n_scored_, n_threads, records_.data());
        Write(records_.data(), records_.size());
        return s;
    }
    const NllSums s = QuantizeRows(logits, n_vocab_, next_tokens, n_scored_, n_threads, rows_.data());
    Write(rows_.data(), rows_.size() * sizeof(uint16_t));
    return s;
}

void KldBaseWriter::Finish() {
    if (fclose(file_.release()) != 0) throw NativeError("ERR_FILE", "cannot finish writing " + tmp_);
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
        throw NativeError("ERR_FILE", "cannot rename " + tmp_ + " to " + path_);
    }
    finished_ = true;
}

}  // namespace moe_eval
