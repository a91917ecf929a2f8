#!/usr/bin/env python3
"""Split GGUF models load as one (model/model.c open_parts): a random model
cut into three files the way llama.cpp's gguf-split lays them out
(build/tools/ggufsplit: the first part holds the metadata, every part its
share of the tensors) generates exactly what the whole file generates
(greedy, the same prompt), and `cgpt info` and `cgpt list` (the parts in
a library directory, as `cgpt pull` leaves them) count the parameters of
all parts (the oracle: tests/ref/gguf_np.py's reading of the whole file). Loading a later part, a missing part, or a first part whose
split.count disagrees with its name is a one-line error.

Usage: tests/model/test_split.py [CGPT]   (run with /usr/bin/python3)."""
import json, math, os, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
TOOLS = os.path.join(ROOT, "build", "tools")
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import gguf_np  # noqa: E402
passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}: {str(detail)[:600]}")


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def main():
    tmp = tempfile.mkdtemp(prefix="cgpt-split-")
    try:
        whole = os.path.join(tmp, "m.gguf")
        p = run(os.path.join(TOOLS, "genmodel"), "--arch", "llama", "--vocab", "512", "--embd", "64",
                "--layers", "3", "--heads", "2", "--kv-heads", "1", "--ff", "128", "--ctx", "128",
                "--seed", "5", "-o", whole)
        if p.returncode:
            raise SystemExit(f"genmodel: {p.stderr}")
        p = run(os.path.join(TOOLS, "ggufsplit"), whole, "3", os.path.join(tmp, "m"))
        if p.returncode:
            raise SystemExit(f"ggufsplit: {p.stderr}")
        parts = [os.path.join(tmp, f"m-{k:05d}-of-00003.gguf") for k in (1, 2, 3)]
        check(all(os.path.getsize(q) > 0 for q in parts), "three parts written")
        gen = ["-p", "Once upon a time", "-n", "24", "--temp", "0"]
        a, b = run(CGPT, "run", "-m", whole, *gen), run(CGPT, "run", "-m", parts[0], *gen)
        check(a.returncode == 0 and b.returncode == 0 and a.stdout == b.stdout and len(a.stdout) > 20,
              "the split model generates what the whole file does", (a.stdout, b.stdout, b.stderr))
        ia, ib = run(CGPT, "info", "-m", whole), run(CGPT, "info", "-m", parts[0])
        pa = [l for l in ia.stdout.splitlines() if l.startswith("parameters:")]
        pb = [l for l in ib.stdout.splitlines() if l.startswith("parameters:")]
        check(pa and pa == pb, "info counts every part's parameters", (pa, pb))
        g = gguf_np.load(whole)
        want = sum(math.prod(t.ne) for t in g.tensors.values())
        g.close()
        lib = os.path.join(tmp, "lib", "o", "s", "F32")
        os.makedirs(lib)
        for q in parts:
            shutil.copy(q, lib)
        names = [os.path.basename(q) for q in parts]
        with open(os.path.join(lib, "manifest.json"), "w") as f:
            json.dump({"name": "o/s:F32", "source": "hf", "files": [{"name": n} for n in names],
                       "size": sum(os.path.getsize(q) for q in parts)}, f)
        p = run(CGPT, "list", "--json", "--models-dir", os.path.join(tmp, "lib"))
        rows = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        row = [r for r in rows if r.get("name") == "o/s:F32"]
        check(p.returncode == 0 and row and row[0].get("params") == want and "error" not in row[0],
              f"list counts every part's parameters ({want})", (p.stdout, p.stderr))
        p = run(CGPT, "run", "-m", parts[1], *gen)
        check(p.returncode == 1 and "load its first part" in p.stderr and p.stderr.count("\n") == 1,
              "a later part is refused with one line", p.stderr)
        os.rename(parts[2], parts[2] + ".away")
        p = run(CGPT, "run", "-m", parts[0], *gen)
        check(p.returncode == 1 and "part 3 of 3" in p.stderr, "a missing part is named", p.stderr)
        os.rename(parts[2] + ".away", parts[2])
        two = os.path.join(tmp, "x-00001-of-00002.gguf")
        shutil.copy(parts[0], two)  # its split.count says 3
        p = run(CGPT, "run", "-m", two, *gen)
        check(p.returncode == 1 and "split.count" in p.stderr, "split.count must agree with the name", p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_split: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
