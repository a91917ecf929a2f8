"""What the moderation suites share: the categories, the binary under test,
check() with its counts, and a `cgpt serve` on a free port.

    import harness
    from harness import check
    srv = harness.Server(data_dir, "--policy", pol)
    st, body = srv.json("/v1/moderations", {"input": "x"})
    srv.stop()
    sys.exit(harness.summary("test_x"))
"""
import http.client, json, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
CATS = ["harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
        "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
        "violence/graphic"]
counts = {"passed": 0, "failed": 0}


def check(cond, what, detail=""):
    """Count one check; print what failed with its detail."""
    if cond:
        counts["passed"] += 1
    else:
        counts["failed"] += 1
        print(f"FAIL: {what}: {str(detail)[:800]}")
    return cond


def summary(name):
    """Print the counts; the exit status."""
    print(f"{name}: {counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


class Server:
    """`cgpt serve --port 0` on data_dir with 'extra' options, up when built."""

    def __init__(self, data, *extra):
        self.p = subprocess.Popen([CGPT, "serve", "--port", "0", "--data-dir", data, *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.p.stdout.readline().decode()
        m = re.search(r"listening on http://([^:]+):(\d+)", line)
        if not m:
            self.p.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.p.stderr.read(3000)!r}")
        self.host, self.port = m.group(1), int(m.group(2))

    def req(self, path, body=None, method="POST", key=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=120)
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = f"Bearer {key}"
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        return r.status, raw

    def json(self, path, body=None, method="POST", key=None):
        st, raw = self.req(path, body, method, key)
        return st, json.loads(raw) if raw else None

    def stop(self):
        """Stop it; its stderr."""
        self.p.terminate()
        _, err = self.p.communicate(timeout=30)
        return err.decode(errors="replace")
