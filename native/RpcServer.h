// startRpcServer(endpoint, threads): serves this machine's ggml devices to other moe-eval or llama.cpp
// processes over ggml's RPC protocol (what llama.cpp's rpc-server does). The promise only settles if
// the server stops; `moe-eval rpc-server` runs it until the process is ended.
#pragma once

#include <napi.h>

namespace moe_eval {

void InitRpcServer(Napi::Env env, Napi::Object exports);

}  // namespace moe_eval
