// Module init: registers the classes and free functions of the moe-eval addon (typed in src/native.ts).
#include <napi.h>

#include "Context.h"
#include "ImatrixFileWorker.h"
#include "Log.h"
#include "Model.h"
#include "QuantizeWorker.h"
#include "RpcServer.h"
#include "System.h"
#include "fixtures/RandomModel.h"
#include "gguf/GgufInfo.h"
#include "gguf/GgufRewrite.h"
#include "llama.h"
#include "metrics/Combine.h"
#include "util/ReleaseMemory.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
    moe_eval::KeepLargeBlocksMapped();
    llama_backend_init();
    moe_eval::InitLog(env, exports);
    exports.Set("Model", moe_eval::Model::Define(env));
    exports.Set("Context", moe_eval::Context::Define(env));
    moe_eval::InitRandomModel(env, exports);
    moe_eval::InitGgufRewrite(env, exports);
    moe_eval::InitGgufInfo(env, exports);
    moe_eval::InitQuantize(env, exports);
    moe_eval::InitImatrixFile(env, exports);
    moe_eval::InitRpcServer(env, exports);
    moe_eval::InitSystem(env, exports);
    moe_eval::InitCombine(env, exports);
    return exports;
}

}  // namespace

NODE_API_MODULE(moe_eval, Init)
