#include "RpcServer.h"

#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml-rpc.h"
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

class RpcServerWorker final : public PromiseWorker {
public:
    RpcServerWorker(Napi::Env env, std::string endpoint, int threads)
        : PromiseWorker(env, "moe-eval:rpc-server"), endpoint_(std::move(endpoint)), threads_(threads) {}

protected:
    void Run() override {
        // the accelerators when there are any, else the CPU (as llama.cpp's rpc-server chooses)
        std::vector<ggml_backend_dev_t> devices;
        for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
            ggml_backend_dev_t dev = ggml_backend_dev_get(i);
            const auto type = ggml_backend_dev_type(dev);
            if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) devices.push_back(dev);
        }
        if (devices.empty()) {
            ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
            if (cpu == nullptr) throw NativeError("ERR_RPC", "no device to serve");
            devices.push_back(cpu);
        }
        try {
            ggml_backend_rpc_start_server(endpoint_.c_str(), nullptr, (size_t) threads_, devices.size(), devices.data());
        } catch (const std::exception & e) {
            throw NativeError("ERR_RPC", e.what());
        }
        throw NativeError("ERR_RPC", "the RPC server on " + endpoint_ + " stopped (is the port in use?)");
    }

private:
    std::string endpoint_;
    int threads_;
};

Napi::Value StartRpcServer(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string endpoint = RequireString(info, 0, "startRpcServer(endpoint)");
    if (info.Length() < 2 || !info[1].IsNumber()) ThrowInvalidArg(env, "startRpcServer(endpoint, threads): expected a number of threads");
    return PromiseWorker::Start(new RpcServerWorker(env, std::move(endpoint), std::max(1, info[1].As<Napi::Number>().Int32Value())));
}

}  // namespace

void InitRpcServer(Napi::Env env, Napi::Object exports) {
    exports.Set("startRpcServer", Napi::Function::New(env, StartRpcServer, "startRpcServer"));
}

}  // namespace moe_eval
