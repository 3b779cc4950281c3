// The perplexity loop of llama.cpp's tools/perplexity/perplexity.cpp (perplexity()), on a worker thread.
#pragma once

#include <napi.h>

#include <chrono>
#include <vector>

#include "llama.h"
#include "metrics/Perplexity.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

class Context;

struct EvaluateOptions {
    int n_ctx = 512;         // tokens per chunk
    int n_chunks = -1;       // -1: all that fit
    int n_threads = 4;       // for scoring logits
};

struct ChunkResult {
    int index;
    NllSums sums;
};

class EvaluateWorker final : public PromiseWorker {
public:
    // evaluate(tokens: Int32Array, { chunkSize, chunks }, onProgress?)
    static EvaluateWorker * Create(const Napi::CallbackInfo & info, Context * owner);

protected:
    void Run() override;
    Napi::Value Result(Napi::Env env) override;
    void OnSettled() override;

private:
    EvaluateWorker(Napi::Env env, Context * owner, std::vector<llama_token> tokens, EvaluateOptions options, Napi::Value progress);

    Context * owner_;
    std::vector<llama_token> tokens_;
    EvaluateOptions options_;
    Progress progress_;

    NllSums total_;
    std::vector<ChunkResult> chunks_;
    int n_chunk_ = 0;
    size_t tokens_decoded_ = 0;
    double elapsed_ms_ = 0.0;
    bool aborted_ = false;
};

}  // namespace moe_eval
