// Reports progress from a worker thread to a JS callback without blocking and without keeping the
// process alive on its own (the running worker already does). Safe to use with no callback.
#pragma once

#include <napi.h>

#include <functional>

namespace moe_eval {

class Progress {
public:
    Progress() = default;
    Progress(Napi::Env env, Napi::Value callback) {
        if (callback.IsFunction()) {
            tsfn_ = Napi::ThreadSafeFunction::New(env, callback.As<Napi::Function>(), "moe-eval-progress", 0, 1);
            tsfn_.Unref(env);
            active_ = true;
        }
    }
    ~Progress() { Release(); }
    Progress(const Progress &) = delete;
    Progress & operator=(const Progress &) = delete;

    // `make` runs on the JS thread and builds the callback's argument.
    template <typename Payload>
    void Send(Payload payload, std::function<Napi::Value(Napi::Env, const Payload &)> make) {
        if (!active_) return;
        auto * boxed = new Payload(std::move(payload));
        napi_status status = tsfn_.NonBlockingCall(boxed, [make](Napi::Env env, Napi::Function fn, Payload * p) {
            if (env != nullptr && fn != nullptr) {
                try {
                    fn.Call({make(env, *p)});
                } catch (...) {
                    // a throwing progress callback must not take the evaluation down
                }
            }
            delete p;
        });
        if (status != napi_ok) delete boxed;
    }

    void Release() {
        if (active_) {
            tsfn_.Release();
            active_ = false;
        }
    }

private:
    Napi::ThreadSafeFunction tsfn_;
    bool active_ = false;
};

}  // namespace moe_eval
