#!/usr/bin/python3
"""test_bpe_train.py - `cgpt train tokenizer` against an independent Python BPE.

    /usr/bin/python3 tests/train/test_bpe_train.py build/cgpt

Written from the rule in src/train/bpe_train.h, not from the C code:

  1. pre-tokens: a hand-written matcher of the "qwen2" regex (alternatives
     in order, each with the backtracking PCRE2 would do, Unicode classes
     from unicodedata, \\s as Unicode White_Space) splits every document of
     the corpus; its counts (pre-tokens over 256 bytes cut into 256-byte
     chunks) must equal the C side's `--dump-words` counts;
  2. merges: a naive trainer (recounts every pair from scratch each step)
     on those counts must give the identical merge list, token list, token
     types and special ids as the GGUF file cgpt wrote (read with
     tests/ref/gguf_np.py, an independent GGUF reader);
  3. encoding: sample texts tokenized by naive rank merging (GPT-2's bpe())
     over the matcher's pre-tokens must equal `cgpt tokenize` ids, with and
     without --special;
  4. a tiny-alphabet corpus (words over "ab": overlapping pairs like
     "a a a", many ties), trained until every word is one token, gives the
     identical merge list;
  5. training with 1 and 2 threads writes identical bytes;
  6. bad input lines fail with "FILE:LINE".

Prints one line per check and a summary; exits non-zero on any mismatch.
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import unicodedata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import gguf_np  # noqa: E402

MAX_WORD_BYTES = 256   # BPE_TRAIN_MAX_WORD_BYTES
MAX_TOKEN_BYTES = 64   # BPE_TRAIN_MAX_TOKEN_BYTES
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


# ------------------------------------------------------ GPT-2 byte map

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def gpt2_str(bs):
    return "".join(B2U[b] for b in bs)


# ------------------------------------------------- qwen2 pre-tokenizer
# (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
#  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+

WS = set(chr(c) for c in [9, 10, 11, 12, 13, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029,
                          0x202F, 0x205F, 0x3000] + list(range(0x2000, 0x200B)))
CONTRACTIONS = ["s", "t", "re", "ve", "m", "ll", "d"]


def is_l(ch):
    return unicodedata.category(ch)[0] == "L"


def is_n(ch):
    return unicodedata.category(ch)[0] == "N"


def fold(ch):
    # PCRE2 caseless with UCP: 'S' and U+017F LONG S match 's'
    if ch == "\u017f":
        return "s"
    return ch.lower() if ch.isascii() else ch


def match_at(s, i):
    n = len(s)
    c = s[i]
    if c == "'":
        for suf in CONTRACTIONS:
            seg = s[i + 1:i + 1 + len(suf)]
            if len(seg) == len(suf) and all(fold(x) == y for x, y in zip(seg, suf)):
                return i + 1 + len(suf)
    if c not in "\r\n" and not is_l(c) and not is_n(c) and i + 1 < n and is_l(s[i + 1]):
        j = i + 1
        while j < n and is_l(s[j]):
            j += 1
        return j
    if is_l(c):
        j = i
        while j < n and is_l(s[j]):
            j += 1
        return j
    if is_n(c):
        return i + 1
    j = i + 1 if c == " " else i
    k = j
    while k < n and s[k] not in WS and not is_l(s[k]) and not is_n(s[k]):
        k += 1
    if k > j:
        while k < n and s[k] in "\r\n":
            k += 1
        return k
    if c in WS:
        r = i
        while r < n and s[r] in WS:
            r += 1
        last = -1
        for k in range(i, r):
            if s[k] in "\r\n":
                last = k
        if last >= 0:           # \s*[\r\n]+
            return last + 1
        if r == n:              # \s+(?!\S) at the end
            return n
        if r - 1 > i:           # \s+(?!\S) before a non-space
            return r - 1
        return r                # \s+
    raise AssertionError("no alternative matched %r" % c)


def pretokenize(s):
    out, i = [], 0
    while i < len(s):
        j = match_at(s, i)
        out.append(s[i:j])
        i = j
    return out


def count_words(docs):
    counts = {}
    for d in docs:
        for p in pretokenize(d):
            b = p.encode("utf-8")
            for k in range(0, len(b), MAX_WORD_BYTES):
                w = b[k:k + MAX_WORD_BYTES]
                counts[w] = counts.get(w, 0) + 1
    return counts


# ------------------------------------------------------- naive trainer

def train(counts, vocab, min_freq):
    tok = [bytes([b]) for b in range(256)]
    tok_id = {t: i for i, t in enumerate(tok)}
    words = [[list(w), c] for w, c in counts.items() if len(w) >= 2]
    merges, merged = [], set()
    want = vocab - 256 - len(SPECIALS)
    while len(tok) - 256 < want:
        pc = {}
        for syms, c in words:
            for p in zip(syms, syms[1:]):
                if p not in merged and len(tok[p[0]]) + len(tok[p[1]]) <= MAX_TOKEN_BYTES:
                    pc[p] = pc.get(p, 0) + c
        if not pc:
            break
        best = min(pc.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
        (a, b), cnt = best
        if cnt < min_freq:
            break
        s = tok[a] + tok[b]
        if s in tok_id:
            c = tok_id[s]
        else:
            c = len(tok)
            tok.append(s)
            tok_id[s] = c
        merges.append((a, b, c))
        merged.add((a, b))
        still = []
        for wc in words:
            syms = wc[0]
            if a not in syms:
                still.append(wc)
                continue
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(c)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            wc[0] = out
            if len(out) >= 2:
                still.append(wc)
        words = still
    return tok, merges


def encode(text, tok, merges, allow_special):
    ranks = {}
    for r, (a, b, c) in enumerate(merges):
        ranks.setdefault((a, b), (r, c))
    base = len(tok)
    frags = [(text, False)]
    if allow_special:
        frags = []
        i = 0
        while i < len(text):
            hit = None
            for k, sp in enumerate(SPECIALS):
                if text.startswith(sp, i):
                    hit = k
                    break
            if hit is None:
                j = min([text.find(sp, i) for sp in SPECIALS if text.find(sp, i) >= 0] +
                        [len(text)])
                frags.append((text[i:j], False))
                i = j
            else:
                frags.append((base + hit, True))
                i += len(SPECIALS[hit])
    ids = []
    for f, special in frags:
        if special:
            ids.append(f)
            continue
        for p in pretokenize(f):
            syms = list(p.encode("utf-8"))
            while len(syms) > 1:
                best = None
                for k in range(len(syms) - 1):
                    r = ranks.get((syms[k], syms[k + 1]))
                    if r is not None and (best is None or r[0] < best[0]):
                        best = r
                        pair = (syms[k], syms[k + 1])
                if best is None:
                    break
                out, k = [], 0
                while k < len(syms):
                    if k + 1 < len(syms) and (syms[k], syms[k + 1]) == pair:
                        out.append(best[1])
                        k += 2
                    else:
                        out.append(syms[k])
                        k += 1
                syms = out
            ids.extend(syms)
    return ids


# ------------------------------------------------------------ corpora

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def synthetic_docs(rng, n_bytes):
    """English-like text from a Zipf lexicon, plus numbers, punctuation,
    contractions, whitespace runs, UTF-8 (Latin, Greek, Cyrillic, CJK,
    emoji) and a NUL."""
    lex = []
    for _ in range(3000):
        w = "".join(rng.choice(LETTERS[:20] if rng.random() < 0.7 else LETTERS)
                    for _ in range(rng.choice([1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 10])))
        lex.append(w)
    lex += ["the", "of", "and", "to", "in", "is", "that", "for", "it", "with",
            "naïve", "café", "straße", "Ωμέγα", "привет", "数据", "中文", "東京"]
    weights = [1.0 / (k + 1) for k in range(len(lex))]
    docs, total = [], 0
    while total < n_bytes:
        parts = []
        for _ in range(rng.randint(20, 200)):
            r = rng.random()
            if r < 0.80:
                w = rng.choices(lex, weights)[0]
                if rng.random() < 0.1:
                    w = w.capitalize()
                parts.append(w)
            elif r < 0.86:
                parts.append(str(rng.randint(0, 100000)))
            elif r < 0.92:
                parts.append(rng.choice([",", ".", "!", "?", ";", ":", "--", "(x)", "\"q\"",
                                         "$5", "3.14", "a+b=c", "x_y", "#include"]))
            elif r < 0.95:
                parts.append(rng.choice(["I'm", "DON'T", "we'll", "it's", "they've", "you'd",
                                         "'RE", "o'clock"]))
            elif r < 0.98:
                parts.append(rng.choice(["\n", "\n\n", "  ", "\t", "\r\n", "   \n  ", " \u00a0 "]))
            else:
                parts.append(rng.choice(["😀", "🚀🚀", "你好，世界", "—", "…", "\u3000x",
                                         "\u0000", "é" * 3]))
        d = " ".join(parts)
        docs.append(d)
        total += len(d.encode("utf-8"))
    return docs


def license_docs(limit):
    root = "/usr/share/common-licenses"
    docs, total = [], 0
    if not os.path.isdir(root):
        return docs
    for name in sorted(os.listdir(root)):
        p = os.path.join(root, name)
        if not os.path.isfile(p):
            continue
        with open(p, "rb") as f:
            t = f.read().decode("utf-8", errors="replace")
        docs.append(t)
        total += len(t.encode("utf-8"))
        if total >= limit:
            break
    return docs


def write_jsonl(path, docs, rng):
    """Half the documents as {"text"}, the rest as chat messages."""
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            if rng.random() < 0.5:
                f.write(json.dumps({"text": d}) + "\n")
            else:
                cut = len(d) // 2
                f.write(json.dumps({"messages": [
                    {"role": "user", "content": d[:cut]},
                    {"role": "assistant", "content": [{"type": "text", "text": d[cut:]}]},
                    {"role": "tool", "content": None}]}) + "\n")
            if rng.random() < 0.05:
                f.write("\n")


def jsonl_docs(path):
    """The documents cgpt reads from a JSONL file, in order."""
    docs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            if "text" in o:
                docs.append(o["text"])
                continue
            for m in o["messages"]:
                c = m.get("content")
                if isinstance(c, str):
                    docs.append(c)
                elif isinstance(c, list):
                    docs += [p["text"] for p in c if "text" in p]
    return docs


# ------------------------------------------------------------- driver

def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, **kw)


def read_dump(path):
    counts = {}
    with open(path) as f:
        for line in f:
            c, h = line.rstrip("\n").split("\t")
            counts[bytes.fromhex(h)] = int(c)
    return counts


def train_c(cgpt, jsonl, out, vocab, min_freq, extra=()):
    cmd = [cgpt, "train", "tokenizer", "-i", jsonl, "-o", out, "--vocab", str(vocab),
           "--min-freq", str(min_freq)] + list(extra)
    p = run(cmd)
    if p.returncode != 0:
        print(p.stderr.decode(errors="replace"))
        raise SystemExit("FAIL: %s exited %d" % (" ".join(cmd), p.returncode))
    return p


def compare_vocab(g, tok, merges, label):
    md = g.metadata
    want_tokens = [gpt2_str(t) for t in tok] + SPECIALS
    got_tokens = md["tokenizer.ggml.tokens"]
    bad = next((i for i in range(min(len(got_tokens), len(want_tokens)))
                if got_tokens[i] != want_tokens[i]), None)
    check(len(got_tokens) == len(want_tokens) and bad is None,
          "%s: %d tokens identical (first difference: %s)" % (
              label, len(want_tokens),
              "none" if bad is None else "id %d: C %r, Python %r" % (
                  bad, got_tokens[bad], want_tokens[bad])))
    want_merges = [gpt2_str(tok[a]) + " " + gpt2_str(tok[b]) for a, b, _ in merges]
    got_merges = md["tokenizer.ggml.merges"]
    bad = next((i for i in range(min(len(got_merges), len(want_merges)))
                if got_merges[i] != want_merges[i]), None)
    check(got_merges == want_merges,
          "%s: %d merges identical, rank by rank (C has %d; first difference: %s)" % (
              label, len(want_merges), len(got_merges),
              "none" if bad is None else "rank %d: C %r, Python %r" % (
                  bad, got_merges[bad], want_merges[bad])))
    n = len(tok)
    types = [int(x) for x in md["tokenizer.ggml.token_type"]]
    check(types == [1] * n + [3] * len(SPECIALS), "%s: token types (1 normal, 3 specials)" % label)
    ids = (md.get("tokenizer.ggml.bos_token_id"), md.get("tokenizer.ggml.eos_token_id"),
           md.get("tokenizer.ggml.eot_token_id"), md.get("tokenizer.ggml.padding_token_id"))
    check(ids == (n, n, n + 2, n + 3), "%s: bos/eos/eot/pad ids %s" % (label, ids))
    return n


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: test_bpe_train.py path/to/cgpt")
    cgpt = os.path.abspath(sys.argv[1])
    t0 = time.time()
    rng = random.Random(1234)
    tmp = tempfile.mkdtemp(prefix="cgpt_bpe_train_")

    # ---- 1-3: the main corpus
    docs = license_docs(150_000) + synthetic_docs(rng, 200_000)
    corpus = os.path.join(tmp, "corpus.jsonl")
    write_jsonl(corpus, docs, rng)
    docs = jsonl_docs(corpus)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    out = os.path.join(tmp, "tok.gguf")
    dump = os.path.join(tmp, "words.txt")
    vocab, min_freq = 800, 2
    p = train_c(cgpt, corpus, out, vocab, min_freq, ["--dump-words", dump, "--threads", "2"])
    summary = p.stdout.decode().strip().splitlines()[-1]
    print("cgpt: " + summary)
    check(("%d bytes read" % n_bytes) in summary, "summary line names %d bytes read" % n_bytes)

    c_counts = read_dump(dump)
    py_counts = count_words(docs)
    diff = [w for w in set(c_counts) | set(py_counts) if c_counts.get(w) != py_counts.get(w)]
    diff.sort()
    check(not diff, "pre-token counts: %d distinct words, C == Python matcher%s" % (
        len(py_counts), "" if not diff else " (%d differ, e.g. %r: C %s, Python %s)" % (
            len(diff), diff[0], c_counts.get(diff[0]), py_counts.get(diff[0]))))

    t1 = time.time()
    tok, merges = train(c_counts, vocab, min_freq)
    print("     (naive Python training: %d merges in %.1f s)" % (len(merges), time.time() - t1))
    g = gguf_np.load(out)
    md = g.metadata
    check(md.get("tokenizer.ggml.model") == "gpt2" and md.get("tokenizer.ggml.pre") == "qwen2" and
          md.get("general.architecture") == "llama" and
          md.get("tokenizer.ggml.add_bos_token") is False and
          md.get("tokenizer.ggml.add_eos_token") is False and
          "<|im_start|>" in md.get("tokenizer.chat_template", "") and not g.tensors,
          "GGUF keys: gpt2/qwen2, llama, add_bos/add_eos false, ChatML template, no tensors")
    n = compare_vocab(g, tok, merges, "corpus %d KB, vocab %d" % (n_bytes // 1000, vocab))
    g.close()

    samples = [d[:300] for d in docs[::max(1, len(docs) // 12)]] + [
        "Hello, World! It's 2024-05-17 and I'm testing 1234567 tokens.",
        "The quick brown fox jumps over the lazy dog.\n\n\tIndented  line\r\nwith CRLF   ",
        "你好，世界！数据和中文。東京タワー", "naïve café straße Ωμέγα привет 😀🚀",
        "   leading and trailing spaces   ", "x" * 300, "'s 'S 'll 'LL DON'T o'clock",
        "a+b=c; x_y #include <stdio.h>\n\n\n"]
    bad = []
    for k, s in enumerate(samples):
        if "\u0000" in s:
            continue
        path = os.path.join(tmp, "sample%d.txt" % k)
        with open(path, "w", encoding="utf-8") as f:
            f.write(s)
        p = run([cgpt, "tokenize", "-m", out, "-f", path])
        got = [int(x) for x in p.stdout.split()]
        want = encode(s, tok, merges, False)
        if p.returncode != 0 or got != want:
            bad.append((s[:40], got[:12], want[:12]))
    check(not bad, "encoding: %d samples, cgpt tokenize == naive rank merging%s" % (
        len(samples), "" if not bad else " (first bad %r: C %s, Python %s)" % bad[0]))

    chat = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>"
    path = os.path.join(tmp, "chat.txt")
    with open(path, "w") as f:
        f.write(chat)
    got_sp = [int(x) for x in run([cgpt, "tokenize", "-m", out, "-f", path, "--special"]).stdout.split()]
    got_pl = [int(x) for x in run([cgpt, "tokenize", "-m", out, "-f", path]).stdout.split()]
    want_sp = encode(chat, tok, merges, True)
    check(got_sp == want_sp and got_sp.count(n + 1) == 2 and got_sp.count(n + 2) == 2,
          "specials: ChatML markup with --special is single ids <|im_start|>=%d <|im_end|>=%d"
          % (n + 1, n + 2))
    check(got_pl == encode(chat, tok, merges, False) and n + 1 not in got_pl,
          "specials: without --special the markup is plain text")

    # ---- 4: tiny alphabet (id reuse, overlapping pairs), min-freq 1
    rng2 = random.Random(99)
    small = [" ".join("".join(rng2.choice("ab") for _ in range(rng2.randint(1, 14)))
                      for _ in range(rng2.randint(5, 40))) for _ in range(300)]
    # runs longer than a pre-token chunk (256 bytes) and a token (64 bytes)
    small += ["b" + "a" * rng2.randint(60, 600) for _ in range(20)]
    corpus2 = os.path.join(tmp, "ab.jsonl")
    with open(corpus2, "w") as f:
        for d in small:
            f.write(json.dumps({"text": d}) + "\n")
    out2, dump2 = os.path.join(tmp, "ab.gguf"), os.path.join(tmp, "ab.txt")
    train_c(cgpt, corpus2, out2, 8000, 1, ["--dump-words", dump2])
    c2 = read_dump(dump2)
    check(c2 == count_words(small), "ab corpus: pre-token counts C == Python")
    tok2, merges2 = train(c2, 8000, 1)
    longest = max(len(t) for t in tok2)
    check(len(tok2) < 8000 - 4 and longest == MAX_TOKEN_BYTES,
          "ab corpus: ran out of pairs before the vocabulary filled; longest token %d bytes"
          % longest)
    g2 = gguf_np.load(out2)
    compare_vocab(g2, tok2, merges2, "ab corpus, min-freq 1 (%d merges)" % len(merges2))
    check(len(merges2) == len(tok2) - 256 and len(merges) == len(tok) - 256,
          "every merge made a new token (no string is built two ways)")
    g2.close()

    # ---- 5: threads do not change the result
    outs = []
    for th in (1, 2):
        o = os.path.join(tmp, "th%d.gguf" % th)
        train_c(cgpt, corpus, o, 700, 2, ["--threads", str(th)])
        with open(o, "rb") as f:
            outs.append(f.read())
    check(outs[0] == outs[1], "determinism: --threads 1 and 2 write identical files")

    # ---- 6: bad input names file:line
    for content, line in [('{"text": "ok"}\n{"text": 5}\n', 2),
                          ('{"text": "ok"}\n\n{"text": "x"\n', 3),
                          ('{"messages": "no"}\n', 1),
                          ('{"foo": 1}\n', 1)]:
        bad_path = os.path.join(tmp, "bad.jsonl")
        with open(bad_path, "w") as f:
            f.write(content)
        p = run([cgpt, "train", "tokenizer", "-i", bad_path, "-o", os.path.join(tmp, "bad.gguf")])
        err = p.stderr.decode(errors="replace")
        check(p.returncode != 0 and ("%s:%d:" % (bad_path, line)) in err,
              "bad input line %d: exit %d, %s" % (line, p.returncode,
                                                 err.strip().splitlines()[-1] if err else "-"))

    print("test_bpe_train: %d checks, %d failed (%.1f s)" % (checks, len(failures),
                                                          time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
