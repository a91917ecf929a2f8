"""HTTP/1.1 framing abuse for tests/serve/test_hostile.py (issue 12): raw
bytes over a socket, each case with the status RFC 9112 (or docs/SERVER.md,
"Hardening") says, and the invariant behind request smuggling: after a
refused request the connection closes and nothing after it is ever served.
Every refused case carries a second, smuggled request for a marker path
(/v1/models/SMUGGLED): its bytes must never produce a response.

sec_framing(srv, tag, check) runs them all; 'check(cond, what, detail)'
counts results the way test_hostile does."""
import json, socket, time

import hostile_http as H

MARK = b"SMUGGLED"
SMUGGLE = b"GET /v1/models/SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"
TOK = b'{"content":"hi"}'   # a valid /tokenize body, 16 bytes


def exchange(srv, raw, wait=3.0, pause_after=None, then=b""):
    """Send 'raw' (then, after 'pause_after' seconds, 'then'); read until the
    server closes or 'wait' seconds pass with nothing new. Returns (bytes,
    closed)."""
    s = H.connect(srv)
    out, closed = b"", False
    try:
        s.sendall(raw)
        if pause_after is not None:
            t0 = time.monotonic()
            while time.monotonic() - t0 < pause_after:
                s.settimeout(max(0.01, pause_after - (time.monotonic() - t0)))
                try:
                    d = s.recv(65536)
                    if not d:
                        return out, True
                    out += d
                except socket.timeout:
                    pass
            s.sendall(then)
        s.settimeout(wait)
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            if not d:
                closed = True
                break
            out += d
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        s.close()
    return out, closed


def responses(data):
    """Split a byte stream into responses [(status, headers, body)]
    (Content-Length framing; 1xx have none)."""
    out, i = [], 0
    while True:
        he = data.find(b"\r\n\r\n", i)
        if he < 0:
            return out
        lines = data[i:he].split(b"\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return out
        hdr = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdr[k.strip().lower().decode()] = v.strip().decode(errors="replace")
        n = int(hdr.get("content-length", "0")) if hdr.get("content-length", "0").isdigit() else 0
        out.append((status, hdr, data[he + 4:he + 4 + n]))
        i = he + 4 + n


def req(head_lines, body=b"", method=b"POST", target=b"/tokenize", version=b"HTTP/1.1",
        host=True, eol=b"\r\n"):
    lines = [method + b" " + target + b" " + version]
    if host:
        lines.append(b"Host: 127.0.0.1")
    lines += head_lines
    return eol.join(lines) + eol + eol + body


def chunked(*chunks, last=b"0\r\n\r\n"):
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + last


# (what, raw request, expected status of the only response). Each is sent
# with SMUGGLE after it.
REFUSED = [
    ("Content-Length + Transfer-Encoding", req([b"Content-Length: 5", b"Transfer-Encoding: chunked"],
                                               chunked(TOK)), 400),
    ("Transfer-Encoding + Content-Length", req([b"Transfer-Encoding: chunked", b"Content-Length: 5"],
                                               chunked(TOK)), 400),
    ("Content-Length + Transfer-Encoding: identity", req([b"Content-Length: 16",
                                                          b"Transfer-Encoding: identity"], TOK), 400),
    ("two Content-Lengths that differ", req([b"Content-Length: 16", b"Content-Length: 5"], TOK), 400),
    ("Content-Length list that differs", req([b"Content-Length: 16, 5"], TOK), 400),
    ("Content-Length +16", req([b"Content-Length: +16"], TOK), 400),
    ("Content-Length -1", req([b"Content-Length: -1"], TOK), 400),
    ("Content-Length 0x10", req([b"Content-Length: 0x10"], TOK), 400),
    ("Content-Length of 30 digits", req([b"Content-Length: " + b"9" * 30], TOK), 400),
    ("Transfer-Encoding: gzip", req([b"Transfer-Encoding: gzip"], TOK), 501),
    ("Transfer-Encoding: chunked, gzip", req([b"Transfer-Encoding: chunked, gzip"], chunked(TOK)), 501),
    ("Transfer-Encoding: gzip, chunked", req([b"Transfer-Encoding: gzip, chunked"], chunked(TOK)), 501),
    ("Transfer-Encoding: chunked twice", req([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                                             chunked(TOK)), 400),
    ("Transfer-Encoding: xchunked", req([b"Transfer-Encoding: xchunked"], chunked(TOK)), 501),
    ("Transfer-Encoding in HTTP/1.0", req([b"Transfer-Encoding: chunked"], chunked(TOK),
                                          version=b"HTTP/1.0"), 400),
    ("obsolete line folding", req([b"X-A: a", b" folded", b"Content-Length: 16"], TOK), 400),
    ("obsolete line folding with a tab", req([b"X-A: a", b"\tfolded", b"Content-Length: 16"], TOK), 400),
    ("a header line without a colon", req([b"NoColonHere", b"Content-Length: 16"], TOK), 400),
    ("whitespace before the colon", req([b"Content-Length : 16"], TOK), 400),
    ("a space inside a field name", req([b"X Y: z", b"Content-Length: 16"], TOK), 400),
    ("a bare CR in a field", req([b"X-A: a\rb", b"Content-Length: 16"], TOK), 400),
    ("NUL in a field value", req([b"X-A: a\x00b", b"Content-Length: 16"], TOK), 400),
    ("HTTP/1.1 without Host", req([b"Content-Length: 16"], TOK, host=False), 400),
    ("two Host fields", req([b"Host: b", b"Content-Length: 16"], TOK), 400),
    ("HTTP/2.0", req([b"Content-Length: 16"], TOK, version=b"HTTP/2.0"), 505),
    ("HTTP/1.1x", req([b"Content-Length: 16"], TOK, version=b"HTTP/1.1x"), 400),
    ("two spaces in the request line", req([b"Content-Length: 16"], TOK, target=b" /tokenize"), 400),
    ("a method that is not a token", req([b"Content-Length: 16"], TOK, method=b"PO(ST"), 400),
    ("Expect: something-else", req([b"Expect: 200-ok", b"Content-Length: 16"], TOK), 417),
    ("chunk size not hex", req([b"Transfer-Encoding: chunked"], b"zz\r\n" + TOK + b"\r\n0\r\n\r\n"), 400),
    ("chunk size with 0x", req([b"Transfer-Encoding: chunked"], b"0x10\r\n" + TOK + b"\r\n0\r\n\r\n"), 400),
    ("chunk size passing 64 bits", req([b"Transfer-Encoding: chunked"],
                                       b"1" + b"0" * 20 + b"\r\n" + TOK + b"\r\n0\r\n\r\n"), 413),
    ("chunk size over the limit (4 GiB)", req([b"Transfer-Encoding: chunked"], b"100000000\r\nabc"), 413),
    ("chunk size over the limit (9 MiB)", req([b"Transfer-Encoding: chunked"], b"900000\r\nabc"), 413),
    ("chunk data longer than its size", req([b"Transfer-Encoding: chunked"],
                                            b"2\r\n" + TOK + b"\r\n0\r\n\r\n"), 400),
    ("negative chunk size", req([b"Transfer-Encoding: chunked"], b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size then a space and a digit", req([b"Transfer-Encoding: chunked"],
                                                b"1 0\r\n" + TOK + b"\r\n0\r\n\r\n"), 400),
    ("Content-Length over the limit", req([b"Content-Length: 9000000"], b"abc"), 413),
]

PATHS = [  # (target, status)
    (b"/v1/models%00", 400), (b"/v1/models%00garbage", 400), (b"/health%00", 400),
    (b"/health%0d%0aX-Injected:%201", 400), (b"/health%0a", 400), (b"/health%7f", 400),
    (b"/v1/models/%2e%2e/%2e%2e/health", 400), (b"/v1/../health", 400), (b"/v1/./models", 400),
    (b"/v1%2fmodels", 400), (b"/v1%2Fmodels", 400), (b"/v1%5cmodels", 400), (b"/v1\\models", 400),
    (b"//health", 400), (b"/v1//models", 400), (b"/v1/models/%c0%af", 400),
    (b"/v1/models/%ed%a0%80", 400), (b"/v1/models/%ff", 400), (b"/health%zz", 400),
    (b"/health%4", 400), (b"/health?x=%00", 400), (b"/health?x=%0a", 400), (b"/health#frag", 400),
    (b"health", 400), (b"/h\xc3\xa9alth", 400),
]

SERVED_PATHS = [  # (target, status): allowed through to routing
    (b"/health", 200), (b"/health?x=1&y=%2e%2e%2f", 200), (b"/v1/models/caf%c3%a9", 404),
    (b"http://127.0.0.1/health", 200), (b"/v1/models/", 404),
]


def expect_only(check, tag, what, data, closed, status):
    rs = responses(data)
    check(len(rs) == 1 and rs[0][0] == status, f"[{tag}] {what} -> {status}",
          f"{[(r[0], r[2][:120]) for r in rs]} {data[:200]!r}")
    if rs and rs[0][0] >= 400:
        err = (json.loads(rs[0][2] or b"null") or {}).get("error") if rs[0][2] else None
        check(isinstance(err, dict) and err.get("message"), f"[{tag}] {what}: an OpenAI error envelope",
              repr(rs[0][2][:200]))
        check(closed and rs[0][1].get("connection", "").lower() == "close",
              f"[{tag}] {what}: Connection: close, and closed", f"closed={closed} {rs[0][1]}")
    check(MARK not in data, f"[{tag}] {what}: the bytes after it are never served", repr(data[-300:]))


def sec_framing(srv, tag, check):
    for what, raw, status in REFUSED:
        data, closed = exchange(srv, raw + SMUGGLE)
        expect_only(check, tag, what, data, closed, status)

    for target, status in PATHS:
        data, closed = exchange(srv, req([], method=b"GET", target=target) + SMUGGLE)
        expect_only(check, tag, f"GET {target[:40]!r}", data, closed, status)
    for target, status in SERVED_PATHS:
        data, closed = exchange(srv, req([b"Connection: close"], method=b"GET", target=target))
        rs = responses(data)
        check(rs and rs[0][0] == status, f"[{tag}] GET {target!r} -> {status} (routed)",
              f"{[(r[0], r[2][:100]) for r in rs]}")

    # over-long request line and head
    data, closed = exchange(srv, req([], method=b"GET", target=b"/" + b"a" * 9000) + SMUGGLE)
    expect_only(check, tag, "a 9000-byte request target", data, closed, 414)
    data, closed = exchange(srv, req([b"X-Big: " + b"b" * 70000], method=b"GET", target=b"/health") + SMUGGLE)
    expect_only(check, tag, "a 70 KB header block", data, closed, 431)
    data, closed = exchange(srv, req([b"X-%d: 1" % i for i in range(200)], method=b"GET",
                                     target=b"/health") + SMUGGLE)
    expect_only(check, tag, "200 header fields", data, closed, 431)

    # accepted framings, each served exactly once
    for what, raw in [
        ("two equal Content-Lengths", req([b"Content-Length: 16", b"Content-Length: 16",
                                           b"Connection: close"], TOK)),
        ("Content-Length list of equal values", req([b"Content-Length: 16, 16", b"Connection: close"], TOK)),
        ("chunked in three chunks with an extension and a trailer",
         req([b"Transfer-Encoding: chunked", b"Connection: close"],
             b"5;ext=1\r\n" + TOK[:5] + b"\r\n" + b"b\r\n" + TOK[5:] + b"\r\n0\r\nX-T: 1\r\n\r\n")),
        ("chunked, Transfer-Encoding in upper case", req([b"Transfer-Encoding: CHUNKED",
                                                          b"Connection: close"], chunked(TOK))),
        ("LF-only line endings (RFC 9112 section 2.2 allows them)",
         req([b"Content-Length: 16", b"Connection: close"], TOK, eol=b"\n")),
        ("an empty line before the request line", b"\r\n" + req([b"Content-Length: 16",
                                                                  b"Connection: close"], TOK)),
        ("HTTP/1.0 without Host", req([b"Content-Length: 16"], TOK, version=b"HTTP/1.0", host=False)),
    ]:
        data, closed = exchange(srv, raw)
        rs = responses(data)
        ok = len(rs) == 1 and rs[0][0] == 200 and json.loads(rs[0][2]).get("tokens")
        check(ok, f"[{tag}] {what} -> 200, served once", f"{[(r[0], r[2][:120]) for r in rs]}")

    # pipelining: answered in order; a bad request after good ones ends the connection
    two = req([], method=b"GET", target=b"/health") + req([b"Content-Length: 16"], TOK)
    data, closed = exchange(srv, two + req([b"Connection: close"], method=b"GET", target=b"/v1/models"))
    rs = responses(data)
    check([r[0] for r in rs] == [200, 200, 200] and b"tokens" in rs[1][2] and b'"list"' in rs[2][2],
          f"[{tag}] three pipelined requests answered in order", f"{[(r[0], r[2][:60]) for r in rs]}")
    data, closed = exchange(srv, req([], method=b"GET", target=b"/health") +
                            req([b"Content-Length: 5", b"Transfer-Encoding: chunked"], chunked(TOK)) + SMUGGLE)
    rs = responses(data)
    check([r[0] for r in rs] == [200, 400] and closed and MARK not in data,
          f"[{tag}] pipelined good then ambiguous: 200, 400, closed, nothing after served",
          f"{[(r[0], r[2][:60]) for r in rs]} closed={closed}")

    # keep-alive after an error the routes answer (the framing was fine): the connection goes on
    data, closed = exchange(srv, req([], method=b"GET", target=b"/v1/models/nope") +
                            req([b"Connection: close"], method=b"GET", target=b"/health"))
    rs = responses(data)
    check([r[0] for r in rs] == [404, 200], f"[{tag}] keep-alive after a 404: the next request is served",
          f"{[(r[0], r[2][:60]) for r in rs]}")
    data, closed = exchange(srv, req([b"Content-Length: 3"], b"{x}") +
                            req([b"Connection: close"], method=b"GET", target=b"/health"))
    rs = responses(data)
    check([r[0] for r in rs] == [400, 200], f"[{tag}] keep-alive after bad JSON: the next request is served",
          f"{[(r[0], r[2][:60]) for r in rs]}")

    # Expect: 100-continue
    data, closed = exchange(srv, req([b"Expect: 100-continue", b"Content-Length: 900000000"]), wait=2)
    check(b"100 Continue" not in data and responses(data) and responses(data)[0][0] == 413 and closed,
          f"[{tag}] Expect: 100-continue over the limit: 413 at once, no 100 Continue", repr(data[:200]))
    data, closed = exchange(srv, req([b"Expect: 100-continue", b"Content-Length: 16", b"Connection: close"]),
                            pause_after=0.5, then=TOK)
    check(data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n") and b'"tokens"' in data,
          f"[{tag}] Expect: 100-continue within the limit: 100 Continue, then the answer", repr(data[:200]))
    data, closed = exchange(srv, req([b"Expect: 100-continue", b"Transfer-Encoding: chunked"]),
                            pause_after=0.5, then=b"900000\r\n" + SMUGGLE)
    rs = responses(data)
    check([r[0] for r in rs] == [100, 413] and MARK not in data,
          f"[{tag}] Expect: 100-continue, chunked, then a chunk over the limit: 100, 413",
          repr(data[:300]))

    # the server is still fine
    r = H.get(srv, "/health")
    check(r.status == 200, f"[{tag}] /health after the framing abuse", repr(r))
