"""Byte-level BPE (GPT-2 style) trained in plain Python, matching llama.cpp's
`gpt2` tokenizer model with the `gpt-2` pre-tokenizer.

- Pre-tokenizer: the GPT-2 regex (llama.cpp LLAMA_VOCAB_PRE_TYPE_GPT2, implemented there by
  unicode_regex_split_custom_gpt2):
      's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
- Each pre-token's UTF-8 bytes are mapped through GPT-2's bytes_to_unicode table; BPE merges
  operate on those characters; the lowest-rank adjacent pair is merged first (leftmost on ties),
  which is what llama.cpp's llm_tokenizer_bpe_session does.
- Vocabulary layout: id 0 = BOS "<s>", id 1 = EOS "</s>" (both CONTROL), ids 2..257 = the 256
  single-byte tokens (in byte order), then one id per merge in rank order.
- Training: count pre-tokens of the training text; repeatedly merge the most frequent pair
  (ties: lexicographically smallest pair of strings). Deterministic.
"""
import heapq
from collections import Counter, defaultdict

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
BOS_TEXT, EOS_TEXT = "<s>", "</s>"
BOS_ID, EOS_ID = 0, 1
N_SPECIAL = 2

_pat = regex.compile(GPT2_PATTERN)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()


def pretokenize(text):
    """Split text into byte-encoded pre-tokens (strings of bytes_to_unicode characters)."""
    return ["".join(BYTE_ENC[b] for b in m.encode("utf-8")) for m in _pat.findall(text)]


def train_bpe(text, vocab_size):
    n_merges = vocab_size - N_SPECIAL - 256
    counts = Counter(pretokenize(text))
    words = [list(w) for w in counts]
    freqs = [counts[w] for w in counts]

    pair_count = defaultdict(int)
    where = defaultdict(set)
    for i, w in enumerate(words):
        f = freqs[i]
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += f
            where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    merges = []
    while len(merges) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc or negc == 0:
            continue  # stale entry
        merges.append(pair)
        a, b = pair
        ab = a + b
        changed = set()
        for i in sorted(where.pop(pair)):
            w = words[i]
            f = freqs[i]
            # remove old pairs
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= f
                changed.add((x, y))
                s = where.get((x, y))
                if s is not None:
                    s.discard(i)
            # merge left to right
            nw = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    nw.append(ab)
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            words[i] = nw
            for x, y in zip(nw, nw[1:]):
                pair_count[(x, y)] += f
                changed.add((x, y))
                where[(x, y)].add(i)
        pair_count.pop(pair, None)
        for p in changed:
            c = pair_count.get(p, 0)
            if c > 0 and p != pair:
                heapq.heappush(heap, (-c, p))
            elif c <= 0:
                pair_count.pop(p, None)
    assert len(merges) == n_merges, f"only {len(merges)} merges possible"
    return merges


class Tokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.tokens = [BOS_TEXT, EOS_TEXT] + [BYTE_ENC[b] for b in range(256)] + [a + b for a, b in self.merges]
        assert len(set(self.tokens)) == len(self.tokens), "duplicate token strings"
        self.token_to_id = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        self.cache = {}

    @property
    def vocab_size(self):
        return len(self.tokens)

    def token_types(self):
        # llama.cpp / gguf TokenType: NORMAL = 1, CONTROL = 3
        return [3, 3] + [1] * (len(self.tokens) - N_SPECIAL)

    def merges_strings(self):
        return [f"{a} {b}" for a, b in self.merges]

    def _bpe(self, word):
        ids = self.cache.get(word)
        if ids is not None:
            return ids
        sym = list(word)
        ranks = self.ranks
        while len(sym) > 1:
            best, best_r = -1, None
            for j in range(len(sym) - 1):
                r = ranks.get((sym[j], sym[j + 1]))
                if r is not None and (best_r is None or r < best_r):
                    best, best_r = j, r
            if best < 0:
                break
            sym[best:best + 2] = [sym[best] + sym[best + 1]]
        ids = [self.token_to_id[s] for s in sym]
        self.cache[word] = ids
        return ids

    def encode(self, text, add_bos=False):
        out = [BOS_ID] if add_bos else []
        for w in pretokenize(text):
            out.extend(self._bpe(w))
        return out

    def decode(self, ids):
        dec = {v: k for k, v in BYTE_ENC.items()}
        bs = bytearray()
        for i in ids:
            if i < N_SPECIAL:
                continue
            bs.extend(dec[c] for c in self.tokens[i])
        return bs.decode("utf-8", errors="replace")
