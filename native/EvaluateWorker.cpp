#include "EvaluateWorker.h"

#include <algorithm>
#include <climits>
#include <functional>
#include <memory>
#include <optional>

#include "Context.h"
#include "Model.h"
#include "metrics/KldBase.h"
#include "metrics/KldBaseWriter.h"
#include "llama-context.h"
#include "ggml-rpc.h"
#include "routing/Routing.h"
#include "util/Args.h"
#include "util/Batch.h"
#include "util/NativeError.h"

namespace moe_eval {

namespace {


struct ProgressEvent {
    int chunks_done;
    int chunks_total;
    NllSums sums;
};

// The chunking of llama-perplexity for one context: n_seq chunks share a batch as separate sequences;
// a chunk longer than the batch is decoded in num_batches pieces.
struct Chunking {
    int n_ctx, n_batch, num_batches, n_seq, first;
    bool all_outputs;  // llama-imatrix: every token an output (llama-perplexity: only the scored half)
};

Chunking ChunkingFor(const Context & c, int n_ctx) {
    Chunking k;
    k.n_ctx = n_ctx;
    k.n_batch = (int) std::min<uint32_t>(c.options().n_batch, c.options().n_ctx);
    k.num_batches = (n_ctx + k.n_batch - 1) / k.n_batch;
    k.n_seq = std::min<int>(std::max(1, k.n_batch / n_ctx), (int) c.options().n_seq_max);
    k.first = n_ctx / 2;
    k.all_outputs = c.all_outputs();
    return k;
}

// Decodes chunks [i, i + n_seq_batch) of `tokens` in `ctx` (mirrors perplexity() in perplexity.cpp, or
// compute_imatrix() in imatrix.cpp when every token is an output),
// then calls on_rows(seq, logits of positions first..n_ctx-2) for each chunk.
void DecodeChunks(llama_context * ctx, const Chunking & k, const std::vector<llama_token> & tokens, int i, int n_seq_batch,
                  llama_batch & batch, std::vector<float> & logits, std::atomic<bool> & abort, size_t & tokens_decoded,
                  const std::function<void(int, const float *)> & on_rows) {
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    const bool add_bos = llama_vocab_get_add_bos(vocab);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const int start = i * k.n_ctx;
    const int end = start + k.n_ctx;
    llama_memory_clear(llama_get_memory(ctx), true);
    logits.clear();
    for (int j = 0; j < k.num_batches; ++j) {
        if (abort.load()) throw NativeError("ABORT_ERR", "the evaluation was aborted");
        const int batch_start = start + j * k.n_batch;
        const int batch_size = std::min(end - batch_start, k.n_batch);
        int n_outputs = 0;
        batch.n_tokens = 0;
        for (int seq = 0; seq < n_seq_batch; seq++) {
            const int seq_start = batch_start + seq * k.n_ctx;
            for (int t = 0; t < batch_size; ++t) {
                const int idx = seq * k.n_ctx + t;
                batch.token[idx] = (add_bos && j == 0 && t == 0) ? llama_vocab_bos(vocab) : tokens[seq_start + t];
                batch.pos[idx] = j * k.n_batch + t;
                batch.n_seq_id[idx] = 1;
                batch.seq_id[idx][0] = seq;
                batch.logits[idx] = k.all_outputs || batch.pos[idx] >= k.first ? 1 : 0;
                n_outputs += batch.logits[idx] != 0;
            }
            batch.n_tokens += batch_size;
        }
        const int32_t ret = llama_decode(ctx, batch);
        if (ret == 2 || abort.load()) throw NativeError("ABORT_ERR", "the evaluation was aborted");
        if (ret != 0) throw NativeError("ERR_DECODE", "llama_decode failed with status " + std::to_string(ret));
        tokens_decoded += batch.n_tokens;
        if (k.num_batches > 1 && n_outputs > 0) {
            const float * batch_logits = llama_get_logits(ctx);
            logits.insert(logits.end(), batch_logits, batch_logits + (size_t) n_outputs * n_vocab);
        }
    }
    for (int seq = 0; seq < n_seq_batch; seq++) {
        // with several batches per chunk n_seq is 1 and `logits` holds the chunk's outputs
        on_rows(seq, k.num_batches > 1 ? logits.data() + (k.all_outputs ? (size_t) k.first * n_vocab : 0)
                                       : llama_get_logits_ith(ctx, seq * k.n_ctx + k.first));
    }
}

}  // namespace

EvaluateWorker * EvaluateWorker::Create(const Napi::CallbackInfo & info, Context * owner) {
    Napi::Env env = info.Env();
    Napi::Int32Array arr = RequireInt32Array(info, 0, "evaluate(tokens)");
    Napi::Object o = RequireObject(info, 1, "evaluate(tokens, options)");
    const std::string where = "evaluate options";
    EvaluateOptions options;
    // the chunk size first: everything below divides by it
    options.n_ctx = (int) IntegerOption(env, o, "chunkSize", 0, 4, INT32_MAX, where);
    if (o.Get("chunkSize").IsUndefined()) ThrowInvalidArg(env, where + ".chunkSize: required");
    options.n_chunks = (int) IntegerOption(env, o, "chunks", -1, 1, INT32_MAX, where);
    options.first_chunk = (int) IntegerOption(env, o, "firstChunk", 0, 0, INT32_MAX, where);
    options.base_file = StringOption(env, o, "baseFile", where);
    if (!options.base_file.empty()) {
        options.base_data_offset = (uint64_t) IntegerOption(env, o, "baseDataOffset", 0, 0, INT64_MAX / 2, where);
        options.base_top_k = (int) IntegerOption(env, o, "baseTopK", 0, 0, INT32_MAX, where);
        options.base_tail_samples = (int) IntegerOption(env, o, "baseTailSamples", 0, 0, INT32_MAX, where);
    }
    options.write_base_file = StringOption(env, o, "writeBaseFile", where);
    if (!options.write_base_file.empty()) options.write_top_k = (int) IntegerOption(env, o, "writeBaseTopK", 0, 0, INT32_MAX, where);
    options.n_threads = owner->options().n_threads;

    const uint32_t n_seq = std::max<uint32_t>(1, owner->options().n_batch / (uint32_t) options.n_ctx);
    if ((uint64_t) options.n_ctx * std::min(n_seq, owner->options().n_seq_max) > owner->options().n_ctx) {
        ThrowInvalidArg(env, where + ".chunkSize: does not fit the context", JsErrorKind::RangeError);
    }

    Context * reference = nullptr;
    if (!o.Get("reference").IsUndefined()) {
        reference = UnwrapTagged<Context>(env, o.Get("reference"), kContextTag, where + ".reference");
        if (reference == owner) ThrowInvalidArg(env, "evaluate: a context cannot be its own reference");
        if (reference->ctx() == nullptr) ThrowCoded(env, "ERR_STATE", "evaluate: the reference context is not initialized");
        if (reference->busy()) ThrowCoded(env, "ERR_BUSY", "the reference context is busy with another operation");
        if (reference->model()->model() == nullptr) ThrowCoded(env, "ERR_DISPOSED", "the reference context's model has been disposed");
    }

    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(owner->model()->model()));
    std::vector<llama_token> tokens(arr.Data(), arr.Data() + arr.ElementLength());
    for (llama_token t : tokens) {
        if (t < 0 || t >= n_vocab) ThrowInvalidArg(env, "evaluate: token id out of the vocabulary range", JsErrorKind::RangeError);
    }
    if (reference && llama_vocab_n_tokens(llama_model_get_vocab(reference->model()->model())) != n_vocab) {
        ThrowInvalidArg(env, "evaluate: the reference model has another vocabulary size", JsErrorKind::RangeError);
    }
    return new EvaluateWorker(env, owner, reference, std::move(tokens), options, info.Length() > 2 ? info[2] : env.Undefined());
}

EvaluateWorker::EvaluateWorker(Napi::Env env, Context * owner, Context * reference, std::vector<llama_token> tokens,
                               EvaluateOptions options, Napi::Value progress)
    : PromiseWorker(env, "moe-eval:evaluate"), owner_(owner), reference_(reference), tokens_(std::move(tokens)),
      options_(std::move(options)), progress_(env, progress) {
    owner_->Ref();
    owner_->BeginWork();
    if (reference_) {
        reference_->Ref();
        reference_->BeginWork();
    }
}

void EvaluateWorker::OnSettled() {
    progress_.Release();
    owner_->EndWork();
    owner_->Unref();
    if (reference_) {
        reference_->EndWork();
        reference_->Unref();
    }
}

void EvaluateWorker::Run() {
    owner_->expert_counter().Reset();
    llama_context * ctx = owner_->ctx();
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const int n_ctx = options_.n_ctx;
    if (llama_vocab_get_add_bos(vocab) && llama_vocab_bos(vocab) == LLAMA_TOKEN_NULL) {
        throw NativeError("ERR_TOKENIZE", "the vocabulary asks for a BOS token it does not define");
    }

    if ((int) tokens_.size() < 2 * n_ctx) {
        throw NativeError("ERR_TEXT_TOO_SHORT", "you need at least " + std::to_string(2 * n_ctx) +
                                                    " tokens to evaluate perplexity with a context of " + std::to_string(n_ctx) +
                                                    "; the text tokenizes to only " + std::to_string(tokens_.size()));
    }
    // chunks [first, first + n_chunk) of the text's chunks (first > 0: a piece of a longer evaluation)
    const int first = options_.first_chunk;
    const int n_chunk_max = (int) tokens_.size() / n_ctx - first;
    if (n_chunk_max < 1) throw NativeError("ERR_INVALID_ARG", "firstChunk is past the last chunk of the text");
    if (first > 0 && !options_.write_base_file.empty()) throw NativeError("ERR_INVALID_ARG", "a base file is written from the first chunk");
    const int n_chunk = options_.n_chunks < 0 ? n_chunk_max : std::min(options_.n_chunks, n_chunk_max);
    n_chunk_ = n_chunk;

    const Chunking k = ChunkingFor(*owner_, n_ctx);
    if (!(k.n_batch < n_ctx || k.n_batch % n_ctx == 0)) {
        throw NativeError("ERR_INVALID_ARG", "batch size must be below the chunk size or a multiple of it");
    }
    const int n_scored = n_ctx - 1 - k.first;
    kld_mode_ = reference_ != nullptr || !options_.base_file.empty();

    // base log-probabilities of the chunks in flight (n_seq of them), from a file or a reference context
    std::optional<KldBase> base;
    if (kld_mode_) {
        const CompactLayout layout = reference_ ? CompactLayout{} : CompactLayout{options_.base_top_k, options_.base_tail_samples};
        base.emplace(layout, n_vocab, n_scored, k.n_seq);
        if (!options_.base_file.empty()) base->Open(options_.base_file, options_.base_data_offset, first);
    }
    Chunking kr{};
    if (reference_) {
        kr = ChunkingFor(*reference_, n_ctx);
        if (kr.n_seq != k.n_seq || kr.num_batches != k.num_batches) {
            throw NativeError("ERR_INVALID_ARG", "the reference context must have the same context and batch sizes");
        }
    }
    if (kld_mode_) {
        kld_values_.resize((size_t) n_chunk * n_scored);
        p_diff_values_.resize((size_t) n_chunk * n_scored);
    }
    std::optional<KldBaseWriter> writer;  // removes its unfinished file if the evaluation fails
    if (!options_.write_base_file.empty()) {
        writer.emplace(options_.write_base_file, options_.write_top_k, n_ctx, n_vocab, n_chunk, n_scored, tokens_.data());
    }

    BatchPtr batch(new llama_batch(llama_batch_init(std::min(k.n_batch, n_ctx * k.n_seq), 0, 1)));
    BatchPtr ref_batch(reference_ ? new llama_batch(llama_batch_init(std::min(kr.n_batch, n_ctx * kr.n_seq), 0, 1)) : nullptr);
    std::vector<float> logits;
    if (k.num_batches > 1) logits.reserve((size_t) n_ctx * n_vocab);
    std::atomic<bool> & abort = owner_->abort_flag();
    const auto t_start = std::chrono::steady_clock::now();
    // a ggml RPC server that fails mid-run drops the work sent to it: never report such a result
    const uint64_t rpc_failures = ggml_backend_rpc_failure_count();
    auto check_rpc = [&] {
        if (ggml_backend_rpc_failure_count() != rpc_failures) {
            throw NativeError("ERR_RPC", "an RPC server failed during the evaluation (disconnected or malformed reply); results discarded");
        }
    };

    for (int done = 0; done < n_chunk; done += k.n_seq) {
        const int i = first + done;  // the text's chunk index
        const int n_seq_batch = std::min(k.n_seq, n_chunk - done);

        if (reference_) {  // the base for these chunks, from the reference context under its own routing
            ScopedRouting routing(reference_->hook_routing());
            // its own counter: a graph built here may be reused when that context is evaluated itself
            ScopedExpertCounter counter(&reference_->expert_counter(), reference_->ctx()->get_sched());
            size_t ignored = 0;
            DecodeChunks(reference_->ctx(), kr, tokens_, i, n_seq_batch, *ref_batch, logits, abort, ignored,
                         [&](int seq, const float * rows) {
                             const llama_token * next = tokens_.data() + (size_t) (i + seq) * n_ctx + k.first + 1;
                             base->Quantize(seq, rows, next, options_.n_threads);
                         });
        } else if (base) {
            base->Read(n_seq_batch, i + n_seq_batch);
        }

        ScopedRouting routing(owner_->hook_routing());
        ScopedExpertCounter counter(&owner_->expert_counter(), ctx->get_sched());
        DecodeChunks(ctx, k, tokens_, i, n_seq_batch, *batch, logits, abort, tokens_decoded_, [&](int seq, const float * rows) {
            check_rpc();
            const auto t_score = std::chrono::steady_clock::now();
            const llama_token * next = tokens_.data() + (size_t) (i + seq) * n_ctx + k.first + 1;
            const NllSums s = ScoreRows(rows, n_vocab, next, n_scored, options_.n_threads);
            chunks_.push_back({i + seq, s, {}});
            total_ += s;
            if (base) {
                // per chunk first, then into the total: pieces of an evaluation add up to the whole in the same order
                const size_t at = (size_t) (done + seq) * n_scored;
                KldSums & chunk_kld = chunks_.back().kld;
                base->Compare(seq, i + seq, rows, next, options_.n_threads, chunk_kld, kld_bound_sum_, kld_values_.data() + at,
                              p_diff_values_.data() + at);
                kld_ += chunk_kld;
            }
            if (writer) base_total_ += writer->WriteChunk(i + seq, rows, next, options_.n_threads);
            scoring_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_score).count();
        });

        progress_.Send<ProgressEvent>({done + n_seq_batch, n_chunk, total_}, [](Napi::Env env, const ProgressEvent & e) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("chunksDone", e.chunks_done);
            o.Set("chunksTotal", e.chunks_total);
            o.Set("perplexity", Estimate(e.sums).perplexity);
            return o;
        });
    }
    if (writer) writer->Finish();
    elapsed_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
    experts_per_layer_ = owner_->expert_counter().Means();
}

Napi::Value EvaluateWorker::Result(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    const PerplexityEstimate total = Estimate(total_);
    o.Set("perplexity", total.perplexity);
    o.Set("stderr", total.stderr_ppl);
    o.Set("meanNll", total.mean_nll);
    o.Set("count", (double) total_.count);
    o.Set("chunkCount", n_chunk_);
    o.Set("tokensDecoded", (double) tokens_decoded_);
    Napi::Array per_layer = Napi::Array::New(env, experts_per_layer_.size());
    for (size_t i = 0; i < experts_per_layer_.size(); ++i) per_layer.Set(i, experts_per_layer_[i]);
    o.Set("expertsPerLayer", per_layer);
    o.Set("elapsedMs", elapsed_ms_);
    o.Set("scoringMs", scoring_ms_);
    Napi::Array chunks = Napi::Array::New(env, chunks_.size());
    for (size_t i = 0; i < chunks_.size(); ++i) {
        Napi::Object c = Napi::Object::New(env);
        const PerplexityEstimate e = Estimate(chunks_[i].sums);
        c.Set("index", chunks_[i].index);
        c.Set("meanNll", e.mean_nll);
        c.Set("perplexity", e.perplexity);
        c.Set("count", (double) chunks_[i].sums.count);
        // the sums the totals are made of, so that pieces of an evaluation combine exactly (src/chunk-sums.ts)
        c.Set("sumNll", chunks_[i].sums.nll);
        c.Set("sumNll2", chunks_[i].sums.nll2);
        if (kld_mode_) {
            c.Set("sumKld", chunks_[i].kld.sum_kld);
            c.Set("sumKld2", chunks_[i].kld.sum_kld2);
            c.Set("sameTop", (double) chunks_[i].kld.n_same_top);
        }
        chunks.Set(i, c);
    }
    o.Set("chunks", chunks);
    if (!options_.write_base_file.empty()) {
        o.Set("baseWriterPerplexity", Estimate(base_total_).perplexity);
    }
    if (kld_mode_) {
        const KldStats s = Summarize(kld_, std::move(kld_values_), std::move(p_diff_values_));
        Napi::Object k = Napi::Object::New(env);
#define SET(name, field) k.Set(name, (double) s.field)
        SET("perplexity", ppl); SET("perplexityUnc", ppl_unc);
        SET("basePerplexity", ppl_base); SET("basePerplexityUnc", ppl_base_unc);
        SET("correlation", cor);
        SET("logRatio", log_ratio); SET("logRatioUnc", log_ratio_unc);
        SET("ratio", ratio); SET("ratioUnc", ratio_unc);
        SET("difference", diff); SET("differenceUnc", diff_unc);
        SET("kldMean", kld); SET("kldUnc", kld_unc);
        SET("kldMax", kld_q.max); SET("kld999", kld_q.p999); SET("kld99", kld_q.p99); SET("kld95", kld_q.p95); SET("kld90", kld_q.p90);
        SET("kldMedian", kld_q.median); SET("kld10", kld_q.p10); SET("kld5", kld_q.p5); SET("kld1", kld_q.p1); SET("kld01", kld_q.p01); SET("kldMin", kld_q.min);
        SET("dpMean", dp); SET("dpUnc", dp_unc);
        SET("dpMax", dp_q.max); SET("dp999", dp_q.p999); SET("dp99", dp_q.p99); SET("dp95", dp_q.p95); SET("dp90", dp_q.p90); SET("dp75", dp_q.p75);
        SET("dpMedian", dp_q.median); SET("dp25", dp_q.p25); SET("dp10", dp_q.p10); SET("dp5", dp_q.p5); SET("dp1", dp_q.p1); SET("dp01", dp_q.p01); SET("dpMin", dp_q.min);
        SET("dpRms", dp_rms); SET("dpRmsUnc", dp_rms_unc);
        SET("sameTop", same_top); SET("sameTopUnc", same_top_unc);
        SET("count", count);
#undef SET
        // a compact base: the mean of the lower bound B (docs/kld-compact.md); kldMean adds the tail estimate
        if (options_.base_top_k > 0 && !reference_) k.Set("kldLowerBound", s.count ? kld_bound_sum_ / (double) s.count : 0.0);
        o.Set("kld", k);
    }
    return o;
}

}  // namespace moe_eval
