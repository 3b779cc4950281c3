// FILE* owned by a unique_ptr: closed on every path out of a worker.
#pragma once

#include <cstdio>
#include <memory>

namespace moe_eval {

struct FileCloser {
    void operator()(FILE * f) const {
        if (f) fclose(f);
    }
};
using File = std::unique_ptr<FILE, FileCloser>;

}  // namespace moe_eval
