// Speed of prompt processing and text generation on a worker thread, by llama-bench's method
// (tools/llama-bench/llama-bench.cpp: test_prompt, test_gen and its repetition loop).
//
// One test = optional warm-up, then `repetitions` times: clear the KV cache, decode `n_depth` tokens
// untimed, then time `n_prompt` tokens decoded in batches of the context's batch size followed by
// `n_gen` single-token decodes. Tokens are random ids (BOS first when the vocabulary adds one), as
// llama-bench draws them. The context's routing is active throughout; a CPU threadpool is attached
// for the run as llama-bench attaches one.
#pragma once

#include <napi.h>

#include <cstdint>
#include <vector>

#include "llama.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

class Context;

struct BenchSpec {
    int n_prompt = 0;
    int n_gen = 0;
    int n_depth = 0;
    int repetitions = 5;
    bool warmup = true;
    uint32_t seed = 1;  // of the token ids (llama-bench: std::rand() unseeded, i.e. 1)
};

class BenchWorker final : public PromiseWorker {
public:
    // bench({ nPrompt, nGen, nDepth, repetitions, warmup, seed }, onProgress?) → { samplesNs: number[], computedRows, computedExperts, cpuInfo, gpuInfo, backends, buildCommit, buildNumber }
    static BenchWorker * Create(const Napi::CallbackInfo & info, Context * owner);

protected:
    void Run() override;
    Napi::Value Result(Napi::Env env) override;
    void OnSettled() override;

private:
    BenchWorker(Napi::Env env, Context * owner, BenchSpec spec, Napi::Value progress);
    void Measure();  // on the one benchmark thread (see Run)

    Context * owner_;
    BenchSpec spec_;
    Progress progress_;
    std::vector<uint64_t> samples_ns_;
    uint64_t computed_rows_ = 0;
    uint64_t computed_kept_ = 0;
};

}  // namespace moe_eval
