#include "Log.h"

#include "ggml.h"
#include "llama.h"

#include <atomic>
#include <mutex>
#include <string>

namespace moe_eval {

namespace {

struct LogLine {
    int level;
    std::string text;
};

std::mutex g_mutex;
Napi::ThreadSafeFunction g_tsfn;
bool g_has_tsfn = false;
std::atomic<int> g_min_level{GGML_LOG_LEVEL_NONE + 100};  // above every level: silent
thread_local std::string t_last_error;
thread_local std::string t_pending;  // llama.cpp emits some lines in pieces (GGML_LOG_LEVEL_CONT)
thread_local int t_pending_level = GGML_LOG_LEVEL_INFO;
thread_local std::function<void(const std::string &)> * t_observer = nullptr;

const char * LevelName(int level) {
    switch (level) {
        case GGML_LOG_LEVEL_DEBUG: return "debug";
        case GGML_LOG_LEVEL_INFO: return "info";
        case GGML_LOG_LEVEL_WARN: return "warn";
        case GGML_LOG_LEVEL_ERROR: return "error";
        default: return "info";
    }
}

void Emit(int level, std::string text) {
    if (t_observer != nullptr) (*t_observer)(text);
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) {
        t_last_error = text;
    }
    if (level < g_min_level.load(std::memory_order_relaxed)) return;
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_has_tsfn) return;
    auto * line = new LogLine{level, std::move(text)};
    napi_status status = g_tsfn.NonBlockingCall(line, [](Napi::Env env, Napi::Function fn, LogLine * l) {
        if (env != nullptr && fn != nullptr) {
            try {
                fn.Call({Napi::String::New(env, LevelName(l->level)), Napi::String::New(env, l->text)});
            } catch (...) {
            }
        }
        delete l;
    });
    if (status != napi_ok) delete line;
}

void OnLog(ggml_log_level level, const char * text, void *) {
    if (text == nullptr) return;
    // a line may arrive in pieces (GGML_LOG_LEVEL_CONT, or several INFO calls before the newline)
    if (t_pending.empty() && level != GGML_LOG_LEVEL_CONT) t_pending_level = level;
    t_pending += text;
    if (!t_pending.empty() && t_pending.back() == '\n') {
        t_pending.pop_back();
        Emit(t_pending_level, std::move(t_pending));
        t_pending.clear();
    }
}

int ParseLevel(const std::string & s) {
    if (s == "debug") return GGML_LOG_LEVEL_DEBUG;
    if (s == "info") return GGML_LOG_LEVEL_INFO;
    if (s == "warn") return GGML_LOG_LEVEL_WARN;
    if (s == "error") return GGML_LOG_LEVEL_ERROR;
    return GGML_LOG_LEVEL_NONE + 100;
}

// setLogger(fn | null, level: 'debug'|'info'|'warn'|'error'|'none')
Napi::Value SetLogger(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_has_tsfn) {
        g_tsfn.Release();
        g_has_tsfn = false;
    }
    if (info.Length() > 0 && info[0].IsFunction()) {
        g_tsfn = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "moe-eval-log", 0, 1);
        g_tsfn.Unref(env);
        g_has_tsfn = true;
    }
    const std::string level = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "none";
    g_min_level = g_has_tsfn ? ParseLevel(level) : GGML_LOG_LEVEL_NONE + 100;
    return env.Undefined();
}

}  // namespace

ScopedLogObserver::ScopedLogObserver(std::function<void(const std::string &)> observer)
    : previous_(t_observer), current_(std::move(observer)) {
    t_observer = &current_;
}
ScopedLogObserver::~ScopedLogObserver() { t_observer = previous_; }

std::string LastLogError() { return t_last_error; }
void ClearLastLogError() { t_last_error.clear(); }

void InitLog(Napi::Env env, Napi::Object exports) {
    llama_log_set(OnLog, nullptr);
    exports.Set("setLogger", Napi::Function::New(env, SetLogger, "setLogger"));
    env.AddCleanupHook([] {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_has_tsfn) {
            g_tsfn.Release();
            g_has_tsfn = false;
        }
    });
}

}  // namespace moe_eval
