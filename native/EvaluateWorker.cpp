#include "EvaluateWorker.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "Context.h"
#include "Model.h"
#include "routing/Routing.h"
#include "util/NativeError.h"

namespace moe_eval {

namespace {

struct BatchDeleter {
    void operator()(llama_batch * b) const {
        llama_batch_free(*b);
        delete b;
    }
};

struct ProgressEvent {
    int chunks_done;
    int chunks_total;
    NllSums sums;
};

}  // namespace

EvaluateWorker * EvaluateWorker::Create(const Napi::CallbackInfo & info, Context * owner) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsObject()) {
        throw Napi::TypeError::New(env, "evaluate: expected (Int32Array, options)");
    }
    Napi::Int32Array arr = info[0].As<Napi::Int32Array>();
    std::vector<llama_token> tokens(arr.Data(), arr.Data() + arr.ElementLength());
    Napi::Object o = info[1].As<Napi::Object>();
    EvaluateOptions options;
    options.n_ctx = o.Get("chunkSize").As<Napi::Number>().Int32Value();
    if (o.Get("chunks").IsNumber()) options.n_chunks = o.Get("chunks").As<Napi::Number>().Int32Value();
    options.n_threads = owner->options().n_threads;

    const llama_vocab * vocab = llama_model_get_vocab(owner->model()->model());
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (llama_token t : tokens) {
        if (t < 0 || t >= n_vocab) throw Napi::RangeError::New(env, "evaluate: token id out of the vocabulary range");
    }
    const uint32_t n_seq = std::max<uint32_t>(1, owner->options().n_batch / options.n_ctx);
    if (options.n_ctx < 4 || (uint32_t) options.n_ctx * std::min(n_seq, owner->options().n_seq_max) > owner->options().n_ctx) {
        throw Napi::RangeError::New(env, "evaluate: chunkSize does not fit the context");
    }
    return new EvaluateWorker(env, owner, std::move(tokens), options, info.Length() > 2 ? info[2] : env.Undefined());
}

EvaluateWorker::EvaluateWorker(Napi::Env env, Context * owner, std::vector<llama_token> tokens, EvaluateOptions options,
                               Napi::Value progress)
    : PromiseWorker(env, "moe-eval:evaluate"), owner_(owner), tokens_(std::move(tokens)), options_(options),
      progress_(env, progress) {
    owner_->Ref();
    owner_->BeginWork();
}

void EvaluateWorker::OnSettled() {
    progress_.Release();
    owner_->EndWork();
    owner_->Unref();
}

// Mirrors perplexity() in llama.cpp's tools/perplexity/perplexity.cpp line by line where it matters for
// the numbers: BOS replaces each chunk's first token, the KV cache is cleared per chunk, positions
// >= n_ctx/2 are scored, and n_batch / n_ctx chunks share one batch as separate sequences.
void EvaluateWorker::Run() {
    llama_context * ctx = owner_->ctx();
    const llama_model * model = llama_get_model(ctx);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const bool add_bos = llama_vocab_get_add_bos(vocab);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const int n_ctx = options_.n_ctx;

    if ((int) tokens_.size() < 2 * n_ctx) {
        throw NativeError("ERR_TEXT_TOO_SHORT", "you need at least " + std::to_string(2 * n_ctx) +
                                                    " tokens to evaluate perplexity with a context of " + std::to_string(n_ctx) +
                                                    "; the text tokenizes to only " + std::to_string(tokens_.size()));
    }

    const int n_chunk_max = (int) tokens_.size() / n_ctx;
    const int n_chunk = options_.n_chunks < 0 ? n_chunk_max : std::min(options_.n_chunks, n_chunk_max);
    const int n_batch = (int) std::min<uint32_t>(owner_->options().n_batch, owner_->options().n_ctx);
    const int num_batches = (n_ctx + n_batch - 1) / n_batch;
    const int n_seq = std::min<int>(std::max(1, n_batch / n_ctx), (int) owner_->options().n_seq_max);
    const int first = n_ctx / 2;
    n_chunk_ = n_chunk;

    if (!(n_batch < n_ctx || n_batch % n_ctx == 0)) {
        throw NativeError("ERR_INVALID_ARG", "batch size must be below the chunk size or a multiple of it");
    }

    std::unique_ptr<llama_batch, BatchDeleter> batch_holder(
        new llama_batch(llama_batch_init(std::min(n_batch, n_ctx * n_seq), 0, 1)));
    llama_batch & batch = *batch_holder;

    std::vector<float> logits;
    if (num_batches > 1) logits.reserve((size_t) n_ctx * n_vocab);

    ScopedRouting routing(owner_->hook_routing());
    std::atomic<bool> & abort = owner_->abort_flag();
    const auto t_start = std::chrono::steady_clock::now();

    for (int i = 0; i < n_chunk; i += n_seq) {
        const int start = i * n_ctx;
        const int end = start + n_ctx;
        const int n_seq_batch = std::min(n_seq, n_chunk - i);

        llama_memory_clear(llama_get_memory(ctx), true);

        for (int j = 0; j < num_batches; ++j) {
            if (abort.load()) {
                aborted_ = true;
                throw NativeError("ABORT_ERR", "the evaluation was aborted");
            }
            const int batch_start = start + j * n_batch;
            const int batch_size = std::min(end - batch_start, n_batch);
            int n_outputs = 0;
            batch.n_tokens = 0;
            for (int seq = 0; seq < n_seq_batch; seq++) {
                const int seq_start = batch_start + seq * n_ctx;
                for (int k = 0; k < batch_size; ++k) {
                    const int idx = seq * n_ctx + k;
                    batch.token[idx] = (add_bos && j == 0 && k == 0) ? llama_vocab_bos(vocab) : tokens_[seq_start + k];
                    batch.pos[idx] = j * n_batch + k;
                    batch.n_seq_id[idx] = 1;
                    batch.seq_id[idx][0] = seq;
                    batch.logits[idx] = batch.pos[idx] >= first ? 1 : 0;
                    n_outputs += batch.logits[idx] != 0;
                }
                batch.n_tokens += batch_size;
            }
            const int32_t ret = llama_decode(ctx, batch);
            if (ret == 2 || abort.load()) {
                aborted_ = true;
                throw NativeError("ABORT_ERR", "the evaluation was aborted");
            }
            if (ret != 0) throw NativeError("ERR_DECODE", "llama_decode failed with status " + std::to_string(ret));
            tokens_decoded_ += batch.n_tokens;
            if (num_batches > 1 && n_outputs > 0) {
                const float * batch_logits = llama_get_logits(ctx);
                logits.insert(logits.end(), batch_logits, batch_logits + (size_t) n_outputs * n_vocab);
            }
        }

        for (int seq = 0; seq < n_seq_batch; seq++) {
            const float * all_logits = num_batches > 1 ? logits.data() : llama_get_logits_ith(ctx, seq * n_ctx + first);
            const llama_token * next = tokens_.data() + start + seq * n_ctx + first + 1;
            const NllSums s = ScoreRows(all_logits, n_vocab, next, n_ctx - 1 - first, options_.n_threads);
            chunks_.push_back({i + seq, s});
            total_ += s;
        }
        logits.clear();

        progress_.Send<ProgressEvent>({i + n_seq_batch, n_chunk, total_}, [](Napi::Env env, const ProgressEvent & e) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("chunksDone", e.chunks_done);
            o.Set("chunksTotal", e.chunks_total);
            o.Set("perplexity", Estimate(e.sums).perplexity);
            return o;
        });
    }
    elapsed_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
}

Napi::Value EvaluateWorker::Result(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("nll", total_.nll);
    o.Set("nll2", total_.nll2);
    o.Set("count", (double) total_.count);
    o.Set("chunkCount", n_chunk_);
    o.Set("tokensDecoded", (double) tokens_decoded_);
    o.Set("elapsedMs", elapsed_ms_);
    Napi::Array chunks = Napi::Array::New(env, chunks_.size());
    for (size_t i = 0; i < chunks_.size(); ++i) {
        Napi::Object c = Napi::Object::New(env);
        c.Set("index", chunks_[i].index);
        c.Set("nll", chunks_[i].sums.nll);
        c.Set("nll2", chunks_[i].sums.nll2);
        c.Set("count", (double) chunks_[i].sums.count);
        chunks.Set(i, c);
    }
    o.Set("chunks", chunks);
    return o;
}

}  // namespace moe_eval
