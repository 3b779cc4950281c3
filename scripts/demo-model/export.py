"""GGUF export (arch `llama` with experts, Mixtral layout) with llama.cpp's gguf-py.

Tensor types: 1-D norms and the router (`ffn_gate_inp`) stay f32; every other matrix is f16.
`f16_rounded_state()` returns exactly the values stored in the file (as float32) so that the
training script evaluates the same weights llama.cpp will load.
"""
import os
import sys

import numpy as np
import torch

GGUF_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "vendor", "llama.cpp", "gguf-py")


def _gguf():
    p = os.path.normpath(GGUF_PY)
    if p not in sys.path:
        sys.path.insert(0, p)
    import gguf  # noqa: E402
    return gguf


def gguf_tensors(model):
    """Yield (gguf name, torch tensor (float32), keep_f32)."""
    yield "token_embd.weight", model.tok_embd, False
    for i, l in enumerate(model.layers):
        p = f"blk.{i}."
        yield p + "attn_norm.weight", l.attn_norm, True
        yield p + "attn_q.weight", l.wq, False
        yield p + "attn_k.weight", l.wk, False
        yield p + "attn_v.weight", l.wv, False
        yield p + "attn_output.weight", l.wo, False
        yield p + "ffn_norm.weight", l.ffn_norm, True
        yield p + "ffn_gate_inp.weight", l.router, True
        yield p + "ffn_gate_exps.weight", l.w_gate, False   # (n_expert, n_ff, n_embd)
        yield p + "ffn_up_exps.weight", l.w_up, False       # (n_expert, n_ff, n_embd)
        yield p + "ffn_down_exps.weight", l.w_down, False   # (n_expert, n_embd, n_ff)
    yield "output_norm.weight", model.output_norm, True
    yield "output.weight", model.output, False


@torch.no_grad()
def f16_round_(model):
    """In place: round every tensor that is stored as f16 to f16 precision."""
    for _, t, keep in gguf_tensors(model):
        if not keep:
            t.copy_(t.half().float())


def write_gguf(path, model, tok, name="moe-eval KJV demo MoE", extra_kv=None):
    gguf = _gguf()
    c = model.c
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_license("MIT")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(tok.vocab_size)
    w.add_context_length(512)
    w.add_embedding_length(c.n_embd)
    w.add_feed_forward_length(c.n_ff)
    w.add_block_count(c.n_layer)
    w.add_head_count(c.n_head)
    w.add_head_count_kv(c.n_head_kv)
    w.add_layer_norm_rms_eps(c.rms_eps)
    w.add_rope_dimension_count(c.head_dim)
    w.add_rope_freq_base(c.rope_base)
    w.add_expert_count(c.n_expert)
    w.add_expert_used_count(c.n_expert_used)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tok.tokens)
    w.add_token_types(tok.token_types())
    w.add_token_merges(tok.merges_strings())
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    for k, v in (extra_kv or {}).items():
        w.add_string(k, v)

    for name_, t, keep in gguf_tensors(model):
        a = t.detach().cpu().float().numpy()
        a = np.ascontiguousarray(a.astype(np.float32 if keep else np.float16))
        w.add_tensor(name_, a)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_back(path):
    """Load the GGUF with gguf-py's reader; return {name: (shape, dtype name)} and KV names."""
    gguf = _gguf()
    r = gguf.GGUFReader(path)
    tensors = {t.name: (tuple(int(x) for x in t.shape), t.tensor_type.name, t.data) for t in r.tensors}
    return r, tensors
