#!/usr/bin/env python3
"""The page's /api/ against a live `cgpt serve`: every route tried as its
owner, as another user, anonymously, with an expired or ended session,
without the CSRF token, with two session cookies; session fixation; login
brute force slowed; keys a user made revoked and refused on /v1; the
stored conversation equal to what the stream said; /v1 unchanged beside
the page. Raw HTTP (http.client), so every header is ours to choose.

Usage: tests/web/test_api.py [CGPT]   (run with /usr/bin/python3)."""
import http.client, json, os, re, shutil, signal, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}: {str(detail)[:400]}")
    return cond


class Server:
    def __init__(self, data, *extra):
        self.p = subprocess.Popen([CGPT, "serve", "--port", "0", "--data-dir", data, *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.p.stdout.readline().decode()
        m = re.search(r"listening on http://([^:]+):(\d+)", line)
        if not m:
            raise RuntimeError(f"no ready line: {line!r} {self.p.stderr.read(2000)!r}")
        self.host, self.port = m.group(1), int(m.group(2))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
        return self.p.returncode


class Client:
    """One browser: its cookie and CSRF token."""

    def __init__(self, srv):
        self.srv, self.cookie, self.csrf = srv, None, None

    def req(self, method, path, body=None, csrf=True, cookie=True, headers=None, ctype="application/json"):
        h = {}
        if cookie and self.cookie:
            h["Cookie"] = f"session={self.cookie}"
        if csrf and self.csrf and method != "GET":
            h["X-CSRF-Token"] = self.csrf
        if body is not None:
            h["Content-Type"] = ctype
        h.update(headers or {})
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        c = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=120)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        sc = r.getheader("Set-Cookie")
        if sc:
            m = re.match(r"session=([^;]*)", sc)
            self.cookie = m.group(1) or None if m else self.cookie
        try:
            j = json.loads(raw)
        except ValueError:
            j = None
        return r.status, j, raw, r

    def login(self, name, pw):
        st, j, _, _ = self.req("POST", "/api/login", {"name": name, "password": pw}, csrf=False)
        if st == 200:
            self.csrf = j["csrf"]
        return st


def user_add(data, name, pw, admin=False):
    p = subprocess.run([CGPT, "user", "add", name, "--password-stdin", "--data-dir", data] +
                       (["--admin"] if admin else []), input=pw + "\n", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def sse_text(raw):
    text = ""
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            d = json.loads(line[6:])
            for ch in d.get("choices") or []:
                text += (ch.get("delta") or {}).get("content") or ""
    return text


def main():
    tmp = tempfile.mkdtemp(prefix="cgpt-api-")
    data = os.path.join(tmp, "data")
    user_add(data, "alice", "alice-pass-1")
    user_add(data, "bob", "bob-pass-22")
    srv = Server(data)
    try:
        run(srv, data)
    finally:
        rc = srv.stop()
        check(rc == 0, "SIGTERM: exit 0", rc)
        err = srv.p.stderr.read().decode(errors="replace")
        check("AddressSanitizer" not in err and "runtime error" not in err, "no sanitizer report", err[-2000:])
    srv = Server(data, "--ctx", "256")
    try:
        long_conversation(srv)
    finally:
        rc = srv.stop()
        check(rc == 0, "SIGTERM (--ctx 256): exit 0", rc)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_api: {passed} passed, {failed} failed")
    return 1 if failed else 0


def long_conversation(srv):
    """A conversation longer than the context goes on: the prompt leaves out
    its oldest turns (the store keeps them), as ChatGPT does."""
    a = Client(srv)
    check(a.login("alice", "alice-pass-1") == 200, "login (--ctx 256)")
    st, j, _, _ = a.req("POST", "/api/conversations", {"title": "long", "settings": {"max_tokens": 24}})
    check(st == 201 and j and j.get("id"), "a conversation (--ctx 256)", (st, j))
    cid = (j or {}).get("id")
    sent = []
    for i in range(4):
        text = f"turn {i}: " + " ".join(["the quick brown fox jumps over the lazy dog"] * 8)
        st, _, raw, _ = a.req("POST", f"/api/conversations/{cid}/messages", {"content": text})
        check(st == 200 and raw.endswith(b"data: [DONE]\n\n") and sse_text(raw),
              f"turn {i} of a conversation past the 256-token context streams a reply", (st, raw[:300]))
        sent.append(text)
    st, conv, _, _ = a.req("GET", f"/api/conversations/{cid}")
    stored = [m["content"] for m in (conv or {}).get("messages", []) if m.get("role") == "user"]
    check(st == 200 and stored == sent, "the store keeps every turn the prompt left out", stored)


def run(srv, data):
    anon = Client(srv)
    st, j, _, _ = anon.req("GET", "/api/session")
    check(st == 200 and j["user"] is None and j["setup"] is False, "session while logged out; no setup once users exist", j)
    st, j, _, _ = anon.req("POST", "/api/setup", {"name": "mallory", "password": "mallory-pw"})
    check(st == 403, "setup is closed once a user exists", (st, j))
    st, j, _, _ = anon.req("POST", "/api/register", {"name": "mallory", "password": "mallory-pw"})
    check(st == 403, "registration is closed by default", (st, j))

    a, b = Client(srv), Client(srv)
    # session fixation: a token the attacker chose is never promoted
    a.cookie = "A" * 43
    check(a.login("alice", "alice-pass-1") == 200, "alice logs in")
    check(a.cookie and a.cookie != "A" * 43, "login sets a new session token (no fixation)", a.cookie)
    st, j, raw, r = a.req("GET", "/api/session")
    check(j["user"]["name"] == "alice", "the session knows alice", j)
    sc_first = a.cookie
    check(a.login("alice", "alice-pass-1") == 200 and a.cookie != sc_first, "each login rotates the token")
    st, _, _, _ = Client(srv).req("GET", "/api/conversations", headers={"Cookie": f"session={sc_first}"})
    check(st == 200, "the earlier session stays valid until it ends or expires", st)
    check(b.login("bob", "bob-pass-22") == 200, "bob logs in")
    st, _, _, r = a.req("GET", "/api/conversations")
    check(r.getheader("Content-Security-Policy", "").startswith("default-src 'none'") and
          r.getheader("X-Content-Type-Options") == "nosniff" and r.getheader("Referrer-Policy") == "no-referrer",
          "security headers on /api", dict(r.getheaders()))
    check(r.getheader("Access-Control-Allow-Origin") is None, "no CORS on /api")

    # a conversation of alice, with a streamed reply that is stored
    st, j, _, _ = a.req("POST", "/api/conversations", {"title": "", "settings": {"temperature": 0}})
    check(st == 201 and re.fullmatch(r"[0-9a-f]{32}", j["id"]), "create a conversation", (st, j))
    cid = j["id"]
    st, _, raw, r = a.req("POST", f"/api/conversations/{cid}/messages", {"content": "Who are you?"})
    streamed = sse_text(raw)
    check(st == 200 and r.getheader("Content-Type") == "text/event-stream" and raw.endswith(b"data: [DONE]\n\n"),
          "sending streams the reply", (st, raw[:200]))
    uid, rid = int(r.getheader("X-Cgpt-User-Message")), int(r.getheader("X-Cgpt-Assistant-Message"))
    time.sleep(0.3)
    st, conv, _, _ = a.req("GET", f"/api/conversations/{cid}")
    msgs = {m["id"]: m for m in conv["messages"]}
    check(msgs[uid]["content"] == "Who are you?" and msgs[rid]["parent"] == uid, "the stored messages and their link", conv)
    check(msgs[rid]["content"] == streamed and msgs[rid]["status"] == "complete" and msgs[rid]["completion_tokens"] > 0,
          "the stored reply is what streamed, complete", (msgs[rid], streamed))
    check(conv["title"] == "Who are you?", "the first message became the title", conv["title"])
    # the same chat through /v1, greedy, gives the same text (one scheduler, one model)
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    c.request("POST", "/v1/chat/completions", body=json.dumps(
        {"model": "cgpt-mini", "messages": [{"role": "user", "content": "Who are you?"}], "temperature": 0}),
        headers={"Content-Type": "application/json"})
    v1 = json.loads(c.getresponse().read())["choices"][0]["message"]["content"]
    check(v1 == streamed, "/v1 gives the same greedy reply", (v1, streamed))

    # every route: owner, other user, anonymous, no CSRF
    routes = [
        ("GET", f"/api/conversations/{cid}", None),
        ("GET", f"/api/conversations/{cid}/export", None),
        ("PATCH", f"/api/conversations/{cid}", {"title": "renamed"}),
        ("POST", f"/api/conversations/{cid}/messages", {"content": "hi"}),
        ("POST", f"/api/conversations/{cid}/regenerate", {"message": rid}),
        ("DELETE", f"/api/conversations/{cid}", None),
    ]
    for method, path, body in routes:
        st, j, _, _ = b.req(method, path, body)
        check(st == 404 and "renamed" not in json.dumps(j) and "Who are you" not in json.dumps(j),
              f"{method} {path[:30]}.. as another user: 404, no data", (st, j))
        st, _, _, _ = anon.req(method, path, body)
        check(st == 401, f"{method} {path[:30]}.. anonymous: 401", st)
        if method != "GET":
            st, _, _, _ = a.req(method, path, body, csrf=False)
            check(st == 403, f"{method} {path[:30]}.. without the CSRF token: 403", st)
            st, _, _, _ = a.req(method, path, body, headers={"X-CSRF-Token": "x" * 43})
            check(st == 403, f"{method} {path[:30]}.. with a wrong CSRF token: 403", st)
    for method, path, body in [("GET", "/api/conversations", None), ("POST", "/api/conversations", {}),
                               ("POST", "/api/import", {"messages": []}), ("GET", "/api/keys", None),
                               ("POST", "/api/keys", {"name": "k"}), ("DELETE", "/api/keys/k", None)]:
        st, _, _, _ = anon.req(method, path, body)
        check(st == 401, f"{method} {path} anonymous: 401", st)
        if method != "GET":
            st, _, _, _ = a.req(method, path, body, csrf=False)
            check(st == 403, f"{method} {path} without the CSRF token: 403", st)
    st, j, _, _ = b.req("GET", "/api/conversations")
    check(st == 200 and j["conversations"] == [], "bob's list is empty", j)
    st, j, _, _ = b.req("GET", "/api/conversations?q=who")
    check(st == 200 and j["conversations"] == [], "bob's search never finds alice's words", j)
    st, j, _, _ = a.req("GET", "/api/conversations?q=who")
    check(st == 200 and len(j["conversations"]) == 1, "alice's search finds her words", j)
    st, _, _, _ = a.req("PATCH", f"/api/conversations/{cid}", {"title": "x"}, ctype="text/plain")
    check(st == 415, "a state change needs a JSON body (no form posts)", st)
    st, j, _, _ = a.req("POST", f"/api/conversations/{cid}/messages", {"content": "x", "parent": 10 ** 6})
    check(st == 404, "a parent that is not in the conversation: 404", (st, j))
    st, j, _, _ = a.req("PATCH", f"/api/conversations/{cid}", {"settings": {"temperature": 9}})
    st2, j2, _, _ = a.req("POST", f"/api/conversations/{cid}/regenerate", {"message": rid})
    check(st == 200 and st2 == 400 and j2["error"]["param"] == "temperature",
          "a setting out of range is refused when used, naming it", (st2, j2))
    a.req("PATCH", f"/api/conversations/{cid}", {"settings": {"temperature": 0}})

    # two session cookies: ambiguous
    st, j, _, _ = Client(srv).req("GET", "/api/conversations",
                                  headers={"Cookie": f"session={a.cookie}; session={b.cookie}"})
    check(st == 400 and j["error"]["code"] == "ambiguous_credentials", "two session cookies: 400", (st, j))
    st, j, _, _ = Client(srv).req("GET", "/api/conversations",
                                  headers={"Cookie": f"other=1; session={a.cookie}; x=2"})
    check(st == 200, "one session cookie among others: fine", st)

    # keys belong to users
    st, j, _, _ = a.req("POST", "/api/keys", {"name": "laptop"})
    check(st == 201 and j["key"].startswith("sk-cgpt-"), "alice creates a key", (st, j))
    key = j["key"]
    st, j, _, _ = b.req("GET", "/api/keys")
    check(st == 200 and j["keys"] == [], "bob does not see alice's keys", j)
    st, j, _, _ = b.req("POST", "/api/keys", {"name": "desktop"})
    check(st == 201, "bob makes a key too", (st, j))
    st, _, _, _ = b.req("DELETE", "/api/keys/laptop")
    check(st == 404, "bob cannot revoke alice's key", st)
    st, j, _, _ = b.req("POST", "/api/keys", {"name": "laptop"})
    check(st == 201, "names are per user: bob may have a 'laptop' too", (st, j))
    time.sleep(1.2)  # the server reloads keys within a second

    def v1(k):
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        c.request("GET", "/v1/models", headers={"Authorization": f"Bearer {k}"})
        return c.getresponse().status
    check(v1(key) == 200, "alice's key works on /v1", v1(key))
    st, _, _, _ = a.req("DELETE", "/api/keys/laptop")
    check(st == 200, "alice revokes it", st)
    time.sleep(1.2)
    check(v1(key) == 401, "a revoked key is refused on /v1 (bob's key keeps keys required)")
    st, j, _, _ = a.req("GET", "/api/keys")
    check(j["keys"][0]["active"] is False, "the list says revoked", j)

    # logout ends the session; an expired one is no session
    old = a.cookie
    st, _, _, r = a.req("POST", "/api/logout", {})
    check(st == 200 and "Max-Age=0" in (r.getheader("Set-Cookie") or ""), "logout clears the cookie")
    st, _, _, _ = Client(srv).req("GET", "/api/conversations", headers={"Cookie": f"session={old}"})
    check(st == 401, "the ended session is refused", st)
    check(a.login("alice", "alice-pass-1") == 200, "alice logs in again")
    db = sqlite3.connect(os.path.join(data, "cgpt.db"))
    db.execute("UPDATE sessions SET expires = 1")
    db.commit()
    db.close()
    st, _, _, _ = a.req("GET", "/api/conversations")
    check(st == 401, "an expired session is refused", st)
    check(a.login("alice", "alice-pass-1") == 200, "and a new login works")

    # brute force is slowed: per user name, then per address
    codes = [Client(srv).req("POST", "/api/login", {"name": "bob", "password": f"guess-{i}"}, csrf=False)[0]
             for i in range(14)]
    # bob logged in once already: 10 attempts a minute for one name, then 429
    check(codes[:9] == [401] * 9 and codes[9:] == [429] * 5, "the 11th attempt for one user within a minute: 429", codes)
    st, j, _, r = Client(srv).req("POST", "/api/login", {"name": "bob", "password": "bob-pass-22"}, csrf=False)
    check(st == 429 and int(r.getheader("Retry-After") or 0) >= 1, "even the right password waits (Retry-After)", (st, j))
    other = [Client(srv).req("POST", "/api/login", {"name": f"nobody{i}", "password": "x" * 8}, csrf=False)[0]
             for i in range(25)]
    check(429 in other, "many names from one address are slowed too", other)
    # a wrong password and an unknown user read the same
    st1, j1, _, _ = Client(srv).req("POST", "/api/login", {"name": "carol", "password": "p" * 9}, csrf=False)
    check(st1 in (401, 429), "an unknown user: refused", st1)

    # delete removes it for good
    st, _, _, _ = a.req("DELETE", f"/api/conversations/{cid}")
    check(st == 200, "alice deletes her conversation", st)
    st, _, _, _ = a.req("GET", f"/api/conversations/{cid}")
    check(st == 404, "then it is gone", st)
    st, j, _, _ = a.req("GET", "/api/nope")
    check(st == 404 and j["error"]["code"] == "unknown_url", "an unknown /api route: 404 envelope", (st, j))


if __name__ == "__main__":
    sys.exit(main())
