// kvOverrides (llama.cpp's --override-kv) checked so that each one takes effect or is refused with
// ERR_KV_OVERRIDE, and none reaches one of llama.cpp's asserts (which abort the process).
//
// Before loading, Check() compares every override with the GGUF it applies to: its type against the
// key's type in the file, and the values llama.cpp asserts on or divides by (layer and expert counts,
// expert groups, head counts, …) with the overrides applied. While loading, Watch() reads llama.cpp's
// log ("validate_override: Using metadata override …" when it applies one, "Bad metadata override
// type" when it ignores one); after loading, CheckApplied() refuses an override llama.cpp did not apply.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "llama.h"

#include "Log.h"

struct gguf_context;

namespace moe_eval {

class KvOverrides {
public:
    explicit KvOverrides(std::vector<llama_model_kv_override> list) : list_(std::move(list)) {}

    // Throws NativeError ERR_KV_OVERRIDE (or ERR_GGUF when the file's own values would abort llama.cpp).
    void Check(const gguf_context * g);

    // The string llama.cpp reads for `key`: the override's when there is one, else the file's, else "".
    std::string EffectiveString(const gguf_context * g, const std::string & key) const;

    // Records the overrides llama.cpp applies on this thread while the returned observer lives.
    std::unique_ptr<ScopedLogObserver> Watch();

    // Throws ERR_KV_OVERRIDE for an override llama.cpp did not apply (unknown key, rejected type).
    void CheckApplied(const std::string & arch) const;

    // The override as llama.cpp's --override-kv spells it: KEY=TYPE:VALUE.
    static std::string Text(const llama_model_kv_override & ov);

private:
    const llama_model_kv_override * Find(const std::string & key) const;

    std::vector<llama_model_kv_override> list_;
    std::set<std::string> applied_;
    std::vector<std::pair<std::string, std::string>> rejected_;  // key, llama.cpp's "expected X but got Y"
    std::set<std::string> array_keys_;                          // keys that are arrays in the file
};

}  // namespace moe_eval
