// Writes a KL-divergence base file while an evaluation runs, chunk by chunk, in one of the two formats
// src/reference.ts reads: llama.cpp's (llama-perplexity --kl-divergence-base: "_logits_" | u32 n_ctx |
// i32 n_vocab | i32 n_chunk | tokens i32[n_ctx·n_chunk] | per scored token a row of LogProbRowSize
// uint16, see Kld.h) or the compact one (header and records in KldCompact.h, docs/kld-compact.md).
// The file is written to `path`.tmp and renamed to `path` by Finish(); until then any failure (or
// destruction) removes it. Errors are NativeError (worker threads only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "KldCompact.h"
#include "Perplexity.h"
#include "util/File.h"

namespace moe_eval {

class KldBaseWriter {
public:
    // Creates `path`.tmp and writes the header and the n_chunk·n_ctx tokens. top_k 0: llama.cpp's format;
    // otherwise the compact one with as many tail samples as top tokens (a top_k at or above the
    // vocabulary keeps every token, without samples). n_scored: the scored tokens (rows) per chunk.
    KldBaseWriter(std::string path, int top_k, int n_ctx, int n_vocab, int n_chunk, int n_scored, const int32_t * tokens);
    ~KldBaseWriter();
    KldBaseWriter(const KldBaseWriter &) = delete;
    KldBaseWriter & operator=(const KldBaseWriter &) = delete;

    // Appends the rows of chunk `chunk` (chunks come in order; row i predicts next_tokens[i]); returns
    // the NLL sums of the model being written, as llama-perplexity computes them while writing a base.
    NllSums WriteChunk(int chunk, const float * logits, const int32_t * next_tokens, int n_threads);

    // Closes the file and renames it to `path`.
    void Finish();

private:
    void Write(const void * data, size_t n);

    std::string path_;
    std::string tmp_;
    File file_;
    bool finished_ = false;
    int n_vocab_;
    int n_scored_;
    CompactLayout layout_;          // k 0: llama.cpp's format
    std::vector<uint16_t> rows_;    // one chunk's rows, llama.cpp's format
    std::vector<uint8_t> records_;  // one chunk's records, compact format
};

}  // namespace moe_eval
