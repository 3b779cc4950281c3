// The compact KL-divergence base (docs/kld-compact.md): per scored token the reference's top-K
// log-probabilities with their token ids, the log of the probability mass outside them (the tail T),
// S tokens drawn from the tail in proportion to their probability (systematic sampling) with their
// log-probabilities, and the exact log-probability of the token that follows.
//
// KLD per token = B + C, where
//   B = Σ_{i∈top K} p_i log(p_i/q_i) + P_T log(P_T/Q_T)   the KL of the two distributions coarsened to
//       K + 1 outcomes: a lower bound of the full KL (log-sum inequality), exact when the tail is empty;
//   C = P_T · (1/S) Σ_s (r_s + e^{-r_s} - 1), r_s = log((p_s/P_T)/(q_s/Q_T)) over the tail samples:
//       an unbiased estimate of the rest, P_T · KL(p|T ‖ q|T) (each term ≥ 0 and of second order in r).
// Δp and same top are exact. The statistics go into the same KldSums as llama.cpp's format (Kld.h).
//
// File: "_kldtop_" | u32 version (1) | u32 n_ctx | i32 n_vocab | i32 n_chunk | u32 K | u32 S | u32 record bytes |
//       u32 seed | tokens i32[n_ctx·n_chunk] | per chunk, per scored token (n_ctx - 1 - n_ctx/2) one record:
//       f32 log p(next token) | f32 log P_T | i32 ids[K] | f32 log p[K] | i32 sample ids[S] | f32 sample log p[S]
//       (little-endian; the top K by descending log-probability, ties by ascending id).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "Kld.h"
#include "Perplexity.h"

namespace moe_eval {

constexpr char kCompactBaseMagic[9] = "_kldtop_";
constexpr uint32_t kCompactBaseVersion = 1;
constexpr size_t kCompactBaseHeaderBytes = 40;
constexpr uint32_t kCompactBaseSeed = 0x6b6c6463;  // the tail samples of a row are drawn from (seed, row): files are reproducible

inline size_t CompactRecordBytes(int k, int s) { return 8 + 8 * (size_t) k + 8 * (size_t) s; }

struct CompactLayout {
    int k = 0;  // top tokens per record
    int s = 0;  // tail samples per record
    size_t bytes() const { return CompactRecordBytes(k, s); }
};

// Writes n records (row i predicts next_tokens[i]; row0 + i is its index in the file, which seeds its
// samples) into out; returns the NLL sums of the written model (as QuantizeRows does for llama.cpp's format).
NllSums CompactRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, CompactLayout layout, uint64_t row0,
                    int n_threads, uint8_t * out);

// Compares n rows of logits with n records; adds to `sums` (and the lower bounds B to `bound_sum`);
// writes each token's KLD and Δp. Returns an empty string, or what is wrong with a record (a token id
// outside the vocabulary or repeated, a log-probability above 0).
std::string CompareCompactRows(const float * logits, int n_vocab, const uint8_t * base, CompactLayout layout, const int32_t * next_tokens,
                               int n, int n_threads, KldSums & sums, double & bound_sum, float * kld_values, float * p_diff_values);

}  // namespace moe_eval
