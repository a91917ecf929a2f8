#!/usr/bin/python3
"""test_torch.py - the trainable model's loss, gradients and AdamW steps
(src/train/tmodel.c, optim.c via build/tools/traingrad) against PyTorch
autograd and torch.optim.AdamW (tests/train/torch_ref.py, float64).

    /usr/bin/python3 tests/train/test_torch.py [build/tools]

For each case build/tools/genmodel writes a small random F32 llama model with
tied embeddings (GQA ratios 1/2/4, NH*HS != C, head_dim 2..24, vocab
300..1000); a seeded random batch (B 1..3, T 1..16, some targets -1, ids 0
and V-1 present) goes to traingrad and to torch_ref.

Gradient cases (loss_scale = 1/n_targets):
  loss_sum: relative error <= 1e-5; n_targets equal.
  every tensor: max|c - t| / max|t| <= 1e-4 (t: torch float64 gradient).
      The elementwise worst relative error (over elements with |t| >= 1e-2
      max|t|) is reported too.
  grad norm (optim_grad_norm) vs the float64 norm of torch's gradient: 1e-5.
  logits (first case): max|c - t| <= 1e-5 * max|t|.
  --accum 2: exactly twice the --accum 1 gradient (rel 1e-6).
  --threads 2: the same tolerances, and bit-identical on a second run.
AdamW cases: 10 steps (lr 1e-3, wd 0.1, betas 0.9/0.95, eps 1e-8, clip 1.0,
  0.05 and 100, so that clipping acts / never acts) vs torch.optim.AdamW
  with the norm vectors in a weight_decay 0 group and
  torch.nn.utils.clip_grad_norm_ (see adam_case): every step's loss rel
  1e-5, gradient 1e-4 per tensor and pre-clip norm rel 1e-5; final
  parameters max|c - t| / max|t| <= 1e-5 per tensor when torch steps with the
  C run's gradients; losses rel 1e-5 when torch steps with its own.
Rejections: an untied model and a target id >= V make traingrad exit 1.

Prints one line per case and "N passed, N failed"; exits non-zero on any
failure.
"""

import os
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from torch_ref import TorchRef  # noqa: E402

LOSS_TOL = 1e-5
GRAD_TOL = 1e-4
NORM_TOL = 1e-5
LOGITS_TOL = 1e-5
ACCUM_TOL = 1e-6
ADAM_LOSS_TOL = 1e-5
ADAM_PARAM_TOL = 1e-5
TINY = 1e-30

# name, vocab, embd, layers, heads, kv_heads, head_dim, ff, B, T, std, extra genmodel flags
GRAD_CASES = [
    ("gqa1-hd16", 300, 64, 2, 4, 4, 16, 160, 2, 9, 0.1, []),
    ("gqa2-hd12-qdim48-C40", 517, 40, 2, 4, 2, 12, 96, 3, 16, 0.15, []),
    ("gqa4-hd8-B1", 1000, 48, 1, 8, 2, 8, 128, 1, 16, 0.2, []),
    ("gqa2-T1", 401, 32, 2, 2, 1, 16, 64, 3, 1, 0.1, []),
    ("gqa2-hd2-L3", 300, 24, 3, 6, 3, 2, 40, 2, 7, 0.3, []),
    ("gqa4-hd24-qdim96-C32-base500", 700, 32, 2, 4, 1, 24, 80, 2, 13, 0.1,
     ["--rope-base", "500"]),
    ("gqa2-hd16-C128", 1000, 128, 2, 8, 4, 16, 344, 2, 16, 0.05, []),
    ("no-targets", 333, 32, 1, 2, 2, 16, 48, 1, 5, 0.1, []),
]
THREAD_CASES = {"gqa2-hd12-qdim48-C40", "gqa2-hd16-C128"}
# case name, clip
# (norms here are 2..15: clip 1.0 and 0.05 act at every step, 100 never)
ADAM_CASES = [("gqa1-hd16", 1.0), ("gqa2-hd12-qdim48-C40", 1.0),
              ("gqa4-hd24-qdim96-C32-base500", 0.05), ("gqa2-T1", 100.0)]
ADAM = dict(steps=10, lr=1e-3, wd=0.1, beta1=0.9, beta2=0.95, eps=1e-8)


class Runner:
    def __init__(self, tools, tmp):
        self.genmodel = os.path.join(tools, "genmodel")
        self.tool = os.path.join(tools, "traingrad")
        self.tmp = tmp
        self.passed = self.failed = 0

    def result(self, ok, line):
        print(("ok   " if ok else "FAIL ") + line, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def model(self, case, tied=True):
        name, V, C, L, NH, NKV, HS, F, _, _, std, extra = case
        path = os.path.join(self.tmp, name + ("" if tied else "-untied") + ".gguf")
        cmd = [self.genmodel, "--arch", "llama", "--vocab", str(V), "--embd", str(C),
               "--layers", str(L), "--heads", str(NH), "--kv-heads", str(NKV),
               "--head-dim", str(HS), "--ff", str(F), "--std", str(std),
               "--seed", str(sum(map(ord, name))), "-o", path] + extra
        if tied:
            cmd.append("--tied")
        subprocess.run(cmd, check=True)
        return path

    def batch(self, case, seed):
        name, V = case[0], case[1]
        B, T = case[8], case[9]
        rng = np.random.default_rng(seed)
        tokens = rng.integers(0, V, (B, T)).astype(np.int32)
        targets = rng.integers(0, V, (B, T)).astype(np.int32)
        targets[rng.random((B, T)) < 0.25] = -1
        tokens.flat[0], tokens.flat[-1] = V - 1, 0
        targets.flat[-1] = V - 1
        if B == 3:
            targets[2, :] = -1                  # a row with nothing counted
        if name == "no-targets":
            targets[:] = -1
        neg = targets == -1                     # any negative id is ignored
        targets[neg] = rng.choice([-1, -100], size=int(neg.sum()))
        return tokens, targets

    def write_batch(self, tokens, targets, tag):
        path = os.path.join(self.tmp, tag + ".batch")
        B, T = tokens.shape
        with open(path, "wb") as f:
            f.write(struct.pack("<ii", B, T))
            f.write(tokens.astype("<i4").tobytes())
            f.write(targets.astype("<i4").tobytes())
        return path

    def run_tool(self, args):
        p = subprocess.run([self.tool] + args, capture_output=True, text=True)
        return p.returncode, p.stderr.strip()

    def traingrad(self, model, batch, extra=()):
        out = os.path.join(self.tmp, "out.bin")
        rc, err = self.run_tool(["-m", model, "--batch", batch, "--out", out] + list(extra))
        if rc != 0:
            raise RuntimeError(f"traingrad exited {rc}: {err}")
        return open(out, "rb").read()


def parse_grad(buf):
    if buf[:4] != b"TGG1":
        raise ValueError("bad gradient file magic")
    loss, nt, norm, n = struct.unpack_from("<dqdQ", buf, 4)
    g = np.frombuffer(buf, "<f4", count=n, offset=4 + 32)
    if len(buf) != 36 + 4 * n:
        raise ValueError(f"gradient file: {len(buf)} bytes, want {36 + 4 * n}")
    return loss, nt, norm, g


def parse_adam(buf):
    if buf[:4] != b"TGA1":
        raise ValueError("bad AdamW file magic")
    k, nt, n = struct.unpack_from("<QqQ", buf, 4)
    rec = np.frombuffer(buf, "<f8", count=2 * k, offset=28).reshape(k, 2)
    p = np.frombuffer(buf, "<f4", count=n, offset=28 + 16 * k)
    if len(buf) != 28 + 16 * k + 4 * n:
        raise ValueError("AdamW file: bad size")
    return rec[:, 0], rec[:, 1], nt, p


def compare_tensors(ref, c_flat, want):
    """Per tensor max|c - t| / max(max|t|, floor); returns (worst, its tensor,
    elementwise worst rel, its tensor and index, per-tensor dict)."""
    worst, worst_name, ew, ew_where = 0.0, "", 0.0, ""
    per = {}
    for name, rows, cols, off in ref.layout():
        c = c_flat[off:off + rows * cols].astype(np.float64)
        t = np.asarray(want[name], np.float64).reshape(-1)
        scale = max(np.max(np.abs(t)), TINY)
        e = np.max(np.abs(c - t)) / scale
        per[name] = e
        if e > worst or not np.isfinite(e):
            worst, worst_name = e, name
        big = np.abs(t) >= 1e-2 * scale
        if big.any():
            r = np.abs(c - t)[big] / np.abs(t)[big]
            i = int(np.argmax(r))
            if r[i] > ew:
                ew, ew_where = r[i], f"{name}[{int(np.flatnonzero(big)[i])}]"
    return worst, worst_name, ew, ew_where, per


def rel(a, b):
    return abs(a - b) / max(abs(b), TINY)


def grad_case(r, case, threads_too):
    name = case[0]
    model = r.model(case)
    tokens, targets = r.batch(case, seed=len(name))
    batch = r.write_batch(tokens, targets, name)
    ref = TorchRef.from_gguf(model, torch.float64)
    n_counted = int((targets >= 0).sum())
    want = ref.loss_and_grads(tokens, targets, 1.0 / n_counted if n_counted else 1.0)
    want_norm = float(np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in want.grads.values())))
    lpath = os.path.join(r.tmp, "logits.bin")
    runs = [("1 thread", ["--threads", "1", "--logits", lpath])]
    if threads_too:
        runs.append(("2 threads", ["--threads", "2"]))
    bufs = {}
    for label, extra in runs:
        buf = r.traingrad(model, batch, extra)
        bufs[label] = buf
        loss, nt, norm, g = parse_grad(buf)
        worst, wname, ew, ewhere, _ = compare_tensors(ref, g, want.grads)
        lerr = rel(loss, want.loss_sum) if want.loss_sum else abs(loss)
        nerr = rel(norm, want_norm) if want_norm else abs(norm)
        ok = (nt == want.n_targets and lerr <= LOSS_TOL and worst <= GRAD_TOL
              and nerr <= NORM_TOL and g.size == ref.n_params() and np.all(np.isfinite(g)))
        if want.n_targets == 0:
            ok = ok and loss == 0.0 and not np.any(g)
        extra_s = ""
        if label == "1 thread":
            lg = np.fromfile(lpath, "<f4").reshape(want.logits.shape)
            lgerr = np.max(np.abs(lg - want.logits)) / np.max(np.abs(want.logits))
            ok = ok and lgerr <= LOGITS_TOL
            extra_s = f", logits {lgerr:.1e}"
        r.result(ok, f"grad  {name} ({label}): B {tokens.shape[0]} T {tokens.shape[1]} "
                 f"n_targets {nt}/{want.n_targets}, loss {loss:.6f} rel {lerr:.1e}, "
                 f"worst grad {worst:.1e} ({wname}), elementwise {ew:.1e} ({ewhere}), "
                 f"norm {norm:.4g} rel {nerr:.1e}{extra_s}")
    if threads_too:
        again = r.traingrad(model, batch, ["--threads", "2"])
        r.result(again == bufs["2 threads"], f"grad  {name}: 2 threads bit-identical on a rerun")
    return model, batch, parse_grad(bufs["1 thread"])


def accum_case(r, model, batch, one):
    _, _, _, g1 = one
    _, _, _, g2 = parse_grad(r.traingrad(model, batch, ["--accum", "2"]))
    err = np.max(np.abs(g2.astype(np.float64) - 2 * g1)) / max(np.max(np.abs(g1)) * 2, TINY)
    r.result(err <= ACCUM_TOL, f"accum 2 forward/backward without zeroing = 2x gradient: "
             f"rel {err:.1e}")


def torch_adamw(ref):
    a = ADAM
    lay = {n: rows for n, rows, _, _ in ref.layout()}
    decay = [t for n, t in ref.params.items() if lay[n] > 1]
    no_decay = [t for n, t in ref.params.items() if lay[n] == 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": a["wd"]},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=a["lr"], betas=(a["beta1"], a["beta2"]), eps=a["eps"])


def adam_case(r, case, clip):
    """Two comparisons of the C loop (zero, fwd, bwd, norm, clip, AdamW):
    forced: torch.optim.AdamW + clip_grad_norm_ stepped with the C run's own
        gradients (--step-grads), while torch's autograd gradient and loss at
        each step's parameters are checked against the C ones. Final
        parameters must agree to ADAM_PARAM_TOL.
    free: torch steps with its own float64 gradients; the losses must agree
        to ADAM_LOSS_TOL. Its final parameters are reported, not asserted:
        where a gradient element is near eps (1e-8), Adam's g / (|g| + eps)
        turns float32 rounding of that gradient (~1e-9 abs) into update
        differences of ~lr/10 (measured 6e-5 with a float32 torch run)."""
    name = case[0]
    a = ADAM
    model = r.model(case)
    tokens, targets = r.batch(case, seed=len(name))
    batch = r.write_batch(tokens, targets, name + "-adam")
    gpath = os.path.join(r.tmp, "step_grads.bin")
    losses, norms, nt, p = parse_adam(r.traingrad(model, batch, [
        "--adamw-steps", str(a["steps"]), "--lr", str(a["lr"]), "--wd", str(a["wd"]),
        "--beta1", str(a["beta1"]), "--beta2", str(a["beta2"]), "--eps", str(a["eps"]),
        "--clip", str(clip), "--step-grads", gpath]))
    step_grads = np.fromfile(gpath, "<f4").reshape(a["steps"], -1)

    # forced
    ref = TorchRef.from_gguf(model, torch.float64)
    opt = torch_adamw(ref)
    lay = ref.layout()
    names = [x[0] for x in lay]
    all_p = [ref.params[k] for k in names]
    g_worst, g_where, l_forced, n_forced, clipped = 0.0, "", 0.0, 0.0, 0
    for k in range(a["steps"]):
        opt.zero_grad()
        loss, n, _ = ref.loss(tokens, targets)
        (loss / n).backward()
        want = {nm: ref.params[nm].grad.numpy() for nm in names}
        e, en, _, _, _ = compare_tensors(ref, step_grads[k], want)
        if e > g_worst:
            g_worst, g_where = e, f"step {k} {en}"
        l_forced = max(l_forced, rel(losses[k], float(loss.detach())))
        for nm, rows, cols, off in lay:
            g = step_grads[k, off:off + rows * cols].astype(np.float64)
            ref.params[nm].grad = torch.from_numpy(g.reshape(ref.params[nm].shape).copy())
        if clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(all_p, clip))
        else:
            norm = float(np.linalg.norm(step_grads[k].astype(np.float64)))
        clipped += clip > 0 and norm > clip
        n_forced = max(n_forced, rel(norms[k], norm))
        opt.step()
    want_p = {k: v.detach().numpy() for k, v in ref.params.items()}
    p_worst, p_name, p_ew, p_ewhere, _ = compare_tensors(ref, p, want_p)

    # free
    ref = TorchRef.from_gguf(model, torch.float64)
    opt = torch_adamw(ref)
    all_p = list(ref.params.values())
    free_losses = []
    for _ in range(a["steps"]):
        opt.zero_grad()
        loss, n, _ = ref.loss(tokens, targets)
        (loss / n).backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(all_p, clip)
        opt.step()
        free_losses.append(float(loss.detach()))
    l_free = max(rel(c, t) for c, t in zip(losses, free_losses))
    free_p, _, _, _, _ = compare_tensors(ref, p, {k: v.detach().numpy()
                                                  for k, v in ref.params.items()})

    ok = (nt == n and l_forced <= ADAM_LOSS_TOL and l_free <= ADAM_LOSS_TOL
          and g_worst <= GRAD_TOL and n_forced <= NORM_TOL and p_worst <= ADAM_PARAM_TOL
          and np.all(np.isfinite(p)))
    if clip <= 1.0:
        ok = ok and clipped == a["steps"]  # clipping must act in these cases
    if clip >= 100.0:
        ok = ok and clipped == 0
    r.result(ok, f"adamw {name}: {a['steps']} steps clip {clip} (clipped {clipped}), loss "
             f"{losses[0]:.5f} -> {losses[-1]:.5f}, loss rel {l_forced:.1e} (free {l_free:.1e}), "
             f"step grads worst {g_worst:.1e} ({g_where}), norms rel {n_forced:.1e}, "
             f"final params worst {p_worst:.1e} ({p_name}), elementwise {p_ew:.1e} "
             f"({p_ewhere}); free-running params {free_p:.1e} (not asserted)")


def reject_cases(r):
    case = GRAD_CASES[0]
    tokens, targets = r.batch(case, seed=1)
    batch = r.write_batch(tokens, targets, "reject")
    out = os.path.join(r.tmp, "reject.bin")
    untied = r.model(case, tied=False)
    rc, err = r.run_tool(["-m", untied, "--batch", batch, "--out", out])
    r.result(rc == 1 and "output.weight" in err, f"reject untied model: rc {rc}: {err}")
    bad = targets.copy()
    bad[0, -1] = case[1]
    bbatch = r.write_batch(tokens, bad, "reject-target")
    model = r.model(case)
    rc, err = r.run_tool(["-m", model, "--batch", bbatch, "--out", out])
    r.result(rc == 1, f"reject target {case[1]} >= V: rc {rc}: {err}")


def main():
    tools = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build", "tools")
    t0 = time.time()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="cgpt-torch-") as tmp:
        r = Runner(tools, tmp)
        for i, case in enumerate(GRAD_CASES):
            try:
                model, batch, one = grad_case(r, case, case[0] in THREAD_CASES)
                if i == 1:
                    accum_case(r, model, batch, one)
            except Exception as e:  # a crash of the tool is a failed case, not a stop
                r.result(False, f"grad  {case[0]}: {type(e).__name__}: {e}")
        by_name = {c[0]: c for c in GRAD_CASES}
        for name, clip in ADAM_CASES:
            try:
                adam_case(r, by_name[name], clip)
            except Exception as e:
                r.result(False, f"adamw {name}: {type(e).__name__}: {e}")
        reject_cases(r)
    print(f"test_torch: {r.passed} passed, {r.failed} failed ({time.time() - t0:.1f} s)")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
