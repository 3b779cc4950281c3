#include "QuantizeWorker.h"

#include <cstdio>
#include <regex>
#include <string>
#include <utility>

#include "Log.h"
#include "llama.h"
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

class QuantizeWorker final : public PromiseWorker {
public:
    QuantizeWorker(Napi::Env env, std::string src, std::string dst, int ftype, int threads, bool allow_requantize, Napi::Value progress)
        : PromiseWorker(env, "moe-eval:quantize"), src_(std::move(src)), dst_(std::move(dst)), ftype_(ftype), threads_(threads),
          allow_requantize_(allow_requantize), progress_(env, progress) {}

protected:
    void Run() override {
        llama_model_quantize_params p = llama_model_quantize_default_params();
        p.nthread = threads_;
        p.ftype = (llama_ftype) ftype_;
        p.allow_requantize = allow_requantize_;
        const std::string tmp = dst_ + ".tmp";
        // llama.cpp logs "[  i/  n] tensor name ..." per tensor: that is the progress
        static const std::regex step(R"(^\[\s*(\d+)/\s*(\d+)\])");
        ScopedLogObserver observer([this](const std::string & line) {
            std::smatch m;
            if (std::regex_search(line, m, step)) {
                const double done = std::stod(m[1].str());
                const double total = std::stod(m[2].str());
                progress_.Send<double>(total > 0 ? done / total : 0, [](Napi::Env env, const double & v) { return Napi::Number::New(env, v); });
            }
        });
        ClearLastLogError();
        const uint32_t rc = llama_model_quantize(src_.c_str(), tmp.c_str(), &p);
        if (rc != 0) {
            std::remove(tmp.c_str());
            const std::string why = LastLogError();
            throw NativeError("ERR_QUANTIZE", "llama.cpp could not quantize " + src_ + (why.empty() ? "" : ": " + why));
        }
        if (std::rename(tmp.c_str(), dst_.c_str()) != 0) {
            std::remove(tmp.c_str());
            throw NativeError("ERR_FILE", "cannot rename " + tmp + " to " + dst_);
        }
    }

    void OnSettled() override { progress_.Release(); }

private:
    std::string src_, dst_;
    int ftype_, threads_;
    bool allow_requantize_;
    Progress progress_;
};

Napi::Value QuantizeModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string src = RequireString(info, 0, "quantizeModel(src)");
    std::string dst = RequireString(info, 1, "quantizeModel(src, dst)");
    Napi::Object o = RequireObject(info, 2, "quantizeModel(src, dst, options)");
    const int ftype = (int) IntegerOption(env, o, "ftype", -1, 0, 1024, "quantizeModel options");
    const int threads = (int) IntegerOption(env, o, "threads", 1, 1, 1024, "quantizeModel options");
    if (ftype < 0) ThrowInvalidArg(env, "quantizeModel options.ftype: required");
    return PromiseWorker::Start(new QuantizeWorker(env, std::move(src), std::move(dst), ftype, threads, BoolOption(o, "allowRequantize", false),
                                                   info.Length() > 3 ? info[3] : env.Undefined()));
}

}  // namespace

void InitQuantize(Napi::Env env, Napi::Object exports) {
    exports.Set("quantizeModel", Napi::Function::New(env, QuantizeModel, "quantizeModel"));
}

}  // namespace moe_eval
