#!/usr/bin/env python3
"""The page's /api/ against a live `cgpt serve`: every route tried as its
owner, as another user, anonymously, with an expired or ended session,
without the CSRF token, with two session cookies; session fixation; login
brute force slowed; keys a user made revoked and refused on /v1; the
stored conversation equal to what the stream said; /v1 unchanged beside
the page. Tool calls and reasoning: the schema migration from a version 3
database (made by the old migrations' own SQL), import / export of tool
calls and results (ours and ChatGPT's), the conversation's reasoning /
content split, and the chat request a stored branch with tools makes
(its prompt tokens equal to /v1's for the same OpenAI messages). Raw HTTP
(http.client), so every header is ours to choose.

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


def sse_usage(raw):
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            d = json.loads(line[6:])
            if d.get("usage"):
                return d["usage"]
    return None


def old_migrations(n):
    """The first n schema migrations as src/store/store.c runs them (old
    migrations never change): the SQL of the C string literals."""
    src = open(os.path.join(ROOT, "src", "store", "store.c")).read()
    body = src[src.index("MIGRATIONS[] = {"):]
    body = body[body.index("{") + 1:body.index("\n};")]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    elems, cur = [], ""
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|(,)', body):
        if m.group(2):
            elems.append(cur)
            cur = ""
        else:
            cur += m.group(1).encode().decode("unicode_escape")
    if cur:
        elems.append(cur)
    return elems[:n]


def make_v3(data, pw_hash):
    """A data directory whose database is schema version 3 (before tool
    messages), with alice and a conversation of three messages."""
    os.makedirs(data, mode=0o700)
    db = sqlite3.connect(os.path.join(data, "cgpt.db"))
    db.execute("PRAGMA foreign_keys=ON")
    for sql in old_migrations(3):
        db.executescript(sql)
    db.execute("INSERT INTO meta(key, value) VALUES('schema_version', 3)")
    db.execute("INSERT INTO users(id, name, pw_hash, is_admin, created) VALUES(1, 'alice', ?, 0, 1)", (pw_hash,))
    db.execute("INSERT INTO conversations(id, user_id, title, created, updated, current_leaf, touched) "
               "VALUES(?, 1, 'old one', 1, 1, 7, 1)", ("ab" * 16,))
    for mid, parent, role, text in [(3, None, "user", "Tell me about zebras"),
                                    (5, 3, "assistant", "Zebras have stripes."),
                                    (7, 5, "user", "And okapis?")]:
        db.execute("INSERT INTO messages(id, conv_id, parent_id, role, content, status, created, updated) "
                   "VALUES(?, ?, ?, ?, ?, 'complete', 1, 1)", (mid, "ab" * 16, parent, role, text))
    db.commit()
    db.close()


def migration(tmp):
    """A version 3 database opened by this server: migrated to 4 in place,
    ids, search, triggers, indexes and the tree kept; role 'tool' accepted."""
    scratch = os.path.join(tmp, "scratch")
    user_add(scratch, "alice", "alice-pass-1")
    db = sqlite3.connect(os.path.join(scratch, "cgpt.db"))
    pw_hash = db.execute("SELECT pw_hash FROM users WHERE name = 'alice'").fetchone()[0]
    db.close()
    data = os.path.join(tmp, "v3")
    make_v3(data, pw_hash)
    db = sqlite3.connect(os.path.join(data, "cgpt.db"))
    check(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == 3,
          "the old database is schema version 3")
    try:
        db.execute("INSERT INTO messages(conv_id, role, content, status, created, updated) "
                   "VALUES(?, 'tool', 'x', 'complete', 1, 1)", ("ab" * 16,))
        check(False, "version 3 refuses role 'tool' (the test's old schema is the old one)")
    except sqlite3.IntegrityError:
        check(True, "version 3 refuses role 'tool' (the test's old schema is the old one)")
    db.close()
    srv = Server(data)
    try:
        a = Client(srv)
        check(a.login("alice", "alice-pass-1") == 200, "login on the migrated database")
        st, conv, _, _ = a.req("GET", f"/api/conversations/{'ab' * 16}")
        got = [(m["id"], m["parent"], m["role"], m["content"]) for m in (conv or {}).get("messages", [])]
        check(st == 200 and got == [(3, 0, "user", "Tell me about zebras"), (5, 3, "assistant", "Zebras have stripes."),
                                    (7, 5, "user", "And okapis?")] and conv["current_leaf"] == 7,
              "migrated: every message with its id, parent and text, the branch shown", (st, got))
        st, j, _, _ = a.req("GET", "/api/conversations?q=zebra")
        check(st == 200 and [c["id"] for c in j["conversations"]] == ["ab" * 16], "migrated: search finds the old words", j)
        st, _, raw, r = a.req("POST", f"/api/conversations/{'ab' * 16}/messages", {"content": "What about giraffes?"})
        check(st == 200 and raw.endswith(b"data: [DONE]\n\n") and int(r.getheader("X-Cgpt-User-Message")) > 7,
              "migrated: the conversation goes on", (st, raw[:200]))
        st, j, _, _ = a.req("GET", "/api/conversations?q=giraffes")
        check(st == 200 and len(j["conversations"]) == 1, "migrated: a new message is indexed (the FTS triggers)", j)
        st, j, _, _ = a.req("DELETE", f"/api/conversations/{'ab' * 16}")
        check(st == 200, "migrated: delete", (st, j))
        st, j, _, _ = a.req("GET", "/api/conversations?q=zebra")
        check(st == 200 and j["conversations"] == [], "migrated: deleted messages leave the index", j)
    finally:
        rc = srv.stop()
        check(rc == 0, "SIGTERM (migrated): exit 0", rc)
    db = sqlite3.connect(os.path.join(data, "cgpt.db"))
    check(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == 4, "schema version 4 after")
    check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity after the migration")
    check(db.execute("PRAGMA foreign_key_check").fetchall() == [], "no foreign key broken by the rebuild")
    fks = db.execute("PRAGMA foreign_key_list(messages)").fetchall()
    check(sorted(f[2] for f in fks) == ["conversations", "messages"], "messages' references: itself and conversations", fks)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'messages'")}
    check({"messages_conv", "messages_parent", "messages_status", "messages_ai", "messages_ad", "messages_au"} <= names,
          "indexes and FTS triggers on the new table", names)
    check(db.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'messages_v3%'").fetchone()[0] == 0,
          "the old table is gone")
    cols = [r[1] for r in db.execute("PRAGMA table_info(messages)")]
    check(cols[-3:] == ["tool_calls", "tool_call_id", "name"], "the tool columns", cols)
    db.close()


WEATHER = {"title": "weather", "messages": [
    {"id": "u1", "role": "user", "content": "What is the weather in Paris?"},
    {"id": "a1", "parent": "u1", "role": "assistant", "content": "",
     "tool_calls": [{"id": "call_w1", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}},
                    {"id": "call_t1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"id": "t1", "parent": "a1", "role": "tool", "tool_call_id": "call_w1", "name": "get_weather",
     "content": "{\"temp\": 21, \"sky\": \"sunny\"}"},
    {"id": "t2", "parent": "t1", "role": "tool", "tool_call_id": "call_t1", "name": "get_time", "content": "14:05"},
    {"id": "a2", "parent": "t2", "role": "assistant", "content": "<think>21 and sunny.</think>It is 21 °C and sunny."},
    {"id": "a3", "parent": "t2", "role": "assistant", "content": "Pondering the sky.</think>Sunny, 21 °C."},
    {"id": "a4", "parent": "t2", "role": "assistant", "content": "<think>Still thinking about"},
    {"id": "a5", "parent": "t2", "role": "assistant", "content": "A plain <b>answer</b>, no thinking."},
], "current_leaf": "a2"}

CHATGPT_TOOLS = [{
    "title": "ChatGPT with tools", "current_node": "n5", "mapping": {
        "root": {"id": "root", "message": None, "parent": None, "children": ["n1"]},
        "n1": {"id": "n1", "message": {"author": {"role": "user"}, "content": {"content_type": "text", "parts": ["Compute 6*7"]}},
               "parent": "root", "children": ["n2"]},
        "n2": {"id": "n2", "message": {"author": {"role": "assistant"}, "recipient": "python",
                                       "content": {"content_type": "code", "language": "python", "text": "print(6*7)"}},
               "parent": "n1", "children": ["n3"]},
        "n3": {"id": "n3", "message": {"author": {"role": "tool", "name": "python"},
                                       "content": {"content_type": "execution_output", "text": "42"}},
               "parent": "n2", "children": ["n4"]},
        "n4": {"id": "n4", "message": {"author": {"role": "assistant"}, "recipient": "Weather.get_weather",
                                       "content": {"content_type": "text", "parts": ["{\"city\": \"Oslo\"}"]}},
               "parent": "n3", "children": ["n4r"]},
        "n4r": {"id": "n4r", "message": {"author": {"role": "tool", "name": "Weather.get_weather"},
                                         "content": {"content_type": "text", "parts": ["rain"]}},
                "parent": "n4", "children": ["n5"]},
        "n5": {"id": "n5", "message": {"author": {"role": "assistant"}, "recipient": "all",
                                       "content": {"content_type": "text", "parts": ["6*7 = 42, and it rains in Oslo."]}},
               "parent": "n4r", "children": []},
    }}]


def tools(srv):
    """Tool calls and results: import, export round trip, the page's view
    (reasoning split off), the chat request a branch makes."""
    a = Client(srv)
    check(a.login("alice", "alice-pass-1") == 200, "alice logs in (tools)")
    st, j, _, _ = a.req("POST", "/api/import", WEATHER)
    check(st == 200 and len(j["imported"]) == 1, "import a conversation with tool calls and results", (st, j))
    cid = j["imported"][0]
    st, conv, _, _ = a.req("GET", f"/api/conversations/{cid}")
    ms = conv["messages"]
    check([m["role"] for m in ms] == ["user", "assistant", "tool", "tool", "assistant", "assistant", "assistant", "assistant"],
          "roles kept, tool included", [m["role"] for m in ms])
    calls = ms[1].get("tool_calls")
    check(calls == [{"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"C"}'}},
                    {"id": "call_t1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
          "tool_calls stored as OpenAI's, object arguments as JSON text", calls)
    check(ms[2].get("tool_call_id") == "call_w1" and ms[2].get("name") == "get_weather" and ms[2]["parent"] == ms[1]["id"],
          "a tool result keeps tool_call_id and name", ms[2])
    check("tool_calls" not in ms[0] and "tool_call_id" not in ms[0] and "reasoning" not in ms[0],
          "a user message carries no tool fields", ms[0])
    split = [(m["reasoning"], m["content"]) for m in ms[4:]]
    check(split == [("21 and sunny.", "It is 21 °C and sunny."), ("Pondering the sky.", "Sunny, 21 °C."),
                    ("Still thinking about", ""), ("", "A plain <b>answer</b>, no thinking.")],
          "the page's view: reasoning split off (<think>, a reply opened inside one, an unclosed one, none)", split)
    # export: raw text and the tool fields; importing it again gives the same
    st, ex, _, _ = a.req("GET", f"/api/conversations/{cid}/export")
    check(st == 200 and ex["messages"][4]["content"] == "<think>21 and sunny.</think>It is 21 °C and sunny." and
          "reasoning" not in ex["messages"][4], "the export keeps the text as the model wrote it", ex["messages"][4])
    st, j, _, _ = a.req("POST", "/api/import", ex)
    st2, ex2, _, _ = a.req("GET", f"/api/conversations/{j['imported'][0]}/export")
    keys = ("role", "content", "tool_calls", "tool_call_id", "name")
    strip = lambda e: [{k: m.get(k) for k in keys} for m in e["messages"]]
    check(st == 200 and st2 == 200 and strip(ex2) == strip(ex), "export -> import -> export keeps the tool fields",
          (strip(ex2), strip(ex)))
    # refused shapes
    for bad, what in [([{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}], "calls on a user message"),
                      ([{"role": "assistant", "content": "", "tool_calls": {"a": 1}}], "tool_calls not an array"),
                      ([{"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": "{}"}}]}], "a call without a name"),
                      ([{"role": "assistant", "content": "", "tool_calls": [{"type": "web", "function": {"name": "f"}}]}], "a call not a function"),
                      ([{"role": "tool", "content": "x", "tool_call_id": 5}], "a tool_call_id not a string")]:
        st, j, _, _ = a.req("POST", "/api/import", {"title": "bad", "messages": bad})
        check(st == 400, f"import refuses {what}", (st, j))

    # the chat request of a branch with tools: the same prompt as /v1 given the OpenAI messages
    def v1_prompt(messages):
        c = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
        c.request("POST", "/v1/chat/completions", body=json.dumps({"model": "cgpt-mini", "messages": messages, "max_tokens": 1}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        j = json.loads(r.read())
        return (j.get("usage") or {}).get("prompt_tokens"), j
    a.req("PATCH", f"/api/conversations/{cid}", {"settings": {"max_tokens": 4}, "current_leaf": ms[4]["id"]})
    st, _, raw, r = a.req("POST", f"/api/conversations/{cid}/messages", {"content": "And tomorrow?"})
    page = (sse_usage(raw) or {}).get("prompt_tokens")
    want, j = v1_prompt([
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_w1", "name": "get_weather", "content": "{\"temp\": 21, \"sky\": \"sunny\"}"},
        {"role": "tool", "tool_call_id": "call_t1", "name": "get_time", "content": "14:05"},
        {"role": "assistant", "content": "<think>21 and sunny.</think>It is 21 °C and sunny."},
        {"role": "user", "content": "And tomorrow?"}])
    check(st == 200 and raw.endswith(b"data: [DONE]\n\n") and sse_text(raw), "a conversation with tool calls goes on", (st, raw[:300]))
    check(page and page == want, "its chat request sends the calls and results as OpenAI messages (prompt tokens equal)",
          (page, want, j))
    without, _ = v1_prompt([{"role": "user", "content": "What is the weather in Paris?"},
                            {"role": "assistant", "content": "<think>21 and sunny.</think>It is 21 °C and sunny."},
                            {"role": "user", "content": "And tomorrow?"}])
    check(without and page and without < page, "and the calls and results are in the prompt", (without, page))
    # a branch whose call nobody answered: the call is left out, as OpenAI requires
    st, j, _, _ = a.req("POST", "/api/import", {"title": "unanswered", "settings": {"max_tokens": 4}, "messages": [
        {"id": 1, "role": "user", "content": "Weather?"},
        {"id": 2, "parent": 1, "role": "assistant", "content": "Let me look.",
         "tool_calls": [{"id": "c9", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"id": 3, "parent": 2, "role": "tool", "tool_call_id": "other", "content": "answers nothing"}]})
    uid = j["imported"][0]
    st, _, raw, _ = a.req("POST", f"/api/conversations/{uid}/messages", {"content": "Well?"})
    page = (sse_usage(raw) or {}).get("prompt_tokens")
    want, _ = v1_prompt([{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Let me look."},
                         {"role": "user", "content": "Well?"}])
    check(st == 200 and page == want, "an unanswered call and a stray result are left out of the request", (st, page, want, raw[:300]))
    # regenerate from a tool result: the model answers it
    st, conv, _, _ = a.req("GET", f"/api/conversations/{cid}")
    t2 = [m for m in conv["messages"] if m["role"] == "tool"][-1]
    st, _, raw, r = a.req("POST", f"/api/conversations/{cid}/regenerate", {"message": t2["id"]})
    check(st == 200 and raw.endswith(b"data: [DONE]\n\n"), "regenerate on a tool result answers it", (st, raw[:300]))
    st, conv, _, _ = a.req("GET", f"/api/conversations/{cid}")
    rid = int(r.getheader("X-Cgpt-Assistant-Message") or 0)
    check(any(m["id"] == rid and m["parent"] == t2["id"] for m in conv["messages"]), "the new reply hangs from the result")

    # ChatGPT's export with tool use
    st, j, _, _ = a.req("POST", "/api/import", CHATGPT_TOOLS)
    check(st == 200, "ChatGPT's export with tool use imports", (st, j))
    st, conv, _, _ = a.req("GET", f"/api/conversations/{j['imported'][0]}")
    ms = conv["messages"]
    byid = {m["id"]: m for m in ms}
    path, m = [], byid.get(conv["current_leaf"])
    while m:
        path.append(m)
        m = byid.get(m["parent"])
    path.reverse()
    check([m["role"] for m in path] == ["user", "assistant", "tool", "assistant", "tool", "assistant"],
          "ChatGPT: calls and results kept in order, the current node shown", [(m["role"], m["content"][:20]) for m in path])
    if len(path) == 6:
        c1, c2 = path[1]["tool_calls"][0], path[3]["tool_calls"][0]
        check(c1["function"] == {"name": "python", "arguments": '{"code":"print(6*7)"}'} and c1["id"] == "call_n2",
              "ChatGPT: code to a tool is a call with {code}", c1)
        check(c2["function"] == {"name": "Weather.get_weather", "arguments": '{"city": "Oslo"}'},
              "ChatGPT: JSON to a tool is a call with those arguments", c2)
        check(path[2]["tool_call_id"] == c1["id"] and path[2]["content"] == "42" and path[2]["name"] == "python" and
              path[4]["tool_call_id"] == c2["id"] and path[4]["content"] == "rain",
              "ChatGPT: each result answers its call", path[2:5:2])
        check(path[5]["content"] == "6*7 = 42, and it rains in Oslo.", "ChatGPT: the answer after them", path[5])
    st, j, _, _ = a.req("POST", "/api/import", [{"title": "plain", "current_node": "n2", "mapping": {
        "n1": {"id": "n1", "message": {"author": {"role": "user"}, "content": {"parts": ["hi"]}}, "parent": None},
        "n2": {"id": "n2", "message": {"author": {"role": "assistant"}, "content": {"parts": ["hello"]}}, "parent": "n1"}}}])
    st, conv, _, _ = a.req("GET", f"/api/conversations/{j['imported'][0]}")
    check([(m["role"], m["content"]) for m in conv["messages"]] == [("user", "hi"), ("assistant", "hello")],
          "ChatGPT without tools: as before", conv["messages"])


def main():
    tmp = tempfile.mkdtemp(prefix="cgpt-api-")
    data = os.path.join(tmp, "data")
    migration(tmp)
    user_add(data, "alice", "alice-pass-1")
    user_add(data, "bob", "bob-pass-22")
    srv = Server(data, "--ctx", "1024")
    try:
        tools(srv)
    finally:
        check(srv.stop() == 0, "SIGTERM (tools): exit 0")
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
