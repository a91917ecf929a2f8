#!/usr/bin/python3
"""mock_hf.py - a local, offline mock of Hugging Face's public HTTP interface,
for testing `cgpt pull` (tests/hub/test_pull.py). Standard library only.

Two HTTP/1.1 servers on 127.0.0.1 (ports picked by the OS):

  the API host (stands in for https://huggingface.co, i.e. HF_ENDPOINT)
    GET  /api/models/OWNER/REPO[?blobs=true]
    GET  /api/models/OWNER/REPO/revision/REV[?blobs=true]
         200 {"id", "modelId", "sha", "private", "gated", "disabled",
              "lastModified", "tags", "siblings": [{"rfilename"}, ...]}
         (with blobs=true each sibling also has "blobId", "size" and, for
         LFS files, "lfs": {"sha256", "size", "pointerSize"})
    GET  /api/models/OWNER/REPO/tree/REV[/PATH][?recursive=true|1]
         200 [{"type": "file", "path", "size", "oid", "lfs": {"oid", "size",
              "pointerSize"}}, {"type": "directory", "path", "size": 0,
              "oid"}, ...]   ("lfs" for every .gguf file only; for those
              "oid" is the git blob id of the LFS pointer, as on the Hub)
    GET|HEAD /OWNER/REPO/resolve/REV/PATH
         302 Location: CDN/blob/OWNER/REPO/PATH?sig=..&expires=.. with
         X-Repo-Commit, ETag: "<sha256>", X-Linked-Size, X-Linked-Etag
    GET|HEAD /files/PATH       the file ROOT/PATH, Range honoured (for
                               direct-URL pulls; also on the CDN host)
    POST /_mock/faults  (JSON body merged into the faults; answers them)
    GET  /_mock/faults, GET /_mock/log, POST /_mock/reset   (not logged)

  the CDN host (stands in for the pre-signed storage URLs the Hub redirects to)
    GET|HEAD /blob/OWNER/REPO/PATH?sig=..   the bytes; Accept-Ranges, ETag,
         Content-Length; "Range: bytes=N-" (also N-M, -N) -> 206 with
         Content-Range, 416 when N >= size; a bad/missing sig -> 403.
    Any request carrying an Authorization header -> 400 (as S3 answers a
    pre-signed URL that also brings a token).

Errors (API host) as the Hub answers them, JSON {"error": ...} plus
X-Error-Code / X-Error-Message headers:
    unknown repository              404 "Repository not found" (RepoNotFound)
    unknown revision                404 "Invalid rev id: REV" (RevisionNotFound)
    unknown file                    404 "Entry not found" (EntryNotFound)
    gated repo, no/invalid token    401 "Access to model O/R is restricted..." (GatedRepo)
    any repo, invalid Bearer token  401 "Invalid credentials in Authorization header"
The valid token is "hf_test_token" (MockHub(token=...) changes it).

Repositories are directories: ROOT/OWNER/REPO/<files, subfolders allowed>.
An optional ROOT/OWNER/REPO/.mock.json configures one: {"gated": true}.
Revisions accepted: "main" and the repository's sha (a sha1 over its file
list and blob ids, so it changes when the files do).

Fault injection, for the next download (a GET of /blob/... or /files/...;
HEAD requests do not consume faults), each one-shot:
    {"cut_after": N}   send N bytes of the body, then close the connection
    {"corrupt": true}  flip one byte (the file's middle byte if the response
                       covers it, else the response's first byte)
    {"stall": SECONDS} send the headers and some bytes (up to 64 KiB, at most
                       half the body), sleep SECONDS, then send the rest
Set them with hub.set_faults(...) (or hub.faults under hub.lock) or with
POST /_mock/faults on the API host.

Every request except /_mock/* is recorded in hub.log (under hub.lock):
{"method", "host": "api"|"cdn", "path" (as sent, with the query), "range"
(the Range header or null), "auth" (bool: Authorization present), "status",
"time"}; GET /_mock/log returns the list.

Module use:   hub = MockHub(root); hub.start(); hub.api_url, hub.cdn_url; ...; hub.stop()
Command line: /usr/bin/python3 tests/hub/mock_hf.py --root DIR
              prints "api http://127.0.0.1:PORT cdn http://127.0.0.1:PORT2"
              and serves until killed (SIGTERM/SIGINT).
"""

import argparse
import datetime
import email.utils
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VALID_TOKEN = "hf_test_token"
CHUNK = 64 * 1024


def git_blob_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256, size):
    return ("version https://git-lfs.github.com/spec/v1\n"
            "oid sha256:%s\nsize %d\n" % (sha256, size)).encode()


def is_lfs(relpath):
    return relpath.lower().endswith(".gguf")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        super().handle_error(request, client_address)


class MockHub:
    def __init__(self, root, host="127.0.0.1", token=VALID_TOKEN):
        self.root = os.path.abspath(root)
        self.host = host
        self.token = token
        self.lock = threading.Lock()
        self.faults = {}
        self.log = []
        self.api_url = self.cdn_url = None
        self._stopping = threading.Event()
        self._servers = []
        self._threads = []
        self._secret = os.urandom(16)
        self._cache = {}  # abs path -> (size, mtime_ns, sha256, blob oid, pointer size)

    # ---- lifecycle ----
    def start(self):
        api = _Server((self.host, 0), _handler(self, "api"))
        cdn = _Server((self.host, 0), _handler(self, "cdn"))
        self._servers = [api, cdn]
        self.api_url = "http://%s:%d" % (self.host, api.server_address[1])
        self.cdn_url = "http://%s:%d" % (self.host, cdn.server_address[1])
        for s in self._servers:
            t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()  # releases stalled downloads
        for s in self._servers:
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(5)
        self._servers, self._threads = [], []

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # ---- faults and log ----
    def set_faults(self, **kw):
        with self.lock:
            self.faults.update(kw)

    def take_faults(self):
        """The faults for this download (they clear: each is one-shot)."""
        with self.lock:
            got = {k: self.faults.pop(k) for k in ("cut_after", "corrupt", "stall") if k in self.faults}
        return got

    def reset(self):
        with self.lock:
            self.log.clear()
            self.faults.clear()

    def clear_log(self):
        with self.lock:
            self.log.clear()

    def get_log(self):
        with self.lock:
            return [dict(e) for e in self.log]

    # ---- repositories ----
    def repo_dir(self, owner, repo):
        if not _safe_name(owner) or not _safe_name(repo):
            return None
        d = os.path.join(self.root, owner, repo)
        return d if os.path.isdir(d) else None

    def repo_config(self, owner, repo):
        d = self.repo_dir(owner, repo)
        p = os.path.join(d, ".mock.json") if d else None
        if p and os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                return json.load(f)
        return {}

    def repo_files(self, owner, repo):
        """Every file of the repository (relative paths, '/'-separated, sorted)."""
        d = self.repo_dir(owner, repo)
        out = []
        if not d:
            return out
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames[:] = [x for x in dirnames if x != ".git"]
            for fn in filenames:
                rel = os.path.relpath(os.path.join(dirpath, fn), d).replace(os.sep, "/")
                if rel != ".mock.json":
                    out.append(rel)
        return sorted(out)

    def repo_dirs(self, owner, repo):
        files = self.repo_files(owner, repo)
        dirs = set()
        for f in files:
            parts = f.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return sorted(dirs)

    def file_info(self, path):
        """(size, sha256 hex, git blob oid, pointerSize or None) of a file."""
        st = os.stat(path)
        key = (st.st_size, st.st_mtime_ns)
        with self.lock:
            c = self._cache.get(path)
        if c and c[0] == key:
            return c[1]
        h = hashlib.sha256()
        with open(path, "rb") as f:
            data = f.read()
        h.update(data)
        sha = h.hexdigest()
        if is_lfs(path):
            ptr = lfs_pointer(sha, len(data))
            info = (len(data), sha, git_blob_oid(ptr), len(ptr))
        else:
            info = (len(data), sha, git_blob_oid(data), None)
        with self.lock:
            self._cache[path] = (key, info)
        return info

    def repo_sha(self, owner, repo):
        """The repository's 40-hex revision (what "main" resolves to)."""
        d = self.repo_dir(owner, repo)
        h = hashlib.sha1(("%s/%s\n" % (owner, repo)).encode())
        for rel in self.repo_files(owner, repo):
            h.update(("%s %s\n" % (rel, self.file_info(os.path.join(d, rel))[2])).encode())
        return h.hexdigest()

    def sign(self, blob_path):
        return hmac.new(self._secret, blob_path.encode(), hashlib.sha256).hexdigest()[:32]

    def cdn_location(self, owner, repo, rel):
        p = "%s/%s/%s" % (owner, repo, rel)
        q = urllib.parse.urlencode({"sig": self.sign(p), "expires": str(int(time.time()) + 3600)})
        return "%s/blob/%s?%s" % (self.cdn_url, urllib.parse.quote(p), q)


def _safe_name(s):
    return bool(s) and s not in (".", "..") and "/" not in s and "\\" not in s and "\0" not in s


def _safe_rel(rel):
    parts = rel.split("/")
    return bool(rel) and all(_safe_name(p) for p in parts)


def _handler(hub, kind):
    class H(_Handler):
        pass

    H.hub = hub
    H.kind = kind
    return H


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-hf/1.0"
    hub = None
    kind = None

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_response(self, code, message=None):
        e = getattr(self, "_entry", None)
        if e is not None:
            with self.hub.lock:
                e["status"] = code
        super().send_response(code, message)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ---- responses ----
    def _send(self, code, body=b"", ctype="application/json; charset=utf-8", headers=None):
        self.send_response(code)
        if body or code not in (204, 304):
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, code, obj, headers=None):
        self._send(code, json.dumps(obj).encode(), headers=headers)

    def _error(self, code, msg, xcode=None):
        h = {"X-Error-Message": msg}
        if xcode:
            h["X-Error-Code"] = xcode
        self._json(code, {"error": msg}, headers=h)

    def _s3_error(self, code, s3code, msg):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
                '</Error>' % (s3code, msg)).encode()
        self._send(code, body, ctype="application/xml")

    # ---- dispatch ----
    def _dispatch(self, method):
        body = b""
        n = int(self.headers.get("Content-Length") or 0)
        if n > 0:
            body = self.rfile.read(n)
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = urllib.parse.parse_qs(split.query)
        if self.kind == "api" and path.startswith("/_mock/"):
            self._entry = None
            return self._control(method, path, body)
        self._entry = {
            "method": method,
            "host": self.kind,
            "path": self.path,
            "range": self.headers.get("Range"),
            "auth": self.headers.get("Authorization") is not None,
            "status": None,
            "time": time.time(),
        }
        with self.hub.lock:
            self.hub.log.append(self._entry)
        try:
            if self.kind == "cdn":
                self._cdn(method, path, query)
            else:
                self._api(method, path, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _control(self, method, path, body):
        hub = self.hub
        if path == "/_mock/faults" and method == "POST":
            try:
                kw = json.loads(body or b"{}")
                assert isinstance(kw, dict)
            except (ValueError, AssertionError):
                return self._json(400, {"error": "body must be a JSON object"})
            hub.set_faults(**kw)
        if path == "/_mock/faults" and method in ("GET", "POST"):
            with hub.lock:
                return self._json(200, dict(hub.faults))
        if path == "/_mock/log" and method == "GET":
            return self._json(200, hub.get_log())
        if path == "/_mock/reset" and method == "POST":
            hub.reset()
            return self._json(200, {"ok": True})
        return self._error(404, "Not found")

    # ---- API host ----
    def _token_state(self):
        """None (no token), True (the valid one) or False (another)."""
        a = self.headers.get("Authorization")
        if a is None:
            return None
        m = re.match(r"\s*Bearer\s+(\S+)\s*$", a)
        return bool(m) and m.group(1) == self.hub.token

    def _repo(self, owner, repo):
        """Check access to a repository; True, or False after answering."""
        hub = self.hub
        tok = self._token_state()
        if tok is False:
            self._error(401, "Invalid credentials in Authorization header")
            return False
        if not hub.repo_dir(owner, repo):
            self._error(404, "Repository not found", "RepoNotFound")
            return False
        if hub.repo_config(owner, repo).get("gated") and tok is not True:
            self._error(401, "Access to model %s/%s is restricted. You must have access to it and be "
                        "authenticated to access it. Please log in." % (owner, repo), "GatedRepo")
            return False
        return True

    def _rev(self, owner, repo, rev):
        sha = self.hub.repo_sha(owner, repo)
        if rev in ("main", sha):
            return sha
        self._error(404, "Invalid rev id: %s" % rev, "RevisionNotFound")
        return None

    def _api(self, method, path, query):
        hub = self.hub
        if path.startswith("/files/") and method in ("GET", "HEAD"):
            return self._files(method, path)
        if path.startswith("/api/models/") and method in ("GET", "HEAD"):
            parts = path[len("/api/models/"):].rstrip("/").split("/")
            if len(parts) < 2:
                return self._error(404, "Repository not found", "RepoNotFound")
            owner, repo, rest = parts[0], parts[1], parts[2:]
            if not self._repo(owner, repo):
                return
            if rest == [] or (len(rest) == 2 and rest[0] == "revision"):
                sha = self._rev(owner, repo, rest[1] if rest else "main")
                if sha:
                    self._model_info(owner, repo, sha, query)
                return
            if len(rest) >= 2 and rest[0] == "tree":
                sha = self._rev(owner, repo, rest[1])
                if sha:
                    rec = (query.get("recursive") or ["false"])[-1].lower() in ("true", "1")
                    self._tree(owner, repo, "/".join(rest[2:]), rec)
                return
            return self._error(404, "Not found")
        parts = path.lstrip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            owner, repo, rev, rel = parts[0], parts[1], parts[3], "/".join(parts[4:])
            if not self._repo(owner, repo):
                return
            sha = self._rev(owner, repo, rev)
            if not sha:
                return
            d = hub.repo_dir(owner, repo)
            if not _safe_rel(rel) or rel == ".mock.json" or not os.path.isfile(os.path.join(d, rel)):
                return self._error(404, "Entry not found", "EntryNotFound")
            size, sha256, _, _ = hub.file_info(os.path.join(d, rel))
            loc = hub.cdn_location(owner, repo, rel)
            body = ("Found. Redirecting to %s" % loc).encode()
            return self._send(302, body, ctype="text/plain; charset=utf-8", headers={
                "Location": loc,
                "X-Repo-Commit": sha,
                "ETag": '"%s"' % sha256,
                "X-Linked-Size": str(size),
                "X-Linked-Etag": '"%s"' % sha256,
            })
        return self._error(404, "Not found")

    def _model_info(self, owner, repo, sha, query):
        hub = self.hub
        d = hub.repo_dir(owner, repo)
        blobs = (query.get("blobs") or ["false"])[-1].lower() in ("true", "1")
        files = hub.repo_files(owner, repo)
        siblings = []
        for rel in files:
            s = {"rfilename": rel}
            if blobs:
                size, sha256, oid, psize = hub.file_info(os.path.join(d, rel))
                s.update({"blobId": oid, "size": size})
                if psize is not None:
                    s["lfs"] = {"sha256": sha256, "size": size, "pointerSize": psize}
            siblings.append(s)
        cfg = hub.repo_config(owner, repo)
        mtime = max([os.stat(os.path.join(d, f)).st_mtime for f in files] or [0])
        info = {
            "_id": sha[:24],
            "id": "%s/%s" % (owner, repo),
            "modelId": "%s/%s" % (owner, repo),
            "author": owner,
            "sha": sha,
            "lastModified": datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "private": False,
            "gated": "manual" if cfg.get("gated") else False,
            "disabled": False,
            "tags": ["gguf"] if any(is_lfs(f) for f in files) else [],
            "siblings": siblings,
        }
        self._json(200, info)

    def _tree(self, owner, repo, sub, recursive):
        hub = self.hub
        d = hub.repo_dir(owner, repo)
        files = hub.repo_files(owner, repo)
        dirs = hub.repo_dirs(owner, repo)
        if sub and sub not in dirs:
            return self._error(404, "Entry not found", "EntryNotFound")
        prefix = sub + "/" if sub else ""

        def wanted(p):
            if not p.startswith(prefix):
                return False
            return recursive or "/" not in p[len(prefix):]

        out = []
        for p in dirs:
            if wanted(p):
                below = sorted(f for f in files if f.startswith(p + "/"))
                out.append({"type": "directory", "oid": hashlib.sha1("\n".join(below).encode()).hexdigest(),
                            "size": 0, "path": p})
        for p in files:
            if wanted(p):
                size, sha256, oid, psize = hub.file_info(os.path.join(d, p))
                e = {"type": "file", "oid": oid, "size": size, "path": p}
                if psize is not None:
                    e["lfs"] = {"oid": sha256, "size": size, "pointerSize": psize}
                out.append(e)
        out.sort(key=lambda e: e["path"])
        self._json(200, out)

    # ---- CDN host ----
    def _cdn(self, method, path, query):
        hub = self.hub
        if self.headers.get("Authorization") is not None:
            return self._s3_error(400, "InvalidArgument",
                                  "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                                  "parameter, Signature query string parameter or the Authorization "
                                  "header should be specified")
        if method not in ("GET", "HEAD"):
            return self._s3_error(405, "MethodNotAllowed", "The specified method is not allowed")
        if path.startswith("/files/"):
            return self._files(method, path)
        if not path.startswith("/blob/"):
            return self._s3_error(404, "NoSuchKey", "The specified key does not exist.")
        bp = path[len("/blob/"):]
        sig = (query.get("sig") or [""])[-1]
        if not hmac.compare_digest(sig, hub.sign(bp)):
            return self._s3_error(403, "SignatureDoesNotMatch",
                                  "The request signature we calculated does not match the signature "
                                  "you provided.")
        parts = bp.split("/")
        if len(parts) < 3 or not _safe_rel(bp):
            return self._s3_error(404, "NoSuchKey", "The specified key does not exist.")
        d = hub.repo_dir(parts[0], parts[1])
        f = os.path.join(d, *parts[2:]) if d else None
        if not f or not os.path.isfile(f):
            return self._s3_error(404, "NoSuchKey", "The specified key does not exist.")
        self._serve_file(method, f)

    def _files(self, method, path):
        rel = path[len("/files/"):]
        if not _safe_rel(rel) or rel.endswith("/.mock.json"):
            return self._error(404, "Entry not found", "EntryNotFound")
        f = os.path.join(self.hub.root, *rel.split("/"))
        if not os.path.isfile(f):
            return self._error(404, "Entry not found", "EntryNotFound")
        self._serve_file(method, f)

    def _serve_file(self, method, f):
        hub = self.hub
        size, sha256, _, _ = hub.file_info(f)
        start, end, code = 0, size - 1, 200
        rng = self.headers.get("Range")
        m = re.match(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", rng or "")
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
            else:  # suffix: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start > end:
                return self._send(416, b"", ctype="application/xml", headers={
                    "Content-Range": "bytes */%d" % size, "Accept-Ranges": "bytes"})
            code = 206
        length = end - start + 1 if size else 0
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", '"%s"' % sha256)
        self.send_header("Last-Modified", email.utils.formatdate(os.stat(f).st_mtime, usegmt=True))
        name = os.path.basename(f)
        self.send_header("Content-Disposition",
                         "inline; filename*=UTF-8''%s; filename=\"%s\";" % (urllib.parse.quote(name), name))
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if method == "HEAD" or length == 0:
            return
        faults = hub.take_faults()
        with open(f, "rb") as fh:
            fh.seek(start)
            data = bytearray(fh.read(length))
        if faults.get("corrupt"):
            mid = size // 2
            i = mid - start if start <= mid <= end else 0
            data[i] ^= 0xFF
        cut = faults.get("cut_after")
        stall = faults.get("stall")
        limit = length if cut is None else max(0, min(int(cut), length))
        pos = 0
        if stall:
            first = min(CHUNK, length // 2, limit)
            self.wfile.write(data[:first])
            self.wfile.flush()
            pos = first
            hub._stopping.wait(float(stall))
        while pos < limit:
            n = min(CHUNK, limit - pos)
            self.wfile.write(data[pos:pos + n])
            pos += n
        self.wfile.flush()
        if limit < length:  # the cut: close without the rest
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="a local mock of Hugging Face's HTTP interface")
    ap.add_argument("--root", required=True, help="repositories: ROOT/OWNER/REPO/<files>")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token", default=VALID_TOKEN, help="the valid token (default hf_test_token)")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.root):
        print("mock_hf: --root %s: not a directory" % a.root, file=sys.stderr)
        return 2
    hub = MockHub(a.root, host=a.host, token=a.token).start()

    def bye(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, bye)
    print("api %s cdn %s" % (hub.api_url, hub.cdn_url), flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
