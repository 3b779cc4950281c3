// Importance matrix files, as llama.cpp reads and writes them: the GGUF format of llama-imatrix
// (tensors `<name>.in_sum2` [n_cols, n_mat] and `<name>.counts` [1, n_mat], F32; keys general.type =
// imatrix, imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size) and the legacy .dat format
// (per entry: mean squared activation × ncall and ncall; then the chunk count and the dataset name).
// Reading mirrors common/imatrix-loader.cpp; writing mirrors IMatrixCollector::save_imatrix{,_legacy}.
// Errors are NativeError (worker threads only).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "Imatrix.h"

namespace moe_eval {

struct ImatrixData {
    std::map<std::string, ImatrixEntry> entries;  // GGUF: raw sums and counts; legacy: mean × ncall and {ncall}
    std::vector<std::string> datasets;
    int32_t chunk_count = 0;
    int32_t chunk_size = 0;    // 0 in legacy files
    bool is_legacy = false;
    bool has_metadata = false;
};

ImatrixData ReadImatrixFile(const std::string & path);

// GGUF (llama-imatrix's default output). Every entry is written, partial ones too.
void WriteImatrixGguf(const std::string & path, const ImatrixData & data);

// Legacy .dat: entries without any data are skipped; experts without data are stored as 1.
void WriteImatrixLegacy(const std::string & path, const ImatrixData & data);

// What llama-quantize passes to llama_model_quantize: per tensor, the mean squared activation per
// column (per expert), 1 where an expert has no data (tools/quantize/quantize.cpp load_imatrix).
std::map<std::string, std::vector<float>> ImatrixForQuantize(const ImatrixData & data, const std::string & path);

}  // namespace moe_eval
