"""PyTorch model identical in computation to llama.cpp's `llama` arch with experts (Mixtral layout).

- RMSNorm: x / sqrt(mean(x^2) + eps) * w
- RoPE: ggml's NORM mode (the one llama.cpp uses for arch `llama`): rotates ADJACENT pairs
  (x[2i], x[2i+1]) by angle pos * base^(-2i/head_dim). Because the PyTorch model already uses
  this layout, Q/K weights are exported without any permutation.
- GQA: query head h uses KV head h // (n_head / n_head_kv) (ggml broadcasting).
- MoE FFN: softmax router over all experts, top-k, weights renormalised to sum to 1,
  expert = down(silu(gate(x)) * up(x)).
- Separate output matrix, no biases. Attention scale 1/sqrt(head_dim).
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    n_vocab: int = 4096
    n_embd: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_head_kv: int = 2
    n_expert: int = 8
    n_expert_used: int = 2
    n_ff: int = 256
    rms_eps: float = 1e-5
    rope_base: float = 10000.0
    n_ctx_train: int = 256

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    def to_dict(self):
        return asdict(self)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, head_dim, base, device=None):
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (hd/2,)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()  # (T, hd/2)


def apply_rope(x, cos, sin):
    # x: (B, H, T, hd); adjacent pairs (2i, 2i+1)
    B, H, T, D = x.shape
    xr = x.view(B, H, T, D // 2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    o0 = x0 * cos - x1 * sin
    o1 = x0 * sin + x1 * cos
    return torch.stack((o0, o1), dim=-1).view(B, H, T, D)


class Layer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        D, hd = c.n_embd, c.head_dim
        self.attn_norm = nn.Parameter(torch.ones(D))
        self.wq = nn.Parameter(torch.empty(c.n_head * hd, D))
        self.wk = nn.Parameter(torch.empty(c.n_head_kv * hd, D))
        self.wv = nn.Parameter(torch.empty(c.n_head_kv * hd, D))
        self.wo = nn.Parameter(torch.empty(D, c.n_head * hd))
        self.ffn_norm = nn.Parameter(torch.ones(D))
        self.router = nn.Parameter(torch.empty(c.n_expert, D))
        self.w_gate = nn.Parameter(torch.empty(c.n_expert, c.n_ff, D))
        self.w_up = nn.Parameter(torch.empty(c.n_expert, c.n_ff, D))
        self.w_down = nn.Parameter(torch.empty(c.n_expert, D, c.n_ff))

    def attention(self, x, cos, sin, mask):
        c = self.c
        B, T, D = x.shape
        hd = c.head_dim
        q = F.linear(x, self.wq).view(B, T, c.n_head, hd).transpose(1, 2)
        k = F.linear(x, self.wk).view(B, T, c.n_head_kv, hd).transpose(1, 2)
        v = F.linear(x, self.wv).view(B, T, c.n_head_kv, hd).transpose(1, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        rep = c.n_head // c.n_head_kv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + mask
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, c.n_head * hd)
        return F.linear(o, self.wo)

    def moe(self, x, k):
        """x: (N, D). Returns (out, probs (N,E), topi (N,k))."""
        c = self.c
        logits = F.linear(x, self.router)
        probs = torch.softmax(logits, dim=-1)
        topv, topi = probs.topk(k, dim=-1)
        w = topv / topv.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in range(c.n_expert):
            tok, slot = (topi == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            h = x.index_select(0, tok)
            g = F.linear(h, self.w_gate[e])
            u = F.linear(h, self.w_up[e])
            y = F.linear(F.silu(g) * u, self.w_down[e])
            out.index_add_(0, tok, y * w[tok, slot].unsqueeze(-1))
        return out, probs, topi

    def forward(self, x, cos, sin, mask, k):
        B, T, D = x.shape
        x = x + self.attention(rms_norm(x, self.attn_norm, self.c.rms_eps), cos, sin, mask)
        h = rms_norm(x, self.ffn_norm, self.c.rms_eps).reshape(B * T, D)
        m, probs, topi = self.moe(h, k)
        return x + m.view(B, T, D), probs, topi


class MoEModel(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.tok_embd = nn.Parameter(torch.empty(c.n_vocab, c.n_embd))
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.n_layer)])
        self.output_norm = nn.Parameter(torch.ones(c.n_embd))
        self.output = nn.Parameter(torch.empty(c.n_vocab, c.n_embd))
        self._rope_cache = {}
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        proj_std = std / math.sqrt(2 * self.c.n_layer)
        nn.init.normal_(self.tok_embd, std=std)
        nn.init.normal_(self.output, std=std)
        for l in self.layers:
            for p in (l.wq, l.wk, l.wv, l.w_gate, l.w_up, l.router):
                nn.init.normal_(p, std=std)
            for p in (l.wo, l.w_down):
                nn.init.normal_(p, std=proj_std)

    def _rope(self, T):
        if T not in self._rope_cache:
            self._rope_cache[T] = rope_tables(T, self.c.head_dim, self.c.rope_base)
        return self._rope_cache[T]

    def hidden(self, idx, k=None):
        """idx: (B, T) -> final normed hidden (B*T, D), list of (probs, topi) per layer."""
        k = k or self.c.n_expert_used
        B, T = idx.shape
        cos, sin = self._rope(T)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.tok_embd[idx]
        routing = []
        for l in self.layers:
            x, probs, topi = l(x, cos, sin, mask, k)
            routing.append((probs, topi))
        x = rms_norm(x, self.output_norm, self.c.rms_eps)
        return x.reshape(B * T, -1), routing

    def logits(self, idx, k=None):
        h, routing = self.hidden(idx, k)
        return F.linear(h, self.output), routing


def cross_entropy(logits, targets):
    """Per-token NLL via a hand-written log-sum-exp (torch 1.13's log_softmax is slow on this CPU)."""
    m = logits.max(dim=-1, keepdim=True).values.detach()
    lse = (logits - m).exp().sum(-1).log() + m.squeeze(-1)
    return lse - logits.gather(1, targets.unsqueeze(1)).squeeze(1)


def load_balance_loss(probs, topi, n_expert):
    """Switch-style N * sum_i f_i * P_i with f_i = share of top-k selections going to expert i,
    P_i = mean router probability of expert i. Equals 1.0 when perfectly balanced."""
    k = topi.shape[-1]
    f = torch.zeros(n_expert).index_add_(0, topi.reshape(-1), torch.ones(topi.numel())) / topi.numel()
    P = probs.mean(0)
    return n_expert * (f * P).sum()
