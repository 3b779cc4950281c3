// Base of every asynchronous native operation: a Napi::AsyncWorker bound to a promise.
//
// Run() executes on a libuv worker thread and must not touch JS; any exception it throws is caught here
// and rejects the promise with an Error carrying `code` (NativeError's, or ERR_NATIVE). Result() builds
// the resolved value on the JS thread; whatever it throws rejects the promise with a coded error too. Subclasses Ref() the objects they use in their constructor and
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
        // Result() runs on the JS thread: whatever it throws rejects the promise with a coded error
        // (never an uncaught C++ exception in libuv's callback, which would end the process)
        try {
            value = Result(env);  // before OnSettled: results may move state into the owner
        } catch (const Napi::Error & e) {
            OnSettled();
            Napi::Object err = e.Value();
            if (!err.Has("code")) err.Set("code", Napi::String::New(env, "ERR_NATIVE"));
            deferred_.Reject(err);
            return;
        } catch (const NativeError & e) {
            OnSettled();
            deferred_.Reject(Coded(env, e.code, e.what()));
            return;
        } catch (const std::exception & e) {
            OnSettled();
            deferred_.Reject(Coded(env, "ERR_NATIVE", e.what()));
            return;
        } catch (...) {
            OnSettled();
            deferred_.Reject(Coded(env, "ERR_NATIVE", "unknown native error"));
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

    static Napi::Value Coded(Napi::Env env, const std::string & code, const std::string & message) {
        Napi::Error err = Napi::Error::New(env, message);
        err.Set("code", Napi::String::New(env, code));
        return err.Value();
    }

    Napi::Promise::Deferred deferred_;
    std::string code_ = "ERR_NATIVE";
};

}  // namespace moe_eval
