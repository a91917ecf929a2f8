#!/usr/bin/python3
"""test_bench.py - `cgpt bench --json` (issue 16's yardstick) on the built-in
model: every measure is there and positive, and the ratios are what the
documented formulas make of the run's own figures, with the weight bytes
and parameters checked against tests/ref/gguf_np.py's reading of the file
(the tensors each token's matmuls read: every matrix but position and
token embeddings, unless the output is tied to the token embedding).
Also the text output's lines and the option errors.

Usage: /usr/bin/python3 tests/cli/test_bench.py [CGPT]
Ends with "test_bench: N passed, M failed" (exit 1 if any failed)."""
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
MODEL = os.path.join(ROOT, "models", "cgpt-mini.gguf")
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import gguf_np  # noqa: E402

passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s: %s" % (what, str(detail)[:800]))


def close(a, b, rel=1e-3):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def run(*args):
    return subprocess.run([CGPT, "bench", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def main():
    g = gguf_np.load(MODEL)
    tied = "output.weight" not in g.tensors
    want_bytes = want_params = 0
    for name, t in g.tensors.items():
        if len(t.ne) < 2 or name == "position_embd.weight" or (name == "token_embd.weight" and not tied):
            continue
        want_bytes += t.nbytes
        want_params += math.prod(t.ne)
    g.close()

    p = run("-m", MODEL, "-p", "32", "-n", "8", "-b", "4", "-d", "40", "-r", "1", "-t", "2", "--json")
    check(p.returncode == 0, "bench --json runs", p.stderr)
    try:
        j = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        check(False, "one JSON object", "%s: %r" % (e, p.stdout[-300:]))
        return finish()
    check(j.get("weight_bytes") == want_bytes, "weight bytes: the matmul tensors' bytes",
          "%r, want %d" % (j.get("weight_bytes"), want_bytes))
    check(j.get("params") == want_params, "params: the matmul tensors' elements",
          "%r, want %d" % (j.get("params"), want_params))
    check(j.get("file_bytes") == os.path.getsize(MODEL), "file bytes", j.get("file_bytes"))
    check(j.get("type") == "F16" and j.get("arch") == "llama", "type and arch", (j.get("type"), j.get("arch")))
    check(j.get("threads") == 2, "threads", j.get("threads"))
    m = j.get("machine", {})
    check(all(m.get(k, 0) > 0 for k in ("bandwidth_gbs", "fma_gflops", "int8_gops")),
          "the machine's limits measured", m)
    check(j.get("load_seconds", -1) >= 0, "load time", j.get("load_seconds"))
    check(j.get("peak_rss_bytes", 0) >= want_bytes // 2 and j.get("peak_rss_bytes") < (512 << 20),
          "peak RSS: the model's, not the bandwidth probe's GiB", j.get("peak_rss_bytes"))
    pre, dec = j.get("prefill", {}), j.get("decode", {})
    check(pre.get("tokens") == 32 and pre.get("tokens_per_s", 0) > 0, "prefill measured", pre)
    check(pre.get("peak") == "fma", "an F16 model's prefill is measured against the FMA peak", pre.get("peak"))
    check(close(pre.get("gops", 0), pre.get("tokens_per_s", 0) * 2 * want_params / 1e9),
          "prefill GOP/s = tokens/s x 2 x params", pre)
    check(close(pre.get("ratio", 0), pre.get("gops", 0) / m.get("fma_gflops", 1)), "prefill ratio = GOP/s / peak",
          pre)
    check(dec.get("tokens") == 8 and dec.get("tokens_per_s", 0) > 0, "decode measured", dec)
    check(close(dec.get("bound_tokens_per_s", 0), m.get("bandwidth_gbs", 0) * 1e9 / want_bytes),
          "decode bound = bandwidth / weight bytes", dec)
    check(close(dec.get("ratio", 0), dec.get("tokens_per_s", 0) / dec.get("bound_tokens_per_s", 1)),
          "decode ratio = tokens/s / bound", dec)
    b, d = j.get("batched", {}), j.get("depth", {})
    check(b.get("seqs") == 4 and b.get("tokens_per_s", 0) > 0 and close(
        b.get("ratio_to_one", 0), b.get("tokens_per_s", 0) / dec.get("tokens_per_s", 1)), "batched decode", b)
    check(d.get("depth") == 40 and d.get("tokens_per_s", 0) > 0 and close(
        d.get("ratio_to_depth0", 0), d.get("tokens_per_s", 0) / dec.get("tokens_per_s", 1)), "decode at depth", d)

    check(j.get("kv_type") == "f16", "the KV cache is F16 unless asked", j.get("kv_type"))
    p = run("-m", MODEL, "-p", "0", "-n", "4", "-r", "1", "-t", "1", "--kv-type", "f32", "--json")
    j32 = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {}
    check(j32.get("kv_type") == "f32" and j32.get("decode", {}).get("tokens_per_s", 0) > 0
          and "prefill" not in j32, "--kv-type f32, -p 0: decode only, on an F32 cache", p.stdout + p.stderr)
    p = run("-m", MODEL, "-p", "0", "-n", "4", "-r", "1", "-t", "1", "--kv-type", "q8_0", "--json")
    jq8 = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {}
    check(jq8.get("kv_type") == "q8_0" and jq8.get("decode", {}).get("tokens_per_s", 0) > 0
          and jq8.get("peak_rss_bytes", 0) > 0, "--kv-type q8_0: decode on a Q8_0 cache", p.stdout + p.stderr)
    p = run("-m", MODEL, "--kv-type", "q3")
    check(p.returncode == 1 and "--kv-type" in p.stderr, "an unknown --kv-type is refused", p.stderr)

    p = run("-m", MODEL, "-p", "16", "-n", "4", "-r", "1", "-t", "1")
    lines = [ln.split(":")[0] for ln in p.stdout.splitlines()]
    check(p.returncode == 0 and lines == ["model", "machine", "load", "prefill", "decode"], "the text report's lines",
          p.stdout + p.stderr)
    check("int8 dot peak" in p.stdout and "bandwidth bound" in p.stdout, "the text names its limits", p.stdout)
    p = run("-m", MODEL, "-p", "16", "-n", "0", "-b", "4", "-r", "1")
    check(p.returncode == 1 and "-n" in p.stderr, "-b without decode tokens is refused", p.stderr)
    p = run("-m", MODEL, "-b", "100000")
    check(p.returncode == 1 and "-b" in p.stderr, "-b past its limit is refused", p.stderr)
    return finish()


def finish():
    print("test_bench: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
