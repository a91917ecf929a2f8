#!/usr/bin/env python3
"""Nothing lost: `cgpt serve` is SIGKILLed at random moments while several
page clients stream replies, restarted, and its database checked with
Python's own sqlite3 (an oracle the server does not run):
  - PRAGMA integrity_check is "ok" after every kill;
  - every user message a client saw acknowledged (the reply's response
    headers named its id) is stored with its exact text;
  - no reply is left "streaming": each interrupted one is "stopped" or
    "error" and keeps its partial text, a prefix of what the client was
    shown; replies whose stream ended are "complete";
  - no phantom: every stored user message was sent by a client;
  - the conversation goes on after each restart (a whole reply streams).
Then 50 clients write at once (each its own conversation and a reply):
none gets an error, none a "database is locked".

Usage: tests/web/test_crash.py [CGPT] [CYCLES]   (run with /usr/bin/python3)."""
import http.client, json, os, random, re, signal, sqlite3, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
CYCLES = int(sys.argv[2]) if len(sys.argv) > 2 else 10
GEN = os.path.join(ROOT, "build", "tools", "genmodel")
CLIENTS = 3
passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}: {str(detail)[:500]}")
    return cond


def start(data, model):
    p = subprocess.Popen([CGPT, "serve", "--port", "0", "--data-dir", data, "-m", model, "--alias", "m",
                          "--parallel", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline().decode()
    m = re.search(r"listening on http://([^:]+):(\d+)", line)
    if not m:
        raise RuntimeError(f"server did not start: {line!r} {p.stderr.read(3000)!r}")
    return p, m.group(1), int(m.group(2))


class Page:
    """One logged-in page client."""

    def __init__(self, host, port, name, pw):
        self.host, self.port = host, port
        st, j, h = self.call("POST", "/api/login", {"name": name, "password": pw})
        if st != 200:
            raise RuntimeError(f"login {name}: {st} {j}")
        self.cookie = re.match(r"session=([^;]+)", h["set-cookie"]).group(1)
        self.csrf = j["csrf"]

    def headers(self):
        h = {"Content-Type": "application/json"}
        if getattr(self, "cookie", None):
            h["Cookie"] = f"session={self.cookie}"
            h["X-CSRF-Token"] = self.csrf
        return h

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers())
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, (json.loads(raw) if raw else None), {k.lower(): v for k, v in r.getheaders()}

    def send(self, conv, text, log):
        """Stream one reply; record what the client saw in 'log'."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        entry = {"conv": conv, "text": text, "acked": None, "reply": None, "shown": "", "done": False}
        log.append(entry)
        c.request("POST", f"/api/conversations/{conv}/messages", body=json.dumps({"content": text}),
                  headers=self.headers())
        r = c.getresponse()
        if r.status != 200:
            entry["status"] = r.status
            entry["error"] = r.read()[:300].decode("utf-8", "replace")
            return entry
        entry["acked"] = int(r.getheader("X-Cgpt-User-Message"))
        entry["reply"] = int(r.getheader("X-Cgpt-Assistant-Message"))
        buf = b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if not ev.startswith(b"data: "):
                    continue
                if ev == b"data: [DONE]":
                    entry["done"] = True
                    continue
                d = json.loads(ev[6:])
                for ch in d.get("choices") or []:
                    entry["shown"] += (ch.get("delta") or {}).get("content") or ""
        c.close()
        return entry


def client_loop(page, conv, tag, stop, log, errors):
    i = 0
    while not stop.is_set():
        i += 1
        try:
            page.send(conv, f"{tag} message {i}: tell me a long story", log)
        except (OSError, http.client.HTTPException, ValueError):
            return  # the server died under us
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
            return


def verify(data, log, cycle):
    db = sqlite3.connect(os.path.join(data, "cgpt.db"))
    ok = db.execute("PRAGMA integrity_check").fetchone()[0]
    check(ok == "ok", f"cycle {cycle}: integrity_check", ok)
    rows = {r[0]: r for r in db.execute("SELECT id, role, content, status, parent_id FROM messages")}
    sent = {e["text"] for e in log}
    n_user = 0
    for e in log:
        if e["acked"] is None:
            continue
        u = rows.get(e["acked"])
        check(u is not None and u[1] == "user" and u[2] == e["text"],
              f"cycle {cycle}: acknowledged message {e['acked']} stored as sent", (u, e["text"]))
        n_user += 1
        a = rows.get(e["reply"])
        if not check(a is not None, f"cycle {cycle}: reply {e['reply']} stored"):
            continue
        if e["done"]:
            check(a[3] == "complete" and a[2] == e["shown"],
                  f"cycle {cycle}: a finished reply is complete and whole", (a[3], len(a[2]), len(e["shown"])))
        else:
            check(a[3] in ("stopped", "error"), f"cycle {cycle}: an interrupted reply is stopped or error", a[3])
            check(e["shown"].startswith(a[2]), f"cycle {cycle}: its stored text is a prefix of what was shown",
                  (a[2][-80:], e["shown"][:80]))
    for r in rows.values():
        check(r[3] != "streaming", f"cycle {cycle}: no reply left streaming", r[:1])
        if r[1] == "user":
            check(r[2] in sent, f"cycle {cycle}: no phantom user message", r[2][:80])
    db.close()
    return n_user


def main():
    tmp = tempfile.mkdtemp(prefix="cgpt-crash-")
    data = os.path.join(tmp, "data")
    model = os.path.join(tmp, "m.gguf")
    subprocess.run([GEN, "--arch", "llama", "--vocab", "300", "--embd", "384", "--layers", "6", "--heads", "6",
                    "--kv-heads", "2", "--ff", "1024", "--ctx", "4096", "--seed", "3", "-o", model], check=True)
    users = [(f"user{i}", f"password-{i}-x") for i in range(CLIENTS)]
    for name, pw in users:
        subprocess.run([CGPT, "user", "add", name, "--password-stdin", "--data-dir", data], input=pw + "\n",
                       text=True, check=True, capture_output=True)
    rng = random.Random(12345)
    log, errors, replies, survived = [], [], 0, 0
    convs = None
    for cycle in range(CYCLES):
        p, host, port = start(data, model)
        pages = [Page(host, port, n, pw) for n, pw in users]
        if convs is None:  # greedy and long: replies stream for a while
            convs = []
            for k, pg in enumerate(pages):  # one long, two shorter: kills cut some, others finish
                mt = (3000, 8, 100)[k % 3]
                st, j, _ = pg.call("POST", "/api/conversations", {"settings": {"temperature": 0, "max_tokens": mt}})
                convs.append(j["id"])
        stop = threading.Event()
        cycle_log = []
        threads = [threading.Thread(target=client_loop, args=(pg, convs[k], f"c{cycle}u{k}", stop, cycle_log, errors))
                   for k, pg in enumerate(pages)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(1.0, 5.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
        stop.set()
        for t in threads:
            t.join(60)
        log += cycle_log
        survived += 1
        replies += sum(1 for e in cycle_log if e["reply"])
        # restart: the server checks the database and marks what was cut
        p, host, port = start(data, model)
        verify(data, log, cycle)
        # the conversation goes on after the crash: a short reply, whole
        e = Page(host, port, *users[1]).send(convs[1], f"c{cycle} after restart", log)
        replies += 1
        check(e["done"], f"cycle {cycle}: a reply after the restart streams to its end", e)
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    check(not errors, "clients saw no unexpected errors", errors[:3])
    cut = sum(1 for e in log if e["reply"] and not e["done"])
    whole = sum(1 for e in log if e["reply"] and e["done"])
    check(cut >= survived, f"every kill cut a reply mid-stream ({cut} cut in {survived} kills)", cut)
    check(whole >= 1, f"replies also finished between kills ({whole})", whole)
    n_acked = sum(1 for e in log if e["acked"])
    print(f"crash: {survived} SIGKILL cycles, {replies} streamed replies ({cut} cut, {whole} whole), "
          f"{n_acked} acknowledged messages verified")

    # 50 writers at once through one server
    p, host, port = start(data, model)
    logged = [Page(host, port, n, pw) for n, pw in users]  # logins are rate limited: share sessions
    pages = [logged[i % CLIENTS] for i in range(50)]
    results = [None] * 50
    wlog = []  # list.append is atomic under the GIL

    def writer(k):
        try:
            st, j, _ = pages[k].call("POST", "/api/conversations", {"settings": {"max_tokens": 8}})
            if st != 201:
                results[k] = f"create {st} {j}"
                return
            e = pages[k].send(j["id"], f"writer {k}", wlog)
            results[k] = "ok" if e["acked"] and e["done"] else f"send {e}"
        except Exception as ex:  # noqa: BLE001
            results[k] = repr(ex)
    ts = [threading.Thread(target=writer, args=(k,)) for k in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    bad = [r for r in results if r != "ok"]
    check(not bad, "50 concurrent writers: every one stored and answered", bad[:3])
    err = b""
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
    check(b"locked" not in err and b"AddressSanitizer" not in err, "no 'database is locked', no sanitizer report",
          err[-1500:])
    db = sqlite3.connect(os.path.join(data, "cgpt.db"))
    n = db.execute("SELECT count(*) FROM messages WHERE role='user' AND content LIKE 'writer %'").fetchone()[0]
    check(n == 50, "all 50 writers' messages are in the database", n)
    db.close()
    verify(data, log + wlog, "final")
    subprocess.run(["rm", "-rf", tmp])
    print(f"test_crash: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
