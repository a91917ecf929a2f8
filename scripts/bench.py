#!/usr/bin/python3
"""bench.py - `make bench`: `cgpt bench` over two model shapes and the weight
types people download, as ratios to this machine's limits measured in the
same runs, then the issue-16 targets as PASS/FAIL lines.

Shapes (random weights, build/tools/genmodel; cached under build/bench/):
    135M  SmolLM-135M: n_embd 576, 30 layers, 9 heads / 3 KV heads, ffn 1536,
          vocab 49152, tied output, context 8192
    1B    a ~1B Llama: n_embd 2048, 16 layers, 32 / 8 heads, ffn 8192, vocab
          32000, context 4096
Types: F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0 (the quantized ones made
from an F32 file by `cgpt quantize`, with llama.cpp's per-tensor choices:
the output matrix in Q6_K, rows of 576 that K-quant blocks cannot cut in
Q5_0, ...; BF16 written by genmodel).

Per model: `cgpt bench -p 512 -n N --json` (prefill pp512 and decode). Also
16 sequences decoding together (135M, Q8_0 and Q4_K_M) and decode after a
4096-token prompt (135M, Q4_K_M, F16 KV cache, as the target states it).

Writes build/bench/bench.json (every run's object), bench.md (the table)
and bench.svg (the ratios per type, targets drawn in). Exits 1 when a
target is missed, 2 when something cannot run.

Environment: BENCH_SHAPES="135M 1B", BENCH_TYPES="F16 ...", BENCH_REPS=2,
BENCH_THREADS=2 (the targets are stated for 2 threads).
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
OUT = os.path.join(BUILD, "bench")
CGPT = os.path.join(BUILD, "cgpt")
GENMODEL = os.path.join(BUILD, "tools", "genmodel")

SHAPES = {
    "135M": ["--vocab", "49152", "--embd", "576", "--layers", "30", "--heads", "9", "--kv-heads", "3",
             "--ff", "1536", "--ctx", "8192", "--tied"],
    "1B": ["--vocab", "32000", "--embd", "2048", "--layers", "16", "--heads", "32", "--kv-heads", "8",
           "--ff", "8192", "--ctx", "4096"],
}
TYPES = ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"]
FLOAT_TYPES = {"F16", "BF16"}
DECODE_TOKENS = {"135M": 64, "1B": 16}

TARGETS = {
    "prefill_vs_q8": 0.9,     # every quantized type's pp512 over Q8_0's, same shape
    "q8_prefill_int8": 0.5,   # Q8_0 pp512, 1B, over the int8 dot peak
    "float_prefill_fma": 0.7,  # F16 / BF16 pp512, 1B, over the F32 FMA peak
    "decode_1b": 0.9,         # decode over the bandwidth bound, 1B
    "decode_135m": 0.8,       # decode over the bandwidth bound, 135M
    "batched_16": 5.0,        # 16 sequences over one, 135M, Q8_0 and Q4_K_M
    "depth_4096": 0.7,        # decode after 4096 tokens over decode at 0, 135M Q4_K_M
    "grammar_mask": 0.10,     # a full JSON-grammar token mask over a 135M Q8_0 decode step (50k vocab)
}

# The JSON grammar and a reply the mask is measured along (tests/tools/grammarbench.c).
JSON_GBNF = r"""root   ::= ws value ws
value  ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( member ( ws "," ws member )* )? ws "}"
member ::= string ws ":" ws value
array  ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
string ::= "\"" ( [^"\\\x00-\x1F] | "\\" escape )* "\""
escape ::= ["\\/bfnrt] | "u" hex hex hex hex
hex    ::= [0-9a-fA-F]
number ::= "-"? int frac? exp?
int    ::= "0" | [1-9] [0-9]*
frac   ::= "." [0-9]+
exp    ::= [eE] [-+]? [0-9]+
ws     ::= ( [ \t\n\r] )*
"""
JSON_REPLY = ('{"name": "Alice Smith", "age": 42, "tags": ["a", "b"], '
              '"address": {"city": "Paris", "zip": "75001"}, "ok": true}')


def grammar_mask(decode_tps):
    """Mean full-mask microseconds on GPT-2's vocabulary (build/tokenizer-oracle,
    made by the tokenizer tests) or else the 135M model's own, and its share of
    a decode step at decode_tps."""
    vocab = os.path.join(BUILD, "tokenizer-oracle", "gpt2.gguf")
    if not os.path.exists(vocab):
        vocab = model("135M", "Q8_0")
    gpath = os.path.join(OUT, "json.gbnf")
    with open(gpath, "w") as f:
        f.write(JSON_GBNF)
    out = run([os.path.join(BUILD, "tools", "grammarbench"), vocab, gpath, JSON_REPLY])
    fields = dict(kv.strip().split(" ", 1) for kv in out.strip().split(","))
    us = float(fields["mean_us"])
    return {"vocab": os.path.basename(vocab), "n_vocab": int(fields["vocab"]), "mean_us": us,
            "max_us": float(fields["max_us"]), "share": us * 1e-6 * decode_tps}


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        print("bench: %s failed:\n%s" % (" ".join(args), p.stderr[-2000:]), file=sys.stderr)
        sys.exit(2)
    return p.stdout


def model(shape, typ):
    """The shape's model in typ, made (and kept) under build/bench."""
    path = os.path.join(OUT, "%s-%s.gguf" % (shape, typ))
    if os.path.exists(path):
        return path
    base = ["--arch", "llama", "--seed", "1"] + SHAPES[shape]
    if typ in ("F16", "BF16"):
        run([GENMODEL] + base + ["--type", typ, "-o", path + ".tmp"])
    else:
        f32 = os.path.join(OUT, "%s-F32.gguf" % shape)
        if not os.path.exists(f32):
            run([GENMODEL] + base + ["--type", "F32", "-o", f32 + ".tmp"])
            os.rename(f32 + ".tmp", f32)
        run([CGPT, "quantize", f32, path + ".tmp", typ])
    os.rename(path + ".tmp", path)
    return path


def bench(path, *args):
    out = run([CGPT, "bench", "-m", path, "--json", "-t", os.environ.get("BENCH_THREADS", "2"),
               "-r", os.environ.get("BENCH_REPS", "2")] + list(args))
    return json.loads(out.strip().splitlines()[-1])


def svg(results, path):
    """Bars per shape and type: prefill over its peak, decode over its bound."""
    shapes = [s for s in SHAPES if any(r["shape"] == s for r in results)]
    types = [t for t in TYPES if any(r["type_name"] == t for r in results)]
    bw, gap, h, top, left = 14, 10, 260, 50, 50
    group = 2 * bw + gap
    width = max(660, left + len(shapes) * (len(types) * group + 40) + 20)
    height = top + h + 70
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="14">cgpt bench: prefill over its peak (blue), decode over '
           'the bandwidth bound (orange);</text>' % left,
           '<text x="%d" y="34" font-size="12">dashed: the decode target</text>' % left]

    def y(v):
        return top + h - min(v, 1.2) / 1.2 * h

    for v in (0, 0.25, 0.5, 0.75, 1.0):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (left, width - 10, y(v), y(v)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (left - 4, y(v) + 4, v))
    x = left + 10
    for s in shapes:
        x0 = x
        for t in types:
            r = next((r for r in results if r["shape"] == s and r["type_name"] == t), None)
            if r:
                pre = r.get("prefill", {}).get("ratio", 0)
                dec = r.get("decode", {}).get("ratio", 0)
                out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="#4878d0"><title>%s %s prefill '
                           '%.3f</title></rect>' % (x, y(pre), bw, top + h - y(pre), s, t, pre))
                out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="#ee854a"><title>%s %s decode '
                           '%.3f</title></rect>' % (x + bw, y(dec), bw, top + h - y(dec), s, t, dec))
                out.append('<text x="%d" y="%d" transform="rotate(45 %d %d)">%s</text>'
                           % (x + 2, top + h + 14, x + 2, top + h + 14, t))
            x += group
        dec_target = TARGETS["decode_1b" if s == "1B" else "decode_135m"]
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ee854a" stroke-dasharray="4 3"/>'
                   % (x0 - 4, x - gap + 4, y(dec_target), y(dec_target)))
        out.append('<text x="%d" y="%d" font-size="13">%s</text>' % ((x0 + x) // 2 - 15, top + h + 60, s))
        x += 40
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    for f in (CGPT, GENMODEL):
        if not os.access(f, os.X_OK):
            print("bench: %s is missing (make all tools)" % f, file=sys.stderr)
            return 2
    os.makedirs(OUT, exist_ok=True)
    shapes = os.environ.get("BENCH_SHAPES", " ".join(SHAPES)).split()
    types = os.environ.get("BENCH_TYPES", " ".join(TYPES)).split()
    results, extra = [], []
    for s in shapes:
        for t in types:
            r = bench(model(s, t), "-p", "512", "-n", str(DECODE_TOKENS[s]))
            r["shape"], r["type_name"] = s, t
            results.append(r)
            print("%-5s %-7s prefill %8.1f tok/s (%.3f of %s)  decode %7.2f tok/s (%.3f of bound)  load %.2f s  "
                  "RSS %.0f MiB" % (s, t, r["prefill"]["tokens_per_s"], r["prefill"]["ratio"], r["prefill"]["peak"],
                                    r["decode"]["tokens_per_s"], r["decode"]["ratio"], r["load_seconds"],
                                    r["peak_rss_bytes"] / 2**20), flush=True)
    if "135M" in shapes:
        for t in ("Q8_0", "Q4_K_M"):
            if t in types:
                r = bench(model("135M", t), "-p", "0", "-n", "32", "-b", "16")
                r["shape"], r["type_name"], r["run"] = "135M", t, "batched16"
                extra.append(r)
                print("135M  %-7s 16 sequences: %.1f tok/s = %.2f x one" % (t, r["batched"]["tokens_per_s"],
                                                                           r["batched"]["ratio_to_one"]), flush=True)
        if "Q4_K_M" in types:
            r = bench(model("135M", "Q4_K_M"), "-p", "0", "-n", "32", "-d", "4096", "--kv-type", "f16")
            r["shape"], r["type_name"], r["run"] = "135M", "Q4_K_M", "depth4096"
            extra.append(r)
            print("135M  Q4_K_M decode after 4096 tokens (F16 KV): %.1f tok/s = %.3f of depth 0"
                  % (r["depth"]["tokens_per_s"], r["depth"]["ratio_to_depth0"]), flush=True)
    q8 = next((r for r in results if r["shape"] == "135M" and r["type_name"] == "Q8_0"), None)
    if q8:
        g = grammar_mask(q8["decode"]["tokens_per_s"])
        g["run"] = "grammar_mask"
        extra.append(g)
        print("grammar mask (JSON, %s, %d tokens): %.0f us mean, %.0f us max = %.3f of a 135M Q8_0 decode step"
              % (g["vocab"], g["n_vocab"], g["mean_us"], g["max_us"], g["share"]), flush=True)
    with open(os.path.join(OUT, "bench.json"), "w") as f:
        json.dump({"runs": results, "extra": extra, "targets": TARGETS}, f, indent=1)
    m = results[0]["machine"] if results else {}
    md = ["# cgpt bench (%s threads, %s; memory %.1f GB/s, F32 FMA %.1f GFLOP/s, int8 dot %.1f GOP/s)"
          % (results[0]["threads"] if results else "?", results[0]["simd"] if results else "?",
             m.get("bandwidth_gbs", 0), m.get("fma_gflops", 0), m.get("int8_gops", 0)), "",
          "| shape | type | file MiB | load s | peak RSS MiB | pp512 tok/s | of peak | decode tok/s | of bound |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        md.append("| %s | %s | %.0f | %.2f | %.0f | %.1f | %.3f (%s) | %.2f | %.3f |"
                  % (r["shape"], r["type_name"], r["file_bytes"] / 2**20, r["load_seconds"], r["peak_rss_bytes"] / 2**20,
                     r["prefill"]["tokens_per_s"], r["prefill"]["ratio"], r["prefill"]["peak"],
                     r["decode"]["tokens_per_s"], r["decode"]["ratio"]))
    with open(os.path.join(OUT, "bench.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    if results:
        svg(results, os.path.join(OUT, "bench.svg"))

    # the targets
    bad = 0

    def verdict(ok, what):
        nonlocal bad
        bad += not ok
        print("%s: %s" % ("PASS" if ok else "FAIL", what))

    by = {(r["shape"], r["type_name"]): r for r in results}
    for s in shapes:
        q8 = by.get((s, "Q8_0"))
        for t in types:
            r = by.get((s, t))
            if q8 and r and t not in FLOAT_TYPES and t != "Q8_0":
                ratio = r["prefill"]["tokens_per_s"] / q8["prefill"]["tokens_per_s"]
                verdict(ratio >= TARGETS["prefill_vs_q8"], "%s %s pp512 >= %.1f of Q8_0's (%.2f)"
                        % (s, t, TARGETS["prefill_vs_q8"], ratio))
        for t in types:
            r = by.get((s, t))
            if r:
                tgt = TARGETS["decode_1b" if s == "1B" else "decode_135m"]
                verdict(r["decode"]["ratio"] >= tgt, "%s %s decode >= %.1f of the bandwidth bound (%.3f)"
                        % (s, t, tgt, r["decode"]["ratio"]))
    r = by.get(("1B", "Q8_0"))
    if r:
        verdict(r["prefill"]["ratio"] >= TARGETS["q8_prefill_int8"], "1B Q8_0 pp512 >= %.1f of the int8 dot peak "
                "(%.3f)" % (TARGETS["q8_prefill_int8"], r["prefill"]["ratio"]))
    for t in ("F16", "BF16"):
        r = by.get(("1B", t))
        if r:
            verdict(r["prefill"]["ratio"] >= TARGETS["float_prefill_fma"], "1B %s pp512 >= %.1f of the F32 FMA peak "
                    "(%.3f)" % (t, TARGETS["float_prefill_fma"], r["prefill"]["ratio"]))
    for r in extra:
        if r.get("run") == "batched16":
            verdict(r["batched"]["ratio_to_one"] >= TARGETS["batched_16"], "135M %s 16 sequences >= %.0fx one (%.2fx)"
                    % (r["type_name"], TARGETS["batched_16"], r["batched"]["ratio_to_one"]))
        if r.get("run") == "grammar_mask":
            verdict(r["share"] <= TARGETS["grammar_mask"], "a full JSON grammar mask <= %.2f of a 135M Q8_0 decode "
                    "step (%.3f; drawn tokens are checked alone first, so most steps pay less)"
                    % (TARGETS["grammar_mask"], r["share"]))
        if r.get("run") == "depth4096":
            verdict(r["depth"]["ratio_to_depth0"] >= TARGETS["depth_4096"], "135M Q4_K_M decode at depth 4096 >= %.1f "
                    "of depth 0 (%.3f)" % (TARGETS["depth_4096"], r["depth"]["ratio_to_depth0"]))
    print("bench: %s; table %s, chart %s" % ("all targets met" if not bad else "%d targets missed" % bad,
                                             os.path.join(OUT, "bench.md"), os.path.join(OUT, "bench.svg")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
