#!/usr/bin/python3
"""End-to-end checks of `cgpt train` on the tiny corpus.

usage: test_train.py BUILD_DIR CORPUS_DIR

  tokenizer -> pretrain -> resume after SIGINT is bit-exact (same losses, same
  final file bytes) -> 2 MPI ranks == 1 rank with the same global batch ->
  sft -> the checkpoint chats and evaluates -> a NaN stops the run with the
  last good checkpoint intact -> disk full while checkpointing keeps the
  previous checkpoint -> corrupt checkpoints and corpora are clear errors.
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD, CORPUS = sys.argv[1], sys.argv[2]
CGPT = os.path.join(BUILD, "cgpt")
failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print("FAIL:", what, flush=True)


def run(args, env=None, timeout=600, expect=0, preexec=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(args, capture_output=True, text=True, env=e, timeout=timeout,
                       preexec_fn=preexec)
    if expect is not None and p.returncode != expect:
        print("command:", " ".join(args), "\nexit", p.returncode, "\nstderr:", p.stderr[-3000:],
              flush=True)
    return p


SHAPE = ["--embd", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--head-dim", "16",
         "--ff", "128", "--ctx", "64"]


def losses(d):
    with open(os.path.join(d, "train.csv")) as f:
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(f)]


def latest(d):
    return os.path.join(d, open(os.path.join(d, "latest")).read().strip())


def builtin_model():
    """The committed model: at most 40 MB, and `cgpt chat` with no -m uses it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    m = os.path.join(root, "models", "cgpt-mini.gguf")
    check(os.path.exists(m), "models/cgpt-mini.gguf is committed")
    if not os.path.exists(m):
        return
    check(os.path.getsize(m) <= 40 << 20, f"built-in model is {os.path.getsize(m)} bytes (<= 40 MB)")
    p = subprocess.run([os.path.abspath(CGPT), "chat", "--temp", "0", "-n", "48"],
                       input="Who are you?\nWhat is the capital of France?\n", capture_output=True,
                       text=True, timeout=120, cwd=root)
    lines = p.stdout.strip().splitlines()
    check(p.returncode == 0 and len(lines) == 2 and all(l.strip() for l in lines),
          f"cgpt chat with no -m answers two lines from the built-in model: {p.stdout!r} {p.stderr[-300:]!r}")
    print("built-in model says:", lines)


def main():
    builtin_model()
    tmp = tempfile.mkdtemp(prefix="cgpt-train-")
    try:
        tests(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_train: {checks - len(failures)}/{checks} checks passed")
    sys.exit(1 if failures else 0)


def tests(tmp):
    pre = os.path.join(CORPUS, "pretrain.jsonl")
    sft = os.path.join(CORPUS, "sft.jsonl")
    tok = os.path.join(tmp, "tok.gguf")
    p = run([CGPT, "train", "tokenizer", "-i", pre, "-i", sft, "--vocab", "512", "-o", tok])
    check(p.returncode == 0 and os.path.exists(tok), "train tokenizer")

    base = [CGPT, "train", "pretrain", "--tokenizer", tok, "-i", pre] + SHAPE + [
        "--batch", "4", "--steps", "24", "--warmup", "4", "--lr", "3e-3", "--threads", "2"]
    a = os.path.join(tmp, "a")
    p = run(base + ["-o", a, "--ckpt-every", "8"])
    check(p.returncode == 0, "pretrain 24 steps")
    la = losses(a)
    check(len(la) == 24, f"24 CSV lines (got {len(la)})")
    check(float(la[-1][1]) < float(la[0][1]) - 0.5,
          f"loss falls over 24 steps ({la[0][1]} -> {la[-1][1]})")
    for f in ("loss.svg", "latest"):
        check(os.path.exists(os.path.join(a, f)), f"pretrain wrote {f}")
    svg = open(os.path.join(a, "loss.svg")).read()
    check(svg.startswith("<svg") and "<polyline" in svg, "loss.svg is an SVG with a curve")

    # Resume after SIGINT: same losses and the same final model bytes.
    b = os.path.join(tmp, "b")
    proc = subprocess.Popen(base + ["-o", b, "--ckpt-every", "100"], stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, CGPT_TRAIN_SLOW_MS="150"))
    t0 = time.time()
    while time.time() - t0 < 120:
        if os.path.exists(os.path.join(b, "train.csv")) and len(losses(b)) >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    check(proc.returncode == 0 and "stopped by a signal" in err, "SIGINT: checkpoint and exit 0")
    n_stop = len(losses(b))
    check(0 < n_stop < 24, f"stopped part-way (at step {n_stop})")
    p = run(base + ["-o", b, "--ckpt-every", "100", "--resume"])
    check(p.returncode == 0 and "resuming from" in p.stderr, "resume runs")
    lb = losses(b)
    check(lb == la, "resumed run has the same losses, bit for bit, as the uninterrupted one")
    fa, fb = latest(a) + ".gguf", latest(b) + ".gguf"
    check(open(fa, "rb").read() == open(fb, "rb").read(), "resumed final model == uninterrupted")

    # The checkpoint is a model: it runs in the engine.
    p = run([CGPT, "run", "-m", fa, "-p", "The", "-n", "8", "--temp", "0"])
    check(p.returncode == 0, "pretrain checkpoint runs in cgpt run")

    # Resume with other data is refused.
    other = os.path.join(tmp, "other.jsonl")
    with open(other, "w") as f:
        f.write(json.dumps({"text": "something else entirely " * 200}) + "\n")
    p = run([CGPT, "train", "pretrain", "-i", other, "-o", b, "--resume", "--steps", "30"], expect=1)
    check(p.returncode == 1 and "data differ" in p.stderr, "resume with other data is refused")

    # Two MPI ranks with micro-batch 2 == one rank with micro-batch 4.
    if shutil.which("mpirun"):
        c = os.path.join(tmp, "c")
        mpi = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"]
        args2 = [x for x in base if x not in ()]
        args2[args2.index("--batch") + 1] = "2"
        args2[args2.index("--threads") + 1] = "1"
        # OpenMPI's own allocations outlive MPI_Finalize: leak checking (ASan
        # builds) stays on for the single-rank runs, off for the MPI ranks.
        p = run(mpi + args2 + ["-o", c, "--ckpt-every", "100"], timeout=600,
                env={"ASAN_OPTIONS": "detect_leaks=0"})
        check(p.returncode == 0, "mpirun -np 2 pretrain")
        if p.returncode == 0:
            lc = losses(c)
            worst = max(abs(float(x[1]) - float(y[1])) / abs(float(y[1])) for x, y in zip(lc, la))
            check(len(lc) == len(la) and worst < 1e-4,
                  f"2 ranks == 1 rank: {len(lc)} losses, worst relative difference {worst:.2e}")
            print(f"mpi: 2 ranks vs 1 rank, worst relative loss difference {worst:.2e}")
    else:
        check(False, "mpirun not found")

    # NaN: reported with the step; the last checkpoint stays the last good one.
    d = os.path.join(tmp, "d")
    p = run(base + ["-o", d, "--ckpt-every", "8"], env={"CGPT_TRAIN_INJECT_NAN_STEP": "12"},
            expect=1)
    check(p.returncode == 1 and "step 13: non-finite" in p.stderr,
          "NaN gradient is reported with its step")
    check(open(os.path.join(d, "latest")).read().strip() == "ckpt-00000008",
          "after the NaN the latest checkpoint is step 8")
    p = run(base + ["-o", d, "--ckpt-every", "8", "--resume"])
    check(p.returncode == 0 and losses(d) == la, "resume from the last good checkpoint == clean run")

    # Disk full while checkpointing: the previous checkpoint survives.
    e = os.path.join(tmp, "e")
    run(base + ["-o", e, "--ckpt-every", "8", "--steps", "8"])
    before = open(latest(e) + ".opt", "rb").read()
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    p = run(base + ["-o", e, "--ckpt-every", "8", "--steps", "16", "--resume"], expect=1,
            preexec=small_files)
    check(p.returncode == 1, f"disk full while checkpointing is an error ({p.stderr.strip()[-200:]})")
    check(open(os.path.join(e, "latest")).read().strip() == "ckpt-00000008"
          and open(latest(e) + ".opt", "rb").read() == before,
          "the previous checkpoint is intact after a failed save")
    check(not [f for f in os.listdir(e) if f.endswith(".tmp")], "no temporary files left behind")
    p = run(base + ["-o", e, "--ckpt-every", "8", "--steps", "16", "--resume"])
    check(p.returncode == 0, "resume after the failed save works")

    # Corrupt checkpoints are clear errors.
    opt = latest(a) + ".opt"
    raw = open(opt, "rb").read()
    for what, data in (("truncated", raw[: len(raw) // 2]), ("flipped", raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]),
                       ("empty", b"")):
        f = os.path.join(tmp, "corrupt")
        shutil.rmtree(f, ignore_errors=True)
        shutil.copytree(a, f)
        open(latest(f) + ".opt", "wb").write(data)
        p = run(base + ["-o", f, "--resume"], expect=1)
        msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        check(p.returncode == 1 and msg.startswith("cgpt train pretrain: ") and ".opt" in msg,
              f"{what} checkpoint: one clear error line ({msg})")

    # Corrupt corpora are clear errors naming file:line.
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps({"text": "fine"}) + "\n" + '{"text": "cut' + "\n")
    p = run([CGPT, "train", "pretrain", "--tokenizer", tok, "-i", bad, "-o", os.path.join(tmp, "x")] + SHAPE,
            expect=1)
    check(p.returncode == 1 and "bad.jsonl:2" in p.stderr, "broken corpus line named file:line")

    # --init files whose math the trainer does not run are refused, naming why.
    # the model writer is a test helper: the plain build's, whichever cgpt is under test
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    gen = os.path.join(root, "build", "tools", "genmodel")
    small = ["--arch", "llama", "--vocab", "300", "--embd", "32", "--layers", "1", "--heads", "2",
             "--kv-heads", "1", "--head-dim", "16", "--ff", "32", "--ctx", "32", "--type", "F32"]
    for what, extra, want in (("untied output", [], "output.weight"),
                              ("rope scaling", ["--tied", "--llama3-rope"], "rope_freqs"),
                              ("Q8_0 weights", ["--tied", "--type", "Q8_0", "--embd", "64"], "F32 or F16"),
                              ("another architecture", ["--tied", "--arch", "qwen2"], "llama")):
        f = os.path.join(tmp, "init.gguf")
        run([gen] + small + extra + ["--seed", "1", "-o", f])
        p = run([CGPT, "train", "sft", "--init", f, "-i", sft, "-o", os.path.join(tmp, "y")], expect=1)
        msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        check(p.returncode == 1 and want in msg and "init.gguf" in msg,
              f"sft --init with {what} is refused ({msg})")

    # Chat-tune the pretrained checkpoint; the result chats and evaluates.
    s = os.path.join(tmp, "s")
    p = run([CGPT, "train", "sft", "--init", fa, "-i", sft, "-o", s, "--batch", "4", "--steps", "12",
             "--threads", "2", "--ckpt-every", "6", "--val", os.path.join(CORPUS, "sft_eval.jsonl"),
             "--eval-every", "6", "--eval-rows", "8"])
    check(p.returncode == 0, "sft 12 steps")
    if p.returncode == 0:
        ls = losses(s)
        check(len(ls) == 12, "sft CSV has 12 lines")
        fs = latest(s) + ".gguf"
        chat = subprocess.run([CGPT, "chat", "-m", fs, "--temp", "0", "-n", "8"], input="hello\n",
                              capture_output=True, text=True, timeout=120)
        check(chat.returncode == 0, "the sft checkpoint chats (pipe mode)")
        p = run([CGPT, "eval", "-m", fs, "-f", os.path.join(CORPUS, "sft_eval.jsonl"),
                 "--max-per-recipe", "3", "-n", "8", "--json"], timeout=300)
        ok = p.returncode == 0
        if ok:
            try:
                j = json.loads(p.stdout)
                ok = "recipes" in j and len(j["recipes"]) > 0
            except ValueError:
                ok = False
        check(ok, "cgpt eval --json on the sft checkpoint")


main()
