// The KL-divergence base of the chunks in flight (up to n_seq of them, one per sequence of a batch), in
// either format of KldBaseWriter.h: read chunk by chunk from a base file (its header checked by
// src/reference.ts, which passes where the rows start and the compact layout), or, in llama.cpp's
// format, quantized from a reference context's logits as they come. Compares an evaluated model's rows
// with it (CompareRows in Kld.h, CompareCompactRows in KldCompact.h). Errors are NativeError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "Kld.h"
#include "KldCompact.h"
#include "util/File.h"

namespace moe_eval {

class KldBase {
public:
    // layout.k 0: llama.cpp's format (every log-probability); otherwise compact records of this layout.
    // n_scored: the scored tokens (rows) per chunk.
    KldBase(CompactLayout layout, int n_vocab, int n_scored, int n_seq);

    // Reads the rows from `path`, from chunk `first_chunk` on; the first chunk's rows start at data_offset.
    void Open(const std::string & path, uint64_t data_offset, int first_chunk);

    // Reads the next n chunks' rows from the file; `end_chunk` (the text's chunk after them) names where a short file ends.
    void Read(int n, int end_chunk);

    // Sets the rows of sequence `seq` from a reference's logits (llama.cpp's format only).
    void Quantize(int seq, const float * logits, const int32_t * next_tokens, int n_threads);

    // Compares the evaluated model's rows with the rows of sequence `seq` (the text's chunk `chunk`, named
    // when a compact record is damaged): adds to `sums` (compact: the lower bounds to `bound_sum`) and
    // writes each token's KLD and Δp.
    void Compare(int seq, int chunk, const float * logits, const int32_t * next_tokens, int n_threads, KldSums & sums,
                 double & bound_sum, float * kld_values, float * p_diff_values) const;

private:
    CompactLayout layout_;
    int n_vocab_;
    int n_scored_;
    int nv_;                        // uint16 slots per row in llama.cpp's format
    std::vector<uint16_t> rows_;    // llama.cpp's format: n_seq chunks of rows
    std::vector<uint8_t> records_;  // compact: n_seq chunks of records
    std::string path_;
    File file_;
};

}  // namespace moe_eval
