#include "LogitsWorker.h"

#include <algorithm>
#include <cstring>

#include "Context.h"
#include "Model.h"
#include "llama-context.h"
#include "ggml-rpc.h"
#include "util/Args.h"
#include "util/NativeError.h"

namespace moe_eval {

LogitsWorker * LogitsWorker::Create(const Napi::CallbackInfo & info, Context * owner) {
    Napi::Env env = info.Env();
    Napi::Int32Array arr = RequireInt32Array(info, 0, "logits(tokens)");
    std::vector<llama_token> tokens(arr.Data(), arr.Data() + arr.ElementLength());
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(owner->model()->model()));
    for (llama_token t : tokens) {
        if (t < 0 || t >= n_vocab) ThrowInvalidArg(env, "logits: token id out of the vocabulary range", JsErrorKind::RangeError);
    }
    if (tokens.empty() || tokens.size() > owner->options().n_ctx / owner->options().n_seq_max) {
        ThrowInvalidArg(env, "logits: expected 1 to contextSize tokens", JsErrorKind::RangeError);
    }
    return new LogitsWorker(env, owner, std::move(tokens));
}

LogitsWorker::LogitsWorker(Napi::Env env, Context * owner, std::vector<llama_token> tokens)
    : PromiseWorker(env, "moe-eval:logits"), owner_(owner), tokens_(std::move(tokens)) {
    owner_->Ref();
    owner_->BeginWork();
}

void LogitsWorker::OnSettled() {
    owner_->EndWork();
    owner_->Unref();
}

void LogitsWorker::Run() {
    llama_context * ctx = owner_->ctx();
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    const int n_batch = (int) owner_->options().n_batch;
    const int n = (int) tokens_.size();
    logits_.resize((size_t) n * n_vocab);

    const uint64_t rpc_failures = ggml_backend_rpc_failure_count();
    llama_batch batch = llama_batch_init(n_batch, 0, 1);
    ScopedRouting routing(owner_->hook_routing());
    ScopedExpertCounter counter(&owner_->expert_counter(), ctx->get_sched());
    llama_memory_clear(llama_get_memory(ctx), true);
    try {
        for (int start = 0; start < n; start += n_batch) {
            const int size = std::min(n_batch, n - start);
            batch.n_tokens = size;
            for (int k = 0; k < size; ++k) {
                batch.token[k] = tokens_[start + k];
                batch.pos[k] = start + k;
                batch.n_seq_id[k] = 1;
                batch.seq_id[k][0] = 0;
                batch.logits[k] = 1;
            }
            const int32_t ret = llama_decode(ctx, batch);
            if (ret == 2 || owner_->abort_flag().load()) throw NativeError("ABORT_ERR", "aborted");
            if (ret != 0) throw NativeError("ERR_DECODE", "llama_decode failed with status " + std::to_string(ret));
            std::memcpy(logits_.data() + (size_t) start * n_vocab, llama_get_logits(ctx), (size_t) size * n_vocab * sizeof(float));
            if (ggml_backend_rpc_failure_count() != rpc_failures) throw NativeError("ERR_RPC", "an RPC server failed during the decode; logits discarded");
        }
    } catch (...) {
        llama_batch_free(batch);
        throw;
    }
    llama_batch_free(batch);
}

Napi::Value LogitsWorker::Result(Napi::Env env) {
    Napi::Float32Array out = Napi::Float32Array::New(env, logits_.size());
    std::memcpy(out.Data(), logits_.data(), logits_.size() * sizeof(float));
    return out;
}

}  // namespace moe_eval
