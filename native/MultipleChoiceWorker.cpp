#include "MultipleChoiceWorker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>

#include "Context.h"
#include "Model.h"
#include "ggml-rpc.h"
#include "llama-cparams.h"
#include "llama-context.h"
#include "routing/Routing.h"
#include "util/Args.h"
#include "util/Batch.h"
#include "util/NativeError.h"

namespace moe_eval {

namespace {


struct ProgressEvent {
    size_t done;
    size_t total;
};

std::vector<llama_token> ReadTokens(Napi::Env env, Napi::Value v, int n_vocab, const std::string & where) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        ThrowInvalidArg(env, where + ": expected an Int32Array");
    }
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    std::vector<llama_token> out(a.Data(), a.Data() + a.ElementLength());
    for (llama_token t : out) {
        if (t < 0 || t >= n_vocab) ThrowInvalidArg(env, where + ": token id out of the vocabulary range", JsErrorKind::RangeError);
    }
    return out;
}

// common_batch_add of llama.cpp's common library
void BatchAdd(llama_batch & batch, llama_token token, llama_pos pos, int seq_first, int n_seq, bool logits) {
    const int i = batch.n_tokens;
    batch.token[i] = token;
    batch.pos[i] = pos;
    batch.n_seq_id[i] = n_seq;
    for (int s = 0; s < n_seq; ++s) batch.seq_id[i][s] = seq_first + s;
    batch.logits[i] = logits;
    batch.n_tokens++;
}

// log of llama-perplexity's softmax() at `tok`: float exponentials summed in double, each divided by the sum
float SoftmaxLogProb(const float * logits, int n_vocab, llama_token tok) {
    float max_logit = logits[0];
    for (int i = 0; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int i = 0; i < n_vocab; ++i) {
        const float exp_logit = expf(logits[i] - max_logit);
        sum_exp += exp_logit;
    }
    float prob = expf(logits[tok] - max_logit);
    prob /= sum_exp;
    return std::log(prob);
}

// llama-perplexity's compute_logprobs() for one pair
float LogSoftmax(const float * logits, int n_vocab, llama_token tok) {
    float max_logit = logits[0];
    for (int j = 1; j < n_vocab; ++j) max_logit = std::max(max_logit, logits[j]);
    float sum_p = 0.f;
    for (int j = 0; j < n_vocab; ++j) sum_p += expf(logits[j] - max_logit);
    return logits[tok] - max_logit - std::log(sum_p);
}

}  // namespace

MultipleChoiceWorker * MultipleChoiceWorker::Create(const Napi::CallbackInfo & info, Context * owner) {
    Napi::Env env = info.Env();
    const std::string where = "multipleChoice";
    if (info.Length() < 2) ThrowInvalidArg(env, "expected multipleChoice(tasks, options)");
    Napi::Array arr = RequireArray(env, info[0], where + "(tasks)");
    Napi::Object o = RequireObject(info, 1, "multipleChoice(tasks, options)");
    const bool logits_for_last = BoolOption(o, "logitsForLast", false);
    const int max_seq = (int) IntegerOption(env, o, "maxSequences", 0, 1, LLAMA_MAX_SEQ, where + " options");
    if (o.Get("maxSequences").IsUndefined()) ThrowInvalidArg(env, where + " options.maxSequences: required");
    if ((uint32_t) max_seq > owner->options().n_seq_max) {
        ThrowInvalidArg(env, where + " options.maxSequences: more than the context's sequences", JsErrorKind::RangeError);
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(owner->model()->model()));
    const uint32_t n_ctx = owner->options().n_ctx;

    std::vector<MultipleChoiceTask> tasks(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
        const std::string w = where + " task " + std::to_string(i);
        Napi::Object t = RequireObject(env, arr.Get(i), w);
        MultipleChoiceTask & task = tasks[i];
        task.logits_for_last = logits_for_last;
        Napi::Array seqs = RequireArray(env, t.Get("seqs"), w + ".seqs");
        if (seqs.Length() < 1 || seqs.Length() > (uint32_t) max_seq) {
            ThrowInvalidArg(env, w + ".seqs: expected 1 to maxSequences sequences", JsErrorKind::RangeError);
        }
        for (uint32_t s = 0; s < seqs.Length(); ++s) task.seqs.push_back(ReadTokens(env, seqs.Get(s), n_vocab, w + ".seqs"));
        task.prefix = (size_t) IntegerOption(env, t, "prefix", 0, 1, INT32_MAX, w);
        task.n_rows = 1;
        task.required = task.prefix;
        for (const auto & s : task.seqs) {
            // every answer adds at least one token after the shared prefix, which itself is shared
            if (s.size() <= task.prefix || !std::equal(s.begin(), s.begin() + task.prefix, task.seqs[0].begin())) {
                ThrowInvalidArg(env, w + ": prefix is not a common prefix followed by a token in every sequence", JsErrorKind::RangeError);
            }
            task.n_rows += s.size() - task.prefix - (logits_for_last ? 0 : 1);
            task.required += s.size() - task.prefix;
        }
        if (task.required > n_ctx) ThrowInvalidArg(env, w + ": does not fit the context", JsErrorKind::RangeError);
        task.pairs = ReadTokens(env, t.Get("pairs"), INT32_MAX, w + ".pairs");
        if (task.pairs.size() % 2 != 0) ThrowInvalidArg(env, w + ".pairs: expected (row, token) pairs", JsErrorKind::RangeError);
        for (size_t p = 0; p < task.pairs.size(); p += 2) {
            if ((size_t) task.pairs[p] >= task.n_rows || task.pairs[p + 1] >= n_vocab) {
                ThrowInvalidArg(env, w + ".pairs: row or token out of range", JsErrorKind::RangeError);
            }
        }
    }
    return new MultipleChoiceWorker(env, owner, std::move(tasks), max_seq, info.Length() > 2 ? info[2] : env.Undefined());
}

MultipleChoiceWorker::MultipleChoiceWorker(Napi::Env env, Context * owner, std::vector<MultipleChoiceTask> tasks, int max_seq,
                                           Napi::Value progress)
    : PromiseWorker(env, "moe-eval:multiple-choice"), owner_(owner), tasks_(std::move(tasks)), max_seq_(max_seq),
      progress_(env, progress) {
    owner_->Ref();
    owner_->BeginWork();
}

void MultipleChoiceWorker::OnSettled() {
    progress_.Release();
    owner_->EndWork();
    owner_->Unref();
}

void MultipleChoiceWorker::Run() {
    llama_context * ctx = owner_->ctx();
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    const int n_ctx = (int) llama_n_ctx(ctx);
    const int n_batch = std::min<int>((int) owner_->options().n_batch, n_ctx);
    std::atomic<bool> & abort = owner_->abort_flag();
    const uint64_t rpc_failures = ggml_backend_rpc_failure_count();
    const auto t_start = std::chrono::steady_clock::now();

    BatchPtr batch(new llama_batch(llama_batch_init(n_ctx, 0, max_seq_)));
    std::vector<float> logits;
    std::vector<size_t> first_row(tasks_.size());
    ScopedRouting routing(owner_->hook_routing());
    ScopedExpertCounter counter(&owner_->expert_counter(), owner_->ctx()->get_sched());  // graphs built here may be reused by evaluate()

    const size_t n_task = tasks_.size();
    for (size_t i0 = 0; i0 < n_task; i0++) {
        if (abort.load()) throw NativeError("ABORT_ERR", "the evaluation was aborted");
        // as many whole tasks as fit the context and the sequence ids (llama-perplexity's packing)
        int n_cur = 0;
        int s0 = 0;
        size_t i1 = i0;
        size_t n_rows = 0;
        batch->n_tokens = 0;
        while (n_cur + (int) tasks_[i1].required <= n_ctx) {
            const MultipleChoiceTask & t = tasks_[i1];
            const int n_seq = (int) t.seqs.size();
            if (s0 + n_seq > max_seq_) break;
            for (size_t i = 0; i < t.prefix; ++i) BatchAdd(*batch, t.seqs[0][i], (llama_pos) i, s0, n_seq, false);
            batch->logits[batch->n_tokens - 1] = true;  // the last token of the shared prefix
            for (int s = 0; s < n_seq; ++s) {
                const size_t len = t.seqs[s].size();
                for (size_t i = t.prefix; i < len; ++i) {
                    BatchAdd(*batch, t.seqs[s][i], (llama_pos) i, s0 + s, 1, t.logits_for_last || i < len - 1);
                }
            }
            first_row[i1] = n_rows;
            n_rows += t.n_rows;
            s0 += n_seq;
            n_cur += (int) t.required;
            if (++i1 == n_task) break;
        }
        if (i0 == i1) {
            throw NativeError("ERR_TASK_TOO_LONG", "task " + std::to_string(i0) + " does not fit in the context window (requires " +
                                                      std::to_string(tasks_[i0].required) + " tokens)");
        }

        llama_memory_clear(llama_get_memory(ctx), true);
        // decode_helper(): pieces of n_batch tokens, the outputs of each appended in order
        logits.resize(n_rows * (size_t) n_vocab);
        size_t prev_outputs = 0;
        for (int i = 0; i < batch->n_tokens; i += n_batch) {
            const int n_tokens = std::min(n_batch, batch->n_tokens - i);
            llama_batch view = {n_tokens, batch->token + i, nullptr, batch->pos + i, batch->n_seq_id + i, batch->seq_id + i, batch->logits + i};
            const int32_t ret = llama_decode(ctx, view);
            if (ret == 2 || abort.load()) throw NativeError("ABORT_ERR", "the evaluation was aborted");
            if (ret != 0) throw NativeError("ERR_DECODE", "llama_decode failed with status " + std::to_string(ret));
            if (ggml_backend_rpc_failure_count() != rpc_failures) {
                throw NativeError("ERR_RPC", "an RPC server failed during the evaluation (disconnected or malformed reply); results discarded");
            }
            size_t n_outputs = 0;
            for (int k = 0; k < n_tokens; ++k) n_outputs += view.logits[k] != 0;
            std::memcpy(logits.data() + prev_outputs * n_vocab, llama_get_logits(ctx), n_outputs * n_vocab * sizeof(float));
            prev_outputs += n_outputs;
            tokens_decoded_ += n_tokens;
        }

        for (size_t i = i0; i < i1; ++i) {
            MultipleChoiceTask & t = tasks_[i];
            const float * rows = logits.data() + first_row[i] * n_vocab;
            t.first.resize(t.seqs.size());
            for (size_t s = 0; s < t.seqs.size(); ++s) t.first[s] = SoftmaxLogProb(rows, n_vocab, t.seqs[s][t.prefix]);
            t.scores.resize(t.pairs.size() / 2);
            for (size_t p = 0; p < t.scores.size(); ++p) {
                t.scores[p] = LogSoftmax(rows + (size_t) t.pairs[2 * p] * n_vocab, n_vocab, t.pairs[2 * p + 1]);
            }
        }
        progress_.Send<ProgressEvent>({i1, n_task}, [](Napi::Env env, const ProgressEvent & e) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("tasksDone", (double) e.done);
            o.Set("tasksTotal", (double) e.total);
            return o;
        });
        i0 = i1 - 1;
    }
    elapsed_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_start).count();
}

Napi::Value MultipleChoiceWorker::Result(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array out = Napi::Array::New(env, tasks_.size());
    for (size_t i = 0; i < tasks_.size(); ++i) {
        const MultipleChoiceTask & t = tasks_[i];
        Napi::Object r = Napi::Object::New(env);
        Napi::Float32Array first = Napi::Float32Array::New(env, t.first.size());
        if (!t.first.empty()) std::memcpy(first.Data(), t.first.data(), t.first.size() * sizeof(float));
        Napi::Float32Array scores = Napi::Float32Array::New(env, t.scores.size());
        if (!t.scores.empty()) std::memcpy(scores.Data(), t.scores.data(), t.scores.size() * sizeof(float));
        r.Set("first", first);
        r.Set("scores", scores);
        out.Set(i, r);
    }
    o.Set("tasks", out);
    o.Set("tokensDecoded", (double) tokens_decoded_);
    o.Set("elapsedMs", elapsed_ms_);
    return o;
}

}  // namespace moe_eval
