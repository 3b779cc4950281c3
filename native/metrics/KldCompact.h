// The compact KL-divergence base (docs/kld-compact.md): per scored token the reference's top-K
// log-probabilities with their token ids, the log of the probability mass outside them (the tail) and
// the exact log-probability of the token that follows. KLD is the KL divergence of the two
// distributions coarsened to K + 1 outcomes (the K reference tokens and "any other token"): a lower
// bound of the full KLD (log-sum inequality), equal to it when the tail is empty. Δp and same top are
// exact. The statistics go into the same KldSums as llama.cpp's format (Kld.h), so every number
// llama-perplexity prints is reported the same way.
//
// File: "_kldtop_" | u32 version (1) | u32 n_ctx | i32 n_vocab | i32 n_chunk | u32 K | u32 record bytes |
//       tokens i32[n_ctx·n_chunk] | per chunk, per scored token (n_ctx - 1 - n_ctx/2): one record of
//       f32 log p(next token) | f32 log tail mass | i32 ids[K] | f32 log p[K]  (little-endian; ids by
//       descending log-probability, ties by ascending id).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "Kld.h"
#include "Perplexity.h"

namespace moe_eval {

constexpr char kCompactBaseMagic[9] = "_kldtop_";
constexpr uint32_t kCompactBaseVersion = 1;
constexpr size_t kCompactBaseHeaderBytes = 32;

inline size_t CompactRecordBytes(int k) { return 8 + 8 * (size_t) k; }

// Writes n records (row i predicts next_tokens[i]) of the top k log-probabilities into out; returns the
// NLL sums of the written model (as QuantizeRows does for llama.cpp's format).
NllSums CompactRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, int k, int n_threads, uint8_t * out);

// Compares n rows of logits with n records; adds to `sums`; writes each token's KLD and Δp. Returns an
// empty string, or what is wrong with a record (a token id outside the vocabulary, a tail above 1).
std::string CompareCompactRows(const float * logits, int n_vocab, const uint8_t * base, int k, const int32_t * next_tokens, int n,
                               int n_threads, KldSums & sums, float * kld_values, float * p_diff_values);

}  // namespace moe_eval
