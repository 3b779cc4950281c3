#include "Imatrix.h"

#include <cmath>
#include <cstring>

#include "ggml-backend.h"
#include "ggml.h"

namespace moe_eval {

namespace {

// CUDA0#blk.0.attn_k.weight#0 → blk.0.attn_k.weight (imatrix.cpp filter_tensor_name)
std::string FilterTensorName(const char * name) {
    const char * p = std::strchr(name, '#');
    if (p == nullptr) return name;
    p = p + 1;
    const char * q = std::strchr(p, '#');
    return q != nullptr ? std::string(p, q - p) : std::string(p);
}

bool AllFinite(const float * v, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) return false;
    }
    return true;
}

}  // namespace

bool ImatrixCollector::Callback(ggml_tensor * t, bool ask, void * user_data) {
    auto * self = static_cast<ImatrixCollector *>(user_data);
    if (ask) return self->Wanted(t);
    self->Observe(t);
    return true;
}

// llama-imatrix's choice (without --process-output): every MUL_MAT_ID; MUL_MAT of a blk.* weight with
// at least 16 F32 input rows.
bool ImatrixCollector::Wanted(const ggml_tensor * t) const {
    if (t->op == GGML_OP_MUL_MAT_ID) return true;
    if (t->op != GGML_OP_MUL_MAT) return false;
    const ggml_tensor * src1 = t->src[1];
    if (src1->ne[1] < 16 || src1->type != GGML_TYPE_F32) return false;
    return FilterTensorName(t->src[0]->name).rfind("blk.", 0) == 0;
}

void ImatrixCollector::Observe(const ggml_tensor * t) {
    const ggml_tensor * src0 = t->src[0];
    const ggml_tensor * src1 = t->src[1];
    const std::string wname = FilterTensorName(src0->name);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_.empty()) return;

    const bool is_host = ggml_backend_buffer_is_host(src1->buffer);
    if (!is_host) {
        src1_data_.resize(ggml_nbytes(src1));
        ggml_backend_tensor_get(src1, src1_data_.data(), 0, ggml_nbytes(src1));
    }
    const char * data = is_host ? (const char *) src1->data : src1_data_.data();
    if (src1->nb[0] != ggml_element_size(src1)) {
        error_ = "non-contiguous activations for " + wname;
        return;
    }

    if (t->op == GGML_OP_MUL_MAT_ID) {
        // ids → [n_expert_used, n_tokens]; src1 → [cols, n_expert_used, n_tokens]
        const ggml_tensor * ids = t->src[2];
        const int64_t n_as = src0->ne[2];
        const int64_t n_ids = ids->ne[0];
        if (ids->ne[1] != src1->ne[2] || ggml_nrows(src1) != src1->ne[1] * src1->ne[2]) {
            error_ = "unexpected activation shape for " + wname;
            return;
        }
        ids_.resize(ggml_nbytes(ids));
        ggml_backend_tensor_get(ids, ids_.data(), 0, ggml_nbytes(ids));

        ImatrixEntry & e = stats_[wname];
        if (e.values.empty()) {
            e.values.resize(src1->ne[0] * n_as, 0);
            e.counts.resize(n_as, 0);
        } else if (e.values.size() != (size_t) (src1->ne[0] * n_as) || e.counts.size() != (size_t) n_as) {
            error_ = "inconsistent size for " + wname;
            return;
        }
        const int64_t ne0 = src1->ne[0];
        const int64_t n_tokens = src1->ne[2];
        std::vector<uint8_t> touched(n_as, 0);
        for (int64_t idx = 0; idx < n_ids; ++idx) {
            for (int64_t row = 0; row < n_tokens; ++row) {
                const int32_t ex = *(const int32_t *) (ids_.data() + row * ids->nb[1] + idx * ids->nb[0]);
                if (ex < 0 || ex >= n_as) {
                    error_ = "expert id out of range in " + wname;
                    return;
                }
                const int64_t i11 = idx % src1->ne[1];
                const float * x = (const float *) (data + i11 * src1->nb[1] + row * src1->nb[2]);
                float * acc = e.values.data() + ex * ne0;
                e.counts[ex]++;
                touched[ex] = 1;
                for (int64_t j = 0; j < ne0; ++j) acc[j] += x[j] * x[j];
            }
        }
        for (int64_t ex = 0; ex < n_as; ++ex) {
            if (touched[ex] && !AllFinite(e.values.data() + ex * ne0, ne0)) {
                error_ = "non-finite values detected in " + wname;
                return;
            }
        }
        return;
    }

    ImatrixEntry & e = stats_[wname];
    const int64_t n_mat = src0->ne[2] * src0->ne[3];
    if (e.values.empty()) {
        e.values.resize(src1->ne[0] * n_mat, 0);
        e.counts.resize(1, 0);
    } else if (e.values.size() != (size_t) (src1->ne[0] * n_mat)) {
        error_ = "inconsistent size for " + wname;
        return;
    }
    const int64_t ne0 = src1->ne[0];
    for (int64_t i3 = 0; i3 < src1->ne[3]; ++i3) {
        for (int64_t i2 = 0; i2 < src1->ne[2]; ++i2) {
            // 3D+ activations flattened onto a 2D weight
            const int64_t mat_id = (i3 % src0->ne[3]) * src0->ne[2] + (i2 % src0->ne[2]);
            float * acc = e.values.data() + mat_id * ne0;
            for (int64_t row = 0; row < src1->ne[1]; ++row) {
                const float * x = (const float *) (data + row * src1->nb[1] + i2 * src1->nb[2] + i3 * src1->nb[3]);
                for (int64_t j = 0; j < ne0; ++j) acc[j] += x[j] * x[j];
            }
        }
    }
    if (!AllFinite(e.values.data(), e.values.size())) {
        error_ = "non-finite values detected in " + wname;
        return;
    }
    for (auto & c : e.counts) c += ggml_nrows(src1) / n_mat;
}

std::map<std::string, ImatrixEntry> ImatrixCollector::Take(std::string & error) {
    std::lock_guard<std::mutex> lock(mutex_);
    error = std::move(error_);
    error_.clear();
    std::map<std::string, ImatrixEntry> out;
    out.swap(stats_);
    return out;
}

}  // namespace moe_eval
