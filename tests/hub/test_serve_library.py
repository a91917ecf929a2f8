#!/usr/bin/python3
"""test_serve_library.py - `cgpt serve` without -m: every model of the library
offered, each loaded on its first request, unloaded for room (LRU, never one
in use), after --keep-alive, or when removed. Offline; standard library.

Usage: /usr/bin/python3 tests/hub/test_serve_library.py [CGPT] [--asan]
(default build/cgpt; --asan: a sanitizer build, so no RSS check)

Fixtures: small random GGUF models (build/tools/genmodel, `cgpt quantize`)
put in the library the way users do it, with `cgpt pull` from the Hugging
Face mock (tests/hub/mock_hf.py), into a temporary $CGPT_HOME:
    o/alpha:Q8_0   tiny
    o/beta:Q8_0    larger, context 2048 (long generations: a stream held open)
    o/gamma:Q8_0   the largest (about 130 MB): its load takes long enough that
                   requests arrive while it loads
    o/delta:Q8_0   pulled while a server runs

Oracles: what the server's own stderr says it loaded and unloaded (one line
per load, "cgpt serve: loaded 'ID'", and per unload), the HTTP status of
each request, the order and timing of the requests this test makes, and the
kernel's VmRSS of the server process.

Checks:
 1 /v1/models lists the three library models and cgpt-mini, all "unloaded",
   the most recently pulled first; /health is 200 before any load; the
   page's /api/session lists the same ids (the model picker).
 2 a completion for each model loads it (one "loaded" line each, status
   "loaded", context_length set, cgpt_model_loaded 1, load seconds > 0).
 3 --max-loaded 2: the third model unloads the least recently used idle one
   (its "unloaded" line, unloads{reason="lru"} +1), never the other.
 4 requests for a model while it loads (three at once, a fourth while
   /v1/models says "loading"): all 200, one load; /health answers 200 while
   it loads. (Loads from the page cache take milliseconds: this server's
   wait a second first, $CGPT_SERVE_LOAD_DELAY_MS=1000, a slow disk.)
 5 --max-loaded 1 and a stream held open on gamma: a request for
   another waits (no unload while the stream runs: none in the log, the
   held model still "loaded"), and is answered once the stream is closed.
 6 --keep-alive 1s: idle models are unloaded about a second after their
   last request (unloads{reason="idle"}); RSS returns near its baseline.
 7 a model pulled while the server runs is offered and served; `cgpt rm` of
   a loaded idle model unloads it (unloads{reason="removed"}) and it is no
   longer offered (404).
 8 errors: an unknown model 404 model_not_found; --memory-budget below a
   model's size 503 naming the budget; bad --memory-budget/--keep-alive
   values refuse to start; -m with a library name serves that model only
   (and `cgpt chat -m NAME` answers).
Every check prints "ok - ..." or "not ok - ... : detail"; the last line is
"test_serve_library: N passed, M failed" (exit 1 if any failed).
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from mock_hf import MockHub  # noqa: E402

TIMEOUT = 120
passed = 0
failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - %s" % what)
    else:
        failed += 1
        print("not ok - %s%s" % (what, (": %s" % detail) if detail else ""))
    sys.stdout.flush()
    return bool(cond)


def note(msg):
    print("# %s" % msg)
    sys.stdout.flush()


# ---- fixtures ----

def make_library(cgpt, tmp):
    """Generate the models, serve them from the mock, pull three into a new
    CGPT_HOME. Returns (home, hub, env)."""
    gen = os.path.join(ROOT, "build", "tools", "genmodel")
    work = os.path.join(tmp, "gen")
    os.makedirs(work)
    root = os.path.join(tmp, "hub")

    def model(repo, seed, embd, layers, ff, ctx, heads=2, kv=1):
        src = os.path.join(work, "%s-F32.gguf" % repo)
        subprocess.run([gen, "--arch", "llama", "--vocab", "300", "--embd", str(embd), "--layers", str(layers),
                        "--heads", str(heads), "--kv-heads", str(kv), "--ff", str(ff), "--ctx", str(ctx),
                        "--seed", str(seed), "-o", src], check=True, capture_output=True, timeout=TIMEOUT)
        d = os.path.join(root, "o", repo)
        os.makedirs(d)
        subprocess.run([cgpt, "quantize", src, os.path.join(d, "%s-Q8_0.gguf" % repo), "Q8_0"], check=True,
                       capture_output=True, timeout=TIMEOUT)
        os.unlink(src)

    model("alpha", 1, 64, 2, 128, 256)
    model("beta", 2, 256, 4, 1024, 2048)
    model("gamma", 3, 1024, 8, 4096, 512, heads=8, kv=2)
    model("delta", 4, 64, 2, 128, 256)
    hub = MockHub(root).start()
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "CGPT_MODEL")}
    env.update({"CGPT_HOME": home, "HF_ENDPOINT": hub.api_url})
    for repo in ("alpha", "beta", "gamma"):
        p = subprocess.run([cgpt, "pull", "o/%s:Q8_0" % repo], env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError("pull o/%s: %s" % (repo, p.stderr[-400:]))
        time.sleep(1.1)  # pulled_at has a resolution of one second: keep the order
    return home, hub, env


class Server:
    def __init__(self, cgpt, env, tmp, *args):
        self.log_path = os.path.join(tmp, "serve-%d.log" % time.monotonic_ns())
        self.log = open(self.log_path, "w+")
        data = tempfile.mkdtemp(dir=tmp, prefix="data-")
        self.p = subprocess.Popen([cgpt, "serve", "--port", "0", "--data-dir", data, "--no-moderation", *args],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.port = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < TIMEOUT:
            ln = self.p.stdout.readline()
            if not ln:
                break
            m = re.search(r"listening on http://[^:]+:(\d+)", ln)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            self.stop()
            raise RuntimeError("cgpt serve did not start: %s" % self.stderr()[-800:])

    def stderr(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def events(self, verb):
        """Model ids in 'cgpt serve: loaded 'ID'' (or unloaded) lines, in order."""
        return re.findall(r"cgpt serve: %s '([^']+)'" % verb, self.stderr())

    def request(self, method, path, body=None, timeout=TIMEOUT):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            try:
                j = json.loads(raw)
            except ValueError:
                j = None
            return r.status, j, raw
        finally:
            c.close()

    def complete(self, model, n=4, **kw):
        body = {"prompt": "hello", "max_tokens": n, "temperature": 0}
        if model is not None:
            body["model"] = model
        body.update(kw)
        return self.request("POST", "/v1/completions", body)

    def models(self):
        st, j, raw = self.request("GET", "/v1/models")
        return {m["id"]: m for m in (j or {}).get("data", [])}, [m["id"] for m in (j or {}).get("data", [])]

    def metrics(self):
        st, j, raw = self.request("GET", "/metrics")
        out = {}
        for ln in raw.decode(errors="replace").splitlines():
            if ln and not ln.startswith("#"):
                k, v = ln.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
        return 0

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        err = self.stderr()
        bad = [ln for ln in err.splitlines() if "Sanitizer" in ln or "runtime error:" in ln or "Assertion" in ln]
        check(not bad, "server %s: stderr free of sanitizer reports and assertion failures" % self.port,
              "\n".join(bad[:5]))


def wait_until(fn, seconds, step=0.05):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if fn():
            return True
        time.sleep(step)
    return fn()


A, B, G, D = "o/alpha:Q8_0", "o/beta:Q8_0", "o/gamma:Q8_0", "o/delta:Q8_0"


# ---- checks ----

def check_offer_and_lru(ctx):
    s = Server(ctx.cgpt, ctx.env, ctx.tmp, "--max-loaded", "2", "--keep-alive", "-1")
    try:
        st, j, _ = s.request("GET", "/health")
        check(st == 200 and j.get("models_loaded") == 0, "/health 200 before any model is loaded", repr(j))
        by, order = s.models()
        check(order == [G, B, A, "cgpt-mini"], "/v1/models: the library, most recently pulled first, then "
              "cgpt-mini", repr(order))
        check(all(by[i]["status"]["value"] == "unloaded" for i in order), "all unloaded at start",
              repr([by[i]["status"] for i in order]))
        st, j, _ = s.request("GET", "/api/session")
        ids = [m.get("id") for m in (j or {}).get("models", [])]
        check(st == 200 and ids == order, "the page's model picker (/api/session) lists the same models", repr(ids))
        # on demand
        for mid in (A, B):
            st, j, raw = s.complete(mid)
            check(st == 200 and j["model"] == mid, "a completion for %s (loaded on demand)" % mid, raw[:300])
        check(s.events("loaded") == [A, B], "one load each, in order", repr(s.events("loaded")))
        by, _ = s.models()
        check(by[A]["status"]["value"] == "loaded" and by[A]["context_length"] == 256
              and by[B]["context_length"] == 2048, "/v1/models: loaded, with their contexts",
              repr({k: (by[k]["status"], by[k].get("context_length")) for k in (A, B)}))
        m = s.metrics()
        check(m.get('cgpt_model_loaded{model="%s"}' % A) == 1 and m.get("cgpt_models_loaded") == 2
              and m.get("cgpt_model_loads_total") == 2 and m.get('cgpt_model_last_load_seconds{model="%s"}' % B, 0) > 0,
              "/metrics: models loaded, loads, load time", repr({k: v for k, v in m.items() if "model_" in k}))
        # alpha used again: beta is now the least recently used
        st, _, _ = s.complete(A)
        st2, j, raw = s.complete("cgpt-mini")
        check(st == 200 and st2 == 200, "alpha again, then cgpt-mini (a third model)", raw[:200])
        check(s.events("unloaded") == [B], "--max-loaded 2: the least recently used (beta) was unloaded, "
              "not alpha", repr(s.events("unloaded")))
        by, _ = s.models()
        check([by[i]["status"]["value"] for i in (A, B, "cgpt-mini")] == ["loaded", "unloaded", "loaded"],
              "/v1/models after the unload", repr({i: by[i]["status"] for i in (A, B, "cgpt-mini")}))
        m = s.metrics()
        check(m.get('cgpt_model_unloads_total{reason="lru"}') == 1 and m.get("cgpt_models_loaded") == 2,
              "/metrics: one LRU unload, two loaded", repr({k: v for k, v in m.items() if "model" in k}))
        # the default model (none named): the first on offer
        st, j, raw = s.complete(None)
        check(st == 200 and j.get("model") == G, "a request naming no model gets the first on offer (gamma)",
              raw[:200])
        st, j, raw = s.complete("o/nope:Q8_0")
        check(st == 404 and (j or {}).get("error", {}).get("code") == "model_not_found",
              "an unknown model: 404 model_not_found", raw[:200])
        st, j, raw = s.complete("o/alpha")
        check(st == 200 and j.get("model") == A, "OWNER/REPO names its only quant", raw[:200])
        st, j, raw = s.request("POST", "/tokenize", {"model": A, "content": "hi"})
        check(st == 200 and j.get("tokens"), "/tokenize names a library model", raw[:200])
    finally:
        s.stop()


def check_concurrent_loads(ctx):
    """Requests for an unloaded model arriving while it loads all wait for
    that one load. Loads from the page cache take milliseconds, so this
    server's loads each wait a second first ($CGPT_SERVE_LOAD_DELAY_MS, a
    slow disk)."""
    env = dict(ctx.env, CGPT_SERVE_LOAD_DELAY_MS="1000")
    s = Server(ctx.cgpt, env, ctx.tmp)
    try:
        concurrent_loads(s)
    finally:
        s.stop()


def concurrent_loads(s):
    n_loads = 0
    results = []
    seen_loading = threading.Event()
    health_ok = []
    late = []

    def one():
        results.append(s.complete(G)[0])

    def watch():
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and len(results) < 3:
            by, _ = s.models()
            if by.get(G, {}).get("status", {}).get("value") == "loading":
                if not seen_loading.is_set():
                    seen_loading.set()
                    st, j, _ = s.request("GET", "/health", timeout=5)
                    health_ok.append(st == 200 and j.get("models_loading") == 1)
                    # a fourth request, sent while the state says "loading"
                    t = threading.Thread(target=lambda: late.append(s.complete(G)[0]))
                    t.start()
                    t.join(TIMEOUT)
                    return
            time.sleep(0.005)

    ths = [threading.Thread(target=one) for _ in range(3)]
    w = threading.Thread(target=watch)
    w.start()
    for t in ths:
        t.start()
    for t in ths:
        t.join(TIMEOUT)
    w.join(TIMEOUT)
    check(results == [200, 200, 200], "three requests at once for an unloaded model: all answered", repr(results))
    loads = len([x for x in s.events("loaded") if x == G]) - n_loads
    check(loads == 1, "... by one load", "%d loads" % loads)
    note("load times: " + "; ".join(re.findall(r"loaded '%s'.* in ([0-9.]+ s)" % re.escape(G), s.stderr())))
    if check(seen_loading.is_set(), "/v1/models said 'loading' while it loaded"):
        check(late == [200], "a request sent while it was loading waited and was answered", repr(late))
        check(health_ok == [True], "/health 200 (models_loading 1) while it loaded", repr(health_ok))


def check_no_unload_in_use(ctx):
    s = Server(ctx.cgpt, ctx.env, ctx.tmp, "--max-loaded", "1", "--keep-alive", "-1")
    try:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
        c.request("POST", "/v1/completions", body=json.dumps(
            {"model": G, "prompt": "hello", "max_tokens": 480, "ignore_eos": True, "stream": True}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        first = r.readline()
        check(r.status == 200 and first.startswith(b"data:"), "a stream on gamma is running", repr(first[:100]))
        other = []
        t = threading.Thread(target=lambda: other.append(s.complete(A)[0]))
        t0 = time.monotonic()
        t.start()
        time.sleep(1.5)
        by, _ = s.models()
        check(not other and by[G]["status"]["value"] == "loaded" and s.events("unloaded") == [],
              "--max-loaded 1: a request for alpha waits while gamma streams; gamma is not unloaded",
              "other=%r gamma=%r unloaded=%r" % (other, by[G]["status"], s.events("unloaded")))
        st, j, _ = s.request("GET", "/health")
        check(st == 200, "/health 200 meanwhile", repr(j))
        c.close()  # the client leaves: the stream is cancelled, gamma idle
        t.join(TIMEOUT)
        dt = time.monotonic() - t0
        check(other == [200], "once the stream is closed, alpha is loaded and answered (%.1f s)" % dt, repr(other))
        check(s.events("unloaded") == [G], "gamma was unloaded for it then, not before", repr(s.events("unloaded")))
    finally:
        s.stop()


def check_keep_alive_and_rss(ctx):
    s = Server(ctx.cgpt, ctx.env, ctx.tmp, "--max-loaded", "4", "--keep-alive", "1s")
    try:
        # warm the process up with the built-in model (first-use allocations
        # such as thread pools), then take the baseline once it is unloaded
        s.complete("cgpt-mini")
        wait_until(lambda: s.events("unloaded") == ["cgpt-mini"], 10)
        time.sleep(0.3)
        base = s.rss_kib()
        t0 = time.monotonic()
        for mid in (A, B, G):
            st, _, raw = s.complete(mid)
            check(st == 200, "keep-alive server: %s answered" % mid, raw[:200])
        peak = s.rss_kib()
        by, _ = s.models()
        check(all(by[i]["status"]["value"] == "loaded" for i in (A, B, G)), "three models loaded",
              repr({i: by[i]["status"] for i in (A, B, G)}))
        gone = wait_until(lambda: sorted(s.events("unloaded")) == sorted(["cgpt-mini", A, B, G]), 15)
        dt = time.monotonic() - t0
        check(gone and dt >= 1.0, "--keep-alive 1s: all unloaded once idle (%.1f s after the first request)" % dt,
              repr(s.events("unloaded")))
        m = s.metrics()
        check(m.get('cgpt_model_unloads_total{reason="idle"}') == 4 and m.get("cgpt_models_loaded") == 0,
              "/metrics: four idle unloads, none loaded", repr({k: v for k, v in m.items() if "model" in k}))
        if ctx.asan:
            note("RSS not checked under the sanitizer (its quarantine keeps freed memory)")
            return
        time.sleep(0.3)
        after = s.rss_kib()
        grown = peak - base
        note("VmRSS: baseline %d KiB, with three models %d KiB, after their unloads %d KiB" % (base, peak, after))
        check(grown > 100 * 1024, "loading the models raised RSS (by %d KiB)" % grown)
        check(after - base < max(8 * 1024, grown // 10),
              "RSS returns near its baseline after the unloads (+%d KiB of %d KiB)" % (after - base, grown))
    finally:
        s.stop()


def check_library_changes(ctx):
    s = Server(ctx.cgpt, ctx.env, ctx.tmp, "--max-loaded", "4", "--keep-alive", "-1")
    try:
        st, _, _ = s.complete(A)
        check(st == 200, "alpha loaded", "")
        p = subprocess.run([ctx.cgpt, "pull", D], env=ctx.env, capture_output=True, text=True, timeout=TIMEOUT)
        check(p.returncode == 0, "pull o/delta while the server runs", p.stderr[-300:])
        st, j, raw = s.complete(D)
        check(st == 200 and j.get("model") == D, "the new model is served at once", raw[:200])
        _, order = s.models()
        check(order[0] == D, "and listed first", repr(order))
        p = subprocess.run([ctx.cgpt, "rm", A], env=ctx.env, capture_output=True, text=True, timeout=TIMEOUT)
        check(p.returncode == 0, "cgpt rm o/alpha while it is loaded (idle)", p.stderr[-300:])
        gone = wait_until(lambda: A in s.events("unloaded"), 10)
        check(gone, "the removed model is unloaded", repr(s.events("unloaded")))
        m = s.metrics()
        check(m.get('cgpt_model_unloads_total{reason="removed"}') == 1, "unloads{reason=removed} 1",
              repr({k: v for k, v in m.items() if "unloads" in k}))
        _, order = s.models()
        st, j, _ = s.complete(A)
        check(A not in order and st == 404, "and no longer offered", "%r %d" % (order, st))
    finally:
        s.stop()


def check_options(ctx):
    s = Server(ctx.cgpt, ctx.env, ctx.tmp, "--memory-budget", "1K")
    try:
        st, j, raw = s.complete(B)
        msg = (j or {}).get("error", {}).get("message", "")
        check(st == 503 and "--memory-budget" in msg and "1024" in msg,
              "--memory-budget 1K: a model larger than the budget gets 503 naming it", raw[:300])
    finally:
        s.stop()
    for args, want in ((["--memory-budget", "lots"], "byte count"), (["--keep-alive", "soon"], "duration"),
                       (["--max-loaded", "-1"], "--max-loaded")):
        p = subprocess.run([ctx.cgpt, "serve", "--port", "0", *args], env=ctx.env, capture_output=True, text=True,
                           timeout=TIMEOUT)
        check(p.returncode != 0 and want in p.stderr, "serve %s: refused, saying %r" % (" ".join(args), want),
              "rc=%r %s" % (p.returncode, p.stderr[-200:]))
    p = subprocess.run([ctx.cgpt, "serve", "--port", "0"], env=dict(ctx.env, CGPT_SERVE_LOAD_DELAY_MS="soon"),
                       capture_output=True, text=True, timeout=TIMEOUT)
    check(p.returncode != 0 and "CGPT_SERVE_LOAD_DELAY_MS" in p.stderr,
          "a bad $CGPT_SERVE_LOAD_DELAY_MS refuses to start, naming it", "rc=%r %s" % (p.returncode, p.stderr[-200:]))
    # names resolve in the terminal chat as they do in serve
    p = subprocess.run([ctx.cgpt, "chat", "-m", B, "-n", "4", "--temp", "0", "--no-moderation", "--data-dir",
                        os.path.join(ctx.tmp, "chat-data")], input="hello\n", env=ctx.env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    check(p.returncode == 0 and p.stdout.strip(), "chat -m o/beta:Q8_0 (a library name) answers",
          "rc=%r out=%r err=%r" % (p.returncode, p.stdout[-200:], p.stderr[-300:]))
    s = Server(ctx.cgpt, ctx.env, ctx.tmp, "-m", B)
    try:
        _, order = s.models()
        by, _ = s.models()
        check(order == [B] and by[B]["status"]["value"] == "loaded",
              "-m with a library name: that model only, loaded at start", repr(order))
        st, j, raw = s.complete(B)
        check(st == 200, "... and served", raw[:200])
    finally:
        s.stop()


class Ctx:
    pass


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    cgpt = os.path.abspath(args[0]) if args else os.path.join(ROOT, "build", "cgpt")
    ctx = Ctx()
    ctx.cgpt = cgpt
    ctx.asan = "--asan" in sys.argv
    ctx.tmp = os.path.realpath(tempfile.mkdtemp(prefix="cgpt-servelib-"))
    hub = None
    t0 = time.monotonic()
    try:
        ctx.home, hub, ctx.env = make_library(cgpt, ctx.tmp)
        note("library ready in %.1f s" % (time.monotonic() - t0))
        for fn in (check_offer_and_lru, check_concurrent_loads, check_no_unload_in_use, check_keep_alive_and_rss, check_library_changes,
                   check_options):
            t1 = time.monotonic()
            try:
                fn(ctx)
            except Exception:
                check(False, fn.__name__, traceback.format_exc())
            note("%s: %.1f s" % (fn.__name__, time.monotonic() - t1))
    except Exception:
        check(False, "setup", traceback.format_exc())
    finally:
        if hub:
            hub.stop()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    print("test_serve_library: %d passed, %d failed (%.0f s)" % (passed, failed, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
