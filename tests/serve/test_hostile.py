#!/usr/bin/env python3
"""Hostile input against a live `cgpt serve` (issue 5, "Hostile input").

Starts its own server on a small random model (byte-level vocabulary, so a
prompt of N ASCII characters is N tokens) with --header-timeout 2
--body-timeout 2, then runs the same abuse twice:

  - malformed / truncated JSON, non-object bodies            -> 400 envelope
  - 100k-deep nesting (fast), the depth limit 64 at its edge -> 400 / 200
  - invalid UTF-8 and lone surrogates in strings             -> 400
  - huge numbers (1e400, 30-digit integers)                  -> 400
  - a wrong type for every chat field, with the right param  -> 400 + param
  - out-of-range values (n=1000000, max_tokens=1e12, ...)    -> 400 + param
  - completions / tokenize / detokenize bad fields           -> 400
  - 100 MB body (Content-Length, streamed), chunked 9 MiB    -> 413 at once, closed
  - 10k headers, a 200 KB header, a 200 KB URL, HTTP junk    -> 4xx or a close (printed)
  - slowloris headers (1 byte/s), an idle socket, a slow body -> cut off after ~2 s
    while a normal client is served meanwhile
  - clients vanishing mid-stream, mid-prefill (prompt near the context) and
    while queued                                             -> cancelled at once
  - HTTP framing (hostile_framing.py): Content-Length + Transfer-Encoding
    in both orders, conflicting lengths, unknown codings, folded lines,
    bad field lines, chunk sizes (non-hex, past 64 bits, over the limit),
    encoded NUL/CR/LF/'..'/'/' and overlong UTF-8 in targets, pipelining,
    keep-alive after errors, Expect: 100-continue   -> their status, closed,
    and no smuggled request ever served
  - max_tokens beyond the context                            -> 400 before any stream byte
  - 1000 concurrent connections (idle, /health, chat)        -> each answered or closed

After each round: /health 200, /metrics shows cgpt_requests_running 0,
cgpt_requests_queued 0 and cgpt_kv_blocks_used == cgpt_kv_blocks_cached (no
leaked KV blocks); the server's VmRSS outside its (lazily mapped) KV pool after
round 3 is within 20% of round 2 (round 1 warms up).
At the end SIGTERM must stop it with status 0 and a clean stderr (ASan).

Usage: tests/serve/test_hostile.py [CGPT]   (or env CGPT; default build/cgpt)
       env GENMODEL: build/tools/genmodel by default.
Prints "ok - ..." / "not ok - ..." lines and "hostile: N passed, M failed"."""
import json, os, resource, shutil, socket, struct, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile_http as H  # noqa: E402
import hostile_framing  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CGPT", os.path.join(ROOT, "build", "cgpt"))
GEN = os.environ.get("GENMODEL", os.path.join(ROOT, "build", "tools", "genmodel"))
ASAN = "/asan/" in os.path.abspath(CGPT) or os.environ.get("CGPT_ASAN") == "1"
SLOW = 3.0 if ASAN else 1.0          # time allowances scale for the sanitizer build
CTX = 2048
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
PARALLEL = 4
QUEUE = 16
NO_EOG = {"2": -100, "260": -100}   # randmodel's <|endoftext|> and <|im_end|>: answers run to max_tokens
CHAT = "/v1/chat/completions"

passed = failed = 0
log_lock = threading.Lock()


def check(cond, what, detail=""):
    global passed, failed
    with log_lock:
        if cond:
            passed += 1
            print(f"ok - {what}")
        else:
            failed += 1
            print(f"not ok - {what}" + (f": {detail}" if detail else ""))
    sys.stdout.flush()
    return cond


def note(text):
    with log_lock:
        print(f"# {text}")
        sys.stdout.flush()


class Ctx:
    """What every section needs: the server, the model id, the prompt overhead."""
    srv = None
    model = None
    overhead = 0  # chat template tokens around one user message


def chat(content="hello", **kw):
    body = {"model": Ctx.model, "messages": [{"role": "user", "content": content}], "max_tokens": 4}
    body.update(kw)
    return body


# ------------------------------------------------------------ envelope checks

def is_envelope(r):
    e = r.error()
    return (e is not None and isinstance(e.get("message"), str) and e["message"] != ""
            and isinstance(e.get("type"), str) and "param" in e and "code" in e)


def expect_error(what, r, status, param=None, code=None, param_prefix=False):
    """r must be 'status' with an OpenAI error envelope (param/code when given)
    and an x-request-id header."""
    if r.status != status:
        return check(False, what, f"want {status}, got {r!r}")
    if not is_envelope(r):
        return check(False, what, f"{status} without an error envelope: {r.body[:300]!r}")
    e = r.error()
    if param is not None:
        got = e.get("param")
        okp = isinstance(got, str) and (got.startswith(param) if param_prefix else got == param)
        if not okp:
            return check(False, what, f"param {got!r}, want {param!r}{' (prefix)' if param_prefix else ''}; "
                                      f"message {e.get('message')!r}")
    if code is not None and e.get("code") != code:
        return check(False, what, f"code {e.get('code')!r}, want {code!r}; message {e.get('message')!r}")
    if "x-request-id" not in r.headers:
        return check(False, what, "no x-request-id header")
    return check(True, what)


def expect_4xx_or_close(what, r):
    """For abuse whose outcome is 'an error status or a closed connection':
    prints which one happened."""
    if r.status is not None and 400 <= r.status < 500:
        return check(True, f"{what} -> {r.status}")
    if r.status is None and r.closed:
        return check(True, f"{what} -> connection closed{' (reset)' if r.reset else ''} after {r.elapsed:.2f}s")
    return check(False, what, f"want 4xx or a close, got {r!r}")


# ------------------------------------------------------------ sections

def sec_malformed(srv, tag):
    good = json.dumps(chat()).encode()
    bodies = [b"", b"{", b"}", b"[", b"[]", b"null", b"123", b'"a string"', b"true",
              b'{"model":', b'{"model":"m",}', b"{'model':'m'}", b'{"model" "m"}',
              b'{"messages":[{"role":"user","content":"hi"}]', b'{"a":1}{"b":2}',
              b"\x00\x01\x02\xff" * 16, b'{"model":"m","messages":[{"role":"user","content":"hi}]}',
              b'{"model":"m","messages":[],"n":01}', b'{"model":NaN}', b'{"model":Infinity}']
    # truncations of a valid body at several offsets
    for cut in (1, 2, 9, len(good) // 3, len(good) // 2, len(good) - 2, len(good) - 1):
        bodies.append(good[:cut])
    bad = []
    for b in bodies:
        r = H.post(srv, CHAT, b)
        if r.status != 400 or not is_envelope(r) or r.error().get("type") != "invalid_request_error":
            bad.append((b[:60], repr(r)))
    check(not bad, f"[{tag}] {len(bodies)} malformed/truncated/non-object JSON bodies -> 400 invalid_request_error",
          f"{len(bad)} wrong: {bad[:4]}")
    # the same on the other JSON routes
    for path in ("/v1/completions", "/tokenize", "/detokenize"):
        wrong = [b[:40] for b in (b"{", b"[]", good[:len(good) // 2], b"\xff") if H.post(srv, path, b).status != 400]
        check(not wrong, f"[{tag}] malformed JSON on {path} -> 400", f"not 400 for {wrong}")


def sec_nesting(srv, tag):
    for name, body in (("100k '['", b"[" * 100000),
                       ("100k '{\"a\":'", b'{"a":' * 100000),
                       ("100k nested inside a valid request",
                        json.dumps(chat())[:-1].encode() + b',"x":' + b"[" * 100000 + b"]" * 100000 + b"}"),
                       ("1M '['", b"[" * 1000000)):
        t0 = time.monotonic()
        r = H.post(srv, CHAT, body, timeout=30)
        dt = time.monotonic() - t0
        expect_error(f"[{tag}] nesting {name} -> 400", r, 400)
        check(dt < 2.0 * SLOW, f"[{tag}] nesting {name} answered fast", f"took {dt:.2f}s")
    # the limit at its edge: the top-level object is depth 1
    def nested(k):
        b = chat(max_tokens=1)
        b["metadata_x"] = json.loads("[" * k + "]" * k)
        return b
    r = H.post(srv, CHAT, nested(63))
    check(r.status == 200, f"[{tag}] depth 64 (object + 63 arrays) accepted", repr(r))
    r = H.post(srv, CHAT, nested(64))
    expect_error(f"[{tag}] depth 65 -> 400", r, 400)
    # brackets inside strings are not nesting: this is a (too long) prompt
    r = H.post(srv, CHAT, chat("[" * (CTX + 100)))
    expect_error(f"[{tag}] {CTX + 100} '[' inside a string are text, not nesting (context_length_exceeded)",
                 r, 400, param="messages", code="context_length_exceeded")


def sec_encoding(srv, tag):
    pre = b'{"model":"' + Ctx.model.encode() + b'","max_tokens":1,"messages":[{"role":"user","content":"'
    post = b'"}]}'
    cases = [("0xff byte", b"ab\xffcd"), ("0xfe 0xff", b"\xfe\xff"), ("overlong '/' C0 AF", b"\xc0\xaf"),
             ("overlong NUL C0 80", b"\xc0\x80"), ("UTF-8-encoded surrogate ED A0 80", b"\xed\xa0\x80"),
             ("truncated 3-byte sequence at string end", b"x\xe2\x82"), ("lone continuation byte", b"\x80"),
             ("code point above U+10FFFF F4 90 80 80", b"\xf4\x90\x80\x80"), ("5-byte form F8", b"\xf8\x88\x80\x80\x80"),
             ("lone high surrogate \\ud800", b"\\ud800"), ("lone low surrogate \\udc00", b"\\udc00"),
             ("high surrogate then text \\ud800x", b"\\ud800x"), ("high surrogate then BMP \\ud800\\u0041", b"\\ud800\\u0041"),
             ("reversed pair \\udc00\\ud800", b"\\udc00\\ud800"), ("bad escape \\x41", b"\\x41"),
             ("short escape \\u12", b"\\u12"), ("raw control byte 0x01", b"a\x01b"), ("raw newline", b"a\nb")]
    for name, s in cases:
        expect_error(f"[{tag}] {name} in content -> 400", H.post(srv, CHAT, pre + s + post), 400)
    # invalid bytes elsewhere: the model name, an object key, an unknown field
    expect_error(f"[{tag}] invalid UTF-8 in model -> 400",
                 H.post(srv, CHAT, b'{"model":"\xff","messages":[{"role":"user","content":"hi"}]}'), 400)
    expect_error(f"[{tag}] invalid UTF-8 in a key -> 400",
                 H.post(srv, CHAT, pre + b'hi"}],"\xc3\x28":1,"x":[{"y":"' + post), 400)
    # controls: a valid pair and valid multi-byte text are accepted
    r = H.post(srv, CHAT, pre + b"\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac" + post)
    check(r.status == 200, f"[{tag}] valid surrogate pair and UTF-8 accepted (control)", repr(r))


def sec_numbers(srv, tag):
    cases = [("temperature", "1e400"), ("temperature", "-1e400"), ("seed", "123456789012345678901234567890"),
             ("seed", "-123456789012345678901234567890"), ("max_tokens", "1e400"),
             ("n", "123456789012345678901234567890"), ("unknown_field", "1e400"),
             ("unknown_field", "9" * 400), ("top_k", "18446744073709551616")]
    base = json.dumps(chat())[:-1]
    for field, num in cases:
        r = H.post(srv, CHAT, f'{base},"{field}":{num}}}'.encode())
        expect_error(f"[{tag}] huge number {field}={num[:32]} -> 400", r, 400)


WRONG_TYPES = [
    # (field, value, param expected (exact unless it ends with '*': prefix))
    ("model", 123, "model"), ("model", ["m"], "model"), ("model", {"a": 1}, "model"),
    ("messages", "hi", "messages"), ("messages", {"role": "user"}, "messages"), ("messages", 5, "messages"),
    ("messages", None, "messages"), ("messages", [1], "messages[0]*"), ("messages", ["hi"], "messages[0]*"),
    ("messages", [{"role": 5, "content": "x"}], "messages[0].role"),
    ("messages", [{"role": "user", "content": 5}], "messages[0].content"),
    ("messages", [{"role": "user", "content": {"text": "x"}}], "messages[0].content"),
    ("messages", [{"role": "user", "content": [5]}], "messages[0].content*"),
    ("messages", [{"role": "user", "content": [{"type": "text", "text": 5}]}], "messages[0].content*"),
    ("messages", [{"role": "user"}], "messages[0]*"),
    ("messages", [{"role": "user", "content": "a"}, {"role": "user", "content": True}], "messages[1].content"),
    ("n", "2", "n"), ("n", 1.5, "n"), ("n", True, "n"), ("n", [1], "n"),
    ("stream", "yes", "stream"), ("stream", 1, "stream"), ("stream", {}, "stream"),
    ("stop", 5, "stop"), ("stop", True, "stop"), ("stop", {"a": 1}, "stop"), ("stop", [1], "stop*"),
    ("stop", ["a", None], "stop*"),
    ("max_tokens", "10", "max_tokens"), ("max_tokens", 1.5, "max_tokens"), ("max_tokens", True, "max_tokens"),
    ("max_tokens", [10], "max_tokens"), ("max_completion_tokens", "10", "max_completion_tokens"),
    ("temperature", "hot", "temperature"), ("temperature", True, "temperature"), ("temperature", [1], "temperature"),
    ("top_p", "x", "top_p"), ("top_p", False, "top_p"), ("top_k", "5", "top_k"), ("top_k", 1.5, "top_k"),
    ("min_p", "x", "min_p"), ("min_p", [0.1], "min_p"), ("seed", "42", "seed"), ("seed", 1.5, "seed"),
    ("seed", True, "seed"), ("presence_penalty", "x", "presence_penalty"),
    ("presence_penalty", {}, "presence_penalty"), ("frequency_penalty", "x", "frequency_penalty"),
    ("frequency_penalty", True, "frequency_penalty"), ("logit_bias", [], "logit_bias"),
    ("logit_bias", "x", "logit_bias"), ("logit_bias", 5, "logit_bias"), ("logit_bias", {"5": "x"}, "logit_bias*"),
    ("logit_bias", {"5": None}, "logit_bias*"), ("logit_bias", {"abc": 1}, "logit_bias*"),
    ("logprobs", "yes", "logprobs"), ("logprobs", 1, "logprobs"), ("top_logprobs", "2", "top_logprobs"),
    ("top_logprobs", 1.5, "top_logprobs"), ("stream_options", "x", "stream_options"),
    ("stream_options", [True], "stream_options"), ("stream_options", {"include_usage": "yes"}, "stream_options*"),
    ("user", 5, "user"), ("user", ["u"], "user"), ("user", {}, "user"),
]


def sec_wrong_types(srv, tag):
    bad = []
    for field, value, param in WRONG_TYPES:
        body = chat()
        if field == "top_logprobs":
            body["logprobs"] = True
        if field == "stream_options":
            body["stream"] = True
        if field == "messages" and value is None:
            body.pop("messages")
        else:
            body[field] = value
        r = H.post(srv, CHAT, body)
        prefix = param.endswith("*")
        p = param.rstrip("*")
        e = r.error() or {}
        got = e.get("param")
        okp = isinstance(got, str) and (got.startswith(p) if prefix else got == p)
        if r.status != 400 or not is_envelope(r) or not okp:
            bad.append(f"{field}={json.dumps(value)}: want 400 param {param!r}, got {r.status} param {got!r} "
                       f"{e.get('message', r.body[:120])!r}")
    check(not bad, f"[{tag}] wrong types for every chat field ({len(WRONG_TYPES)} cases) -> 400 with param",
          "\n    " + "\n    ".join(bad))
    # a missing model: OpenAI says 400 (param "model"); serving the first
    # model instead is a documented choice of ours (and llama.cpp's)
    body = chat()
    body.pop("model")
    r = H.post(srv, CHAT, body)
    e = r.error() or {}
    check(r.status == 200 or (r.status == 400 and e.get("param") == "model"),
          f"[{tag}] missing model -> {r.status}{' (the first model served)' if r.status == 200 else ''}", repr(r))


RANGES = [
    ("n", 1000000, "n"), ("n", 0, "n"), ("n", -1, "n"), ("n", 17, "n"),
    ("max_tokens", 1e12, "max_tokens"), ("max_tokens", 1000000000000, "max_tokens"), ("max_tokens", 0, "max_tokens"),
    ("max_tokens", -1, "max_tokens"), ("max_tokens", 1048577, "max_tokens"),
    ("max_completion_tokens", 1e12, "max_completion_tokens"), ("temperature", 2.5, "temperature"),
    ("temperature", -0.1, "temperature"), ("top_p", 1.5, "top_p"), ("top_p", -0.5, "top_p"), ("top_k", -1, "top_k"),
    ("min_p", 1.5, "min_p"), ("presence_penalty", 2.5, "presence_penalty"),
    ("frequency_penalty", -3, "frequency_penalty"), ("top_logprobs", 21, "top_logprobs"),
    ("top_logprobs", -1, "top_logprobs"), ("stop", ["a", "b", "c", "d", "e"], "stop"), ("stop", "", "stop*"),
    ("stop", ["x" * 300], "stop*"), ("logit_bias", {str(i): 1 for i in range(301)}, "logit_bias"),
    ("logit_bias", {"5": 101}, "logit_bias*"), ("logit_bias", {"5": -100.5}, "logit_bias*"),
    ("logit_bias", {"-1": 1}, "logit_bias*"), ("logit_bias", {"99999": 1}, "logit_bias*"),
    ("logit_bias", {"4294967296": 1}, "logit_bias*"), ("model", "m" * 300, "model"), ("user", "u" * 300, "user"),
    ("messages", [], "messages"), ("messages", [{"role": "user", "content": "x"}] * 1025, "messages"),
    ("messages", [{"role": "robot", "content": "x"}], "messages[0].role"),
    ("messages", [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}],
     "messages[0].content*"),
]


def sec_ranges(srv, tag):
    bad = []
    for field, value, param in RANGES:
        body = chat()
        body[field] = value
        r = H.post(srv, CHAT, body)
        prefix = param.endswith("*")
        p = param.rstrip("*")
        e = r.error() or {}
        got = e.get("param")
        okp = isinstance(got, str) and (got.startswith(p) if prefix else got == p)
        if r.status != 400 or not is_envelope(r) or not okp:
            shown = json.dumps(value)
            bad.append(f"{field}={shown[:40]}: want 400 param {param!r}, got {r.status} param {got!r} "
                       f"{e.get('message', r.body[:120])!r}")
    check(not bad, f"[{tag}] out-of-range values ({len(RANGES)} cases: n=1000000, max_tokens=1e12, ...) -> 400 with param",
          "\n    " + "\n    ".join(bad))
    # rules between fields
    expect_error(f"[{tag}] top_logprobs without logprobs -> 400", H.post(srv, CHAT, chat(top_logprobs=2)), 400,
                 param="top_logprobs")
    expect_error(f"[{tag}] stream_options without stream -> 400",
                 H.post(srv, CHAT, chat(stream_options={"include_usage": True})), 400, param="stream_options")
    expect_error(f"[{tag}] unknown model -> 404 model_not_found", H.post(srv, CHAT, chat(model="no-such-model")),
                 404, param="model", code="model_not_found")
    expect_error(f"[{tag}] prompt longer than the context -> 400 context_length_exceeded",
                 H.post(srv, CHAT, chat("a" * (CTX + 10))), 400, param="messages", code="context_length_exceeded")
    # ignorable extras and nulls are accepted
    r = H.post(srv, CHAT, chat(max_tokens=1, store=False, metadata={"a": "b"}, service_tier="auto",
                               reasoning_effort="low", temperature=None, top_p=None, stop=None, seed=None,
                               n=None, logit_bias=None, user=None))
    check(r.status == 200, f"[{tag}] ignorable extras and null fields accepted (control)", repr(r))


def sec_other_routes(srv, tag):
    comp = "/v1/completions"
    base = {"model": Ctx.model, "prompt": "hi", "max_tokens": 2}
    for name, patch, param in (("prompt 5", {"prompt": 5}, "prompt"), ("prompt {}", {"prompt": {}}, "prompt"),
                               ("prompt [[1,2],[3]]", {"prompt": [[1, 2], [3]]}, "prompt"),
                               ("prompt ['a','b']", {"prompt": ["a", "b"]}, "prompt"),
                               ("prompt [1.5]", {"prompt": [1.5]}, "prompt"),
                               ("prompt [999999]", {"prompt": [999999]}, "prompt"),
                               ("prompt [-1]", {"prompt": [-1]}, "prompt"),
                               ("echo true", {"echo": True}, "echo"), ("logprobs 21", {"logprobs": 21}, "logprobs"),
                               ("logprobs 'x'", {"logprobs": "x"}, "logprobs"), ("n 1000000", {"n": 1000000}, "n"),
                               ("max_tokens 1e12", {"max_tokens": 1e12}, "max_tokens"),
                               ("prompt too long", {"prompt": "a" * (CTX + 10)}, "prompt")):
        b = dict(base)
        b.update(patch)
        expect_error(f"[{tag}] completions {name} -> 400", H.post(srv, comp, b), 400, param=param,
                     param_prefix=(param == "prompt"))
    bad = []
    for path, body in (("/tokenize", {"content": 5}), ("/tokenize", {"content": "x", "add_special": "yes"}),
                       ("/tokenize", {}), ("/detokenize", {"tokens": ["a"]}), ("/detokenize", {"tokens": [-1]}),
                       ("/detokenize", {"tokens": [999999999]}), ("/detokenize", {"tokens": 5}),
                       ("/detokenize", {"tokens": [1.5]}), ("/detokenize", {})):
        r = H.post(srv, path, body)
        if r.status != 400 or not is_envelope(r):
            bad.append(f"{path} {json.dumps(body)} -> {r!r}")
    check(not bad, f"[{tag}] tokenize/detokenize bad fields -> 400 envelope", "; ".join(bad))
    expect_error(f"[{tag}] unknown route -> 404 envelope", H.get(srv, "/v1/nope"), 404)
    expect_error(f"[{tag}] wrong method GET {CHAT} -> 405 envelope", H.get(srv, CHAT), 405)


def sec_big_bodies(srv, tag):
    # 100 MB announced by Content-Length and streamed: 413 without reading it all, then closed
    total = 100 * 1024 * 1024
    s = H.connect(srv)
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {total}\r\n\r\n").encode()
    sent = [0]
    stop = threading.Event()

    def sender():
        blk = b'{"model":"' + b"x" * 65000 + b'"'
        try:
            s.sendall(head)
            while sent[0] < total and not stop.is_set():
                n = s.send(blk[:min(len(blk), total - sent[0])])
                sent[0] += n
        except OSError:
            pass

    s.settimeout(10)
    th = threading.Thread(target=sender, daemon=True)
    t0 = time.monotonic()
    th.start()
    r = H.read_response(s, timeout=10 * SLOW)
    dt = time.monotonic() - t0
    closed = r.closed
    if r.status is not None and not closed:  # the response came: the connection must close soon
        try:
            s.settimeout(3)
            while True:
                d = s.recv(65536)
                if not d:
                    closed = True
                    break
        except OSError:
            closed = True
    stop.set()
    th.join(5)
    s.close()
    expect_error(f"[{tag}] 100 MB body -> 413", r, 413, code="request_too_large")
    check(dt < 5 * SLOW, f"[{tag}] 100 MB body: 413 quickly", f"took {dt:.2f}s")
    check(sent[0] < total, f"[{tag}] 100 MB body: the server did not read it all",
          f"it accepted all {sent[0]} bytes")
    check(closed, f"[{tag}] 100 MB body: connection closed after the 413")
    note(f"100 MB body: 413 after {dt:.2f}s, {sent[0] / 1e6:.1f} MB sent before the close")

    # just over the default 8 MiB limit, sent whole
    body = b'{"model":"' + b"x" * (8 << 20) + b'"}'
    expect_error(f"[{tag}] body of 8 MiB + 12 bytes -> 413", H.post(srv, CHAT, body, timeout=30), 413)
    # chunked transfer encoding of 9 MiB: no Content-Length to trust
    s = H.connect(srv)
    head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = head.encode()
    piece = b"x" * 65536
    data += b'a\r\n{"model":"\r\n'
    for _ in range(9 * 16):
        data += b"%x\r\n" % len(piece) + piece + b"\r\n"
    data += b"2\r\n\"}\r\n0\r\n\r\n"
    t = threading.Thread(target=H.send_all, args=(s, data), daemon=True)
    t.start()
    r = H.read_response(s, timeout=20 * SLOW)
    s.close()
    t.join(5)
    expect_error(f"[{tag}] chunked body of 9 MiB -> 413", r, 413)
    # Expect: 100-continue with a huge Content-Length: refused before any body byte
    r = H.raw(srv, (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {total}\r\nExpect: 100-continue\r\n\r\n").encode(), timeout=10)
    check(r.status == 413 or (r.status is None and r.closed),
          f"[{tag}] Expect: 100-continue with 100 MB -> 413 (not 100 Continue)", repr(r))


def sec_headers(srv, tag):
    many = "".join(f"X-H{i}: v{i}\r\n" for i in range(10000))
    r = H.raw(srv, f"GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode(), timeout=15)
    expect_4xx_or_close(f"[{tag}] 10k headers", r)
    r = H.raw(srv, f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 200000}\r\n\r\n".encode(), timeout=15)
    expect_4xx_or_close(f"[{tag}] one 200 KB header", r)
    r = H.raw(srv, f"GET /health?{'a' * 200000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), timeout=15)
    expect_4xx_or_close(f"[{tag}] a 200 KB URL", r)
    for name, data in (("garbage request line", b"GARBAGE\r\n\r\n"),
                       ("binary junk", bytes(range(256)) * 4 + b"\r\n\r\n"),
                       ("Content-Length: abc", f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{{}}".encode()),
                       ("Content-Length: -5", f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{{}}".encode()),
                       ("Content-Length overflow", f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n"
                                                   f"Content-Length: 99999999999999999999999\r\n\r\n{{}}".encode()),
                       ("two different Content-Lengths", f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                                         f"Content-Length: 3\r\n\r\n{{}}".encode()),
                       ("bad chunk size", f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                          f"zz\r\n{{}}\r\n0\r\n\r\n".encode()),
                       ("HTTP/1.1 without Host", f"POST {CHAT} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode())):
        r = H.raw(srv, data, timeout=10)
        expect_4xx_or_close(f"[{tag}] {name}", r)
    # libmicrohttpd passes a NUL inside a header value through; nothing reads
    # that header, so any answer but a 5xx or a hang is fine
    r = H.raw(srv, b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", timeout=10)
    check((r.status is not None and r.status < 500) or (r.status is None and r.closed),
          f"[{tag}] NUL in a header value -> {r.status or 'closed'}", repr(r))
    r = H.get(srv, "/health")
    check(r.status == 200, f"[{tag}] /health after header abuse", repr(r))


def slow_sender(srv, prefix, trickle, interval, limit, out, key):
    """Send 'prefix' then 'trickle' one byte per 'interval' s; record when the
    server cut us off (EOF, reset or a response) or that it never did."""
    t0 = time.monotonic()
    res = {"cut": None, "status": None, "sent": 0}
    try:
        s = H.connect(srv)
        s.sendall(prefix)
        s.setblocking(False)  # only this thread uses it: recv below must not wait
        i = 0
        while time.monotonic() - t0 < limit:
            # a response or a close?
            try:
                d = s.recv(4096, socket.MSG_DONTWAIT)
                if not d:
                    res["cut"] = time.monotonic() - t0
                    break
                if d.startswith(b"HTTP/1."):
                    try:
                        res["status"] = int(d.split(b" ")[1])
                    except (IndexError, ValueError):
                        pass
                res["cut"] = time.monotonic() - t0
                break
            except BlockingIOError:
                pass
            except OSError:
                res["cut"] = time.monotonic() - t0
                break
            if trickle:
                try:
                    if s.send(trickle[i % len(trickle):i % len(trickle) + 1]) == 1:
                        res["sent"] += 1
                        i += 1
                except BlockingIOError:
                    pass
                except OSError:
                    res["cut"] = time.monotonic() - t0
                    break
            time.sleep(interval)
        s.close()
    except OSError as e:
        res["cut"] = -1.0
        res["error"] = str(e)
    out[key] = res


def sec_slow_clients(srv, tag):
    out = {}
    limit = 12 * SLOW
    hdr = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n".encode()
    body = json.dumps(chat()).encode()
    threads = [
        threading.Thread(target=slow_sender, args=(srv, hdr, b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 1.0,
                                                    limit, out, "slowloris")),
        threading.Thread(target=slow_sender, args=(srv, b"", b"", 0.2, limit, out, "idle")),
        threading.Thread(target=slow_sender, args=(srv, hdr + b"Content-Type: application/json\r\n"
                                                   + f"Content-Length: {len(body)}\r\n\r\n".encode(),
                                                   body, 1.0, limit, out, "slow body")),
        threading.Thread(target=slow_sender, args=(srv, f"POST {CHAT} HTTP/1.1\r\n".encode(),
                                                   b"X" * 10000, 0.3, limit, out, "slow header line")),
    ]
    for t in threads:
        t.start()
    # meanwhile a normal client is served
    lat = []
    okc = True
    t_end = time.monotonic() + 4
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        r1 = H.get(srv, "/health", timeout=5)
        r2 = H.post(srv, CHAT, chat(max_tokens=2), timeout=10)
        lat.append(time.monotonic() - t0)
        okc = okc and r1.status == 200 and r2.status == 200
    check(okc and max(lat) < 2.0 * SLOW, f"[{tag}] normal clients served while slow clients hang on "
          f"({len(lat)} rounds, max {max(lat):.2f}s)", f"ok={okc} latencies {['%.2f' % x for x in lat]}")
    for t in threads:
        t.join(limit + 5)
    bound = (max(HEADER_TIMEOUT, BODY_TIMEOUT) + 3) * SLOW
    for key in ("slowloris", "idle", "slow body", "slow header line"):
        res = out.get(key, {})
        cut = res.get("cut")
        what = f"[{tag}] {key} cut off after the timeout (2 s)"
        if cut is None or cut < 0:
            check(False, what, f"not cut off within {limit:.0f}s: {res}")
        else:
            status = res.get("status")
            check(cut < bound and (status is None or status in (400, 408, 413, 431)),
                  what + f" -> {'status ' + str(status) if status else 'closed'} after {cut:.1f}s"
                  f" ({res.get('sent', 0)} bytes trickled)",
                  f"cut at {cut:.1f}s (bound {bound:.0f}s), {res}")


def stream_then_vanish(srv, body, n_events, rst):
    """Send a streaming request, read until 'n_events' data: lines arrived, close.
    Returns the number of data: lines seen."""
    s = H.connect(srv)
    s.sendall(H.request_bytes("POST", CHAT, json.dumps(body).encode()))
    s.settimeout(30)
    buf = b""
    try:
        while buf.count(b"data:") < n_events:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except OSError:
        pass
    if rst:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return buf.count(b"data:"), buf[:200]


def send_then_vanish(srv, body, rst, wait=0.0):
    s = H.connect(srv)
    s.sendall(H.request_bytes("POST", CHAT if "messages" in body else "/v1/completions", json.dumps(body).encode()))
    if wait:
        time.sleep(wait)
    if rst:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def settle(srv, timeout):
    """Wait until nothing runs or waits and no KV block is held outside the
    prefix cache; returns (metrics, seconds waited)."""
    t0 = time.monotonic()
    m = None
    while time.monotonic() - t0 < timeout:
        m = H.metrics(srv)
        if m and m.get("cgpt_requests_running", 1) == 0 and m.get("cgpt_requests_queued", 1) == 0 \
                and m.get("cgpt_kv_blocks_used", -1) == m.get("cgpt_kv_blocks_cached", -2):
            break
        time.sleep(0.1)
    return m, time.monotonic() - t0


def gen_total(srv):
    m = H.metrics(srv) or {}
    return m.get("cgpt_generated_tokens_total")


def sec_vanish(srv, tag):
    # mid-stream: answers would run 1500 tokens (end-of-generation banned)
    m0 = H.metrics(srv) or {}
    g0, c0 = m0.get("cgpt_generated_tokens_total"), m0.get("cgpt_requests_cancelled_total")
    max_t = 1500
    k = 4
    res = [None] * k
    ths = [threading.Thread(target=lambda i=i: res.__setitem__(
        i, stream_then_vanish(srv, chat(f"story {i} {tag}", stream=True, max_tokens=max_t, logit_bias=NO_EOG),
                              3, rst=(i % 2 == 1)))) for i in range(k)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    check(all(r and r[0] >= 3 for r in res), f"[{tag}] {k} streams started before vanishing",
          f"{[r for r in res]}")
    m, waited = settle(srv, 20 * SLOW)
    g1 = (m or {}).get("cgpt_generated_tokens_total")
    dt = time.monotonic() - t0
    ok_cancel = g0 is not None and g1 is not None and g1 - g0 < k * max_t / 2
    check(ok_cancel, f"[{tag}] clients vanished mid-stream: cancelled at once "
          f"({(g1 or 0) - (g0 or 0):.0f} tokens generated, not {k}x{max_t}; idle after {dt:.1f}s)",
          f"generated_tokens_total {g0} -> {g1}")
    c1 = (m or {}).get("cgpt_requests_cancelled_total")
    check(c0 is not None and c1 is not None and c1 - c0 == k,
          f"[{tag}] requests_cancelled_total +{k} for the vanished streams", f"{c0} -> {c1}")

    # mid-prefill: prompts near the context. First how long one prefill takes
    # here (a distinct prompt: no prefix-cache help), then four such requests
    # (stream and not): two closed right after sending, two a third of a
    # prefill later (surely admitted and mid-prefill). Cancelled at once: the
    # engine is idle well before it could have prefilled even one more prompt.
    n_prompt = CTX - 600 - Ctx.overhead
    max_t = 550

    def long_prompt(key):
        return key + "p" * (n_prompt - len(key))
    t0 = time.monotonic()
    r = H.post(srv, CHAT, chat(long_prompt(f"time {tag} {time.time_ns()}"), max_tokens=1), timeout=120)
    t_full = time.monotonic() - t0
    check(r.status == 200, f"[{tag}] a {n_prompt + Ctx.overhead}-token prompt takes {t_full:.2f}s", repr(r))
    wait = t_full / 3
    m0 = H.metrics(srv) or {}
    g0, c0 = m0.get("cgpt_generated_tokens_total"), m0.get("cgpt_requests_cancelled_total")
    ths = []
    for i in range(4):
        body = chat(long_prompt(f"{i} {tag} {time.time_ns()}"), max_tokens=max_t, logit_bias=NO_EOG,
                    stream=(i % 2 == 1))
        ths.append(threading.Thread(target=send_then_vanish, args=(srv, body, i == 1, wait if i >= 2 else 0.0)))
    for t in ths:
        t.start()
    for t in ths:
        t.join(60)
    t_gone = time.monotonic()
    m, waited = settle(srv, 20 * SLOW + 4 * t_full)
    m = m or {}
    g1, c1 = m.get("cgpt_generated_tokens_total"), m.get("cgpt_requests_cancelled_total")
    # The proof is that (almost) nothing was generated; the idle time only
    # has to beat four prefills (the server looks at its sockets every 50 ms,
    # and settle() polls /metrics every 100 ms, so one fast prefill is no bound).
    check(g0 is not None and g1 is not None and g1 - g0 < 4 * max_t / 2 and waited < max(4 * t_full, 0.5),
          f"[{tag}] clients vanished mid-prefill ({n_prompt + Ctx.overhead}-token prompts, stream and not): "
          f"cancelled at once (idle {waited:.2f}s after the last close, one prefill takes {t_full:.2f}s; "
          f"{(g1 or 0) - (g0 or 0):.0f} tokens generated, not 4x{max_t})",
          f"generated_tokens_total {g0} -> {g1}, idle after {time.monotonic() - t_gone:.2f}s")
    check(c0 is not None and c1 is not None and c1 - c0 >= 2,
          f"[{tag}] the requests closed mid-prefill were admitted and then cancelled "
          f"(requests_cancelled_total +{(c1 or 0) - (c0 or 0):.0f})", f"{c0} -> {c1}")

    # while queued: more long requests than --parallel, all abandoned
    m0 = H.metrics(srv) or {}
    g0, c0 = m0.get("cgpt_generated_tokens_total"), m0.get("cgpt_requests_cancelled_total")
    socks = []
    for i in range(PARALLEL + 8):
        s = H.connect(srv)
        s.sendall(H.request_bytes("POST", CHAT, json.dumps(
            chat(f"queued {i} {tag}", max_tokens=1500, logit_bias=NO_EOG, stream=(i % 2 == 0))).encode()))
        socks.append(s)
    time.sleep(0.3)
    m_mid = H.metrics(srv) or {}
    for s in socks:
        s.close()
    m, waited = settle(srv, 20 * SLOW)
    g1 = (m or {}).get("cgpt_generated_tokens_total")
    note(f"while queued: running {m_mid.get('cgpt_requests_running')} queued {m_mid.get('cgpt_requests_queued')} "
         f"before the clients left")
    ok_cancel = g0 is not None and g1 is not None and g1 - g0 < len(socks) * 1500 / 4
    check(ok_cancel, f"[{tag}] {len(socks)} running+queued clients vanished: all cancelled "
          f"({(g1 or 0) - (g0 or 0):.0f} tokens generated)", f"generated_tokens_total {g0} -> {g1}")
    # A request can still be in admission (its input being moderated, which
    # under ASan takes a while) when nothing runs or waits: its cancellation
    # is counted when it gets there, so wait for the count, bounded.
    c1 = (m or {}).get("cgpt_requests_cancelled_total")
    t_wait = time.monotonic()
    while c0 is not None and (c1 is None or c1 - c0 < len(socks)) and time.monotonic() - t_wait < 20 * SLOW:
        time.sleep(0.1)
        c1 = (H.metrics(srv) or {}).get("cgpt_requests_cancelled_total")
    check(c0 is not None and c1 is not None and c1 - c0 == len(socks),
          f"[{tag}] requests_cancelled_total +{len(socks)} for them", f"{c0} -> {c1}")

    # max_tokens that cannot fit beside the prompt: 400 naming both numbers, before any stream byte
    r = H.post(srv, CHAT, chat("cap me", stream=True, max_tokens=1048576))
    e = r.error() or {}
    check(r.status == 400 and e.get("code") == "context_length_exceeded" and "1048576" in e.get("message", "")
          and str(CTX) in e.get("message", "") and "text/event-stream" not in r.headers.get("content-type", ""),
          f"[{tag}] max_tokens=1048576 beyond the context: 400 context_length_exceeded, no stream", repr(r))
    room = CTX - (Ctx.overhead + len("fits"))  # the prompt is the overhead + one token a byte
    n, head = stream_then_vanish(srv, chat("fits", stream=True, max_tokens=room), 3, rst=False)
    check(n >= 3, f"[{tag}] max_tokens={room}, exactly what fits beside the prompt: accepted", repr(head))
    r = H.post(srv, CHAT, chat("fits", max_tokens=room + 1))
    check(r.status == 400 and (r.error() or {}).get("code") == "context_length_exceeded",
          f"[{tag}] max_tokens={room + 1}, one more: 400", repr(r))


def sec_framing(srv, tag):
    hostile_framing.sec_framing(srv, tag, check)


def sec_thousand(srv, tag, n=1000):
    """n sockets at once: a third idle, a third GET /health, a third a short chat."""
    import selectors
    sel = selectors.DefaultSelector()
    chat_req = H.request_bytes("POST", CHAT, json.dumps(chat("hi", max_tokens=4)).encode())
    health_req = H.request_bytes("GET", "/health", None)
    conns = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((srv.host, srv.port))
        kind = ("idle", "health", "chat")[i % 3]
        c = {"s": s, "kind": kind, "out": {"health": health_req, "chat": chat_req}.get(kind, b""),
             "buf": b"", "done": False, "status": None, "closed": False, "err": None}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if c["out"] else 0), c)
    deadline = time.monotonic() + 40 * SLOW
    left = n
    while left and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=0.5):
            c = key.data
            s = c["s"]
            if ev & selectors.EVENT_WRITE and c["out"]:
                try:
                    k = s.send(c["out"])
                    c["out"] = c["out"][k:]
                except BlockingIOError:
                    pass
                except OSError as e:
                    c["err"] = str(e)
                    c["out"] = b""
                if not c["out"]:
                    sel.modify(s, selectors.EVENT_READ, c)
                continue
            if ev & selectors.EVENT_READ:
                try:
                    d = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    d = b""
                    c["err"] = str(e)
                if d:
                    c["buf"] += d
                    continue
                c["closed"] = True
                if c["buf"].startswith(b"HTTP/1."):
                    try:
                        c["status"] = int(c["buf"].split(b" ", 2)[1])
                    except (IndexError, ValueError):
                        pass
                sel.unregister(s)
                s.close()
                left -= 1
    stuck = [c for c in conns if not c["closed"]]
    for c in stuck:
        sel.unregister(c["s"])
        c["s"].close()
    by = {}
    for c in conns:
        k = (c["kind"], c["status"] if c["status"] is not None else ("closed" if c["closed"] else "open"))
        by[k] = by.get(k, 0) + 1
    note(f"{n} connections: " + ", ".join(f"{k[0]} {k[1]}: {v}" for k, v in sorted(by.items(), key=str)))
    check(not stuck, f"[{tag}] {n} concurrent connections: every one answered or closed",
          f"{len(stuck)} still open after {40 * SLOW:.0f}s")
    bad_chat = [c["status"] for c in conns if c["kind"] == "chat" and c["status"] not in (200, 503, 429)]
    check(not bad_chat, f"[{tag}] {n} connections: chats got 200 or the documented 503/429",
          f"other outcomes: {sorted(set(map(str, bad_chat)))} x{len(bad_chat)}")
    n_ok_chat = sum(1 for c in conns if c["kind"] == "chat" and c["status"] == 200)
    check(n_ok_chat >= 1, f"[{tag}] {n} connections: {n_ok_chat} chats served")
    ok503 = all(b"retry-after:" in c["buf"].lower() for c in conns if c["status"] == 503)
    check(ok503, f"[{tag}] every 503 carries Retry-After")
    bad_health = [c["status"] for c in conns if c["kind"] == "health" and c["status"] != 200]
    check(not bad_health, f"[{tag}] {n} connections: every /health answered 200 (under --max-connections)",
          f"{len(bad_health)} not: {sorted(set(map(str, bad_health)))}")
    idle_answered = [c["status"] for c in conns if c["kind"] == "idle" and c["status"] not in (None, 408)]
    check(not idle_answered, f"[{tag}] idle connections closed (or 408)", f"{idle_answered[:5]}")
    r = H.get(srv, "/health")
    check(r.status == 200, f"[{tag}] /health after {n} connections", repr(r))


def round_of_abuse(srv, tag):
    t0 = time.monotonic()
    for sec in (sec_malformed, sec_nesting, sec_encoding, sec_numbers, sec_wrong_types, sec_ranges,
                sec_other_routes, sec_big_bodies, sec_headers, sec_framing, sec_slow_clients, sec_vanish,
                sec_thousand):
        ts = time.monotonic()
        try:
            sec(srv, tag)
        except Exception as e:  # a section's crash is a failure, the rest still runs
            check(False, f"[{tag}] {sec.__name__} ran", f"{type(e).__name__}: {e}")
        note(f"{sec.__name__}: {time.monotonic() - ts:.1f}s")
        if not srv.alive():
            check(False, f"[{tag}] server alive after {sec.__name__}", srv.log_tail())
            return False
    check(srv.alive(), f"[{tag}] server still up after the round ({time.monotonic() - t0:.0f}s)")
    r = H.get(srv, "/health")
    check(r.status == 200 and (r.json() or {}).get("status") == "ok", f"[{tag}] /health 200", repr(r))
    m, waited = settle(srv, 10 * SLOW)
    if m is None:
        check(False, f"[{tag}] /metrics readable")
        return True
    need = ("cgpt_requests_running", "cgpt_requests_queued", "cgpt_kv_blocks_used", "cgpt_kv_blocks_cached")
    missing = [k for k in need if k not in m]
    check(not missing, f"[{tag}] /metrics has {', '.join(need)}",
          f"missing {missing}; have {sorted(k for k in m if 'request' in k or 'kv' in k)}")
    check(m.get("cgpt_requests_running") == 0 and m.get("cgpt_requests_queued") == 0,
          f"[{tag}] idle afterwards: running 0, queued 0",
          f"running {m.get('cgpt_requests_running')} queued {m.get('cgpt_requests_queued')} after {waited:.1f}s")
    check(m.get("cgpt_kv_blocks_used") == m.get("cgpt_kv_blocks_cached"),
          f"[{tag}] no leaked KV blocks: used {m.get('cgpt_kv_blocks_used')} == cached "
          f"{m.get('cgpt_kv_blocks_cached')}", f"after {waited:.1f}s settle")
    if "cgpt_connections_open" in m:
        check(m["cgpt_connections_open"] <= 2, f"[{tag}] connections_open back to {m['cgpt_connections_open']:.0f}")
    return True


def main():
    global CGPT
    t_start = time.monotonic()
    if not os.path.exists(CGPT):
        print(f"not ok - {CGPT} missing (build it)")
        return 1
    if not os.path.exists(GEN):
        print(f"not ok - {GEN} missing (make tools)")
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the server inherits it
    tmp = tempfile.mkdtemp(prefix="cgpt-hostile-")
    model = os.path.join(tmp, "hostile.gguf")
    subprocess.run([GEN, "--arch", "llama", "--vocab", "300", "--embd", "256", "--layers", "4", "--heads", "4",
                    "--kv-heads", "2", "--ff", "512", "--ctx", str(CTX), "--seed", "7", "-o", model], check=True)
    env = dict(os.environ)
    if ASAN:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=16:malloc_context_size=8")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    srv = H.Server(CGPT, ["-m", model, "--port", "0", "--data-dir", data, "--ctx", str(CTX),
                          "--parallel", str(PARALLEL), "--queue", str(QUEUE),
                          "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)],
                   os.path.join(tmp, "server.log"), env)
    try:
        srv.start(timeout=60 * SLOW)
    except RuntimeError as e:
        print(f"not ok - server starts: {e}")
        return 1
    check(True, f"server up on port {srv.port} (pid {srv.proc.pid})")
    t0 = time.monotonic()
    while H.get(srv, "/health", timeout=5).status != 200 and time.monotonic() - t0 < 60 * SLOW:
        time.sleep(0.1)  # /health is 503 while the model loads
    try:
        r = H.get(srv, "/v1/models")
        ids = [d.get("id") for d in (r.json() or {}).get("data", [])]
        check(r.status == 200 and ids == ["hostile"], "GET /v1/models lists the model", repr(r))
        Ctx.model = ids[0] if ids else "hostile"
        r = H.post(srv, CHAT, chat("x", max_tokens=1))
        usage = (r.json() or {}).get("usage") or {}
        check(r.status == 200 and isinstance(usage.get("prompt_tokens"), int), "a normal chat works", repr(r))
        Ctx.overhead = max(0, usage.get("prompt_tokens", 21) - 1)
        note(f"chat template overhead: {Ctx.overhead} tokens")

        # The KV pool's pages are mapped lazily: they become resident as blocks
        # are first used (the prefix cache keeps filling the pool), up to the
        # pool's size, by design. The server reports them
        # (cgpt_kv_resident_bytes); everything else must stay flat from round
        # 2 to round 3 (round 1 warms up allocators and buffers).
        rss = []
        for rnd in (1, 2, 3):
            if not round_of_abuse(srv, f"round {rnd}"):
                break
            m = H.metrics(srv) or {}
            kv = m.get("cgpt_kv_resident_bytes")
            total = srv.rss_kib()
            rss.append(None if total is None or kv is None else total - int(kv) // 1024)
            note(f"VmRSS after round {rnd}: {total} KiB, of which KV pool {None if kv is None else int(kv) // 1024}"
                 f" KiB ({time.monotonic() - t_start:.0f}s elapsed)")
        if len(rss) == 3 and None not in rss:
            check(rss[2] <= rss[1] * 1.2, f"flat memory: VmRSS outside the KV pool {rss[1]} KiB after round 2, "
                  f"{rss[2]} KiB after round 3 (< +20%; round 1: {rss[0]} KiB)",
                  f"grew {100.0 * (rss[2] - rss[1]) / rss[1]:.0f}%")
        else:
            check(False, "all three rounds ran and VmRSS / cgpt_kv_resident_bytes were readable", f"{rss}")
    finally:
        alive = srv.alive()
        rc = srv.stop()
        if alive:
            check(rc == 0, "SIGTERM: graceful stop with status 0", f"status {rc}; {srv.log_tail()}")
        log = open(srv.log_path, "rb").read().decode(errors="replace")
        bad = [ln for ln in log.splitlines() if "AddressSanitizer" in ln or "LeakSanitizer" in ln
               or "runtime error:" in ln or "Assertion" in ln or "ASSERT" in ln]
        check(not bad, "server stderr free of sanitizer reports and assertion failures", "\n    ".join(bad[:10]))
        if failed:
            print(f"# server log tail ({srv.log_path}):\n" + srv.log_tail(3000))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"hostile: {passed} passed, {failed} failed ({time.monotonic() - t_start:.0f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
