#include "TokenizeWorker.h"

#include <climits>
#include <cstring>
#include <vector>

#include "Model.h"
#include "util/NativeError.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

class TokenizeWorker final : public PromiseWorker {
public:
    TokenizeWorker(Napi::Env env, Model * owner, std::string text, bool add_special, bool parse_special)
        : PromiseWorker(env, "moe-eval:tokenize"), owner_(owner), text_(std::move(text)),
          add_special_(add_special), parse_special_(parse_special) {
        owner_->Ref();
        owner_->WorkerStarted();
    }

protected:
    void Run() override {
        const llama_vocab * vocab = llama_model_get_vocab(owner_->model());
        if (llama_vocab_type(vocab) == LLAMA_VOCAB_TYPE_NONE) {
            throw NativeError("ERR_NO_TOKENIZER", "the model has no tokenizer (tokenizer.ggml.model is \"" + MetaString(owner_->model(), "tokenizer.ggml.model") +
                                                      "\"): pass tokens instead of text");
        }
        if (text_.size() > (size_t) INT32_MAX / 2) throw NativeError("ERR_INVALID_ARG", "text too long to tokenize");
        if (add_special_ && ((llama_vocab_get_add_bos(vocab) && llama_vocab_bos(vocab) == LLAMA_TOKEN_NULL) ||
                             (llama_vocab_get_add_eos(vocab) && llama_vocab_eos(vocab) == LLAMA_TOKEN_NULL))) {
            throw NativeError("ERR_TOKENIZE", "the vocabulary asks for a BOS/EOS token it does not define");
        }
        // upper bound: one token per byte, plus BOS/EOS
        tokens_.resize(text_.size() + 2);
        int32_t n = llama_tokenize(vocab, text_.data(), (int32_t) text_.size(), tokens_.data(), (int32_t) tokens_.size(),
                                   add_special_, parse_special_);
        if (n < 0) {
            tokens_.resize(-n);
            n = llama_tokenize(vocab, text_.data(), (int32_t) text_.size(), tokens_.data(), (int32_t) tokens_.size(),
                               add_special_, parse_special_);
        }
        if (n < 0) throw NativeError("ERR_TOKENIZE", "tokenization failed");
        tokens_.resize(n);
    }

    Napi::Value Result(Napi::Env env) override {
        Napi::Int32Array out = Napi::Int32Array::New(env, tokens_.size());
        std::memcpy(out.Data(), tokens_.data(), tokens_.size() * sizeof(int32_t));
        return out;
    }

    void OnSettled() override {
        owner_->WorkerDone();
        owner_->Unref();
    }

private:
    Model * owner_;
    std::string text_;
    bool add_special_;
    bool parse_special_;
    std::vector<llama_token> tokens_;
};

}  // namespace

Napi::Value StartTokenize(Napi::Env env, Model * model, std::string text, bool add_special, bool parse_special) {
    return PromiseWorker::Start(new TokenizeWorker(env, model, std::move(text), add_special, parse_special));
}

}  // namespace moe_eval
