// The decoding loop of llama-perplexity's hellaswag_score, winogrande_score and multiple_choice_score
// (tools/perplexity/perplexity.cpp), on a worker thread.
//
// src/multiple-choice.ts sends plain, validated, tokenized tasks: each a set of token sequences (one per
// answer) sharing their first `prefix` tokens, and the (logit row, token) pairs whose log-probability the
// format scores. This worker packs tasks into batches exactly as llama-perplexity does (the shared prefix
// once, on all the task's sequence ids; each answer's remaining tokens on its own sequence; as many whole
// tasks as fit the context and the sequence limit), decodes them in pieces of n_batch tokens, and returns
// per task the log-probability of each answer's first token after the prefix (llama-perplexity's
// softmax) and the log-softmax of each requested pair (its compute_logprobs). Choosing the answer,
// accuracy and flips happen once, in TypeScript.
#pragma once

#include <napi.h>

#include <vector>

#include "llama.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

class Context;

struct MultipleChoiceTask {
    std::vector<std::vector<llama_token>> seqs;  // one per answer, BOS included
    size_t prefix = 0;                           // tokens shared by all sequences (>= 1)
    bool logits_for_last = false;                // winogrande: logits for every token after the prefix
    std::vector<int32_t> pairs;                  // (row, token) pairs, rows relative to the task's first logit
    size_t n_rows = 0;                           // logit rows this task produces
    size_t required = 0;                         // KV cells: prefix + the rest of every sequence
    // results
    std::vector<float> first;  // per sequence: log softmax(prefix's last row)[seq[prefix]]
    std::vector<float> scores; // per pair
};

class MultipleChoiceWorker final : public PromiseWorker {
public:
    // multipleChoice(tasks: { seqs: Int32Array[], prefix, pairs: Int32Array }[], { logitsForLast, maxSequences }, onProgress?)
    static MultipleChoiceWorker * Create(const Napi::CallbackInfo & info, Context * owner);

protected:
    void Run() override;
    Napi::Value Result(Napi::Env env) override;
    void OnSettled() override;

private:
    MultipleChoiceWorker(Napi::Env env, Context * owner, std::vector<MultipleChoiceTask> tasks, int max_seq, Napi::Value progress);

    Context * owner_;
    std::vector<MultipleChoiceTask> tasks_;
    int max_seq_;
    Progress progress_;
    size_t tokens_decoded_ = 0;
    double elapsed_ms_ = 0.0;
};

}  // namespace moe_eval
