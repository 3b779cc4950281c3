// A llama_batch that frees itself (llama_batch_init / llama_batch_free).
#pragma once

#include <memory>

#include "llama.h"

namespace moe_eval {

struct BatchDeleter {
    void operator()(llama_batch * b) const {
        llama_batch_free(*b);
        delete b;
    }
};
using BatchPtr = std::unique_ptr<llama_batch, BatchDeleter>;


}  // namespace moe_eval
