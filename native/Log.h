// llama.cpp / ggml log → a JS logger (silent by default).
//
// setLogger(fn, minLevel) installs `fn(level, text)`; messages below minLevel are dropped in C++ so a
// silent logger costs nothing. The thread-safe function is unref'd: logging never keeps Node alive.
// The last error-level message of each thread is kept so that failures ("failed to load model")
// can say what llama.cpp said.
#pragma once

#include <napi.h>

#include <functional>
#include <string>

namespace moe_eval {

void InitLog(Napi::Env env, Napi::Object exports);

// While alive, every complete log line llama.cpp emits on this thread is also passed to `observer`
// (whatever the logger's level): how workers read progress that llama.cpp only logs.
class ScopedLogObserver {
public:
    explicit ScopedLogObserver(std::function<void(const std::string &)> observer);
    ~ScopedLogObserver();
    ScopedLogObserver(const ScopedLogObserver &) = delete;
    ScopedLogObserver & operator=(const ScopedLogObserver &) = delete;
private:
    std::function<void(const std::string &)> * previous_;
    std::function<void(const std::string &)> current_;
};

// The last error or warning llama.cpp logged on this thread since ClearLastLogError().
std::string LastLogError();
void ClearLastLogError();

}  // namespace moe_eval
