// The perplexity / KL-divergence loop of llama.cpp's tools/perplexity/perplexity.cpp, on a worker thread.
//
// Modes (combinable): perplexity always; write a KL-divergence base file (llama-perplexity's
// --kl-divergence-base without --kl-divergence); compare with a base, read from such a file or computed
// on the fly by a reference context chunk by chunk (nothing vocabulary-sized is stored on disk).
// The base file formats live in metrics/KldBaseWriter.h (writing) and metrics/KldBase.h (reading, comparing).
#pragma once

#include <napi.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "llama.h"
#include "metrics/Kld.h"
#include "metrics/Perplexity.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

class Context;

struct EvaluateOptions {
    int n_ctx = 512;               // tokens per chunk
    int n_chunks = -1;             // -1: all that fit
    int first_chunk = 0;           // evaluate chunks [first_chunk, first_chunk + n_chunks) (a piece of the whole)
    int n_threads = 4;             // for scoring logits
    std::string base_file;         // compare with this base file (its tokens arrive as `tokens`)
    uint64_t base_data_offset = 0; // where the log-probabilities start in base_file
    int base_top_k = 0;            // base_file is a compact base of this K (0: llama.cpp's format)
    int base_tail_samples = 0;     // and this many tail samples per token
    std::string write_base_file;   // write a base file here
    int write_top_k = 0;           // write it in the compact format with this K (0: llama.cpp's format)
};

struct ChunkResult {
    int index;
    NllSums sums;
    KldSums kld;  // in KL-divergence mode
};

class EvaluateWorker final : public PromiseWorker {
public:
    // evaluate(tokens: Int32Array, { chunkSize, chunks, firstChunk, baseFile, baseDataOffset, baseTopK, baseTailSamples, writeBaseFile, writeBaseTopK, reference }, onProgress?)
    static EvaluateWorker * Create(const Napi::CallbackInfo & info, Context * owner);

protected:
    void Run() override;
    Napi::Value Result(Napi::Env env) override;
    void OnSettled() override;

private:
    EvaluateWorker(Napi::Env env, Context * owner, Context * reference, std::vector<llama_token> tokens, EvaluateOptions options,
                   Napi::Value progress);

    Context * owner_;
    Context * reference_;  // in-memory base, or nullptr
    std::vector<llama_token> tokens_;
    EvaluateOptions options_;
    Progress progress_;

    NllSums total_;
    NllSums base_total_;  // when writing a base: llama-perplexity's own NLL of the written model
    std::vector<ChunkResult> chunks_;
    bool kld_mode_ = false;
    KldSums kld_;
    double kld_bound_sum_ = 0.0;  // compact base: Σ of the per-token lower bounds
    std::vector<float> kld_values_;
    std::vector<float> p_diff_values_;
    int n_chunk_ = 0;
    size_t tokens_decoded_ = 0;
    std::vector<double> experts_per_layer_;  // k̄ per layer (-1: no experts there)
    double elapsed_ms_ = 0.0;
    double scoring_ms_ = 0.0;  // in the metrics after each decode (log-softmax, KLD, base rows), inside elapsed_ms_
};

}  // namespace moe_eval
