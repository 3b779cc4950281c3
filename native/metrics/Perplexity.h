// Perplexity exactly as llama.cpp's tools/perplexity/perplexity.cpp computes it.
//
// For each scored position the NLL of the next token is max_logit + log(Σ exp(logit - max)) - logit[tok],
// exp on float differences summed in double (llama-perplexity's log_softmax); sums of NLL and NLL² are
// kept in double; PPL = exp(mean NLL) and its ± is PPL·sqrt(var(NLL)/(count-1)).
//
// One deliberate difference: the Σ exp is ggml's vectorized softmax kernel (the one its soft_max op
// runs) instead of a scalar expf loop. It is 4.7× faster here, which makes scoring 2 % of an
// evaluation instead of 9 %; a token's NLL moves by ≤ 1e-8 relative (ggml_v_expf is within 1.5 ulp),
// far below the 4 decimals llama-perplexity prints (test/evaluate.test.mjs checks both against
// llama-perplexity and against a double-precision reference computed from the raw logits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe_eval {

struct NllSums {
    double nll = 0.0;
    double nll2 = 0.0;
    size_t count = 0;

    // one scored token's NLL
    void Add(double v) {
        nll += v;
        nll2 += v * v;
        count++;
    }

    NllSums & operator+=(const NllSums & o) {
        nll += o.nll;
        nll2 += o.nll2;
        count += o.count;
        return *this;
    }
};

struct PerplexityEstimate {
    double perplexity = 0.0;
    double stderr_ppl = 0.0;  // llama-perplexity's "±"
    double mean_nll = 0.0;
};

// NLL of `token` under one row of logits; `scratch` holds n_vocab floats (the kernel writes exp values).
double TokenNll(const float * logits, int n_vocab, int32_t token, float * scratch);

// Scores `n` consecutive rows of logits, row i predicting next_tokens[i], on up to n_threads threads.
NllSums ScoreRows(const float * logits, int n_vocab, const int32_t * next_tokens, int n, int n_threads);

PerplexityEstimate Estimate(const NllSums & sums);

}  // namespace moe_eval
