#!/usr/bin/python3
"""Dump the Python tokenization of a held-out file (default models/demo/heldout.txt) as a JSON
list of ints, BOS first, to /tmp/demo-heldout-tokens.json, for comparison with llama.cpp, e.g.

    /usr/bin/python3 scripts/demo-model/tokenize_check.py
    llama-tokenize -m models/demo/moe-demo.gguf -f models/demo/heldout.txt --ids --log-disable

The tokenizer (merges, token list) is read back from the GGUF with gguf-py, so this checks the
file as shipped. The text is used as-is (heldout.txt has no trailing newline; llama.cpp's -f
strips one trailing newline, which this script mimics with --strip-one-newline).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export  # noqa: E402
import tokenizer as bpe  # noqa: E402


def tokenizer_from_gguf(path):
    r, _ = export.read_back(path)
    f = r.fields
    def strings(key):
        fld = f[key]
        return [bytes(fld.parts[i]).decode("utf-8") for i in fld.data]
    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    tok = bpe.Tokenizer(merges)
    assert tok.tokens == tokens, "token list in GGUF differs from the one rebuilt from merges"
    return tok


def main():
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(root, "models/demo/moe-demo.gguf"))
    ap.add_argument("--text", default=os.path.join(root, "models/demo/heldout.txt"))
    ap.add_argument("--out", default="/tmp/demo-heldout-tokens.json")
    ap.add_argument("--strip-one-newline", action="store_true")
    a = ap.parse_args()
    tok = tokenizer_from_gguf(a.model)
    with open(a.text, encoding="utf-8", newline="") as fh:
        text = fh.read()
    if a.strip_one_newline and text.endswith("\n"):
        text = text[:-1]
    ids = tok.encode(text, add_bos=True)
    with open(a.out, "w") as fh:
        json.dump(ids, fh)
    print(f"{len(ids)} tokens (BOS first) -> {a.out}")


if __name__ == "__main__":
    main()
