"""Helpers for tests/serve/test_hostile.py: start and stop a `cgpt serve`
process, talk raw HTTP/1.1 over sockets (so requests can be malformed, slow,
huge or abandoned), read /metrics and the server's RSS.

Stdlib only (socket, subprocess, json). Nothing here asserts: callers
decide what a result means."""
import json, os, select, signal, socket, subprocess, time


class Server:
    """A `cgpt serve` child process. start() waits for the ready line
    "cgpt serve: listening on http://HOST:PORT" on stdout; stderr goes to a
    log file (so a chatty server never blocks on a full pipe)."""

    def __init__(self, cgpt, args, log_path, env=None):
        self.cgpt, self.args, self.log_path, self.env = cgpt, list(args), log_path, env
        self.proc = None
        self.host, self.port = "127.0.0.1", None

    def start(self, timeout=60):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.cgpt, "serve", *self.args], stdout=subprocess.PIPE,
                                     stderr=self.log, env=self.env)
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before ready: "
                                   f"{self.log_tail()}")
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not r:
                continue
            ch = os.read(self.proc.stdout.fileno(), 1)
            if not ch:
                continue
            if ch != b"\n":
                line += ch
                continue
            text = line.decode(errors="replace")
            line = b""
            if "listening on http://" in text:
                hostport = text.split("http://", 1)[1].strip().rstrip("/")
                self.host, port = hostport.rsplit(":", 1)
                self.port = int(port)
                return self
        raise RuntimeError(f"no ready line within {timeout} s: {self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        """VmRSS of the server process in KiB (None if unavailable)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        return int(ln.split()[1])
        except OSError:
            return None
        return None

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return None
        self.log.close()
        return self.proc.returncode

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
            return data[-n:].decode(errors="replace")
        except OSError:
            return ""


class Resp:
    """A parsed HTTP response (or the lack of one)."""

    def __init__(self):
        self.status = None     # int, or None when the server closed without answering
        self.reason = ""
        self.headers = {}      # lower-case name -> value (last one wins)
        self.body = b""
        self.closed = False    # the server closed the connection (EOF or reset) at some point
        self.reset = False     # ... by a reset (ECONNRESET / EPIPE)
        self.timeout = False   # we gave up waiting
        self.elapsed = 0.0

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error(self):
        """The error object of an OpenAI envelope, or None."""
        j = self.json()
        if isinstance(j, dict) and isinstance(j.get("error"), dict):
            return j["error"]
        return None

    def __repr__(self):
        if self.status is None:
            what = "timeout" if self.timeout else ("reset" if self.reset else "closed")
            return f"<no response: {what} after {self.elapsed:.2f}s>"
        return f"<{self.status} {self.body[:300]!r}>"


def connect(srv, timeout=10):
    s = socket.create_connection((srv.host, srv.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request_bytes(method, path, body=b"", headers=None, content_type="application/json"):
    """An HTTP/1.1 request as bytes with Content-Length (unless the caller
    passes its own framing headers)."""
    h = {"Host": "127.0.0.1", "Connection": "close"}
    if body is not None and method in ("POST", "PUT"):
        h["Content-Type"] = content_type
        h["Content-Length"] = str(len(body))
    for k, v in (headers or {}).items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def _dechunk(data):
    """Decode a chunked body; returns (body, complete)."""
    out, i = b"", 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return out, False
        try:
            size = int(data[i:j].split(b";")[0], 16)
        except ValueError:
            return out, False
        if size == 0:
            return out, True
        if len(data) < j + 2 + size:
            out += data[j + 2:]
            return out, False
        out += data[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def read_response(s, timeout=30, head_only=False):
    """Read one response from socket 's' (which asked for Connection: close).
    Never raises for network trouble: the Resp says what happened."""
    r, buf, t0 = Resp(), b"", time.monotonic()
    deadline = t0 + timeout
    while True:
        # done? (headers parsed and body complete by its framing)
        he = buf.find(b"\r\n\r\n")
        if he >= 0 and r.status is None:
            _parse_head(r, buf[:he])
        if r.status is not None:
            if head_only:
                break
            body = buf[he + 4:]
            cl = r.headers.get("content-length")
            if "chunked" in r.headers.get("transfer-encoding", "").lower():
                r.body, done = _dechunk(body)
                if done:
                    break
            elif cl is not None and cl.isdigit() and len(body) >= int(cl):
                r.body = body[:int(cl)]
                break
            else:
                r.body = body
        left = deadline - time.monotonic()
        if left <= 0:
            r.timeout = True
            break
        rd, _, _ = select.select([s], [], [], min(left, 0.5))
        if not rd:
            continue
        try:
            chunk = s.recv(65536, socket.MSG_DONTWAIT)
        except (ConnectionResetError, BrokenPipeError):
            r.closed = r.reset = True
            break
        except (BlockingIOError, socket.timeout):
            continue
        except OSError:
            r.closed = True
            break
        if not chunk:
            r.closed = True
            if r.status is None and buf.find(b"\r\n\r\n") >= 0:
                _parse_head(r, buf[:buf.find(b"\r\n\r\n")])
            if r.status is not None and not head_only:
                body = buf[buf.find(b"\r\n\r\n") + 4:]
                if "chunked" in r.headers.get("transfer-encoding", "").lower():
                    r.body, _ = _dechunk(body)
                else:
                    r.body = body
            break
        buf += chunk
    r.elapsed = time.monotonic() - t0
    return r


def _parse_head(r, head):
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        r.status = int(parts[1])
    except (IndexError, ValueError):
        r.status = -1
        return
    r.reason = parts[2].decode(errors="replace") if len(parts) > 2 else ""
    for ln in lines[1:]:
        if b":" in ln:
            k, v = ln.split(b":", 1)
            r.headers[k.strip().lower().decode(errors="replace")] = v.strip().decode(errors="replace")


def send_all(s, data):
    """sendall that reports a closed peer (or a peer that stopped reading for
    the socket's timeout) instead of raising; returns bytes sent. Leaves the
    socket's mode alone, so another thread may read it meanwhile."""
    sent = 0
    try:
        while sent < len(data):
            n = s.send(data[sent:sent + 65536])
            if n <= 0:
                break
            sent += n
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass
    return sent


def raw(srv, data, timeout=30):
    """Send raw bytes on a new connection and read one response."""
    try:
        s = connect(srv, timeout)
    except OSError:
        r = Resp()
        r.closed = True
        return r
    try:
        send_all(s, data)
        return read_response(s, timeout)
    finally:
        s.close()


def post(srv, path, body, headers=None, timeout=60):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    return raw(srv, request_bytes("POST", path, body, headers), timeout)


def get(srv, path, headers=None, timeout=30):
    return raw(srv, request_bytes("GET", path, None, headers), timeout)


def metrics(srv):
    """GET /metrics -> {name: summed value over all label sets} (None on failure)."""
    r = get(srv, "/metrics", timeout=10)
    if r.status != 200:
        return None
    out = {}
    for ln in r.body.decode(errors="replace").splitlines():
        if not ln or ln.startswith("#"):
            continue
        try:
            name_labels, value = ln.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        name = name_labels.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + v
    return out


def sse_events(body):
    """The data: payloads of an SSE body, in order (strings)."""
    evs = []
    for block in body.decode(errors="replace").split("\n\n"):
        for ln in block.split("\n"):
            if ln.startswith("data:"):
                evs.append(ln[5:].strip())
    return evs
