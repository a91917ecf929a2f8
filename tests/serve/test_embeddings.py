#!/usr/bin/python3
"""test_embeddings.py - POST /v1/embeddings end to end, against the NumPy
reference and the official openai client.

One `cgpt serve` serves random models made by build/tools/genmodel - bert
(mean pooling), nomic-bert (CLS pooling), a llama decoder (the mean of its
final hidden states) - and the built-in model. Checks:
- token-id inputs: every vector equals tests/ref/ref_model.py's embedding
  (float64, from the file's weights, written from the models' definitions),
  L2-normalised: cosine >= 1 - 1e-6 and max abs difference <= 1e-4;
- string inputs are tokenized as /tokenize with add_special says (BERT's
  [CLS] ... [SEP]) and give the same vectors as those ids; usage counts them;
- a batch of inputs gives the vectors each input gives alone (cosine
  >= 1 - 1e-6; the engine makes them bit-identical);
- encoding_format base64 decodes to the float answer's vectors;
  dimensions d gives the first d components normalised again;
- the openai client's embeddings.create (float, and its default base64)
  gives the same vectors;
- errors: empty input, an empty string, token ids out of range, an input
  longer than the model takes, dimensions above the model's, a bad
  encoding_format are 400s naming the field; chat on an embedding model is
  a 400.
Usage: tests/serve/test_embeddings.py [CGPT]  (Debian's /usr/bin/python3)."""

import base64
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))

import numpy as np  # noqa: E402

import gguf_np  # noqa: E402
from ref_model import RefModel  # noqa: E402

CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
_BIN = os.path.dirname(CGPT)  # build/ or build/asan/: the tools are build/tools
GENMODEL = os.path.join(os.path.dirname(_BIN) if os.path.basename(_BIN) == "asan" else _BIN, "tools", "genmodel")
COS_TOL = 1e-6
ABS_TOL = 1e-4
CLS, SEP, FIRST_ID = 2, 3, 5  # the random WordPiece vocabulary's ids
passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok -", what)
    else:
        failed += 1
        print("not ok -", what, ("- " + str(detail)[:800]) if detail else "")
    return cond


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def cos(a, b):
    return float(np.dot(unit(a), unit(b)))


MODELS = [  # alias, genmodel flags, encoder
    ("bert", ["--arch", "bert", "--vocab", "300", "--embd", "64", "--layers", "2", "--heads", "4",
              "--kv-heads", "4", "--ff", "128", "--ctx", "64", "--pooling", "1", "--std", "0.08"], True),
    ("nomic", ["--arch", "nomic-bert", "--vocab", "300", "--embd", "64", "--layers", "2", "--heads", "4",
               "--kv-heads", "4", "--ff", "128", "--ctx", "64", "--pooling", "2", "--std", "0.08"], True),
    ("llama", ["--arch", "llama", "--vocab", "300", "--embd", "64", "--layers", "2", "--heads", "4",
               "--kv-heads", "2", "--ff", "128", "--ctx", "256"], False),
]


def main():
    tmp = tempfile.mkdtemp(prefix="cgpt-embed-")
    args = []
    refs = {}
    for i, (alias, flags, enc) in enumerate(MODELS):
        path = os.path.join(tmp, alias + ".gguf")
        subprocess.run([GENMODEL, *flags, "--seed", str(11 + i), "-o", path], check=True,
                       capture_output=True)
        refs[alias] = (RefModel(gguf_np.load(path)), enc)
        args += ["-m", path, "--alias", alias]
    args += ["-m", os.path.join(ROOT, "models", "cgpt-mini.gguf")]
    # --kv-type f32: a decoder's hidden states exactly as the reference computes them
    p = subprocess.Popen([CGPT, "serve", "--port", "0", "--no-web", "--kv-type", "f32", "--data-dir", tmp, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = None
        for line in p.stdout:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                base = m.group(1)
                break
        if not base:
            check(False, "server started", p.stderr.read()[-2000:])
            return
        run_checks(base, refs)
    finally:
        p.terminate()
        p.wait(timeout=30)


def run_checks(base, refs):
    rng = np.random.default_rng(7)
    for alias, (ref, enc) in refs.items():
        seqs = []
        for n in (1, 5, 12, 30):
            body = [int(t) for t in rng.integers(FIRST_ID if enc else 0, 300, n)]
            seqs.append([CLS] + body + [SEP] if enc else body)
        st, r = post(base, "/v1/embeddings", {"model": alias, "input": seqs})
        if not check(st == 200 and len(r.get("data", [])) == len(seqs), f"{alias}: {len(seqs)} id inputs", r):
            continue
        got = np.array([d["embedding"] for d in r["data"]])
        want = np.stack([unit(ref.embed(s)) for s in seqs])
        worst = min(cos(g, w) for g, w in zip(got, want))
        diff = float(np.max(np.abs(got - want)))
        check(worst >= 1 - COS_TOL and diff <= ABS_TOL,
              f"{alias}: vectors equal the NumPy reference (min cosine 1 - {1 - worst:.1e}, max abs {diff:.1e})")
        check(all(abs(np.linalg.norm(g) - 1) < 1e-5 for g in got), f"{alias}: unit vectors")
        check(r["usage"] == {"prompt_tokens": sum(map(len, seqs)), "total_tokens": sum(map(len, seqs))}
              and r["object"] == "list" and r["model"] == alias
              and [d["index"] for d in r["data"]] == list(range(len(seqs)))
              and all(d["object"] == "embedding" for d in r["data"]), f"{alias}: response shape and usage", r)
        alone = []
        for s in seqs:
            st, one = post(base, "/v1/embeddings", {"model": alias, "input": s})
            alone.append(one["data"][0]["embedding"] if st == 200 else [0.0] * got.shape[1])
        worst = min(cos(a, g) for a, g in zip(alone, got))
        check(worst >= 1 - COS_TOL, f"{alias}: batched equals alone (min cosine 1 - {1 - worst:.1e})")
        st, b64 = post(base, "/v1/embeddings", {"model": alias, "input": seqs, "encoding_format": "base64"})
        dec = [struct.unpack("<%df" % got.shape[1], base64.b64decode(d["embedding"])) for d in b64.get("data", [])]
        check(st == 200 and np.allclose(np.array(dec), got, rtol=0, atol=1e-6),
              f"{alias}: base64 decodes to the float vectors")
        st, dim = post(base, "/v1/embeddings", {"model": alias, "input": seqs, "dimensions": 8})
        trunc = np.stack([unit(g[:8]) for g in got])
        check(st == 200 and np.allclose(np.array([d["embedding"] for d in dim["data"]]), trunc, atol=1e-6),
              f"{alias}: dimensions 8 is the first 8 components, normalised")
        text = ["hello world", "the quick brown fox"]
        st, tv = post(base, "/v1/embeddings", {"model": alias, "input": text})
        ids = [post(base, "/tokenize", {"model": alias, "content": t, "add_special": True})[1]["tokens"]
               for t in text]
        st2, iv = post(base, "/v1/embeddings", {"model": alias, "input": ids})
        check(st == 200 and st2 == 200 and tv["data"] and
              all(a["embedding"] == b["embedding"] for a, b in zip(tv["data"], iv["data"])) and
              tv["usage"]["prompt_tokens"] == sum(map(len, ids)),
              f"{alias}: string inputs embed as their tokens (with the model's BOS/EOS)", [tv, ids])
        if enc:
            check(all(i[0] == CLS and i[-1] == SEP for i in ids), f"{alias}: strings get [CLS] ... [SEP]", ids)
        # the official client: float, and its default (base64, decoded by the SDK)
        js = ("import OpenAI from 'openai';"
              f"const c = new OpenAI({{baseURL: '{base}/v1', apiKey: 'x'}});"
              f"const a = await c.embeddings.create({{model: '{alias}', input: {json.dumps(text)}}});"
              f"const b = await c.embeddings.create({{model: '{alias}', input: {json.dumps(text)}, "
              "encoding_format: 'float'});"
              "console.log(JSON.stringify([a.data.map(d => d.embedding), b.data.map(d => d.embedding), a.usage]));")
        out = subprocess.run(["node", "--input-type=module", "-e", js], capture_output=True, text=True,
                             cwd=os.path.join(ROOT, "tests", "js"), timeout=120)
        try:
            sdk_b64, sdk_float, usage = json.loads(out.stdout)
            want_t = np.array([d["embedding"] for d in tv["data"]])
            ok = (np.allclose(np.array(sdk_b64), want_t, atol=1e-6) and np.allclose(np.array(sdk_float), want_t, atol=1e-12)
                  and usage["prompt_tokens"] == tv["usage"]["prompt_tokens"])
        except (ValueError, KeyError, TypeError):
            ok = False
        check(ok, f"{alias}: openai client embeddings.create (default base64 and float)", out.stderr[-500:] or out.stdout[-300:])

    # concurrent requests (an encoder's run together when they wait together)
    import threading
    reqs = [[[CLS] + [int(t) for t in rng.integers(FIRST_ID, 300, n)] + [SEP] for n in (3 + i, 20 - i)]
            for i in range(12)]
    alone = [post(base, "/v1/embeddings", {"model": "bert", "input": r})[1]["data"] for r in reqs]
    got = [None] * len(reqs)

    def one(i):
        got[i] = post(base, "/v1/embeddings", {"model": "bert", "input": reqs[i]})[1].get("data")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(all(g is not None and [d["embedding"] for d in g] == [d["embedding"] for d in a] for g, a in zip(got, alone)),
          "12 concurrent requests: each gets exactly its own vectors (as alone)")

    # errors
    bad = [({"model": "bert", "input": []}, "input"),
           ({"model": "bert", "input": ""}, "input"),
           ({"model": "bert", "input": ["a", ""]}, "input[1]"),
           ({"model": "bert", "input": [[2, 300000]]}, "input"),
           ({"model": "bert", "input": [[2, 5], ["x"]]}, "input[1]"),
           ({"model": "bert", "input": [[CLS] + [9] * 100 + [SEP]]}, "input"),
           ({"model": "bert", "input": "hi", "dimensions": 65}, "dimensions"),
           ({"model": "bert", "input": "hi", "dimensions": 0}, "dimensions"),
           ({"model": "bert", "input": "hi", "encoding_format": "int8"}, "encoding_format"),
           ({"model": "bert"}, "input")]
    for body, param in bad:
        st, r = post(base, "/v1/embeddings", body)
        err = r.get("error", {})
        check(st == 400 and err.get("param") == param and err.get("message"),
              f"400 naming {param} for {json.dumps(body)[:60]}", r)
    st, r = post(base, "/v1/embeddings", {"model": "bert", "input": [[CLS] + [9] * 100 + [SEP]]})
    check(r.get("error", {}).get("code") == "context_length_exceeded", "a too long input says context_length_exceeded", r)
    st, r = post(base, "/v1/chat/completions", {"model": "nomic", "messages": [{"role": "user", "content": "hi"}]})
    check(st == 400 and "embedding model" in r.get("error", {}).get("message", ""),
          "chat on an embedding model is a 400 that says so", r)
    st, r = post(base, "/v1/embeddings", {"model": "cgpt-mini", "input": ["a chat model embeds too"]})
    check(st == 200 and len(r["data"][0]["embedding"]) > 0, "the built-in model embeds (mean of its hidden states)", r)
    # /metrics counts the requests and tokens per model
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    before = {}
    for m in re.finditer(r'^cgpt_embedding_(requests|tokens)_total\{model="cgpt-mini"\} (\d+)', text, re.M):
        before[m.group(1)] = int(m.group(2))
    st, r = post(base, "/v1/embeddings", {"model": "cgpt-mini", "input": ["one", "two words"]})
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    after = {m.group(1): int(m.group(2)) for m in
             re.finditer(r'^cgpt_embedding_(requests|tokens)_total\{model="cgpt-mini"\} (\d+)', text, re.M)}
    check(st == 200 and after.get("requests") == before.get("requests", -9) + 1 and
          after.get("tokens") == before.get("tokens", -9) + r["usage"]["prompt_tokens"],
          "/metrics counts embedding requests and tokens per model", (before, after))


if __name__ == "__main__":
    main()
    print(f"test_embeddings: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
