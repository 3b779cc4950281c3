#!/usr/bin/python3
"""Train the small demo Mixture-of-Experts model shipped in models/demo/, fully offline.

Usage (use the wrapper, which sets up OpenBLAS and malloc tuning first):

    scripts/train-demo-model.sh --minutes 25 --out models/demo
    # = /usr/bin/python3 scripts/train-demo-model.py --minutes 25 --out models/demo

Requirements: Debian's python3-torch (1.13), python3-numpy, python3-regex, bible-kjv and
bible-kjv-text; llama.cpp's gguf-py from vendor/llama.cpp/gguf-py (not modified).

Pipeline
 1. Text: the King James Bible from Debian's bible-kjv-text (public domain), split by chapter;
    every 16th chapter is held out (scripts/demo-model/data.py). models/demo/heldout.txt is the
    held-out text, written WITHOUT a trailing newline (llama.cpp's `-f` strips one, so every
    reader sees the same text).
 2. Tokenizer: byte-level BPE, 4096 ids, trained on the training split only
    (scripts/demo-model/tokenizer.py); llama.cpp `gpt2` model + `gpt-2` pre-tokenizer.
 3. Model: llama arch with experts (Mixtral layout), 4 layers, d 256, 4 heads / 2 KV heads,
    8 SwiGLU experts of width 256, top-2 softmax router with renormalised weights
    (scripts/demo-model/model.py).
 4. Training: sequences of 256 tokens = BOS + 255... text tokens (random windows of the
    training token stream, BOS at position 0 as llama-perplexity does), 16 sequences
    (4096 tokens) per step, AdamW (betas 0.9/0.95, wd 0.1 on matrices), peak lr 2e-3, linear
    warmup over the first 50 steps, cosine decay to 10% tied to wall time (progress = elapsed
    training seconds / budget; with --steps N it is tied to the step count instead), gradient
    clipping 1.0, Switch-style load-balancing loss weight 0.01 (mean over layers).
 5. Export: f16 GGUF, router and norms f32 (scripts/demo-model/export.py).
 6. Evaluation with the f16-rounded weights in float32, using llama-perplexity's method:
    BOS + tokens(heldout.txt), floor(n/n_ctx) chunks, first token of each chunk replaced by
    BOS, score positions j in [n_ctx/2, n_ctx-1) predicting token j+1, ppl = exp(mean NLL).
    Also with top-1 routing, at n_ctx 512, and a unigram baseline (add-one smoothed unigram
    counts of the training tokens) on the same scored tokens.

Seeds: Python `random`, numpy and torch are seeded with --seed (default 1234); data windows
come from a seeded torch.Generator. Because the schedule is tied to wall time, the number of
steps depends on machine speed; train-log.json records it and `--steps N` replays a run with a
step-tied schedule (same seeds; BLAS threading may still cause tiny float differences).
"""
import argparse
import hashlib
import json
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "demo-model"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import data  # noqa: E402
import export  # noqa: E402
import tokenizer as bpe  # noqa: E402
from model import Config, MoEModel, cross_entropy, load_balance_loss  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=25.0, help="training wall-time budget")
    ap.add_argument("--steps", type=int, default=0, help="fixed number of steps (schedule tied to steps)")
    ap.add_argument("--out", default="models/demo")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--aux", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/moe-demo-work", help="scratch dir for the checkpoint")
    ap.add_argument("--from-checkpoint", default="", help="skip training, load this checkpoint")
    ap.add_argument("--llama-bin", default="", help="optional dir with built llama-tokenize and llama-perplexity "
                    "to cross-check tokens and perplexity against llama.cpp (recorded in log and README)")
    return ap.parse_args()


def blas_info():
    a, b = torch.randn(2048, 256), torch.randn(256, 1024)
    for _ in range(3):
        a @ b
    t, r = time.time(), 20
    for _ in range(r):
        a @ b
    gf = 2 * 2048 * 256 * 1024 * r / (time.time() - t) / 1e9
    return round(gf, 1)


@torch.no_grad()
def evaluate(model, toks, n_ctx, k, batch=16, count_experts=False):
    """llama-perplexity method. toks: list of ids with BOS first. Returns (ppl, n_scored, freqs)."""
    n_chunk = len(toks) // n_ctx
    arr = torch.tensor(toks[: n_chunk * n_ctx], dtype=torch.long).view(n_chunk, n_ctx).clone()
    arr[:, 0] = bpe.BOS_ID
    first = n_ctx // 2
    nll_sum, n = 0.0, 0
    E, L = model.c.n_expert, model.c.n_layer
    counts = torch.zeros(L, E, dtype=torch.float64)
    for s in range(0, n_chunk, batch):
        x = arr[s: s + batch]
        B = x.shape[0]
        h, routing = model.hidden(x, k)
        h = h.view(B, n_ctx, -1)[:, first: n_ctx - 1].reshape(-1, h.shape[-1])
        logits = torch.nn.functional.linear(h, model.output).double()
        tgt = x[:, first + 1: n_ctx].reshape(-1)
        nll = cross_entropy(logits, tgt)
        nll_sum += nll.sum().item()
        n += nll.numel()
        if count_experts:
            for li, (_, topi) in enumerate(routing):
                counts[li] += torch.bincount(topi.reshape(-1), minlength=E).double()
    freqs = (counts / counts.sum(1, keepdim=True)).tolist() if count_experts else None
    return math.exp(nll_sum / n), n, n_chunk, freqs


def scored_targets(toks, n_ctx):
    n_chunk = len(toks) // n_ctx
    out = []
    for i in range(n_chunk):
        c = toks[i * n_ctx: (i + 1) * n_ctx]
        out.extend(c[n_ctx // 2 + 1: n_ctx])
    return out


def unigram_ppl(train_ids, targets, V):
    cnt = np.bincount(np.asarray(train_ids), minlength=V).astype(np.float64) + 1.0
    logp = np.log(cnt / cnt.sum())
    return float(np.exp(-logp[np.asarray(targets)].mean()))


def main():
    args = parse_args()
    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)

    gflops = blas_info()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, matmul {gflops} GFLOP/s, "
          f"LD_LIBRARY_PATH={os.environ.get('LD_LIBRARY_PATH', '')}", flush=True)

    # 1. data
    train_text, held_text, data_info = data.split_texts()
    held_text = held_text.rstrip("\n")
    with open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(held_text)

    # 2. tokenizer
    t0 = time.time()
    merges = bpe.train_bpe(train_text, args.vocab)
    tok = bpe.Tokenizer(merges)
    train_ids = tok.encode(train_text)
    held_ids = tok.encode(held_text, add_bos=True)
    assert tok.decode(held_ids) == held_text
    print(f"tokenizer: {tok.vocab_size} ids, {len(merges)} merges, train {len(train_ids)} tokens, "
          f"heldout {len(held_ids)} tokens (with BOS), {time.time() - t0:.1f}s", flush=True)

    cfg = Config(n_vocab=tok.vocab_size, n_ctx_train=args.ctx)
    model = MoEModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)

    hyper = {
        "seed": args.seed, "batch_seqs": args.batch, "ctx": args.ctx, "tokens_per_step": args.batch * args.ctx,
        "optimizer": "AdamW", "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": args.wd,
        "peak_lr": args.lr, "min_lr": args.lr * args.min_lr_frac, "warmup_steps": args.warmup,
        "schedule": "linear warmup, then cosine to min_lr tied to " + ("steps" if args.steps else "wall time"),
        "minutes": args.minutes, "fixed_steps": args.steps or None,
        "aux_loss": "Switch-style N*sum_i f_i*P_i, mean over layers", "aux_weight": args.aux,
        "grad_clip": args.clip, "threads": args.threads,
    }

    ckpt_path = os.path.join(args.work, "checkpoint.pt")
    if args.from_checkpoint:
        ck = torch.load(args.from_checkpoint)
        model.load_state_dict(ck["model"])
        train_log = ck["train_log"]
        print(f"loaded {args.from_checkpoint}", flush=True)
    else:
        train_log = train(model, train_ids, args, hyper)
        torch.save({"model": model.state_dict(), "train_log": train_log, "merges": merges}, ckpt_path)

    # 5. export (f16-round in place first: evaluation uses exactly the stored values)
    export.f16_round_(model)
    model.eval()
    gguf_path = os.path.join(args.out, "moe-demo.gguf")
    export.write_gguf(gguf_path, model, tok)
    verify_gguf(gguf_path, model, tok)
    size = os.path.getsize(gguf_path)
    sha = hashlib.sha256(open(gguf_path, "rb").read()).hexdigest()
    with open(os.path.join(args.out, "checksums"), "w") as f:
        f.write(f"{sha}  moe-demo.gguf\n")
    print(f"wrote {gguf_path}: {size} bytes, sha256 {sha}", flush=True)

    # 6. evaluation
    t0 = time.time()
    ppl2, n_scored, n_chunk, freqs = evaluate(model, held_ids, 256, 2, count_experts=True)
    ppl1, _, _, freqs1 = evaluate(model, held_ids, 256, 1, count_experts=True)
    ppl2_512, n_scored_512, n_chunk_512, _ = evaluate(model, held_ids, 512, 2, batch=8)
    uni = unigram_ppl(train_ids, scored_targets(held_ids, 256), tok.vocab_size)
    uni_512 = unigram_ppl(train_ids, scored_targets(held_ids, 512), tok.vocab_size)
    eval_s = time.time() - t0
    min_freq = min(min(r) for r in freqs)
    top1_rel = ppl1 / ppl2 - 1
    checks = {
        "heldout_ppl_well_below_unigram (ppl < unigram/2)": ppl2 < uni / 2,
        "every_expert_share_ge_2pct": min_freq >= 0.02,
        "top1_ppl_ge_5pct_above_top2": top1_rel >= 0.05,
    }
    print(f"heldout ppl ctx256 top-2 {ppl2:.4f} top-1 {ppl1:.4f} (+{100 * top1_rel:.1f}%), "
          f"ctx512 top-2 {ppl2_512:.4f}, unigram {uni:.2f}; min expert share {100 * min_freq:.2f}% "
          f"({eval_s:.0f}s)", flush=True)
    for k, v in checks.items():
        print(f"  check {k}: {'PASS' if v else 'FAIL'}", flush=True)

    llama_check = None
    if args.llama_bin:
        llama_check = llama_cpp_check(args.llama_bin, gguf_path, os.path.join(args.out, "heldout.txt"), held_ids,
                                      {"ctx256_top2": ppl2, "ctx256_top1": ppl1, "ctx512_top2": ppl2_512})

    log = {
        "model_file": "moe-demo.gguf", "gguf_bytes": size, "sha256": sha,
        "config": cfg.to_dict(), "n_params": n_params,
        "gguf": {"arch": "llama", "context_length": 512, "tokenizer.ggml.model": "gpt2",
                 "tokenizer.ggml.pre": "gpt-2", "bos_token_id": bpe.BOS_ID, "eos_token_id": bpe.EOS_ID,
                 "add_bos_token": True, "types": "f16; norms and ffn_gate_inp f32"},
        "data": {k: v for k, v in data_info.items() if k != "heldout_chapters"},
        "heldout_chapters": data_info["heldout_chapters"],
        "heldout_file": {"name": "heldout.txt", "bytes": len(held_text.encode()), "trailing_newline": False,
                         "tokens_with_bos": len(held_ids)},
        "tokenizer": {"type": "byte-level BPE (GPT-2)", "vocab_size": tok.vocab_size, "merges": len(merges),
                      "train_tokens": len(train_ids)},
        "hyperparameters": hyper,
        "training": {k: v for k, v in train_log.items() if k != "curve"},
        "loss_curve": train_log["curve"],
        "eval": {
            "method": "llama-perplexity: BOS+tokens, floor(n/n_ctx) chunks, chunk[0]=BOS, score j in "
                      "[n_ctx/2, n_ctx-1) predicting j+1; f16-rounded weights evaluated in float32",
            "ctx256": {"chunks": n_chunk, "scored_tokens": n_scored, "ppl_top2": ppl2, "ppl_top1": ppl1,
                       "top1_vs_top2_rel": top1_rel, "unigram_ppl": uni},
            "ctx512": {"chunks": n_chunk_512, "scored_tokens": n_scored_512, "ppl_top2": ppl2_512,
                       "unigram_ppl": uni_512},
            "unigram_method": "add-one smoothed unigram frequencies of the training tokens, on the same scored tokens",
            "expert_share_top2": {
                "definition": "per layer, share of all top-2 selections (sums to 1; uniform = 1/8) over every "
                              "position of the ctx-256 held-out chunks",
                "per_layer": freqs, "min": min_freq,
            },
            "expert_share_top1": {"per_layer": freqs1, "min": min(min(r) for r in freqs1)},
            "seconds": round(eval_s, 1),
        },
        "quality_checks": checks,
        "llama_cpp_check": llama_check,
        "total_wall_seconds": round(time.time() - t_start, 1),
        "matmul_gflops": gflops,
        "torch": torch.__version__,
    }
    with open(os.path.join(args.out, "train-log.json"), "w") as f:
        json.dump(log, f, indent=1)
    write_readme(os.path.join(args.out, "README.md"), log, args)
    print(f"done in {time.time() - t_start:.0f}s", flush=True)
    if not all(checks.values()):
        print("WARNING: quality bar not met", flush=True)
        sys.exit(2)


def train(model, train_ids, args, hyper):
    cfg = model.c
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    stream = torch.tensor(train_ids, dtype=torch.long)
    n_win = len(train_ids) - args.ctx  # window of ctx tokens: BOS + stream[s:s+ctx-1] -> targets stream[s:s+ctx]
    gen = torch.Generator().manual_seed(args.seed)
    offs = torch.arange(args.ctx)
    budget = args.minutes * 60.0
    min_lr = args.lr * args.min_lr_frac
    curve, recent = [], []
    step, tokens = 0, 0
    t_train = time.time()
    bos_col = torch.full((args.batch, 1), bpe.BOS_ID, dtype=torch.long)
    model.train()
    while True:
        elapsed = time.time() - t_train
        if args.steps:
            if step >= args.steps:
                break
            progress = step / args.steps
        else:
            if elapsed >= budget:
                break
            progress = elapsed / budget
        lr = min_lr + (args.lr - min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        lr *= min(1.0, (step + 1) / args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr

        starts = torch.randint(0, n_win, (args.batch,), generator=gen)
        win = stream[starts[:, None] + offs[None, :]]            # (B, ctx)
        x = torch.cat([bos_col, win[:, :-1]], dim=1)             # BOS at position 0
        y = win                                                  # next-token targets
        h, routing = model.hidden(x)
        logits = torch.nn.functional.linear(h, model.output)
        ce = cross_entropy(logits, y.reshape(-1)).mean()
        aux = sum(load_balance_loss(p, ti, cfg.n_expert) for p, ti in routing) / len(routing)
        loss = ce + args.aux * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        tokens += x.numel()
        recent.append(ce.item())
        if step % args.log_every == 0 or step == 1:
            el = time.time() - t_train
            rec = {"step": step, "seconds": round(el, 1), "tokens": tokens, "loss": round(ce.item(), 4),
                   "loss_avg": round(sum(recent[-args.log_every:]) / len(recent[-args.log_every:]), 4),
                   "aux": round(aux.item(), 4), "lr": lr, "grad_norm": round(float(gnorm), 3),
                   "tokens_per_s": round(tokens / el)}
            curve.append(rec)
            print(json.dumps(rec), flush=True)
    wall = time.time() - t_train
    last = recent[-20:]
    return {"steps": step, "tokens_seen": tokens, "wall_seconds": round(wall, 1),
            "tokens_per_second": round(tokens / wall), "epochs": round(tokens / len(train_ids), 2),
            "final_loss_last20_mean": round(sum(last) / len(last), 4), "final_loss": round(recent[-1], 4),
            "log_every": args.log_every, "curve": curve}


def llama_cpp_check(bindir, gguf_path, held_path, held_ids, ours):
    """Run llama.cpp's llama-tokenize and llama-perplexity on the exported file and compare."""
    import ast
    import re
    import subprocess
    gguf_path, held_path = os.path.abspath(gguf_path), os.path.abspath(held_path)
    out = subprocess.run([os.path.join(bindir, "llama-tokenize"), "-m", gguf_path, "-f", held_path, "--ids",
                          "--log-disable"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True,
                         cwd="/tmp").stdout.decode()
    ids = ast.literal_eval(out.strip().splitlines()[-1])
    ver = subprocess.run([os.path.join(bindir, "llama-perplexity"), "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, cwd="/tmp").stdout.decode().strip().splitlines()
    res = {"tokens_identical": ids == held_ids, "n_tokens_llama": len(ids),
           "version": ver[0].replace("version: ", "") if ver else None}
    runs = {"ctx256_top2": ["-c", "256"],
            "ctx256_top1": ["-c", "256", "--override-kv", "llama.expert_used_count=int:1"],
            "ctx512_top2": ["-c", "512"]}
    for name, extra in runs.items():
        o = subprocess.run([os.path.join(bindir, "llama-perplexity"), "-m", gguf_path, "-f", held_path, "-t", "2"]
                           + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/tmp").stdout.decode()
        m = re.search(r"Final estimate: PPL = ([0-9.]+)", o)
        v = float(m.group(1)) if m else None
        res[name] = {"llama_cpp": v, "pytorch": ours[name],
                     "rel_diff": (v / ours[name] - 1) if v else None}
    print("llama.cpp check:", json.dumps(res), flush=True)
    return res


def verify_gguf(path, model, tok):
    r, tensors = export.read_back(path)
    names = {n for n, _, _ in export.gguf_tensors(model)}
    assert set(tensors) == names, set(tensors) ^ names
    for name, t, keep in export.gguf_tensors(model):
        shape, ttype, arr = tensors[name]
        assert ttype == ("F32" if keep else "F16"), (name, ttype)
        a = np.asarray(arr).astype(np.float32).reshape(t.shape)
        assert np.array_equal(a, t.detach().numpy()), name
    kv = {f.name for f in r.fields.values()}
    for k in ("llama.expert_count", "llama.expert_used_count", "llama.context_length", "llama.embedding_length",
              "llama.feed_forward_length", "llama.block_count", "llama.attention.head_count",
              "llama.attention.head_count_kv", "llama.attention.layer_norm_rms_epsilon",
              "llama.rope.dimension_count", "llama.rope.freq_base", "llama.vocab_size",
              "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
              "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
              "tokenizer.ggml.add_bos_token"):
        assert k in kv, k
    print(f"gguf read back OK: {len(tensors)} tensors, {len(kv)} keys", flush=True)


def write_readme(path, log, args):
    c = log["config"]
    tr = log["training"]
    ev = log["eval"]
    e256 = ev["ctx256"]
    hp = log["hyperparameters"]
    freqs = ev["expert_share_top2"]["per_layer"]
    rows = "\n".join(
        f"| {i} | " + " | ".join(f"{100 * v:.1f}" for v in r) + f" | {100 * min(r):.1f} |" for i, r in enumerate(freqs))
    f1 = ev["expert_share_top1"]["per_layer"]
    rows1 = "\n".join(
        f"| {i} | " + " | ".join(f"{100 * v:.1f}" for v in r) + f" | {100 * min(r):.1f} |" for i, r in enumerate(f1))
    curve = log["loss_curve"]
    idx = sorted({0} | {max(0, int(len(curve) * q) - 1) for q in (0.05, 0.1, 0.25, 0.5, 0.75, 1.0)})
    pick = [curve[i] for i in idx]
    curve_rows = "\n".join(f"| {r['step']} | {r['seconds']:.0f} | {r['tokens']} | {r['loss_avg']:.3f} | {r['lr']:.2e} |"
                           for r in pick)
    lc = log.get("llama_cpp_check")
    llama_section = ""
    if lc:
        llama_section = (
            "\n## Cross-check with llama.cpp\n\n"
            f"llama.cpp {lc['version'] or ''}: `llama-tokenize --ids` on `heldout.txt` gives "
            f"{'identical' if lc['tokens_identical'] else 'DIFFERENT'} tokens ({lc['n_tokens_llama']}); "
            "`llama-perplexity -f heldout.txt -t 2`:\n\n| run | llama.cpp | PyTorch | rel. diff |\n|---|---|---|---|\n"
            + "".join(f"| {k} | {v['llama_cpp']} | {v['pytorch']:.4f} | {100 * v['rel_diff']:+.4f}% |\n"
                      for k, v in lc.items() if isinstance(v, dict) and v.get("llama_cpp"))
            + "\n(top-1 via `--override-kv llama.expert_used_count=int:1`.)\n")
    checks = "\n".join(f"- {k}: {'PASS' if v else 'FAIL'}" for k, v in log["quality_checks"].items())
    text = f"""# moe-demo.gguf — a small, really-trained Mixture-of-Experts demo model

A {log['n_params'] / 1e6:.1f} M-parameter Mixtral-style MoE (llama.cpp arch `llama` with experts), trained
from scratch on 2 CPU cores in {tr['wall_seconds'] / 60:.1f} minutes, for studying expert routing with moe-eval.
It is a toy: it models KJV Bible text only and is not useful for anything else.

Produced by `scripts/train-demo-model.sh --minutes {args.minutes:g} --out {args.out}`
(= `/usr/bin/python3 scripts/train-demo-model.py --minutes {args.minutes:g} --out {args.out}` with OpenBLAS and
malloc settings; see the script's header). Checksum in `checksums`, full numbers in `train-log.json`.

## Data

- Source: the King James Version of the Bible from Debian's `bible-kjv-text` package, read with
  `bible -l100000 gen1:1-rev22:21` (Debian `bible-kjv`). Its copyright file states:
  "{data.copyright_statement()}"
- Format: per chapter a heading line (`Genesis 1`), a blank line, one verse per line (`1 In the beginning ...`);
  chapters separated by a blank line. Plain ASCII.
- Split by chapter: {log['data']['heldout_rule']} is held out ({log['data']['n_heldout_chapters']} of
  {log['data']['n_chapters']} chapters; list in `train-log.json`). Training text {log['data']['train_bytes']:,} bytes
  = {log['tokenizer']['train_tokens']:,} tokens; `heldout.txt` {log['heldout_file']['bytes']:,} bytes =
  {log['heldout_file']['tokens_with_bos']:,} tokens including the leading BOS. The held-out text was never
  trained on (nor used to train the tokenizer). `heldout.txt` has no trailing newline, so llama.cpp's `-f`
  (which strips one) and a plain file read give identical tokens.

## Tokenizer

Byte-level BPE with {log['tokenizer']['vocab_size']} ids ({log['tokenizer']['merges']} merges), trained in plain Python on
the training split. Stored as `tokenizer.ggml.model = "gpt2"`, `tokenizer.ggml.pre = "gpt-2"` (GPT-2 regex
pre-tokenizer, bytes-to-unicode mapping), with token types and merges. Id 0 = `<s>` (BOS), id 1 = `</s>`
(EOS), both CONTROL; ids 2..257 are the 256 byte tokens; `add_bos_token = true`.

## Architecture

| | |
|---|---|
| layers | {c['n_layer']} |
| n_embd | {c['n_embd']} |
| heads / KV heads | {c['n_head']} / {c['n_head_kv']} (head dim {c['n_embd'] // c['n_head']}) |
| experts | {c['n_expert']} SwiGLU experts, FFN width {c['n_ff']}, top-{c['n_expert_used']} |
| router | softmax over 8 experts, top-2, selected weights renormalised to sum 1 (Mixtral) |
| norm | RMSNorm, eps {c['rms_eps']} |
| positions | RoPE, base {c['rope_base']:g}, adjacent-pair (ggml NORM) layout, all 64 dims |
| output | separate output matrix, no biases |
| parameters | {log['n_params']:,} |
| GGUF | f16; norms and router `ffn_gate_inp` f32; `llama.context_length` 512 (trained at 256) |

## Training

Sequences of {hp['ctx']} tokens with BOS at position 0 followed by a random window of the training token stream
(as llama-perplexity puts BOS at each chunk's first position), {hp['batch_seqs']} sequences = {hp['tokens_per_step']} tokens per
step. AdamW (betas 0.9/0.95, weight decay {hp['weight_decay']} on matrices), peak lr {hp['peak_lr']:g}, linear warmup over
{hp['warmup_steps']} steps, cosine decay to {hp['min_lr']:g} tied to wall time, gradient clipping {hp['grad_clip']}, load-balancing
loss {hp['aux_weight']} x mean over layers of N·Σ f_i·P_i (Switch). Seed {hp['seed']}. torch {log['torch']} on 2 threads with
Debian's OpenBLAS (matmul {log['matmul_gflops']} GFLOP/s); throughput depends on other load on the machine
(during this run it was shared with a llama.cpp compile job).

| | |
|---|---|
| steps | {tr['steps']} |
| tokens seen | {tr['tokens_seen']:,} ({tr['epochs']} epochs of the training split) |
| training wall time | {tr['wall_seconds']:.0f} s ({tr['tokens_per_second']} tokens/s) |
| final training loss (mean CE of the last 20 steps) | {tr['final_loss_last20_mean']:.3f} (ppl {math.exp(tr['final_loss_last20_mean']):.1f}) |

| step | seconds | tokens | loss (mean of last {tr['log_every']}) | lr |
|---|---|---|---|---|
{curve_rows}

## Evaluation (held-out, computed by the training script)

Method = llama.cpp `llama-perplexity`: tokenize `heldout.txt` with BOS prepended once, split into
floor(n/n_ctx) chunks, replace each chunk's first token by BOS, score positions j in [n_ctx/2, n_ctx-1)
predicting token j+1, ppl = exp(mean NLL). Weights are the f16-rounded values stored in the GGUF,
evaluated in float32 in PyTorch.

| | n_ctx 256 | n_ctx 512 |
|---|---|---|
| chunks / scored tokens | {e256['chunks']} / {e256['scored_tokens']} | {ev['ctx512']['chunks']} / {ev['ctx512']['scored_tokens']} |
| **perplexity, top-2 (as shipped)** | **{e256['ppl_top2']:.4f}** | {ev['ctx512']['ppl_top2']:.4f} |
| perplexity, top-1 (1 expert, weight 1.0) | {e256['ppl_top1']:.4f} (+{100 * e256['top1_vs_top2_rel']:.1f}%) | |
| unigram perplexity (add-one smoothed training-token frequencies) | {e256['unigram_ppl']:.2f} | {ev['ctx512']['unigram_ppl']:.2f} |

n_ctx 512 is beyond the training length (256), so its perplexity shows length extrapolation, not the model's best.

Expert selection frequencies on the held-out ctx-256 chunks (every position), in % of all top-2 selections
per layer (each row sums to 100; uniform = 12.5). Minimum over all layers and experts: **{100 * ev['expert_share_top2']['min']:.2f}%**.

| layer | e0 | e1 | e2 | e3 | e4 | e5 | e6 | e7 | min |
|---|---|---|---|---|---|---|---|---|---|
{rows}

With top-1 routing (% of tokens):

| layer | e0 | e1 | e2 | e3 | e4 | e5 | e6 | e7 | min |
|---|---|---|---|---|---|---|---|---|---|
{rows1}

Quality checks:
{checks}
{llama_section}
## Licence

The training text is public domain (see the statement above). The model weights, tokenizer and these
files are released under the MIT licence, like the rest of moe-eval.
"""
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
