#!/usr/bin/python3
"""test_pull.py - end-to-end tests of `cgpt pull` (and list/show/rm/-m) against
a local mock of Hugging Face (tests/hub/mock_hf.py). Offline; standard library.

Usage: /usr/bin/python3 tests/hub/test_pull.py [CGPT]   (default build/cgpt)

Fixtures: small random GGUF models made with build/tools/genmodel (llama,
byte-level vocabulary) and `cgpt quantize`, laid out as Hugging Face
repositories under a temporary root the mock serves:
    o/r       tiny-Q4_K_M.gguf, tiny.q8_0.gguf, tiny-Q4_0.gguf, README.md
    o/noq4    tiny-F16.gguf, tiny-Q8_0.gguf, tiny-Q4_0.gguf  (no Q4_K_M)
    o/big     big-F16.gguf (a few MB: resume, stall, disk, concurrency)
    o/gated   tiny-Q4_K_M.gguf, gated (.mock.json): needs hf_test_token
    o/nogguf  README.md only
    o/split   Q8_0/split-Q8_0-0000{1,2}-of-00002.gguf (a real GGUF cut in two)

Oracles: the source bytes and their sha256 computed here; the mock's own
view (its repository revision, its URLs); the mock's request log (which
requests carried Authorization or Range, to which host). Every check prints
"FAIL: what: detail" when it fails; the last line is
"test_pull: N passed, M failed" (exit 1 if any failed).

Checks:
 1 refs: hf.co/o/r:q8_0, o/r:Q4_K_M, o/r (default Q4_K_M), o/noq4 (default:
   the smallest, Q4_0), pulling again -> exit 0, last stdout line
   "pulled NAME (SIZE bytes) -> PATH", files identical (sha256), manifest.json
   fields (name, source, endpoint, repo, revision = the mock's sha, quant,
   files [{name,size,sha256}], size, pulled_at), no .partial left.
 2 a direct URL (on the mock's CDN host, with HF_TOKEN set: the token must not
   go there) -> DIR/url/NAME/, manifest source "url".
 3 resume: a download cut at half -> exit 1, FILE.partial left; again -> exit
   0, every CDN GET of the second run asked "Range: bytes=P-" with P the
   .partial's size, sha256 right.
 4 corrupt byte -> exit 1 "checksum", no file/.partial/manifest left, not
   listed; a clean retry then succeeds.
 5 gated: no token -> "token" and "HF_TOKEN"; a wrong token -> "token";
   HF_TOKEN=hf_test_token and --token -> success; no CDN request carried
   Authorization, every API request did.
 6 errors: unknown repo "not found"; README-only repo "no GGUF"; missing quant
   "no Q5_K_M file" listing Q4_0, Q4_K_M, Q8_0; nothing written to the library.
 7 stall of 30 s with --timeout 2 -> exit 1 "timed out" within 10 s; a retry
   succeeds.
 8 full disk (RLIMIT_FSIZE 1 MiB, SIGXFSZ ignored) -> exit 1 "disk" or
   "space"; no model file or manifest left (a .partial may stay).
 9 split model: both parts, sha256 each, manifest lists both in order, the
   pulled line's PATH is part 1 and SIZE the sum.
10 two concurrent pulls of one REF (the first download stalled 1 s so they
   overlap) -> both exit 0 with the pulled line, the file is right.
11 list [--json] (name/size/path; cgpt-mini listed; a broken manifest.json
   named on stderr, its model left out), show (llama, name),
   run -m OWNER/REPO:QUANT (models found through $CGPT_HOME/models),
   rm (directory gone, unlisted), rm of an unknown name -> exit 1 "no model".

Failure messages: the error is the last line of stderr and starts
"cgpt pull: " (progress lines before it on stderr are tolerated, whatever
their prefix).
"""

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from mock_hf import MockHub  # noqa: E402

TIMEOUT = 60
GOOD_TOKEN = "hf_test_token"

passed = 0
failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s: %s" % (what, detail), flush=True)
    return bool(cond)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


class Result:
    def __init__(self, rc, out, err, secs):
        self.rc, self.out, self.err, self.secs = rc, out, err, secs

    def brief(self):
        return "exit %s, stdout %r, stderr %r" % (self.rc, self.out[-400:], self.err[-400:])


class Ctx:
    """What every check needs: the binary, the mock, the fixtures, a temp dir."""

    def __init__(self, cgpt, tmp, hub, src):
        self.cgpt, self.tmp, self.hub, self.src = cgpt, tmp, hub, src
        self.n = 0

    def home(self, label):
        """A fresh CGPT_HOME (its models dir is HOME/models)."""
        self.n += 1
        h = os.path.join(self.tmp, "h%02d-%s" % (self.n, label))
        os.makedirs(h)
        return h

    def env(self, cghome, token=None):
        e = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
             and not k.startswith("HF_") and k not in ("HUGGING_FACE_HUB_TOKEN", "CGPT_HOME")}
        e.update({"HF_ENDPOINT": self.hub.api_url, "HOME": cghome, "CGPT_HOME": cghome,
                  "XDG_CACHE_HOME": os.path.join(cghome, "cache"), "no_proxy": "*", "NO_PROXY": "*"})
        if token is not None:
            e["HF_TOKEN"] = token
        return e

    def run(self, args, cghome, token=None, timeout=TIMEOUT, preexec_fn=None, env=None):
        t0 = time.monotonic()
        try:
            p = subprocess.run([self.cgpt] + args, cwd=ROOT, env=env or self.env(cghome, token),
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                               preexec_fn=preexec_fn)
            return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                          p.stderr.decode("utf-8", "replace"), time.monotonic() - t0)
        except subprocess.TimeoutExpired as e:
            return Result("timeout(%ds)" % timeout, (e.stdout or b"").decode("utf-8", "replace"),
                          (e.stderr or b"").decode("utf-8", "replace"), time.monotonic() - t0)

    def pull(self, ref, cghome, *extra, **kw):
        return self.run(["pull", ref, "--models-dir", models_dir(cghome)] + list(extra), cghome, **kw)


def models_dir(cghome):
    return os.path.join(cghome, "models")


def last_line(text):
    lines = [x for x in re.split(r"[\r\n]+", text) if x.strip()]
    return lines[-1] if lines else ""


def model_files(d):
    """Files under d, relative (empty when d does not exist)."""
    out = []
    for dp, _, fns in os.walk(d):
        out += [os.path.relpath(os.path.join(dp, f), d) for f in fns]
    return sorted(out)


# ---- shared expectations ----

def expect_pulled(ctx, what, res, cghome, name, srcs, repo=None, quant=None, url_name=None):
    """A successful pull of srcs (source paths, in order) as 'name'."""
    if not check(res.rc == 0, what + ": exit status", res.brief()):
        return
    if url_name:
        ldir = os.path.join(models_dir(cghome), "url", url_name)
    else:
        owner, rname = repo.split("/")
        ldir = os.path.join(models_dir(cghome), owner, rname, quant)
    bases = [os.path.basename(s) for s in srcs]
    total = sum(os.path.getsize(s) for s in srcs)
    first = os.path.join(ldir, bases[0])
    line = last_line(res.out)
    m = re.match(r"^pulled (\S+) \((\d+) bytes\) -> (.+)$", line)
    if check(m, what + ": pulled line", "last stdout line %r, want 'pulled %s (%d bytes) -> %s'"
             % (line, name, total, first)):
        check(m.group(1) == name, what + ": pulled NAME", "%r, want %r" % (m.group(1), name))
        check(int(m.group(2)) == total, what + ": pulled SIZE", "%s, want %d" % (m.group(2), total))
        got = m.group(3).strip()
        check(os.path.realpath(got) == os.path.realpath(first), what + ": pulled PATH",
              "%r, want %r" % (got, first))
    for s, b in zip(srcs, bases):
        p = os.path.join(ldir, b)
        if check(os.path.isfile(p), what + ": file " + b, "not at %s (there: %s)" % (p, model_files(ldir))):
            check(sha256_file(p) == sha256_file(s), what + ": sha256 of " + b, "differs from the source")
    partials = [f for f in model_files(ldir) if f.endswith(".partial")]
    check(not partials, what + ": no .partial left", str(partials))
    mp = os.path.join(ldir, "manifest.json")
    try:
        with open(mp, encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError) as e:
        check(False, what + ": manifest.json", "%s: %s" % (mp, e))
        return
    check(isinstance(man, dict), what + ": manifest is an object", repr(man)[:200])
    if not isinstance(man, dict):
        return

    def field(k, want):
        check(man.get(k) == want, "%s: manifest %s" % (what, k), "%r, want %r" % (man.get(k), want))

    field("name", name)
    field("source", "url" if url_name else "hf")
    field("size", total)
    check(man.get("pulled_at") not in (None, "", 0), what + ": manifest pulled_at", repr(man.get("pulled_at")))
    if not url_name:
        field("repo", repo)
        field("quant", quant)
        check(str(man.get("endpoint", "")).rstrip("/") == ctx.hub.api_url, what + ": manifest endpoint",
              "%r, want %r" % (man.get("endpoint"), ctx.hub.api_url))
        field("revision", ctx.hub.repo_sha(*repo.split("/")))
    files = man.get("files")
    want = [{"name": b, "size": os.path.getsize(s), "sha256": sha256_file(s)} for s, b in zip(srcs, bases)]
    got = None
    if isinstance(files, list):
        got = [{k: f.get(k) for k in ("name", "size", "sha256")} if isinstance(f, dict) else f for f in files]
    check(got == want, what + ": manifest files", "%r, want %r" % (files, want))


def expect_failed(what, res, *needles, any_of=None):
    """Exit 1; the last stderr line starts 'cgpt pull: ' and has every needle
    (and one of any_of), case-insensitively."""
    check(res.rc == 1, what + ": exit status 1", res.brief())
    errs = [x for x in re.split(r"[\r\n]+", res.err) if x.strip()]
    line = errs[-1] if errs else ""
    check(line.startswith("cgpt pull: "), what + ": error line", "last stderr line %r" % line)
    for n in needles:
        check(n.lower() in line.lower(), what + ": message mentions %r" % n, repr(line))
    if any_of:
        check(any(n.lower() in line.lower() for n in any_of), what + ": message mentions one of %r" % (any_of,),
              repr(line))
    return line


def expect_no_model(what, ldir, allow_partial=False):
    """Nothing usable of a model in ldir: no GGUF, no manifest (no .partial
    unless allowed)."""
    fs = model_files(ldir)
    bad = [f for f in fs if f.endswith(".gguf") or os.path.basename(f) == "manifest.json"
           or (f.endswith(".partial") and not allow_partial)]
    check(not bad, what + ": nothing of the model left", "left in %s: %s" % (ldir, fs))


def listed_names(ctx, cghome):
    r = ctx.run(["list", "--models-dir", models_dir(cghome), "--json"], cghome)
    names = []
    for ln in r.out.splitlines():
        try:
            names.append(json.loads(ln).get("name"))
        except (ValueError, AttributeError):
            pass
    return r, names


def cdn_gets(log):
    return [e for e in log if e["host"] == "cdn" and e["method"] == "GET"]


# ---- fixtures ----

def make_fixtures(cgpt, tmp):
    gen = os.path.join(ROOT, "build", "tools", "genmodel")
    if not os.access(gen, os.X_OK):
        raise RuntimeError("%s is missing (build it: make)" % gen)
    work = os.path.join(tmp, "gen")
    os.makedirs(work)

    def genmodel(out, seed, embd=64, layers=2, ff=128):
        subprocess.run([gen, "--arch", "llama", "--vocab", "300", "--embd", str(embd), "--layers", str(layers),
                        "--heads", "2", "--kv-heads", "1", "--ff", str(ff), "--ctx", "128", "--seed", str(seed),
                        "-o", out], check=True, capture_output=True, timeout=TIMEOUT)

    def quantize(src, out, typ):
        subprocess.run([cgpt, "quantize", src, out, typ], check=True, capture_output=True, timeout=TIMEOUT)

    base = os.path.join(work, "tiny-F32.gguf")
    genmodel(base, 1)
    bigbase = os.path.join(work, "big-F32.gguf")
    genmodel(bigbase, 2, embd=256, layers=4, ff=1024)

    hub = os.path.join(tmp, "hub")
    src = {}

    def put(rel, data=None, q=None, frm=base):
        p = os.path.join(hub, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if q:
            quantize(frm, p, q)
        else:
            with open(p, "wb") as f:
                f.write(data)
        src[rel] = p
        return p

    readme = b"---\nlicense: mit\n---\n# a tiny test model\n"
    put("o/r/README.md", readme)
    put("o/r/tiny-Q4_K_M.gguf", q="Q4_K_M")
    put("o/r/tiny.q8_0.gguf", q="Q8_0")
    put("o/r/tiny-Q4_0.gguf", q="Q4_0")
    put("o/noq4/tiny-F16.gguf", q="F16")
    put("o/noq4/tiny-Q8_0.gguf", q="Q8_0")
    put("o/noq4/tiny-Q4_0.gguf", q="Q4_0")
    put("o/big/big-F16.gguf", q="F16", frm=bigbase)
    put("o/gated/tiny-Q4_K_M.gguf", q="Q4_K_M")
    put("o/gated/.mock.json", b'{"gated": true}\n')
    put("o/nogguf/README.md", readme)
    q8 = os.path.join(work, "split-Q8_0.gguf")
    quantize(base, q8, "Q8_0")
    with open(q8, "rb") as f:
        whole = f.read()
    half = len(whole) // 2
    put("o/split/README.md", readme)
    put("o/split/Q8_0/split-Q8_0-00001-of-00002.gguf", whole[:half])
    put("o/split/Q8_0/split-Q8_0-00002-of-00002.gguf", whole[half:])
    sizes = [os.path.getsize(src["o/noq4/tiny-%s.gguf" % q]) for q in ("Q4_0", "Q8_0", "F16")]
    if not sizes == sorted(sizes):
        raise RuntimeError("fixture sizes: Q4_0 %d, Q8_0 %d, F16 %d (Q4_0 must be the smallest)" % tuple(sizes))
    if os.path.getsize(src["o/big/big-F16.gguf"]) < 3 * DISK_LIMIT:
        raise RuntimeError("o/big/big-F16.gguf is only %d bytes" % os.path.getsize(src["o/big/big-F16.gguf"]))
    return hub, src


# ---- the checks ----

def check_refs(ctx):
    """1: the three REF forms, the default pick, an idempotent re-pull."""
    h = ctx.home("refs")
    r = ctx.pull("hf.co/o/r:q8_0", h)
    expect_pulled(ctx, "pull hf.co/o/r:q8_0", r, h, "o/r:Q8_0", [ctx.src["o/r/tiny.q8_0.gguf"]],
                  repo="o/r", quant="Q8_0")
    r = ctx.pull("o/r:Q4_K_M", h)
    expect_pulled(ctx, "pull o/r:Q4_K_M", r, h, "o/r:Q4_K_M", [ctx.src["o/r/tiny-Q4_K_M.gguf"]],
                  repo="o/r", quant="Q4_K_M")
    r = ctx.pull("o/r:Q4_K_M", h)
    expect_pulled(ctx, "pull o/r:Q4_K_M again", r, h, "o/r:Q4_K_M", [ctx.src["o/r/tiny-Q4_K_M.gguf"]],
                  repo="o/r", quant="Q4_K_M")
    h = ctx.home("default")
    r = ctx.pull("o/r", h)
    expect_pulled(ctx, "pull o/r (default Q4_K_M)", r, h, "o/r:Q4_K_M", [ctx.src["o/r/tiny-Q4_K_M.gguf"]],
                  repo="o/r", quant="Q4_K_M")
    check(not os.path.exists(os.path.join(models_dir(h), "o", "r", "Q8_0")), "pull o/r: only the default pick",
          str(model_files(models_dir(h))))
    r = ctx.pull("o/noq4", h)
    expect_pulled(ctx, "pull o/noq4 (default: smallest, Q4_0)", r, h, "o/noq4:Q4_0",
                  [ctx.src["o/noq4/tiny-Q4_0.gguf"]], repo="o/noq4", quant="Q4_0")


def check_url(ctx):
    """2: a direct URL (CDN host, so an HF token sent there is refused)."""
    h = ctx.home("url")
    url = ctx.hub.cdn_url + "/files/o/r/tiny-Q4_0.gguf"
    ctx.hub.reset()
    r = ctx.pull(url, h, token=GOOD_TOKEN)
    expect_pulled(ctx, "pull URL", r, h, "tiny-Q4_0", [ctx.src["o/r/tiny-Q4_0.gguf"]], url_name="tiny-Q4_0")
    log = ctx.hub.get_log()
    check(any(e["host"] == "cdn" and e["path"].startswith("/files/") for e in log), "pull URL: fetched the URL",
          str(log))
    check(not any(e["auth"] for e in log), "pull URL: no Authorization sent to a non-HF URL",
          str([e for e in log if e["auth"]]))


def check_resume(ctx):
    """3: an interrupted download leaves FILE.partial; the next pull resumes it."""
    h = ctx.home("resume")
    srcp = ctx.src["o/big/big-F16.gguf"]
    size = os.path.getsize(srcp)
    ldir = os.path.join(models_dir(h), "o", "big", "F16")
    partial = os.path.join(ldir, "big-F16.gguf.partial")
    ctx.hub.reset()
    ctx.hub.set_faults(cut_after=size // 2)
    r = ctx.pull("o/big:F16", h)
    check(r.rc == 1, "resume: the cut download fails", r.brief())
    check(last_line(r.err).startswith("cgpt pull: "), "resume: the cut names itself", repr(r.err[-300:]))
    if not check(os.path.isfile(partial), "resume: .partial left", "not at %s (there: %s)"
                 % (partial, model_files(models_dir(h)))):
        return
    p = os.path.getsize(partial)
    check(0 < p <= size // 2, "resume: .partial size", "%d bytes (cut after %d)" % (p, size // 2))
    check(not os.path.exists(os.path.join(ldir, "big-F16.gguf")), "resume: no final file after the cut",
          str(model_files(ldir)))
    check(not os.path.exists(os.path.join(ldir, "manifest.json")), "resume: no manifest after the cut",
          str(model_files(ldir)))
    ctx.hub.reset()
    r = ctx.pull("o/big:F16", h)
    expect_pulled(ctx, "resume: second pull", r, h, "o/big:F16", [srcp], repo="o/big", quant="F16")
    gets = cdn_gets(ctx.hub.get_log())
    check(gets, "resume: second pull downloaded", "no CDN GET in the log")
    want = "bytes=%d-" % p
    check(gets and all((e["range"] or "").replace(" ", "") == want for e in gets), "resume: Range of the resume",
          "CDN GETs had Range %r, want %r" % ([e["range"] for e in gets], want))


def check_corrupt(ctx):
    """4: a flipped byte is caught by sha256 and leaves nothing behind."""
    h = ctx.home("corrupt")
    ldir = os.path.join(models_dir(h), "o", "r", "Q8_0")
    ctx.hub.reset()
    ctx.hub.set_faults(corrupt=True)
    r = ctx.pull("o/r:Q8_0", h)
    expect_failed("corrupt download", r, "checksum")
    expect_no_model("corrupt download", ldir)
    gets = cdn_gets(ctx.hub.get_log())
    check(gets, "corrupt download: downloaded", "no CDN GET in the log")
    lr, names = listed_names(ctx, h)
    check("o/r:Q8_0" not in names, "corrupt download: not listed", lr.out)
    r = ctx.pull("o/r:Q8_0", h)
    expect_pulled(ctx, "pull after a corrupt download", r, h, "o/r:Q8_0", [ctx.src["o/r/tiny.q8_0.gguf"]],
                  repo="o/r", quant="Q8_0")


def check_gated(ctx):
    """5: a gated repository needs the token; the token never reaches the CDN."""
    h = ctx.home("gated")
    ldir = os.path.join(models_dir(h), "o", "gated", "Q4_K_M")
    r = ctx.pull("o/gated:Q4_K_M", h)
    expect_failed("gated without token", r, "token", "HF_TOKEN")
    expect_no_model("gated without token", ldir)
    r = ctx.pull("o/gated:Q4_K_M", h, token="hf_wrong")
    expect_failed("gated with a wrong token", r, "token")
    ctx.hub.reset()
    r = ctx.pull("o/gated:Q4_K_M", h, token=GOOD_TOKEN)
    src = [ctx.src["o/gated/tiny-Q4_K_M.gguf"]]
    expect_pulled(ctx, "gated with HF_TOKEN", r, h, "o/gated:Q4_K_M", src, repo="o/gated", quant="Q4_K_M")
    log = ctx.hub.get_log()
    cdn = [e for e in log if e["host"] == "cdn"]
    api = [e for e in log if e["host"] == "api"]
    check(cdn, "gated with HF_TOKEN: downloaded from the CDN", str(log))
    check(not any(e["auth"] for e in cdn), "gated with HF_TOKEN: no Authorization to the CDN",
          str([e for e in cdn if e["auth"]]))
    check(api and all(e["auth"] for e in api), "gated with HF_TOKEN: Authorization on every API request",
          str([e for e in api if not e["auth"]] or "no API request"))
    h = ctx.home("gated2")
    ctx.hub.reset()
    r = ctx.pull("o/gated:Q4_K_M", h, "--token", GOOD_TOKEN)
    expect_pulled(ctx, "gated with --token", r, h, "o/gated:Q4_K_M", src, repo="o/gated", quant="Q4_K_M")
    log = ctx.hub.get_log()
    check(not any(e["auth"] for e in log if e["host"] == "cdn"), "gated with --token: no Authorization to the CDN",
          str(log))


def check_errors(ctx):
    """6: unknown repo, repo without GGUF, missing quant."""
    h = ctx.home("errors")
    r = ctx.pull("o/nope:Q4_K_M", h)
    expect_failed("unknown repo", r, "not found")
    r = ctx.pull("o/nope", h)
    expect_failed("unknown repo, no quant", r, "not found")
    r = ctx.pull("o/nogguf", h)
    expect_failed("repo without GGUF", r, "no GGUF")
    r = ctx.pull("o/r:Q5_K_M", h)
    line = expect_failed("missing quant", r, "no Q5_K_M file", "Q4_0", "Q4_K_M", "Q8_0")
    check("F16" not in line, "missing quant: lists only what is there", repr(line))
    fs = [f for f in model_files(models_dir(h)) if f.endswith((".gguf", ".partial", "manifest.json"))]
    check(not fs, "errors: nothing written to the library", str(fs))


def check_stall(ctx):
    """7: a stalled download times out after --timeout, and resumes later."""
    h = ctx.home("stall")
    ctx.hub.reset()
    ctx.hub.set_faults(stall=30)
    r = ctx.pull("o/big:F16", h, "--timeout", "2")
    expect_failed("stall", r, "timed out")
    check(r.secs < 10, "stall: gave up in time", "took %.1f s with --timeout 2" % r.secs)
    ldir = os.path.join(models_dir(h), "o", "big", "F16")
    expect_no_model("stall", ldir, allow_partial=True)
    ctx.hub.reset()
    r = ctx.pull("o/big:F16", h, "--timeout", "20")
    expect_pulled(ctx, "pull after a stall", r, h, "o/big:F16", [ctx.src["o/big/big-F16.gguf"]],
                  repo="o/big", quant="F16")


DISK_LIMIT = 1 << 20


def _small_disk():
    resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_LIMIT, DISK_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def check_disk(ctx):
    """8: a write that fails (file size limit standing in for a full disk)."""
    h = ctx.home("disk")
    ctx.hub.reset()
    r = ctx.pull("o/big:F16", h, preexec_fn=_small_disk)
    expect_failed("full disk", r, any_of=("disk", "space"))
    expect_no_model("full disk", os.path.join(models_dir(h), "o", "big", "F16"), allow_partial=True)
    lr, names = listed_names(ctx, h)
    check("o/big:F16" not in names, "full disk: not listed", lr.out)


def check_split(ctx):
    """9: a split model comes as all of its parts."""
    h = ctx.home("split")
    parts = [ctx.src["o/split/Q8_0/split-Q8_0-0000%d-of-00002.gguf" % i] for i in (1, 2)]
    r = ctx.pull("o/split:Q8_0", h)
    expect_pulled(ctx, "split model", r, h, "o/split:Q8_0", parts, repo="o/split", quant="Q8_0")


def check_concurrent(ctx):
    """10: two pulls of one REF at once."""
    h = ctx.home("concurrent")
    ctx.hub.reset()
    ctx.hub.set_faults(stall=1)  # the first download holds on, so the two overlap
    args = [ctx.cgpt, "pull", "o/big:F16", "--models-dir", models_dir(h), "--timeout", "20"]
    procs = [subprocess.Popen(args, cwd=ROOT, env=ctx.env(h), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = []
    try:
        for p in procs:
            try:
                out, err = p.communicate(timeout=TIMEOUT)
                results.append(Result(p.returncode, out.decode("utf-8", "replace"),
                                      err.decode("utf-8", "replace"), 0))
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                results.append(Result("timeout", out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), 0))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, r in enumerate(results):
        expect_pulled(ctx, "concurrent pull %d" % (i + 1), r, h, "o/big:F16", [ctx.src["o/big/big-F16.gguf"]],
                      repo="o/big", quant="F16")


def check_library(ctx):
    """11: list, show, run -m NAME, rm."""
    h = ctx.home("library")
    md = models_dir(h)
    r = ctx.pull("o/r:Q4_K_M", h)
    expect_pulled(ctx, "library: pull", r, h, "o/r:Q4_K_M", [ctx.src["o/r/tiny-Q4_K_M.gguf"]],
                  repo="o/r", quant="Q4_K_M")
    local = os.path.join(md, "o", "r", "Q4_K_M", "tiny-Q4_K_M.gguf")
    r = ctx.run(["list", "--models-dir", md, "--json"], h)
    check(r.rc == 0, "list --json: exit status", r.brief())
    objs = []
    for ln in r.out.splitlines():
        if ln.strip():
            try:
                objs.append(json.loads(ln))
            except ValueError:
                check(False, "list --json: a JSON object per line", repr(ln))
    byname = {o.get("name"): o for o in objs if isinstance(o, dict)}
    m = byname.get("o/r:Q4_K_M")
    if check(m, "list --json: lists o/r:Q4_K_M", r.out):
        check(m.get("size") == os.path.getsize(local), "list --json: size", "%r, want %d"
              % (m.get("size"), os.path.getsize(local)))
        check(isinstance(m.get("path"), str) and os.path.realpath(m["path"]) == os.path.realpath(local),
              "list --json: path", "%r, want %r" % (m.get("path"), local))
    check("cgpt-mini" in byname, "list --json: lists cgpt-mini", r.out)
    r = ctx.run(["list", "--models-dir", md], h)
    check(r.rc == 0 and "o/r:Q4_K_M" in r.out and "cgpt-mini" in r.out, "list", r.brief())
    # a manifest that does not parse: the model is left out, and list says so
    broken = os.path.join(md, "o", "broken", "Q8_0")
    os.makedirs(broken)
    with open(os.path.join(broken, "manifest.json"), "w") as f:
        f.write('{"name": "o/broken:Q8_0", "files": [')
    r = ctx.run(["list", "--models-dir", md], h)
    check(r.rc == 0 and "o/r:Q4_K_M" in r.out and "o/broken" not in r.out, "list with a broken manifest: "
          "the others listed", r.brief())
    check(os.path.join(broken, "manifest.json") in r.err and "not valid JSON" in r.err,
          "list with a broken manifest: says which and why", repr(r.err))
    shutil.rmtree(os.path.join(md, "o", "broken"))
    r = ctx.run(["show", "o/r:Q4_K_M", "--models-dir", md], h)
    check(r.rc == 0, "show: exit status", r.brief())
    for want in ("llama", "o/r:Q4_K_M"):
        check(want in r.out, "show: mentions %r" % want, r.out[-600:])
    r = ctx.run(["show", "o/r:q4_k_m", "--models-dir", md], h)
    check(r.rc == 0 and "llama" in r.out, "show with a lower-case quant", r.brief())
    r = ctx.run(["run", "-m", "o/r:Q4_K_M", "-p", "hi", "-n", "4", "--temp", "0"], h)
    check(r.rc == 0, "run -m o/r:Q4_K_M", r.brief())
    check(r.out.startswith("hi"), "run -m o/r:Q4_K_M: echoes the prompt", repr(r.out[:80]))
    r = ctx.run(["rm", "o/r:Q4_K_M", "--models-dir", md], h)
    check(r.rc == 0, "rm: exit status", r.brief())
    check(not os.path.exists(os.path.dirname(local)), "rm: the directory is gone",
          str(model_files(os.path.dirname(local))))
    lr, names = listed_names(ctx, h)
    check("o/r:Q4_K_M" not in names, "rm: no longer listed", lr.out)
    r = ctx.run(["rm", "o/r:Q4_K_M", "--models-dir", md], h)
    check(r.rc == 1, "rm of an unknown model: exit status 1", r.brief())
    check("no model" in r.err.lower(), "rm of an unknown model: says 'no model'", repr(r.err))


CHECKS = [check_refs, check_url, check_resume, check_corrupt, check_gated, check_errors, check_stall,
          check_disk, check_split, check_concurrent, check_library]


def main():
    cgpt = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
    if not os.access(cgpt, os.X_OK):
        check(False, "setup", "%s is not an executable" % cgpt)
        print("test_pull: %d passed, %d failed" % (passed, failed))
        return 1
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="cgpt-pull-"))
    hub = None
    try:
        try:
            root, src = make_fixtures(cgpt, tmp)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            detail = str(e)
            if isinstance(e, subprocess.CalledProcessError):
                detail += ": " + (e.stderr or b"").decode("utf-8", "replace")[-300:]
            check(False, "setup: fixtures", detail)
            return 1
        hub = MockHub(root).start()
        ctx = Ctx(cgpt, tmp, hub, src)
        for fn in CHECKS:
            try:
                fn(ctx)
            except Exception:
                check(False, fn.__name__, "raised\n" + traceback.format_exc())
        return 1 if failed else 0
    finally:
        if hub:
            hub.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        print("test_pull: %d passed, %d failed" % (passed, failed), flush=True)


if __name__ == "__main__":
    sys.exit(main())
