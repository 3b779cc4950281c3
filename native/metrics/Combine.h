// estimateFromSums(): llama-perplexity's final numbers from sums of per-chunk statistics, so that an
// evaluation done in pieces (sweep --strategy halving) is summarized by the same formulas as a whole one
// (Estimate() in Perplexity.cpp, MeanAndUncertainty() in Kld.cpp) — the formulas live only there.
#pragma once

#include <napi.h>

namespace moe_eval {

void InitCombine(Napi::Env env, Napi::Object exports);

}  // namespace moe_eval
