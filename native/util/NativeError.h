// The one exception type native code throws. `code` becomes the JS error's `code` (see src/errors.ts).
#pragma once

#include <stdexcept>
#include <string>

namespace moe_eval {

struct NativeError : std::runtime_error {
    std::string code;
    NativeError(std::string code_, const std::string & message) : std::runtime_error(message), code(std::move(code_)) {}
};

}  // namespace moe_eval
