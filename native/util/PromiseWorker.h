// Base of every asynchronous native operation: a Napi::AsyncWorker bound to a promise.
//
// Run() executes on a libuv worker thread and must not touch JS; any exception it throws is caught here
// and rejects the promise with an Error carrying `code` (NativeError's, or ERR_NATIVE). Result() builds
// the resolved value on the JS thread. Subclasses Ref() the objects they use in their constructor and
// Unref() them in OnSettled(), so nothing they need is collected while they run.
#pragma once

#include <napi.h>

#include <exception>
#include <string>

#include "NativeError.h"

namespace moe_eval {

class PromiseWorker : public Napi::AsyncWorker {
public:
    explicit PromiseWorker(Napi::Env env, const char * name)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

    Napi::Promise Promise() { return deferred_.Promise(); }

    // Queues the worker and returns its promise (the worker deletes itself when done).
    static Napi::Promise Start(PromiseWorker * worker) {
        Napi::Promise promise = worker->Promise();
        worker->Queue();
        return promise;
    }

protected:
    virtual void Run() = 0;
    virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
    virtual void OnSettled() {}

private:
    void Execute() final {
        try {
            Run();
        } catch (const NativeError & e) {
            code_ = e.code;
            SetError(e.what());
        } catch (const std::exception & e) {
            code_ = "ERR_NATIVE";
            SetError(e.what());
        } catch (...) {
            code_ = "ERR_NATIVE";
            SetError("unknown native error");
        }
    }

    void OnOK() final {
        Napi::Env env = Env();
        Napi::HandleScope scope(env);
        Napi::Value value;
        try {
            value = Result(env);  // before OnSettled: results may move state into the owner
        } catch (const Napi::Error & e) {
            OnSettled();
            deferred_.Reject(e.Value());
            return;
        }
        OnSettled();
        deferred_.Resolve(value);
    }

    void OnError(const Napi::Error & error) final {
        Napi::Env env = Env();
        Napi::HandleScope scope(env);
        OnSettled();
        Napi::Object err = error.Value();
        err.Set("code", Napi::String::New(env, code_));
        deferred_.Reject(err);
    }

    Napi::Promise::Deferred deferred_;
    std::string code_ = "ERR_NATIVE";
};

}  // namespace moe_eval
