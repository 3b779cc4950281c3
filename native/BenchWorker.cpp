#include "BenchWorker.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <memory>
#include <random>
#include <string>

#include "Context.h"
#include "Model.h"
#include "build-info.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml-rpc.h"
#include "routing/Routing.h"
#include "util/Args.h"
#include "util/OneThread.h"
#include "util/NativeError.h"

namespace moe_eval {

namespace {

struct ProgressEvent {
    int done;
    int total;
};

// test_prompt and test_gen of llama-bench.cpp, with an abort check between decodes.
class Runner {
public:
    Runner(llama_context * ctx, uint32_t seed, std::atomic<bool> & abort) : ctx_(ctx), rng_(seed), abort_(abort) {
        vocab_ = llama_model_get_vocab(llama_get_model(ctx));
        n_vocab_ = llama_vocab_n_tokens(vocab_);
        add_bos_ = llama_vocab_get_add_bos(vocab_);
    }

    void Prompt(int n_prompt, int n_batch) {
        std::vector<llama_token> tokens(n_batch);
        for (int done = 0; done < n_prompt;) {
            const int n = std::min(n_prompt - done, n_batch);
            tokens[0] = done == 0 && add_bos_ ? llama_vocab_bos(vocab_) : Random();
            for (int i = 1; i < n; i++) tokens[i] = Random();
            Decode(tokens.data(), n);
            done += n;
        }
        llama_synchronize(ctx_);
    }

    void Gen(int n_gen) {
        llama_token token = add_bos_ ? llama_vocab_bos(vocab_) : Random();
        for (int i = 0; i < n_gen; i++) {
            Decode(&token, 1);
            llama_synchronize(ctx_);
            token = Random();
        }
    }

private:
    llama_token Random() { return (llama_token) (rng_() % (uint32_t) n_vocab_); }

    void Decode(llama_token * tokens, int n) {
        if (abort_.load()) throw NativeError("ABORT_ERR", "the benchmark was aborted");
        const int32_t ret = llama_decode(ctx_, llama_batch_get_one(tokens, n));
        if (ret == 2 || abort_.load()) throw NativeError("ABORT_ERR", "the benchmark was aborted");
        if (ret != 0) throw NativeError("ERR_DECODE", "llama_decode failed with status " + std::to_string(ret));
    }

    llama_context * ctx_;
    const llama_vocab * vocab_;
    int n_vocab_;
    bool add_bos_;
    std::minstd_rand rng_;
    std::atomic<bool> & abort_;
};

// llama-bench's get_cpu_info / get_gpu_info / test::get_backend
std::string DeviceList(bool gpu) {
    std::string out;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        const auto type = ggml_backend_dev_type(dev);
        const bool is_gpu = type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU;
        const bool is_cpu = type == GGML_BACKEND_DEVICE_TYPE_CPU || type == GGML_BACKEND_DEVICE_TYPE_ACCEL;
        if (gpu ? is_gpu : is_cpu) out += (out.empty() ? "" : ", ") + std::string(ggml_backend_dev_description(dev));
    }
    return out;
}

std::string Backends() {
    std::string out;
    bool rpc_used = false;
    for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        const std::string name = ggml_backend_reg_name(reg);
        if (name.rfind("RPC", 0) == 0) {
            rpc_used = rpc_used || ggml_backend_reg_dev_count(reg) > 0;
        } else if (name != "CPU") {
            out += (out.empty() ? "" : ",") + name;
        }
    }
    if (rpc_used) out += (out.empty() ? "" : ",") + std::string("RPC");
    return out.empty() ? "CPU" : out;
}

struct ThreadpoolDeleter {
    void operator()(ggml_threadpool * tp) const { ggml_threadpool_free(tp); }
};

}  // namespace

BenchWorker * BenchWorker::Create(const Napi::CallbackInfo & info, Context * owner) {
    Napi::Env env = info.Env();
    Napi::Object o = RequireObject(info, 0, "bench(spec)");
    const std::string where = "bench spec";
    BenchSpec spec;
    spec.n_prompt = (int) IntegerOption(env, o, "nPrompt", 0, 0, INT32_MAX, where);
    spec.n_gen = (int) IntegerOption(env, o, "nGen", 0, 0, INT32_MAX, where);
    spec.n_depth = (int) IntegerOption(env, o, "nDepth", 0, 0, INT32_MAX, where);
    spec.repetitions = (int) IntegerOption(env, o, "repetitions", 5, 1, 1 << 20, where);
    spec.warmup = BoolOption(o, "warmup", true);
    spec.seed = (uint32_t) IntegerOption(env, o, "seed", 1, 1, INT32_MAX, where);
    if (spec.n_prompt + spec.n_gen == 0) ThrowInvalidArg(env, where + ": nPrompt or nGen must be positive", JsErrorKind::RangeError);
    if ((uint64_t) spec.n_prompt + spec.n_gen + spec.n_depth > owner->options().n_ctx) {
        ThrowInvalidArg(env, where + ": nDepth + nPrompt + nGen does not fit the context", JsErrorKind::RangeError);
    }
    return new BenchWorker(env, owner, spec, info.Length() > 1 ? info[1] : env.Undefined());
}

BenchWorker::BenchWorker(Napi::Env env, Context * owner, BenchSpec spec, Napi::Value progress)
    : PromiseWorker(env, "moe-eval:bench"), owner_(owner), spec_(spec), progress_(env, progress) {
    owner_->Ref();
    owner_->BeginWork();
}

void BenchWorker::OnSettled() {
    progress_.Release();
    owner_->EndWork();
    owner_->Unref();
}

void BenchWorker::Run() {
    // ggml's OpenMP build runs a graph on the OpenMP team of the calling thread; libuv runs workers on
    // any of its threads, and each new calling thread gets a team of its own whose idle threads keep
    // competing for the cores (on 2 cores, tg fell to half from the second bench() call on; it stayed
    // at llama-bench's speed with UV_THREADPOOL_SIZE=1). One thread, one team, as llama-bench has.
    static OneThread & bench_thread = *new OneThread();  // never destroyed: its thread waits until exit
    bench_thread.Run([this] { Measure(); });
}

void BenchWorker::Measure() {
    llama_context * ctx = owner_->ctx();
    const int n_threads = owner_->options().n_threads;
    const int n_batch = (int) llama_n_batch(ctx);
    llama_memory_t mem = llama_get_memory(ctx);
    const uint64_t rpc_failures = ggml_backend_rpc_failure_count();

    ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads);
    std::unique_ptr<ggml_threadpool, ThreadpoolDeleter> threadpool(ggml_threadpool_new(&tpp));
    if (!threadpool) throw NativeError("ERR_CONTEXT", "cannot create a threadpool of " + std::to_string(n_threads) + " threads");
    llama_attach_threadpool(ctx, threadpool.get(), nullptr);
    struct Detach {
        llama_context * ctx;
        ~Detach() { llama_detach_threadpool(ctx); }
    } detach{ctx};

    ScopedRouting routing(owner_->hook_routing());
    Runner run(ctx, spec_.seed, owner_->abort_flag());
    llama_memory_clear(mem, false);
    if (spec_.warmup) {
        if (spec_.n_prompt > 0) run.Prompt(spec_.n_prompt, n_batch);
        if (spec_.n_gen > 0) run.Gen(1);
    }
    owner_->computed_experts().reset();
    for (int rep = 0; rep < spec_.repetitions; ++rep) {
        llama_memory_clear(mem, false);
        if (spec_.n_depth > 0) run.Prompt(spec_.n_depth, n_batch);
        const auto t0 = std::chrono::steady_clock::now();
        if (spec_.n_prompt > 0) run.Prompt(spec_.n_prompt, n_batch);
        if (spec_.n_gen > 0) run.Gen(spec_.n_gen);
        const auto t1 = std::chrono::steady_clock::now();
        samples_ns_.push_back((uint64_t) std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        if (ggml_backend_rpc_failure_count() != rpc_failures) {
            throw NativeError("ERR_RPC", "an RPC server failed during the benchmark; results discarded");
        }
        progress_.Send<ProgressEvent>({rep + 1, spec_.repetitions}, [](Napi::Env env, const ProgressEvent & e) {
            Napi::Object p = Napi::Object::New(env);
            p.Set("repetitionsDone", e.done);
            p.Set("repetitions", e.total);
            return p;
        });
    }
    llama_memory_clear(mem, false);
    computed_rows_ = owner_->computed_experts().rows.load();
    computed_kept_ = owner_->computed_experts().kept.load();
}

Napi::Value BenchWorker::Result(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array samples = Napi::Array::New(env, samples_ns_.size());
    for (size_t i = 0; i < samples_ns_.size(); ++i) samples.Set(i, (double) samples_ns_[i]);
    o.Set("samplesNs", samples);
    // experts computed per (token, MoE layer) where dropped ones were skipped (0 rows: nothing skipped)
    o.Set("computedRows", (double) computed_rows_);
    o.Set("computedExperts", (double) computed_kept_);
    o.Set("cpuInfo", DeviceList(false));
    o.Set("gpuInfo", DeviceList(true));
    o.Set("backends", Backends());
    o.Set("buildCommit", std::string(llama_commit()));
    o.Set("buildNumber", llama_build_number());
    return o;
}

}  // namespace moe_eval
