#include "ImatrixFile.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include "ggml.h"
#include "gguf.h"
#include "util/NativeError.h"

namespace moe_eval {

namespace {

constexpr const char * kKeyDatasets = "imatrix.datasets";
constexpr const char * kKeyChunkCount = "imatrix.chunk_count";
constexpr const char * kKeyChunkSize = "imatrix.chunk_size";

struct GgufFree {
    void operator()(gguf_context * c) const { gguf_free(c); }
};
struct GgmlFree {
    void operator()(ggml_context * c) const { ggml_free(c); }
};

bool RemoveSuffix(std::string & s, const std::string & suffix) {
    if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
    s.resize(s.size() - suffix.size());
    return true;
}

ImatrixData ReadLegacy(const std::string & path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw NativeError("ERR_FILE", "cannot open " + path);
    const int64_t file_size = (int64_t) in.tellg();
    in.seekg(0);
    ImatrixData data;
    int32_t n_entries = 0;
    in.read((char *) &n_entries, sizeof(n_entries));
    if (in.fail() || n_entries < 1) throw NativeError("ERR_GGUF", path + " is neither a GGUF imatrix nor a legacy imatrix with data");
    for (int i = 0; i < n_entries; ++i) {
        int32_t len = 0;
        in.read((char *) &len, sizeof(len));
        if (in.fail() || len < 0 || len > 4096) throw NativeError("ERR_GGUF", "bad entry name in legacy imatrix " + path);
        std::string name(len, '\0');
        in.read(name.data(), len);
        name = name.c_str();
        int32_t ncall = 0, nval = 0;
        in.read((char *) &ncall, sizeof(ncall));
        in.read((char *) &nval, sizeof(nval));
        if (in.fail() || nval < 1 || (int64_t) nval * 4 > file_size - (int64_t) in.tellg()) {
            throw NativeError("ERR_GGUF", "failed reading the number of values of entry " + std::to_string(i) + " in " + path);
        }
        ImatrixEntry & e = data.entries[name];
        e.values.resize(nval);
        in.read((char *) e.values.data(), (std::streamsize) nval * sizeof(float));
        if (in.fail()) throw NativeError("ERR_GGUF", "failed reading the data of entry " + std::to_string(i) + " in " + path);
        e.counts.assign(1, ncall);
    }
    if (in.peek() != EOF) {  // optional trailer: chunk count, dataset name
        int32_t n_calls = 0;
        in.read((char *) &n_calls, sizeof(n_calls));
        data.chunk_count = n_calls;
        if (!in.fail()) {
            int32_t len = 0;
            in.read((char *) &len, sizeof(len));
            if (!in.fail() && len > 0 && len < (1 << 20)) {
                std::string dataset(len, '\0');
                in.read(dataset.data(), len);
                if (!in.fail()) data.datasets.push_back(dataset.c_str());
            }
        }
    }
    data.chunk_size = 0;
    data.is_legacy = true;
    return data;
}

}  // namespace

ImatrixData ReadImatrixFile(const std::string & path) {
    {
        std::ifstream probe(path, std::ios::binary);
        if (!probe) throw NativeError("ERR_FILE", "cannot open " + path);
    }
    ggml_context * meta_raw = nullptr;
    gguf_init_params params = {/*no_alloc =*/false, /*ctx =*/&meta_raw};
    std::unique_ptr<gguf_context, GgufFree> g(gguf_init_from_file(path.c_str(), params));
    std::unique_ptr<ggml_context, GgmlFree> meta(meta_raw);
    if (!g) return ReadLegacy(path);

    ImatrixData data;
    if (gguf_get_n_tensors(g.get()) < 1) throw NativeError("ERR_GGUF", "no data in imatrix file " + path);
    const int64_t k_datasets = gguf_find_key(g.get(), kKeyDatasets);
    const int64_t k_count = gguf_find_key(g.get(), kKeyChunkCount);
    const int64_t k_size = gguf_find_key(g.get(), kKeyChunkSize);
    if (k_datasets != -1 && gguf_get_kv_type(g.get(), k_datasets) == GGUF_TYPE_ARRAY && gguf_get_arr_type(g.get(), k_datasets) == GGUF_TYPE_STRING) {
        const size_t n = gguf_get_arr_n(g.get(), k_datasets);
        for (size_t i = 0; i < n; ++i) data.datasets.push_back(gguf_get_arr_str(g.get(), k_datasets, i));
    }
    data.has_metadata = k_datasets != -1 && k_count != -1 && k_size != -1;
    data.chunk_count = k_count != -1 ? (int32_t) gguf_get_val_u32(g.get(), k_count) : 0;
    data.chunk_size = k_size != -1 ? (int32_t) gguf_get_val_u32(g.get(), k_size) : 0;

    std::map<std::string, std::pair<ggml_tensor *, ggml_tensor *>> pairs;
    for (ggml_tensor * cur = ggml_get_first_tensor(meta.get()); cur; cur = ggml_get_next_tensor(meta.get(), cur)) {
        std::string name = cur->name;
        if (name.empty()) continue;
        if (RemoveSuffix(name, ".in_sum2")) pairs[name].first = cur;
        else if (RemoveSuffix(name, ".counts")) pairs[name].second = cur;
    }
    // llama.cpp's loader accepts a GGUF without any (the quantizer then runs without a matrix): refuse it
    if (pairs.empty()) throw NativeError("ERR_GGUF", path + " is a GGUF without importance matrix tensors (<name>.in_sum2, <name>.counts)");
    for (const auto & [name, p] : pairs) {
        if (!p.first || !p.second) throw NativeError("ERR_GGUF", "mismatched sums and counts for " + name + " in " + path);
        if (p.first->type != GGML_TYPE_F32 || p.second->type != GGML_TYPE_F32) throw NativeError("ERR_GGUF", "sums and counts for " + name + " must be F32 in " + path);
        ImatrixEntry & e = data.entries[name];
        const int64_t nval = ggml_nelements(p.first), ncounts = ggml_nelements(p.second);
        if (ncounts < 1 || nval % ncounts != 0) throw NativeError("ERR_GGUF", "the sums of " + name + " are not a whole row per count in " + path);
        e.values.assign((const float *) p.first->data, (const float *) p.first->data + nval);
        e.counts.resize(ncounts);
        for (int64_t j = 0; j < ncounts; ++j) e.counts[j] = std::lround(((const float *) p.second->data)[j]);
    }
    return data;
}

void WriteImatrixGguf(const std::string & path, const ImatrixData & data) {
    size_t data_size = 0;
    for (const auto & [name, e] : data.entries) {
        data_size += GGML_PAD(ggml_tensor_overhead() + sizeof(float) * e.values.size(), GGML_MEM_ALIGN);
        data_size += GGML_PAD(ggml_tensor_overhead() + sizeof(float) * e.counts.size(), GGML_MEM_ALIGN);
    }
    ggml_init_params ip = {/*mem_size =*/data_size, /*mem_buffer =*/nullptr, /*no_alloc =*/false};
    std::unique_ptr<ggml_context, GgmlFree> ctx(ggml_init(ip));
    std::unique_ptr<gguf_context, GgufFree> g(gguf_init_empty());
    if (!ctx || !g) throw NativeError("ERR_NATIVE", "out of memory writing " + path);

    std::vector<const char *> datasets;
    for (const auto & d : data.datasets) datasets.push_back(d.c_str());
    gguf_set_val_str(g.get(), "general.type", "imatrix");
    gguf_set_arr_str(g.get(), kKeyDatasets, datasets.data(), datasets.size());
    gguf_set_val_u32(g.get(), kKeyChunkCount, (uint32_t) data.chunk_count);
    gguf_set_val_u32(g.get(), kKeyChunkSize, (uint32_t) data.chunk_size);

    for (const auto & [name, e] : data.entries) {  // std::map: sorted by name, as llama-imatrix sorts
        const int32_t nval = (int32_t) e.values.size();
        const int32_t nmat = (int32_t) e.counts.size();
        if (nval <= 0 || nmat <= 0) continue;
        ggml_tensor * in_sum2 = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, nval / nmat, nmat);
        ggml_tensor * counts = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, 1, nmat);
        ggml_format_name(in_sum2, "%s.in_sum2", name.c_str());
        ggml_format_name(counts, "%s.counts", name.c_str());
        std::copy(e.values.begin(), e.values.end(), (float *) in_sum2->data);
        for (int32_t j = 0; j < nmat; ++j) ((float *) counts->data)[j] = (float) e.counts[j];
        gguf_add_tensor(g.get(), in_sum2);
        gguf_add_tensor(g.get(), counts);
    }
    const std::string tmp = path + ".tmp";
    if (!gguf_write_to_file(g.get(), tmp.c_str(), false)) {
        std::remove(tmp.c_str());
        throw NativeError("ERR_FILE", "cannot write " + path);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw NativeError("ERR_FILE", "cannot rename " + tmp + " to " + path);
    }
}

void WriteImatrixLegacy(const std::string & path, const ImatrixData & data) {
    if (data.chunk_size <= 0) throw NativeError("ERR_INVALID_ARG", "a legacy imatrix needs the chunk size");
    std::vector<const std::string *> to_store;
    for (const auto & [name, e] : data.entries) {
        const bool any = std::any_of(e.counts.begin(), e.counts.end(), [](int64_t c) { return c != 0; });
        if (!e.counts.empty() && any) to_store.push_back(&name);
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) throw NativeError("ERR_FILE", "cannot write " + tmp);
        const int32_t n_entries = (int32_t) to_store.size();
        out.write((const char *) &n_entries, sizeof(n_entries));
        for (const std::string * name : to_store) {
            const ImatrixEntry & e = data.entries.at(*name);
            const int32_t len = (int32_t) name->size();
            out.write((const char *) &len, sizeof(len));
            out.write(name->c_str(), len);
            const int32_t ncall = (int32_t) ((*std::max_element(e.counts.begin(), e.counts.end()) + (data.chunk_size - 1)) / data.chunk_size);
            out.write((const char *) &ncall, sizeof(ncall));
            const int32_t nval = (int32_t) e.values.size();
            const int32_t nmat = (int32_t) e.counts.size();
            out.write((const char *) &nval, sizeof(nval));
            std::vector<float> v(nval);
            for (int32_t i = 0; i < nval; i++) {
                float count = (float) e.counts[i / (nval / nmat)];
                float value = e.values[i];
                if (count == 0.0f) {
                    value = 1.0f;
                    count = 1.0f;
                }
                v[i] = (value / count) * (float) ncall;
            }
            out.write((const char *) v.data(), (std::streamsize) nval * sizeof(float));
        }
        out.write((const char *) &data.chunk_count, sizeof(data.chunk_count));
        const std::string dataset = data.datasets.empty() ? std::string() : data.datasets.back();
        const int32_t len = (int32_t) dataset.size();
        out.write((const char *) &len, sizeof(len));
        out.write(dataset.data(), len);
        out.flush();
        if (!out) throw NativeError("ERR_FILE", "cannot write " + tmp + " (disk full?)");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw NativeError("ERR_FILE", "cannot rename " + tmp + " to " + path);
    }
}

std::map<std::string, std::vector<float>> ImatrixForQuantize(const ImatrixData & data, const std::string & path) {
    if (!data.is_legacy && !data.has_metadata) throw NativeError("ERR_GGUF", "missing imatrix metadata in file " + path);
    std::map<std::string, std::vector<float>> out;
    for (const auto & [name, entry] : data.entries) {
        std::vector<float> & e = out[name];
        e.resize(entry.values.size());
        if (!data.is_legacy) {
            const int64_t ncounts = (int64_t) entry.counts.size();
            if (ncounts < 1 || (int64_t) entry.values.size() % ncounts != 0) throw NativeError("ERR_GGUF", "bad counts for " + name + " in " + path);
            const int64_t ne0 = (int64_t) entry.values.size() / ncounts;
            for (int64_t j = 0; j < ncounts; ++j) {
                const float count = (float) entry.counts[j];
                for (int64_t i = 0; i < ne0; ++i) e[j * ne0 + i] = count > 0.0f ? entry.values[j * ne0 + i] / count : 1;
            }
        } else {
            const int64_t ncall = entry.counts.empty() ? 0 : entry.counts[0];
            for (size_t i = 0; i < entry.values.size(); ++i) e[i] = ncall > 0 ? entry.values[i] / ncall : entry.values[i];
        }
    }
    return out;
}

}  // namespace moe_eval
