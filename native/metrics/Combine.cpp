#include "Combine.h"

#include <string>

#include "Kld.h"
#include "Perplexity.h"
#include "util/Args.h"
#include "util/NativeError.h"

namespace moe_eval {

namespace {

double RequireNumber(Napi::Env env, const Napi::Object & o, const char * key, const std::string & where) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) ThrowInvalidArg(env, where + "." + key + ": expected a number");
    return v.As<Napi::Number>().DoubleValue();
}

// estimateFromSums({ nll, nll2, count, kld?: { sum, sum2, sameTop } })
//   → { perplexity, stderr, nll, kldMean?, kldUnc?, sameTop? }
Napi::Value EstimateFromSums(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const std::string where = "estimateFromSums()";
    Napi::Object o = RequireObject(info, 0, "estimateFromSums()");
    NllSums s;
    s.nll = RequireNumber(env, o, "nll", where);
    s.nll2 = RequireNumber(env, o, "nll2", where);
    const double count = RequireNumber(env, o, "count", where);
    if (!(count >= 0)) ThrowInvalidArg(env, where + ".count: expected a count >= 0");
    s.count = (size_t) count;
    const PerplexityEstimate e = Estimate(s);
    Napi::Object out = Napi::Object::New(env);
    out.Set("perplexity", e.perplexity);
    out.Set("stderr", e.stderr_ppl);
    out.Set("nll", e.mean_nll);
    Napi::Value kv = o.Get("kld");
    if (kv.IsObject()) {
        Napi::Object k = kv.As<Napi::Object>();
        const auto [mean, unc] = MeanAndUncertainty(RequireNumber(env, k, "sum", where + ".kld"), RequireNumber(env, k, "sum2", where + ".kld"), s.count);
        out.Set("kldMean", mean);
        out.Set("kldUnc", unc);
        out.Set("sameTop", s.count ? RequireNumber(env, k, "sameTop", where + ".kld") / (double) s.count : 0.0);
    }
    return out;
}

}  // namespace

void InitCombine(Napi::Env env, Napi::Object exports) {
    exports.Set("estimateFromSums", Napi::Function::New(env, EstimateFromSums, "estimateFromSums"));
}

}  // namespace moe_eval
