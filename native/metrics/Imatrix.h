// The importance matrix llama-imatrix computes (tools/imatrix/imatrix.cpp, IMatrixCollector), collected
// through llama.cpp's eval callback while an imatrix context decodes (set only on such contexts).
//
// For every matrix multiplication whose weight is a `blk.*` tensor: the sum over tokens of the squared
// input activations per input column, and how many token rows were summed. MUL_MAT_ID (the experts'
// tensors) keeps one row of sums and one count per expert, counting only the tokens routed to it — under
// the context's routing, so a routing with more experts per token gives rarely chosen experts data.
// Sums are float and accumulated in llama-imatrix's order, so the values are the same as its values.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

struct ggml_tensor;

namespace moe_eval {

struct ImatrixEntry {
    std::vector<float> values;    // [n_mat × n_cols]: Σ x² per matrix (expert) and input column
    std::vector<int64_t> counts;  // [n_mat] rows summed (one for dense tensors)
};

class ImatrixCollector {
public:
    // ggml_backend_sched_eval_callback
    static bool Callback(ggml_tensor * t, bool ask, void * user_data);

    // The entries collected since the last call (sorted by tensor name), and an error if collection
    // met non-finite values or inconsistent shapes (llama-imatrix exits there).
    std::map<std::string, ImatrixEntry> Take(std::string & error);

private:
    bool Wanted(const ggml_tensor * t) const;
    void Observe(const ggml_tensor * t);

    std::map<std::string, ImatrixEntry> stats_;
    std::string error_;
    std::vector<char> src1_data_;
    std::vector<char> ids_;
    std::mutex mutex_;
};

}  // namespace moe_eval
