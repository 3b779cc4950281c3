// What this machine and this build offer: llama.cpp's system info line, whether layers can be
// offloaded, and the default thread count by llama.cpp's own rule (common_cpu_get_num_math in
// common/common.cpp, which the addon does not link: the few lines are mirrored here).
#include "System.h"

#include <string>
#include <thread>
#include <unordered_set>

#if defined(__linux__)
#include <fstream>
#include <unistd.h>
#endif
#if defined(__x86_64__) && defined(__linux__) && !defined(__ANDROID__)
#include <pthread.h>
#include <sched.h>
#endif
#if defined(__APPLE__) && defined(__MACH__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

#include "ggml-backend.h"
#include "llama.h"

namespace moe_eval {

namespace {

// common_cpu_get_num_physical_cores(): one per distinct set of thread siblings on Linux.
int PhysicalCores() {
#if defined(__linux__)
    std::unordered_set<std::string> siblings;
    for (uint32_t cpu = 0; cpu < 1u << 16; ++cpu) {
        std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings");
        if (!f.is_open()) break;
        std::string line;
        if (std::getline(f, line)) siblings.insert(line);
    }
    if (!siblings.empty()) return (int) siblings.size();
#elif defined(__APPLE__) && defined(__MACH__)
    int32_t n = 0;
    size_t len = sizeof(n);
    if (sysctlbyname("hw.perflevel0.physicalcpu", &n, &len, nullptr, 0) == 0) return n;
    if (sysctlbyname("hw.physicalcpu", &n, &len, nullptr, 0) == 0) return n;
#endif
    const unsigned n_threads = std::thread::hardware_concurrency();
    return n_threads > 0 ? (n_threads <= 4 ? (int) n_threads : (int) n_threads / 2) : 4;
}

#if defined(__x86_64__) && defined(__linux__) && !defined(__ANDROID__)
void Cpuid(unsigned leaf, unsigned subleaf, unsigned * eax, unsigned * ebx, unsigned * ecx, unsigned * edx) {
    __asm__("movq\t%%rbx,%%rsi\n\t"
            "cpuid\n\t"
            "xchgq\t%%rbx,%%rsi"
            : "=a"(*eax), "=S"(*ebx), "=c"(*ecx), "=d"(*edx)
            : "0"(leaf), "2"(subleaf));
}

bool IsHybridCpu() {
    unsigned eax, ebx, ecx, edx;
    Cpuid(7, 0, &eax, &ebx, &ecx, &edx);
    return (edx & (1u << 15)) != 0;
}

bool OnEfficiencyCore() {
    unsigned eax, ebx, ecx, edx;
    Cpuid(0x1a, 0, &eax, &ebx, &ecx, &edx);
    return ((eax & 0xff000000u) >> 24) == 0x20;  // Intel Atom core type
}

// cpu_count_math_cpus(): performance cores, one thread per core. Pins the calling thread to each CPU in
// turn (as llama.cpp does); the caller restores its affinity.
int CountMathCpus(int n_cpu) {
    int result = 0;
    for (int cpu = 0; cpu < n_cpu; ++cpu) {
        cpu_set_t mask;
        CPU_ZERO(&mask);
        CPU_SET(cpu, &mask);
        if (pthread_setaffinity_np(pthread_self(), sizeof(mask), &mask) != 0) return -1;
        if (OnEfficiencyCore()) continue;
        ++cpu;  // hyperthreading isn't useful for linear algebra
        ++result;
    }
    return result;
}
#endif

}  // namespace

int DefaultThreads() {
#if defined(__x86_64__) && defined(__linux__) && !defined(__ANDROID__)
    const int n_cpu = (int) sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu >= 1 && IsHybridCpu()) {
        cpu_set_t affinity;
        if (pthread_getaffinity_np(pthread_self(), sizeof(affinity), &affinity) == 0) {
            const int result = CountMathCpus(n_cpu);
            pthread_setaffinity_np(pthread_self(), sizeof(affinity), &affinity);
            if (result > 0) return result;
        }
    }
#endif
    return PhysicalCores();
}

namespace {

Napi::Value SystemInfo(const Napi::CallbackInfo & info) { return Napi::String::New(info.Env(), llama_print_system_info()); }

Napi::Value DefaultThreadsJs(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), DefaultThreads()); }

// Devices layers can be offloaded to in this build (llama_supports_gpu_offload() also says yes for a
// build with RPC, which offloads only to servers named with --rpc).
Napi::Value GpuDeviceCount(const Napi::CallbackInfo & info) {
    size_t n = 0;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        const auto type = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) n++;
    }
    return Napi::Number::New(info.Env(), (double) n);
}

const char * DeviceType(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default: return "unknown";
    }
}

// ggml's device registry: every device this build can compute on (the names ModelInfo.placement uses).
Napi::Value Devices(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, ggml_backend_dev_count());
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", ggml_backend_dev_name(dev));
        d.Set("description", ggml_backend_dev_description(dev));
        d.Set("backend", reg ? ggml_backend_reg_name(reg) : "");
        d.Set("type", DeviceType(ggml_backend_dev_type(dev)));
        d.Set("memoryTotal", (double) total);
        d.Set("memoryFree", (double) free);
        out.Set((uint32_t) i, d);
    }
    return out;
}

}  // namespace

void InitSystem(Napi::Env env, Napi::Object exports) {
    exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
    exports.Set("defaultThreads", Napi::Function::New(env, DefaultThreadsJs, "defaultThreads"));
    exports.Set("gpuDeviceCount", Napi::Function::New(env, GpuDeviceCount, "gpuDeviceCount"));
    exports.Set("devices", Napi::Function::New(env, Devices, "devices"));
}

}  // namespace moe_eval
