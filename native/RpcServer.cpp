#include "RpcServer.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ggml-backend.h"
#include "ggml-rpc.h"
#include "util/Args.h"
#include "util/NativeError.h"

namespace moe_eval {

namespace {

// The server runs on a thread of its own, not on libuv's thread pool: it never returns, and a pool
// thread that never returns would both take a slot from every other operation and keep Node's exit
// (which joins the pool) from ever finishing — Ctrl-C could not end the process. The thread is
// detached; the promise is settled through a thread-safe function only if the server stops.
struct ServerStop {
    std::string message;
};

void Serve(std::string endpoint, int threads, Napi::ThreadSafeFunction done) {
    std::string message;
    try {
        // the accelerators when there are any, else the CPU (as llama.cpp's rpc-server chooses)
        std::vector<ggml_backend_dev_t> devices;
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            const auto type = ggml_backend_dev_type(dev);
            if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) devices.push_back(dev);
        }
        if (devices.empty()) {
            ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
            if (cpu == nullptr) throw std::runtime_error("no device to serve");
            devices.push_back(cpu);
        }
        ggml_backend_rpc_start_server(endpoint.c_str(), nullptr, (size_t) threads, devices.size(), devices.data());
        message = "the RPC server on " + endpoint + " stopped (is the port in use?)";
    } catch (const std::exception & e) {
        message = e.what();
    }
    auto * stop = new ServerStop{message};
    if (done.BlockingCall(stop, [](Napi::Env env, Napi::Function fn, ServerStop * s) {
            if (env != nullptr) fn.Call({Napi::String::New(env, s->message)});
            delete s;
        }) != napi_ok) {
        delete stop;
    }
    done.Release();
}

// startRpcServer(endpoint, threads) → Promise<never>: rejects (ERR_RPC) if the server cannot start or stops.
Napi::Value StartRpcServer(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string endpoint = RequireString(info, 0, "startRpcServer(endpoint)");
    if (info.Length() < 2 || !info[1].IsNumber()) ThrowInvalidArg(env, "startRpcServer(endpoint, threads): expected a number of threads");
    const int threads = std::max(1, info[1].As<Napi::Number>().Int32Value());
    auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
    Napi::Function settle = Napi::Function::New(env, [deferred](const Napi::CallbackInfo & ci) {
        Napi::Error err = Napi::Error::New(ci.Env(), ci[0].As<Napi::String>().Utf8Value());
        err.Set("code", Napi::String::New(ci.Env(), "ERR_RPC"));
        deferred->Reject(err.Value());
    });
    // referenced: a running server keeps the process alive, as a listening socket would
    Napi::ThreadSafeFunction done = Napi::ThreadSafeFunction::New(env, settle, "moe-eval:rpc-server", 0, 1);
    std::thread(Serve, std::move(endpoint), threads, done).detach();
    return deferred->Promise();
}

}  // namespace

void InitRpcServer(Napi::Env env, Napi::Object exports) {
    exports.Set("startRpcServer", Napi::Function::New(env, StartRpcServer, "startRpcServer"));
}

}  // namespace moe_eval
