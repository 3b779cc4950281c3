// logits(tokens): all logits of one sequence (tokens × vocab floats), decoded from position 0 under the
// context's routing. For tests (equivalence proofs need raw logits) and for users who want them.
#pragma once

#include <napi.h>

#include <vector>

#include "llama.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

class Context;

class LogitsWorker final : public PromiseWorker {
public:
    static LogitsWorker * Create(const Napi::CallbackInfo & info, Context * owner);

protected:
    void Run() override;
    Napi::Value Result(Napi::Env env) override;
    void OnSettled() override;

private:
    LogitsWorker(Napi::Env env, Context * owner, std::vector<llama_token> tokens);

    Context * owner_;
    std::vector<llama_token> tokens_;
    std::vector<float> logits_;
};

}  // namespace moe_eval
