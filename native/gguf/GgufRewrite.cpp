#include "GgufRewrite.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ggml.h"
#include "gguf.h"
#include "util/File.h"
#include "util/Args.h"
#include "util/NativeError.h"
#include "util/Progress.h"
#include "util/PromiseWorker.h"

namespace moe_eval {

namespace {

struct KvSet {
    std::string key;
    std::string type;  // u32 | i32 | f32 | bool | str | u32[]
    double number = 0;
    bool boolean = false;
    std::string str;
    std::vector<uint32_t> u32s;
};

struct RewriteSpec {
    std::string src;
    std::string dst;
    std::vector<KvSet> kv;
    std::map<std::string, float> scale;  // tensor name → factor
    std::map<std::string, bool> optional;  // tensor name → skip when absent (e.g. a bias)
    int64_t expert_count = 0;              // N of the source (for removeExperts)
    std::map<int, std::vector<int64_t>> remove;  // layer → expert ids removed from every per-expert tensor
};

// Whether `name` is a per-expert tensor of its layer ("blk.L.<base>.<suffix>"), and that layer: the
// routed experts' weights, biases and scales (ffn_*_exps), the router (ffn_gate_inp: one row / bias
// entry per expert) and the selection bias (exp_probs_b). Shared-expert tensors (*_shexp) are not.
bool PerExpertTensor(const std::string & name, int & layer) {
    if (name.rfind("blk.", 0) != 0) return false;
    const size_t dot1 = name.find('.', 4);
    if (dot1 == std::string::npos) return false;
    const size_t dot2 = name.find('.', dot1 + 1);
    const std::string base = name.substr(dot1 + 1, dot2 == std::string::npos ? std::string::npos : dot2 - dot1 - 1);
    const bool exps = base.size() > 5 && base.compare(base.size() - 5, 5, "_exps") == 0;
    if (!exps && base != "ffn_gate_inp" && base.rfind("exp_probs_b", 0) != 0) return false;
    layer = std::atoi(name.c_str() + 4);
    return true;
}

// The dimension along which a per-expert tensor holds its experts: the outermost one, which must be N
// (ggml stores dims innermost first; quantization blocks run along dim 0, so whole slabs of the
// outermost dimension are whole rows / blocks and byte-slicing them is exact).
int ExpertDim(const ggml_tensor * t, int64_t n_expert) {
    int d = GGML_MAX_DIMS - 1;
    while (d > 0 && t->ne[d] == 1) --d;
    return t->ne[d] == n_expert ? d : -1;
}

struct GgufFree {
    void operator()(gguf_context * c) const { gguf_free(c); }
};
struct GgmlFree {
    void operator()(ggml_context * c) const { ggml_free(c); }
};

int Seek(FILE * f, size_t offset) {
#ifdef _WIN32
    return _fseeki64(f, (__int64) offset, SEEK_SET);
#else
    return fseeko(f, (off_t) offset, SEEK_SET);
#endif
}

void ScaleTensorData(const ggml_tensor * t, std::vector<uint8_t> & data, float factor) {
    const int64_t n = ggml_nelements(t);
    if (t->type == GGML_TYPE_F32) {
        auto * f = reinterpret_cast<float *>(data.data());
        for (int64_t i = 0; i < n; ++i) f[i] *= factor;
        return;
    }
    if (t->type == GGML_TYPE_F16) {
        auto * h = reinterpret_cast<ggml_fp16_t *>(data.data());
        for (int64_t i = 0; i < n; ++i) h[i] = ggml_fp32_to_fp16(ggml_fp16_to_fp32(h[i]) * factor);
        return;
    }
    if (ggml_quantize_requires_imatrix(t->type)) {
        throw NativeError("ERR_GGUF", std::string("cannot rescale ") + t->name + ": its type " + ggml_type_name(t->type) +
                                          " needs an importance matrix to requantize; export from an F16/F32/Q8_0/k-quant file instead");
    }
    const auto * traits = ggml_get_type_traits(t->type);
    if (traits->to_float == nullptr) {
        throw NativeError("ERR_GGUF", std::string("cannot rescale ") + t->name + " of type " + ggml_type_name(t->type));
    }
    std::vector<float> f(n);
    traits->to_float(data.data(), f.data(), n);
    for (auto & x : f) x *= factor;
    const int64_t n_per_row = t->ne[0];
    const int64_t nrows = n / n_per_row;
    ggml_quantize_init(t->type);
    const size_t written = ggml_quantize_chunk(t->type, f.data(), data.data(), 0, nrows, n_per_row, nullptr);
    if (written != data.size()) throw NativeError("ERR_GGUF", std::string("requantizing ") + t->name + " changed its size");
}

class RewriteWorker final : public PromiseWorker {
public:
    RewriteWorker(Napi::Env env, RewriteSpec spec, Napi::Value progress)
        : PromiseWorker(env, "moe-eval:rewrite-gguf"), spec_(std::move(spec)), progress_(env, progress) {}

protected:
    void Run() override {
        ggml_context * meta_raw = nullptr;
        gguf_init_params params = {/*no_alloc =*/true, /*ctx =*/&meta_raw};
        std::unique_ptr<gguf_context, GgufFree> src(gguf_init_from_file(spec_.src.c_str(), params));
        if (!src) throw NativeError("ERR_GGUF", "cannot read GGUF file " + spec_.src);
        std::unique_ptr<ggml_context, GgmlFree> meta(meta_raw);

        std::unique_ptr<gguf_context, GgufFree> dst(gguf_init_empty());
        gguf_set_kv(dst.get(), src.get());
        for (const KvSet & kv : spec_.kv) SetKv(dst.get(), kv);

        const int64_t n_tensors = gguf_get_n_tensors(src.get());
        // per-expert tensors of layers with removed experts: the same tensor with N' = N - removed experts
        ggml_init_params sliced_params = {/*mem_size =*/ (size_t) (n_tensors + 1) * ggml_tensor_overhead(), /*mem_buffer =*/ nullptr, /*no_alloc =*/ true};
        std::unique_ptr<ggml_context, GgmlFree> sliced_ctx(ggml_init(sliced_params));
        std::map<std::string, std::pair<ggml_tensor *, int>> sliced;  // name → (new tensor, expert dim)
        for (int64_t i = 0; i < n_tensors; ++i) {
            const ggml_tensor * t = ggml_get_tensor(meta.get(), gguf_get_tensor_name(src.get(), i));
            int layer = -1;
            auto rm = spec_.remove.end();
            if (!spec_.remove.empty() && PerExpertTensor(t->name, layer)) rm = spec_.remove.find(layer);
            if (rm != spec_.remove.end() && !rm->second.empty()) {
                const int d = ExpertDim(t, spec_.expert_count);
                if (d < 0) {
                    throw NativeError("ERR_GGUF", std::string("cannot remove experts from ") + t->name + ": its outermost dimension is not the " +
                                                      std::to_string(spec_.expert_count) + " experts");
                }
                int64_t ne[GGML_MAX_DIMS];
                for (int j = 0; j < GGML_MAX_DIMS; ++j) ne[j] = t->ne[j];
                ne[d] -= (int64_t) rm->second.size();
                ggml_tensor * n = ggml_new_tensor(sliced_ctx.get(), t->type, ggml_n_dims(t), ne);
                ggml_set_name(n, t->name);
                sliced[t->name] = {n, d};
                gguf_add_tensor(dst.get(), n);
            } else {
                gguf_add_tensor(dst.get(), t);
            }
        }
        for (const auto & [name, factor] : spec_.scale) {
            if (gguf_find_tensor(src.get(), name.c_str()) < 0 && !spec_.optional[name]) throw NativeError("ERR_GGUF", "tensor " + name + " is not in " + spec_.src);
        }

        File in(fopen(spec_.src.c_str(), "rb"));
        if (!in) throw NativeError("ERR_FILE", "cannot open " + spec_.src);
        const std::string tmp = spec_.dst + ".tmp";
        File out(fopen(tmp.c_str(), "wb"));
        if (!out) throw NativeError("ERR_FILE", "cannot write " + tmp);

        std::vector<uint8_t> meta_bytes(gguf_get_meta_size(dst.get()));
        gguf_get_meta_data(dst.get(), meta_bytes.data());
        Write(out.get(), meta_bytes.data(), meta_bytes.size());

        const size_t src_data = gguf_get_data_offset(src.get());
        const size_t align = gguf_get_alignment(dst.get());
        std::vector<uint8_t> buf;
        size_t written = 0;
        for (int64_t i = 0; i < n_tensors; ++i) {
            const char * name = gguf_get_tensor_name(src.get(), i);
            const ggml_tensor * t = ggml_get_tensor(meta.get(), name);
            const size_t size = ggml_nbytes(t);
            buf.resize(size);
            if (Seek(in.get(), src_data + gguf_get_tensor_offset(src.get(), i)) != 0 ||
                fread(buf.data(), 1, size, in.get()) != size) {
                throw NativeError("ERR_GGUF", std::string("tensor ") + name + " extends past the end of " + spec_.src);
            }
            const ggml_tensor * written_t = t;
            size_t out_size = size;
            auto sl = sliced.find(name);
            if (sl != sliced.end()) {  // keep the slabs of the experts that stay, in order
                const int d = sl->second.second;
                const size_t slab = size / (size_t) t->ne[d];
                const auto & removed = spec_.remove.at(std::atoi(name + 4));
                size_t at = 0;
                for (int64_t e = 0; e < t->ne[d]; ++e) {
                    if (std::find(removed.begin(), removed.end(), e) != removed.end()) continue;
                    if (at != (size_t) e * slab) std::memmove(buf.data() + at, buf.data() + (size_t) e * slab, slab);
                    at += slab;
                }
                written_t = sl->second.first;
                out_size = ggml_nbytes(written_t);
                if (out_size != at) throw NativeError("ERR_GGUF", std::string("slicing ") + name + " gave an unexpected size");
                buf.resize(out_size);
            }
            auto it = spec_.scale.find(name);
            if (it != spec_.scale.end() && it->second != 1.0f) ScaleTensorData(written_t, buf, it->second);
            Write(out.get(), buf.data(), out_size);
            written += out_size;
            const size_t pad = GGML_PAD(written, align) - written;
            if (pad) {
                static const uint8_t zeros[64] = {0};
                Write(out.get(), zeros, pad);
                written += pad;
            }
            progress_.Send<double>((double) (i + 1) / n_tensors, [](Napi::Env env, const double & p) { return Napi::Number::New(env, p); });
        }
        if (fclose(out.release()) != 0) throw NativeError("ERR_FILE", "cannot finish writing " + tmp);
        if (std::rename(tmp.c_str(), spec_.dst.c_str()) != 0) throw NativeError("ERR_FILE", "cannot rename " + tmp + " to " + spec_.dst);
    }

    void OnSettled() override { progress_.Release(); }

private:
    static void Write(FILE * f, const void * data, size_t n) {
        if (fwrite(data, 1, n, f) != n) throw NativeError("ERR_FILE", "write failed (disk full?)");
    }

    static void SetKv(gguf_context * ctx, const KvSet & kv) {
        const char * k = kv.key.c_str();
        if (kv.type == "u32") gguf_set_val_u32(ctx, k, (uint32_t) kv.number);
        else if (kv.type == "i32") gguf_set_val_i32(ctx, k, (int32_t) kv.number);
        else if (kv.type == "f32") gguf_set_val_f32(ctx, k, (float) kv.number);
        else if (kv.type == "bool") gguf_set_val_bool(ctx, k, kv.boolean);
        else if (kv.type == "str") gguf_set_val_str(ctx, k, kv.str.c_str());
        else if (kv.type == "u32[]") gguf_set_arr_data(ctx, k, GGUF_TYPE_UINT32, kv.u32s.data(), kv.u32s.size());
        else throw NativeError("ERR_INVALID_ARG", "unsupported key-value type " + kv.type);
    }

    RewriteSpec spec_;
    Progress progress_;
};

// rewriteGguf(src, dst, { kv: [{ key, type, value }], scale: [{ name, factor }] }, onProgress?)
Napi::Value RewriteGguf(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    RewriteSpec s;
    s.src = RequireString(info, 0, "rewriteGguf(src)");
    s.dst = RequireString(info, 1, "rewriteGguf(src, dst)");
    Napi::Object o = RequireObject(info, 2, "rewriteGguf(src, dst, spec)");
    if (!o.Get("kv").IsUndefined()) {
        Napi::Array arr = RequireArray(env, o.Get("kv"), "rewriteGguf spec.kv");
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            const std::string at = "rewriteGguf spec.kv[" + std::to_string(i) + "]";
            Napi::Object e = RequireObject(env, arr.Get(i), at);
            KvSet kv;
            kv.key = StringOption(env, e, "key", at);
            kv.type = StringOption(env, e, "type", at);
            Napi::Value v = e.Get("value");
            if (v.IsNumber()) kv.number = v.As<Napi::Number>().DoubleValue();
            else if (v.IsBoolean()) kv.boolean = v.As<Napi::Boolean>().Value();
            else if (v.IsString()) kv.str = v.As<Napi::String>().Utf8Value();
            else if (v.IsArray()) {
                Napi::Array a = v.As<Napi::Array>();
                for (uint32_t j = 0; j < a.Length(); ++j) {
                    if (!a.Get(j).IsNumber()) ThrowInvalidArg(env, at + ".value: expected numbers");
                    kv.u32s.push_back(a.Get(j).As<Napi::Number>().Uint32Value());
                }
            } else {
                ThrowInvalidArg(env, at + ".value: expected a number, boolean, string or array of numbers");
            }
            s.kv.push_back(std::move(kv));
        }
    }
    if (!o.Get("scale").IsUndefined()) {
        Napi::Array arr = RequireArray(env, o.Get("scale"), "rewriteGguf spec.scale");
        for (uint32_t i = 0; i < arr.Length(); ++i) {
            const std::string at = "rewriteGguf spec.scale[" + std::to_string(i) + "]";
            Napi::Object e = RequireObject(env, arr.Get(i), at);
            const std::string name = StringOption(env, e, "name", at);
            s.scale[name] = (float) RequireNumber(env, e, "factor", at);
            s.optional[name] = BoolOption(e, "optional", false);
        }
    }
    if (!o.Get("removeExperts").IsUndefined()) {
        const std::string at = "rewriteGguf spec.removeExperts";
        Napi::Object r = RequireObject(env, o.Get("removeExperts"), at);
        s.expert_count = IntegerOption(env, r, "expertCount", 0, 1, INT32_MAX, at);
        Napi::Array layers = RequireArray(env, r.Get("layers"), at + ".layers");
        for (uint32_t i = 0; i < layers.Length(); ++i) {
            const std::string li = at + ".layers[" + std::to_string(i) + "]";
            Napi::Object l = RequireObject(env, layers.Get(i), li);
            const int layer = (int) IntegerOption(env, l, "layer", -1, 0, INT32_MAX, li);
            Napi::Array ids = RequireArray(env, l.Get("ids"), li + ".ids");
            auto & out = s.remove[layer];
            for (uint32_t j = 0; j < ids.Length(); ++j) {
                Napi::Value v = ids.Get(j);
                const int64_t id = v.IsNumber() ? v.As<Napi::Number>().Int64Value() : -1;
                if (id < 0 || id >= s.expert_count || std::find(out.begin(), out.end(), id) != out.end()) {
                    ThrowInvalidArg(env, li + ".ids: expected distinct expert ids in [0, " + std::to_string(s.expert_count - 1) + "]", JsErrorKind::RangeError);
                }
                out.push_back(id);
            }
        }
    }
    return PromiseWorker::Start(new RewriteWorker(env, std::move(s), info.Length() > 3 ? info[3] : env.Undefined()));
}

}  // namespace

void InitGgufRewrite(Napi::Env env, Napi::Object exports) {
    exports.Set("rewriteGguf", Napi::Function::New(env, RewriteGguf, "rewriteGguf"));
}

}  // namespace moe_eval
