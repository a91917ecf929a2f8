#!/usr/bin/python3
"""test_archs.py - the newer architectures end to end: for each of gemma2,
gemma3, phi3, qwen2moe, qwen3moe, a Mixtral-style llama and gpt-oss, a
random model (build/tools/genmodel, the byte-level vocabulary so any text
tokenizes and the built-in ChatML template applies) is
  - described by `cgpt info` (window, soft-caps, experts, RoPE variant);
  - measured by `cgpt bench --json`, its weight bytes and parameters those
    tests/ref/gguf_np.py reads from the file (a mixture of experts: the
    share of the stacked expert tensors a token uses);
  - run by `cgpt run --temp 0`, by `cgpt chat` (two turns, greedy, twice:
    the same replies) and by `cgpt serve`, where three clients ask
    for the same greedy completion at once (so their rows share batches)
    and must get the same text as one alone.
The logits themselves are checked against the NumPy reference in
tests/ref/test_forward.py; this suite checks that every command carries them.

Usage: /usr/bin/python3 tests/cli/test_archs.py [CGPT [TOOLS]]
Ends with "test_archs: N passed, M failed" (exit 1 if any failed)."""
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
TOOLS = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.join(ROOT, "build", "tools")
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import gguf_np  # noqa: E402

COMMON = ["--vocab", "300", "--embd", "128", "--layers", "3", "--heads", "4", "--head-dim", "32",
          "--ff", "256", "--ctx", "256", "--std", "0.08"]
# (name, arch, extra genmodel flags, what `cgpt info` must say)
ARCHS = [
    ("gemma2", "gemma2", ["--kv-heads", "2", "--window", "4", "--attn-softcap", "2",
                          "--final-softcap", "5", "--tied"],
     ["window       4 positions on every other layer", "soft-caps    attention 2, final 5",
      "embd_scale"]),
    ("gemma3", "gemma3", ["--kv-heads", "1", "--window", "5", "--layers", "7", "--rope-base", "1e6",
                          "--rope-linear", "8"],
     ["window       5 positions on 5 of 6 layers", "linear x8; sliding layers: freq_base 10000"]),
    ("phi3", "phi3", ["--kv-heads", "4", "--fused-qkv", "--longrope", "64", "--window", "6"],
     ["LongRoPE factors from 64", "window       6 positions on every layer"]),
    ("qwen2moe", "qwen2moe", ["--kv-heads", "2", "--experts", "6", "--experts-used", "2",
                              "--ff-exp", "64", "--ff-shexp", "96"],
     ["experts      6, 2 used per token, n_ff 64, softmax, top-k; shared expert n_ff 96"]),
    ("qwen3moe", "qwen3moe", ["--kv-heads", "2", "--experts", "8", "--experts-used", "2",
                              "--ff-exp", "64"],
     ["experts      8, 2 used per token, n_ff 64, softmax, top-k renormalised"]),
    ("mixtral", "llama", ["--kv-heads", "2", "--experts", "4", "--experts-used", "2"],
     ["experts      4, 2 used per token, n_ff 256"]),
    ("gpt-oss", "gpt-oss", ["--kv-heads", "2", "--experts", "8", "--experts-used", "2",
                            "--ff-exp", "64", "--window", "4", "--yarn", "4"],
     ["YaRN x4 from 64", "top-k of the logits then softmax", "window       4 positions"]),
]

passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s: %s" % (what, str(detail)[:800]), flush=True)


def run(*args, timeout=300):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def active_weights(path):
    """Bytes and parameters a token's matmuls read, from the file (as
    test_bench.py, with the experts a token uses of the stacked ones)."""
    g = gguf_np.load(path)
    arch = g.metadata["general.architecture"]
    n_exp = int(g.metadata.get(arch + ".expert_count", 0))
    used = int(g.metadata.get(arch + ".expert_used_count", 0))
    tied = "output.weight" not in g.tensors
    nbytes = params = 0
    for name, t in g.tensors.items():
        if len(t.ne) < 2 or name == "position_embd.weight" or (name == "token_embd.weight" and not tied):
            continue
        b, p = t.nbytes, math.prod(t.ne)
        if n_exp and len(t.ne) == 3:
            b, p = b // n_exp * used, p // n_exp * used
        nbytes += b
        params += p
    g.close()
    return nbytes, params


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port, body):
    """The reply's JSON; a 503 (overloaded: this machine may be busy with
    other suites) is retried as the OpenAI clients do, and its body shown."""
    for attempt in range(6):
        req = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % port,
                                     data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            if e.code != 503 or attempt == 5:
                raise RuntimeError("HTTP %d: %s" % (e.code, detail)) from e
            print("note: 503, retrying: %s" % detail, flush=True)
            time.sleep(0.5 * (attempt + 1))


def serve_check(name, path, tmp):
    port = free_port()
    srv = subprocess.Popen([CGPT, "serve", "-m", path, "--port", str(port), "--no-web",
                            "--no-moderation", "--data-dir", os.path.join(tmp, "data-" + name),
                            "-t", "2", "--kv-type", "f32"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(300):  # GET /health: 200 once the model is loaded
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2) as r:
                    h = json.loads(r.read())
                if h.get("status") == "ok" and not h.get("models_loading"):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        body = {"messages": [{"role": "user", "content": "Tell me about windows and experts."}],
                "max_tokens": 24, "temperature": 0}
        try:
            alone = post(port, body)["choices"][0]["message"]["content"]
        except RuntimeError as e:
            check(False, "%s: serve answers" % name, e)
            return
        outs = [None] * 3

        def ask(i):
            try:
                outs[i] = post(port, body)["choices"][0]["message"]["content"]
            except Exception as e:  # noqa: BLE001 - reported below
                outs[i] = "error: %s" % e

        ts = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        check(alone and all(o == alone for o in outs),
              "%s: serve, three clients at once = one alone" % name, (alone, outs))
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()


def quantize_moe(tmp):
    """`cgpt quantize` of a mixture of experts (K-quant rows: 256 wide): the
    stacked experts follow the scheme's rules as their 2-D kin (ffn_down_exps
    as ffn_down), the router stays F32 (as llama.cpp keeps it), and the
    result runs."""
    src = os.path.join(tmp, "moe-f32.gguf")
    p = run(os.path.join(TOOLS, "genmodel"), "--arch", "qwen3moe", "--vocab", "300", "--embd", "256",
            "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "64", "--ff", "256",
            "--experts", "4", "--experts-used", "2", "--ff-exp", "256", "-o", src)
    check(p.returncode == 0, "moe quantize: genmodel", p.stderr)
    for scheme, down in (("Q4_K_M", ("Q4_K", "Q6_K")), ("Q3_K_M", ("Q4_K", "Q5_K")),
                         ("Q2_K", ("Q3_K",)), ("IQ4_XS", ("IQ4_XS", "Q5_K"))):
        out = os.path.join(tmp, "moe-%s.gguf" % scheme)
        p = run(CGPT, "quantize", src, out, scheme)
        check(p.returncode == 0, "moe quantize %s" % scheme, p.stderr)
        if p.returncode:
            continue
        g = gguf_np.load(out)
        types = {n: gguf_np.type_name(t.type) for n, t in g.tensors.items()}
        g.close()
        check(types["blk.0.ffn_gate_inp.weight"] == "F32" and types["blk.1.ffn_gate_inp.weight"] == "F32",
              "moe quantize %s: the router stays F32" % scheme, types)
        check(types["blk.0.ffn_down_exps.weight"] in down and types["blk.1.ffn_up_exps.weight"] != "F32",
              "moe quantize %s: experts quantized (down: %s)" % (scheme, "/".join(down)), types)
        p = run(CGPT, "run", "-m", out, "-p", "hi", "-n", "4", "--temp", "0", "-t", "2")
        check(p.returncode == 0, "moe quantize %s: runs" % scheme, p.stderr[-300:])


def main():
    with tempfile.TemporaryDirectory(prefix="cgpt-archs-") as tmp:
        for name, arch, flags, says in ARCHS:
            path = os.path.join(tmp, name + ".gguf")
            p = run(os.path.join(TOOLS, "genmodel"), "--arch", arch, *COMMON, *flags, "-o", path)
            check(p.returncode == 0, "%s: genmodel" % name, p.stderr)
            if p.returncode:
                continue
            p = run(CGPT, "info", "-m", path)
            check(p.returncode == 0 and ("(%s" % arch in p.stdout or arch in p.stdout),
                  "%s: info runs" % name, p.stderr)
            for s in says:
                check(s in p.stdout, "%s: info says '%s'" % (name, s), p.stdout[:1500])
            p = run(CGPT, "bench", "-m", path, "-p", "32", "-n", "8", "-r", "1", "-t", "2", "--json")
            check(p.returncode == 0, "%s: bench runs" % name, p.stderr)
            if p.returncode == 0:
                j = json.loads(p.stdout.strip().splitlines()[-1])
                wb, wp = active_weights(path)
                check(j.get("arch") == arch and j.get("weight_bytes") == wb and j.get("params") == wp,
                      "%s: bench's weights are the active ones" % name,
                      (j.get("arch"), j.get("weight_bytes"), wb, j.get("params"), wp))
                check(j.get("prefill", {}).get("tokens_per_s", 0) > 0
                      and j.get("decode", {}).get("tokens_per_s", 0) > 0,
                      "%s: bench measures prefill and decode" % name, j)
            p = run(CGPT, "run", "-m", path, "-p", "Hello there", "-n", "16", "--temp", "0", "-t", "2")
            check(p.returncode == 0 and "finish:" in p.stderr + p.stdout, "%s: run" % name,
                  p.stderr[-400:])
            chat = [subprocess.run([CGPT, "chat", "-m", path, "-n", "12", "--temp", "0", "-t", "2"],
                                   input="Hello there\nAnd a second turn\n", capture_output=True,
                                   text=True, errors="replace", timeout=120, cwd=ROOT)
                    for _ in range(2)]
            check(chat[0].returncode == 0 and chat[0].stdout.strip() and chat[0].stdout == chat[1].stdout,
                  "%s: chat (two turns, greedy: the same replies twice)" % name,
                  (chat[0].returncode, chat[0].stderr[-300:]))
            serve_check(name, path, tmp)
        quantize_moe(tmp)
    print("test_archs: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
