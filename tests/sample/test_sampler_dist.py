#!/usr/bin/python3
"""test_sampler_dist.py - the sampler's empirical distribution against NumPy.

For known logits, several temperatures and top-k / top-p / min-p settings,
build/tools/sampledist draws 200k tokens; NumPy computes the expected
distribution from the definitions in sampler.h (llama.cpp's chain: top-k on
the logits, top-p on softmax at temperature 1 of the survivors, min-p
relative to the largest probability, then softmax(logits / T) over what is
left) and every token's count must lie within 4 binomial sigmas (+1) of
N p; tokens outside the truncated set must never be drawn. The logprob the
sampler reports must equal NumPy's log_softmax of the logits (temperature 1,
before truncation).

    /usr/bin/python3 tests/sample/test_sampler_dist.py [build/tools/sampledist]

Prints one line per check and "N passed, N failed"; exits non-zero on failure.
Also prints (informational) the per-token cost at n_vocab 152064.
"""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "tools", "sampledist")
N = 200000


def run(logits, args, draws=N):
    inp = "\n".join("%.9g" % x for x in logits)
    out = subprocess.run([TOOL, "--draws", str(draws)] + args, input=inp, capture_output=True,
                         text=True, check=True).stdout
    return out


def expected(logits, temp, top_k=0, top_p=1.0, min_p=0.0):
    l = np.asarray(logits, dtype=np.float64)
    # total order: larger logit first, lower id first among equals
    order = np.lexsort((np.arange(len(l)), -l))
    n = len(l)
    if 0 < top_k < n:
        n = top_k
    keep = order[:n]
    if top_p < 1.0:
        w = np.exp(l[keep] - l[keep[0]])
        cum = np.cumsum(w / w.sum())
        hit = np.nonzero(cum >= top_p)[0]
        if len(hit):
            keep = keep[: hit[0] + 1]
    if min_p > 0:
        keep = keep[np.exp(l[keep] - l[keep[0]]) >= min_p]
    p = np.zeros(len(l))
    w = np.exp((l[keep] - l[keep[0]]) / temp)
    p[keep] = w / w.sum()
    return p


def main():
    passed = failed = 0

    def report(ok, what):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + what)
        if ok:
            passed += 1
        else:
            failed += 1

    rng = np.random.default_rng(7)
    small = [1.0, 0.5, 0.0, -0.5, -1.0, 2.0, 0.25, -2.0, 1.5, -0.75]
    wide = list(rng.normal(0, 1.5, 60))
    cases = [
        (small, 1.0, 0, 1.0, 0.0), (small, 0.5, 0, 1.0, 0.0), (small, 1.7, 0, 1.0, 0.0),
        (small, 0.8, 3, 1.0, 0.0), (small, 1.3, 0, 0.8, 0.0), (small, 0.7, 0, 1.0, 0.3),
        (small, 1.0, 5, 0.9, 0.1), (wide, 1.0, 0, 0.9, 0.0), (wide, 0.6, 20, 0.95, 0.05),
        (wide, 1.5, 0, 1.0, 0.02),
    ]
    for seed, (logits, t, k, tp, mp) in enumerate(cases):
        out = run(logits, ["--temp", str(t), "--top-k", str(k), "--top-p", str(tp), "--min-p",
                           str(mp), "--seed", str(seed + 1)])
        counts = np.array([int(x) for x in out.split()])
        p = expected(logits, t, k, tp, mp)
        mean, sd = N * p, np.sqrt(N * p * (1 - p))
        dev = np.abs(counts - mean)
        ok = bool(np.all(dev <= 4 * sd + 1))
        z = np.max(np.where(sd > 0, dev / np.maximum(sd, 1e-300), np.where(dev > 0, np.inf, 0)))
        report(ok, "V %d T %g top_k %d top_p %g min_p %g: kept %d, largest deviation %.2f sigma"
               % (len(logits), t, k, tp, mp, int(np.sum(p > 0)), z))

    # logprob: log_softmax at temperature 1 over the whole vocabulary
    out = run(small, ["--temp", "0.7", "--top-k", "4", "--logprob", "--seed", "5"], draws=20000)
    rows = [line.split() for line in out.splitlines()]
    ls = np.asarray(small, dtype=np.float64)
    want = ls - ls.max() - np.log(np.exp(ls - ls.max()).sum())
    got = np.array([float(r[1]) for r in rows])
    seen = np.array([int(r[0]) > 0 for r in rows])
    ok = bool(np.all(np.abs(got[seen] - want[seen]) <= 1e-5)) and seen.sum() == 4
    report(ok, "logprob = log_softmax(logits) for the %d drawn tokens (max |diff| %.2g)"
           % (seen.sum(), np.max(np.abs(got[seen] - want[seen]))))

    # informational: per-token cost at Qwen's vocabulary size
    big = rng.normal(0, 3, 152064)
    for name, args in [("top_k 40 (defaults chain)", ["--top-k", "40", "--top-p", "0.95",
                                                      "--min-p", "0.05", "--temp", "0.8"]),
                       ("top_p 0.95 only", ["--top-p", "0.95", "--temp", "0.8"]),
                       ("no truncation", ["--temp", "0.8"])]:
        out = run(big, args + ["--bench"], draws=200)
        print("info %s at n_vocab 152064: %s" % (name, out.strip()))

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
