#include "gguf/KvOverrides.h"

#include <algorithm>
#include <cfloat>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "gguf.h"
#include "llama-hparams.h"  // LLAMA_MAX_LAYERS, LLAMA_MAX_EXPERTS

#include "util/NativeError.h"

namespace moe_eval {

namespace {

constexpr int64_t kMaxLayers = LLAMA_MAX_LAYERS;
constexpr int64_t kMaxExperts = LLAMA_MAX_EXPERTS;

const char * TagName(llama_model_kv_override_type tag) {
    switch (tag) {
        case LLAMA_KV_OVERRIDE_TYPE_INT: return "int";
        case LLAMA_KV_OVERRIDE_TYPE_FLOAT: return "float";
        case LLAMA_KV_OVERRIDE_TYPE_BOOL: return "bool";
        case LLAMA_KV_OVERRIDE_TYPE_STR: return "str";
    }
    return "?";
}

bool IsIntType(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16:
        case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: return true;
        default: return false;
    }
}

// The integers a GGUF integer type holds (u64 capped at INT64_MAX: an override is an int64).
void IntRange(gguf_type t, int64_t & lo, int64_t & hi) {
    switch (t) {
        case GGUF_TYPE_UINT8: lo = 0; hi = UINT8_MAX; break;
        case GGUF_TYPE_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
        case GGUF_TYPE_UINT16: lo = 0; hi = UINT16_MAX; break;
        case GGUF_TYPE_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
        case GGUF_TYPE_UINT32: lo = 0; hi = UINT32_MAX; break;
        case GGUF_TYPE_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
        case GGUF_TYPE_UINT64: lo = 0; hi = INT64_MAX; break;
        default: lo = INT64_MIN; hi = INT64_MAX; break;
    }
}

int64_t IntAt(const gguf_context * g, int64_t k, gguf_type t, const void * arr, size_t i) {
    switch (t) {
        case GGUF_TYPE_UINT8: return arr ? ((const uint8_t *) arr)[i] : gguf_get_val_u8(g, k);
        case GGUF_TYPE_INT8: return arr ? ((const int8_t *) arr)[i] : gguf_get_val_i8(g, k);
        case GGUF_TYPE_UINT16: return arr ? ((const uint16_t *) arr)[i] : gguf_get_val_u16(g, k);
        case GGUF_TYPE_INT16: return arr ? ((const int16_t *) arr)[i] : gguf_get_val_i16(g, k);
        case GGUF_TYPE_UINT32: return arr ? ((const uint32_t *) arr)[i] : gguf_get_val_u32(g, k);
        case GGUF_TYPE_INT32: return arr ? ((const int32_t *) arr)[i] : gguf_get_val_i32(g, k);
        case GGUF_TYPE_UINT64: {
            const uint64_t v = arr ? ((const uint64_t *) arr)[i] : gguf_get_val_u64(g, k);
            return v > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) v;
        }
        case GGUF_TYPE_INT64: return arr ? ((const int64_t *) arr)[i] : gguf_get_val_i64(g, k);
        default: return 0;
    }
}

std::string FormatDouble(double v) {
    char buf[64];
    for (int precision = 1; precision <= 17; ++precision) {  // the shortest text that reads back as v
        std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

bool EndsWith(const std::string & s, const std::string & tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Keys (after "<arch>.") that describe the shapes of the weights: the tensors in the file fix them.
// llama.cpp checks most against the tensors (and fails cleanly), but not all: a head count or a rope
// dimension that no longer fits the weights reaches an assert in the graph builder.
bool IsShapeKey(const std::string & suffix) {
    if (suffix.find("context_length") != std::string::npos || suffix.find("temperature_length") != std::string::npos) return false;
    static const char * const kTails[] = {
        "_length", "length_mla", "length_swa", "length_mla_swa", "block_count", "expert_count", "expert_shared_count", "head_count",
        "head_count_kv", "dimension_count", "dimension_count_swa", "lora_rank", "lora_rank_swa", "vocab_size", "nextn_predict_layers",
        "hyper_connection.count", "output_group_count", "hash_layer_count", "token_shift_count", "ssm.conv_kernel", "ssm.inner_size",
        "ssm.state_size", "ssm.time_step_rank", "ssm.group_count", "embedding_length_per_layer_input", "adapters.lora_rank",
    };
    for (const char * tail : kTails) {
        if (EndsWith(suffix, tail)) return true;
    }
    return false;
}

std::string Range(int64_t lo, int64_t hi) { return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]"; }

}  // namespace

std::string KvOverrides::Text(const llama_model_kv_override & ov) {
    std::string value;
    switch (ov.tag) {
        case LLAMA_KV_OVERRIDE_TYPE_INT: value = std::to_string(ov.val_i64); break;
        case LLAMA_KV_OVERRIDE_TYPE_FLOAT: value = FormatDouble(ov.val_f64); break;
        case LLAMA_KV_OVERRIDE_TYPE_BOOL: value = ov.val_bool ? "true" : "false"; break;
        case LLAMA_KV_OVERRIDE_TYPE_STR: value = ov.val_str; break;
    }
    return std::string(ov.key) + "=" + TagName(ov.tag) + ":" + value;
}

const llama_model_kv_override * KvOverrides::Find(const std::string & key) const {
    // llama.cpp keeps the first override of a key (std::map::insert)
    for (const auto & ov : list_) {
        if (key == ov.key) return &ov;
    }
    return nullptr;
}

std::string KvOverrides::EffectiveString(const gguf_context * g, const std::string & key) const {
    const llama_model_kv_override * ov = Find(key);
    if (ov != nullptr && ov->tag == LLAMA_KV_OVERRIDE_TYPE_STR) return ov->val_str;
    const int64_t k = gguf_find_key(g, key.c_str());
    return k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_STRING ? gguf_get_val_str(g, k) : "";
}

void KvOverrides::Check(const gguf_context * g) {
    auto refuse = [](const llama_model_kv_override & ov, const std::string & what) {
        throw NativeError("ERR_KV_OVERRIDE", "kvOverrides '" + Text(ov) + "': " + what);
    };
    const int64_t arch_k = gguf_find_key(g, "general.architecture");
    const std::string arch = arch_k >= 0 && gguf_get_kv_type(g, arch_k) == GGUF_TYPE_STRING ? gguf_get_val_str(g, arch_k) : "";

    // (a) each override on its own: its type against the key's type in the file
    for (const auto & ov : list_) {
        const std::string key = ov.key;
        if (key == "general.architecture") {
            if (ov.tag != LLAMA_KV_OVERRIDE_TYPE_STR || arch != ov.val_str) {
                refuse(ov, "expected str:" + arch + " (the model's own architecture; an override does not convert a model) but received " +
                               Text(ov).substr(key.size() + 1));
            }
        }
        const int64_t k = gguf_find_key(g, ov.key);
        if (k < 0) {
            // llama.cpp stores the integers it reads in 32 bits: a larger value would be cut
            if (ov.tag == LLAMA_KV_OVERRIDE_TYPE_INT && (ov.val_i64 < INT32_MIN || ov.val_i64 > UINT32_MAX)) {
                refuse(ov, "expected an integer in " + Range(INT32_MIN, UINT32_MAX) + " (llama.cpp reads integers as 32-bit values) but received " +
                               std::to_string(ov.val_i64));
            }
            if (ov.tag == LLAMA_KV_OVERRIDE_TYPE_FLOAT && std::fabs(ov.val_f64) > FLT_MAX) {
                refuse(ov, "expected a number within the range of a 32-bit float but received " + FormatDouble(ov.val_f64));
            }
            continue;
        }
        const gguf_type t = gguf_get_kv_type(g, k);
        if (t == GGUF_TYPE_ARRAY) {
            array_keys_.insert(key);
            refuse(ov, std::string("expected a key with a single value, but ") + key + " is an array of " +
                           std::to_string(gguf_get_arr_n(g, k)) + " in this file (llama.cpp does not override arrays)");
        }
        const char * want = IsIntType(t) ? "int" : t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64 ? "float" : t == GGUF_TYPE_BOOL ? "bool" : "str";
        if (std::string(want) != TagName(ov.tag)) {
            refuse(ov, std::string("expected type ") + want + " (" + key + " is stored as " + gguf_type_name(t) + " in this file) but received " + TagName(ov.tag));
        }
        if (ov.tag == LLAMA_KV_OVERRIDE_TYPE_INT) {
            int64_t lo = 0;
            int64_t hi = 0;
            IntRange(t, lo, hi);
            hi = std::min<int64_t>(hi, UINT32_MAX);  // read into 32 bits
            lo = std::max<int64_t>(lo, INT32_MIN);
            if (ov.val_i64 < lo || ov.val_i64 > hi) {
                refuse(ov, "expected an integer in " + Range(lo, hi) + " (" + key + " is stored as " + gguf_type_name(t) +
                               " in this file, read as 32 bits) but received " + std::to_string(ov.val_i64));
            }
        }
        if (ov.tag == LLAMA_KV_OVERRIDE_TYPE_FLOAT && t == GGUF_TYPE_FLOAT32 && std::fabs(ov.val_f64) > FLT_MAX) {
            refuse(ov, "expected a number within the range of a 32-bit float (" + key + " is stored as f32) but received " + FormatDouble(ov.val_f64));
        }
    }
    // values llama.cpp's graph builder and ggml's kernels assert on, whatever the architecture
    const std::string prefix = arch + ".";
    for (const auto & ov : list_) {
        const std::string key = ov.key;
        const std::string suffix = key.compare(0, prefix.size(), prefix) == 0 ? key.substr(prefix.size()) : "";
        if (!suffix.empty() && IsShapeKey(suffix)) {
            const int64_t k = gguf_find_key(g, ov.key);
            if (k < 0) {
                refuse(ov, "expected no override: " + key + " describes the shapes of the weights, and this file does not set it (llama.cpp derives it from the tensors and other keys)");
            }
            const int64_t file_value = IntAt(g, k, gguf_get_kv_type(g, k), nullptr, 0);
            if (ov.val_i64 != file_value) {
                refuse(ov, "expected " + std::to_string(file_value) + ", the file's value (" + key + " describes the shapes of the weights; another value does not fit them) but received " +
                               std::to_string(ov.val_i64));
            }
        }
        if (key.find("epsilon") != std::string::npos && ov.tag == LLAMA_KV_OVERRIDE_TYPE_FLOAT && !(ov.val_f64 >= 0)) {
            refuse(ov, "expected a number >= 0 (a normalization epsilon; ggml asserts eps >= 0) but received " + FormatDouble(ov.val_f64));
        }
        if (suffix == "rope.scaling.type" && ov.tag == LLAMA_KV_OVERRIDE_TYPE_STR) {
            const std::string v = ov.val_str;
            if (v != "none" && v != "linear" && v != "yarn" && v != "longrope") {
                refuse(ov, "expected none, linear, yarn or longrope (llama.cpp's rope scaling types) but received '" + v + "'");
            }
        }
        if (key == "tokenizer.ggml.model" && ov.tag == LLAMA_KV_OVERRIDE_TYPE_STR) {
            // a vocabulary read as another tokenizer's reaches llama-vocab.cpp's aborts (token_to_byte on a WPM vocabulary)
            const int64_t k = gguf_find_key(g, ov.key);
            const std::string own = k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_STRING ? gguf_get_val_str(g, k) : "";
            const std::string v = ov.val_str;
            if (v != own && v != "no_vocab" && v != "none") {
                refuse(ov, "expected '" + own + "' (the tokenizer the file's vocabulary was built for) or 'no_vocab' but received '" + v + "'");
            }
        }
        if (suffix == "expert_gating_func" && ov.tag == LLAMA_KV_OVERRIDE_TYPE_INT && (ov.val_i64 < 1 || ov.val_i64 > 4)) {
            refuse(ov, "expected 1 (softmax), 2 (sigmoid), 3 (softmax over the chosen experts) or 4 (sqrt-softplus) but received " + std::to_string(ov.val_i64));
        }
    }
    if (arch.empty()) return;  // llama.cpp refuses the file itself

    // (b) the values llama.cpp asserts on, with the overrides applied (llama-model.cpp load_hparams)
    struct Int {
        bool present = false;
        int64_t value = 0;  // an array's largest element
        const llama_model_kv_override * ov = nullptr;
    };
    auto get = [&](const std::string & suffix) {
        const std::string key = arch + "." + suffix;
        Int r;
        const llama_model_kv_override * ov = Find(key);
        if (ov != nullptr && ov->tag == LLAMA_KV_OVERRIDE_TYPE_INT) {
            r.present = true;
            r.value = ov->val_i64;
            r.ov = ov;
            return r;
        }
        const int64_t k = gguf_find_key(g, key.c_str());
        if (k < 0) return r;
        const gguf_type t = gguf_get_kv_type(g, k);
        if (IsIntType(t)) {
            r.present = true;
            r.value = IntAt(g, k, t, nullptr, 0);
        } else if (t == GGUF_TYPE_ARRAY && IsIntType(gguf_get_arr_type(g, k)) && gguf_get_arr_n(g, k) > 0) {
            r.present = true;
            r.value = INT64_MIN;
            for (size_t i = 0; i < gguf_get_arr_n(g, k); ++i) {
                r.value = std::max(r.value, IntAt(g, k, gguf_get_arr_type(g, k), gguf_get_arr_data(g, k), i));
            }
        }
        return r;
    };
    // `subject` must lie in [lo, hi] (`why` says where the bounds come from); when it is the file's value and
    // `bound` is overridden, the override of `bound` is refused with `bound_expected`
    auto require = [&](const std::string & suffix, const Int & v, int64_t lo, int64_t hi, const std::string & why, const Int * bound,
                       const std::string & bound_expected) {
        if (!v.present || (v.value >= lo && v.value <= hi)) return;
        const std::string expectation = (lo == hi ? "expected " + std::to_string(lo) : "expected an integer in " + Range(lo, hi)) +
                                        (why.empty() ? "" : " (" + why + ")");
        if (v.ov != nullptr) refuse(*v.ov, expectation + " but received " + std::to_string(v.value));
        if (bound != nullptr && bound->ov != nullptr) refuse(*bound->ov, bound_expected + " but received " + std::to_string(bound->value));
        throw NativeError("ERR_GGUF", arch + "." + suffix + " = " + std::to_string(v.value) + " in the file: " + expectation);
    };

    const Int layers = get("block_count");
    require("block_count", layers, 1, kMaxLayers, "llama.cpp's limit is " + std::to_string(kMaxLayers) + " layers", nullptr, "");
    const Int nextn = get("nextn_predict_layers");
    require("nextn_predict_layers", nextn, 0, layers.value, "the model has " + std::to_string(layers.value) + " layers", &layers,
            "expected an integer in " + Range(nextn.value, kMaxLayers) + " (the model has " + std::to_string(nextn.value) + " next-token prediction layers)");

    const Int experts = get("expert_count");
    require("expert_count", experts, 0, kMaxExperts, "llama.cpp's limit is " + std::to_string(kMaxExperts) + " experts", nullptr, "");
    const int64_t n_expert = experts.present ? experts.value : 0;
    const Int used = get("expert_used_count");
    if (n_expert > 0) {
        require("expert_used_count", used, 1, n_expert, "the model has " + std::to_string(n_expert) + " experts", &experts,
                "expected an integer in " + Range(std::max<int64_t>(used.value, 1), kMaxExperts) + " (the model uses " + std::to_string(used.value) +
                    " experts per token)");
    } else {
        require("expert_used_count", used, 0, 0, "the model has no experts", &experts,
                "expected an integer in " + Range(std::max<int64_t>(used.value, 1), kMaxExperts) + " (the model uses " + std::to_string(used.value) +
                    " experts per token)");
    }
    const Int groups = get("expert_group_count");
    const int64_t n_groups = groups.present ? groups.value : 0;
    if (n_expert > 0) {
        require("expert_group_count", groups, 0, n_expert - 1, "fewer groups than the model's " + std::to_string(n_expert) + " experts", &experts,
                "expected an integer in " + Range(n_groups + 1, kMaxExperts) + " (the model has " + std::to_string(n_groups) + " expert groups)");
        if (n_groups > 1 && n_expert % n_groups != 0) {
            const std::string why = "a divisor of the expert count";
            if (groups.ov != nullptr) {
                refuse(*groups.ov, "expected " + why + " (the model has " + std::to_string(n_expert) + " experts) but received " + std::to_string(n_groups));
            }
            if (experts.ov != nullptr) {
                refuse(*experts.ov, "expected a multiple of the expert group count (the model has " + std::to_string(n_groups) +
                                        " expert groups) but received " + std::to_string(n_expert));
            }
            throw NativeError("ERR_GGUF", arch + ".expert_group_count = " + std::to_string(n_groups) + " in the file: expected " + why);
        }
        if (n_groups > 1) {
            const Int groups_used = get("expert_group_used_count");
            Int missing = groups_used;
            if (!missing.present) missing.present = true;  // llama.cpp's default is 0, which it refuses
            require("expert_group_used_count", missing, 1, n_groups - 1, "the model has " + std::to_string(n_groups) + " expert groups", &groups,
                    "expected an integer in " + Range(std::max<int64_t>(missing.value + 1, 2), n_expert - 1) + " (the model uses " +
                        std::to_string(missing.value) + " expert groups per token)");
        }
    } else {
        require("expert_group_count", groups, 0, 0, "the model has no experts", &experts,
                "expected an integer in " + Range(std::max<int64_t>(n_groups + 1, 1), kMaxExperts) + " (the model has " + std::to_string(n_groups) +
                    " expert groups)");
    }
    // llama-graph.cpp llm_graph_input_attn_temp: a temperature scale needs a temperature length
    const llama_model_kv_override * temp_scale = Find(prefix + "attention.temperature_scale");
    const Int temp_length = get("attention.temperature_length");
    if (temp_scale != nullptr && temp_scale->tag == LLAMA_KV_OVERRIDE_TYPE_FLOAT && temp_scale->val_f64 != 0 && (!temp_length.present || temp_length.value == 0)) {
        refuse(*temp_scale, "expected 0 unless " + prefix + "attention.temperature_length is set (llama.cpp asserts both are non-zero) but received " +
                                FormatDouble(temp_scale->val_f64));
    }
    if (temp_length.ov != nullptr && temp_length.value == 0) {
        const int64_t k = gguf_find_key(g, (prefix + "attention.temperature_scale").c_str());
        const bool scaled = temp_scale != nullptr ? temp_scale->tag == LLAMA_KV_OVERRIDE_TYPE_FLOAT && temp_scale->val_f64 != 0
                                                  : k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_FLOAT32 && gguf_get_val_f32(g, k) != 0;
        if (scaled) refuse(*temp_length.ov, "expected an integer >= 1 (the model scales attention by temperature; llama.cpp asserts both are non-zero) but received 0");
    }
}

std::unique_ptr<ScopedLogObserver> KvOverrides::Watch() {
    applied_.clear();
    rejected_.clear();
    if (list_.empty()) return nullptr;
    return std::make_unique<ScopedLogObserver>([this](const std::string & line) {
        // llama-model-loader.cpp validate_override:
        //   "validate_override: Using metadata override (%5s) '%s' = <value>"
        //   "validate_override: Warning: Bad metadata override type for key '%s', expected %s but got %s"
        static const std::string kUsing = "validate_override: Using metadata override (";
        static const std::string kBad = "validate_override: Warning: Bad metadata override type for key '";
        if (line.compare(0, kUsing.size(), kUsing) == 0) {
            const size_t open = line.find(") '", kUsing.size());
            const size_t close = line.rfind("' = ");
            if (open != std::string::npos && close != std::string::npos && close > open + 3) applied_.insert(line.substr(open + 3, close - open - 3));
        } else if (line.compare(0, kBad.size(), kBad) == 0) {
            const size_t close = line.rfind("', expected ");
            if (close != std::string::npos && close > kBad.size()) {
                rejected_.emplace_back(line.substr(kBad.size(), close - kBad.size()), line.substr(close + 3));
            }
        }
    });
}

void KvOverrides::CheckApplied(const std::string & arch) const {
    for (const auto & ov : list_) {
        const std::string key = ov.key;
        for (const auto & r : rejected_) {
            if (r.first != key) continue;
            // r.second: "expected int but got str"
            const size_t but = r.second.find(" but got ");
            const std::string want = but == std::string::npos ? r.second : r.second.substr(9, but - 9);
            throw NativeError("ERR_KV_OVERRIDE", "kvOverrides '" + Text(ov) + "': expected type " + want + " (llama.cpp reads " + key + " as " + want +
                                                     " and ignores an override of another type) but received " + TagName(ov.tag));
        }
        if (applied_.count(key) == 0) {
            throw NativeError("ERR_KV_OVERRIDE", "kvOverrides '" + Text(ov) + "': llama.cpp does not read this key for a" +
                                                     (arch.empty() || std::string("aeiou").find(arch[0]) == std::string::npos ? " " : "n ") + arch + " model");
        }
    }
}

}  // namespace moe_eval
