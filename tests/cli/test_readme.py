#!/usr/bin/env python3
"""What a newcomer meets first, checked as they would meet it.

- Every example in README.md and docs/SERVER.md runs: each fenced block
  marked ```sh is run line by line with bash from the repository root
  (`build/cgpt` is the binary under test; a command line ending in '\\'
  continues), stdin closed, against the built-in model, and must exit 0
  and print something (on stdout, or on stderr for the few commands that
  only report there, such as `key revoke`). Lines starting with `make` are the README's own
  instructions (CI runs `make test`; `make run` would not return) and are
  skipped. A `build/cgpt serve` line is started and must print its
  "listening" line; the other examples talk to one server the test starts
  with `--port 0`, whose port replaces 8080 in them. ```js blocks run with
  node and the `openai` package from tests/js.
- The README's command list is `cgpt --help`'s, line for line, every
  `--option` a documented command line uses is one that command's --help
  lists, and every option a --help lists is accepted by the command (help
  and parser come from one table, cli.h). No file points at design
  documents outside the repository.
- `make` on a machine without the libraries names the missing Debian
  packages and `make deps` (pkg-config pointed at an empty directory), and
  `make run` installs only what running needs (scripts/install-deps.sh).
- Limits said aloud: $CGPT_MODEL is named when its path fails; a busy port
  is one line of ours.
- The server's sampling defaults: a request that sets no sampling field
  gets the model file's general.sampling.* values (the same tokens as a
  request that sets them explicitly, same seed).
Usage: tests/cli/test_readme.py [CGPT]  (run with /usr/bin/python3)."""
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
DOCS = ["README.md", "docs/SERVER.md"]
OUTSIDE = "../" + "shared"  # the team's folder beside the checkout; spelled so this file passes
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def blocks(path, lang):
    """The fenced blocks of 'lang' in a Markdown file: (first line number, text)."""
    out, cur, start = [], None, 0
    with open(os.path.join(ROOT, path)) as f:
        for n, line in enumerate(f, 1):
            if cur is None and line.rstrip() == "```" + lang:
                cur, start = [], n + 1
            elif cur is not None and line.rstrip() == "```":
                out.append((start, "".join(cur)))
                cur = None
            elif cur is not None:
                cur.append(line)
    return out


def commands(text):
    """Command lines of a block: comments and blank lines dropped, '\\' joins."""
    cmds, cur = [], ""
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        cmds.append(cur.strip())
        cur = ""
    return cmds


class Server:
    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([CGPT, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.port = None
        line = self.p.stdout.readline().decode()
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            self.port = int(m.group(1))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def run_examples(tmp):
    env = dict(os.environ, CGPT_DATA_DIR=os.path.join(tmp, "examples-data"), HOME=tmp,
               NODE_PATH=os.path.join(ROOT, "tests", "js", "node_modules"))
    env.pop("CGPT_MODEL", None)
    srv = Server("--data-dir", os.path.join(tmp, "server-data"), env=env)
    check(srv.port is not None, "the example server started")
    bindir = os.path.join(tmp, "bin")  # build/cgpt in the examples is the binary under test
    os.makedirs(os.path.join(bindir, "build"))
    os.symlink(CGPT, os.path.join(bindir, "build", "cgpt"))
    os.symlink(os.path.join(ROOT, "models"), os.path.join(bindir, "models"))
    n_run = 0
    for doc in DOCS:
        for start, text in blocks(doc, "sh"):
            for cmd in commands(text):
                if cmd.startswith("make "):
                    continue
                where = f"{doc}:{start}: {cmd[:90]}"
                cmd = cmd.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}")
                cmd = re.sub(r"(^|\s)build/cgpt", r"\1" + os.path.join(bindir, "build", "cgpt"), cmd)
                n_run += 1
                if re.match(r"\S*/cgpt serve\b", cmd):
                    cmd = re.sub(r"\s+#[^'\"]*$", "", cmd)  # the port goes before a comment
                    p = subprocess.Popen(cmd + " --port 0", shell=True, cwd=ROOT, env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
                    line = p.stdout.readline()
                    os.killpg(p.pid, signal.SIGTERM)
                    err = p.stderr.read()
                    p.wait(timeout=30)
                    check(b"listening on http://" in line, f"{where}: {line!r} {err[-300:]!r}")
                    continue
                p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, env=env,
                                   capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
                check(p.returncode == 0 and (p.stdout.strip() or p.stderr.strip()),
                      f"{where}: exit {p.returncode}, stdout {p.stdout[-200:]!r}, "
                      f"stderr {p.stderr[-300:]!r}")
        for start, text in blocks(doc, "js"):
            n_run += 1
            src = os.path.join(tmp, f"example-{start}.mjs")
            with open(src, "w") as f:
                f.write(text.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}"))
            # ES modules resolve packages beside the file: link tests/js's node_modules there
            nm = os.path.join(tmp, "node_modules")
            if not os.path.exists(nm):
                os.symlink(os.path.join(ROOT, "tests", "js", "node_modules"), nm)
            p = subprocess.run(["node", src], cwd=tmp, env=env, capture_output=True, timeout=300)
            check(p.returncode == 0 and p.stdout.strip(),
                  f"{doc}:{start} (js): exit {p.returncode} {p.stdout[-200:]!r} {p.stderr[-400:]!r}")
    check(n_run >= 15, f"only {n_run} examples found in {DOCS}")
    print(f"readme: {n_run} examples run")
    sampling_defaults(srv.port)
    srv.stop()


def sampling_defaults(port):
    """A request without sampling fields gets the file's general.sampling.*."""
    info = subprocess.run([CGPT, "info"], capture_output=True, text=True).stdout
    rec = dict(re.findall(r"general\.sampling\.(\w+) = ([-\d.e]+)", info))
    check({"temp", "top_k", "top_p", "min_p"} <= rec.keys(),
          f"the built-in model recommends sampling settings: {rec}")
    msgs = [{"role": "user", "content": "Tell me about dogs."}]
    body = {"model": "cgpt-mini", "messages": msgs, "max_tokens": 40, "seed": 7}
    implicit = post(port, "/v1/chat/completions", body)["choices"][0]["message"]["content"]
    explicit = post(port, "/v1/chat/completions", dict(
        body, temperature=float(rec.get("temp", 1)), top_k=int(rec.get("top_k", 0)),
        top_p=float(rec.get("top_p", 1)), min_p=float(rec.get("min_p", 0)),
        repeat_penalty=float(rec.get("penalty_repeat", 1))))["choices"][0]["message"]["content"]
    check(implicit == explicit, f"request defaults = the file's values: {implicit!r} vs {explicit!r}")
    openai = post(port, "/v1/chat/completions", dict(body, temperature=1.0, top_k=0, top_p=1.0,
                                                      min_p=0.0, repeat_penalty=1.0))
    check(openai["choices"][0]["message"]["content"] != implicit,
          "the file's values differ from OpenAI's defaults (else the check above proves nothing)")


def help_agrees():
    out = subprocess.run([CGPT, "--help"], capture_output=True, text=True).stdout
    listed = [l.strip() for l in out.splitlines() if l.startswith("  cgpt ")]
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    m = re.search(r"## Commands\n.*?```text\n(.*?)```", readme, re.S)
    check(m is not None, "README has a ## Commands section with a ```text block")
    if m:
        documented = [l.strip() for l in m.group(1).splitlines() if l.strip().startswith("cgpt ")]
        check(documented == listed,
              "README's command list differs from cgpt --help:\n  " +
              "\n  ".join(f"{a!r} | {b!r}" for a, b in zip(documented + [""] * 20, listed)
                          if a != b))
    helps = {}
    n_opts = 0
    for doc in ["README.md", "docs/SERVER.md", "docs/TRAINING.md", "docs/CHAT.md",
                "models/README.md"]:
        with open(os.path.join(ROOT, doc)) as f:
            text = f.read()
        for line in re.findall(r"(?:build/)?cgpt ([a-z]+(?: [a-z]+)?)((?: +[^\n|`#]*)?)", text):
            words, rest = line[0].split(), line[1]
            cmd = None
            for k in (2, 1):
                c = " ".join(words[:k])
                if c not in helps:
                    p = subprocess.run([CGPT, *c.split(), "--help"], capture_output=True, text=True)
                    helps[c] = p.stdout if p.returncode == 0 and "usage: cgpt " + c in p.stdout \
                        else None
                if helps[c]:
                    cmd = c
                    break
            if not cmd:
                continue
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                n_opts += 1
                check(re.search(r"(^|[ ,])" + re.escape(opt) + r"(?![\w-])", helps[cmd], re.M),
                      f"{doc}: 'cgpt {cmd} ... {opt}' but cgpt {cmd} --help does not list {opt}")
    check(n_opts >= 20, f"only {n_opts} documented options checked")


def every_option_parses():
    """Each option a command's --help lists is one its parser accepts."""
    out = subprocess.run([CGPT, "--help"], capture_output=True, text=True).stdout
    cmds = [l.split()[1] for l in out.splitlines() if l.startswith("  cgpt ")]
    for group in ("key", "train"):
        sub = subprocess.run([CGPT, group, "--help"], capture_output=True, text=True).stdout
        cmds += [" ".join(l.split()[1:3]) for l in sub.splitlines() if l.startswith("  cgpt ")]
    n = 0
    for cmd in cmds:
        h = subprocess.run([CGPT, *cmd.split(), "--help"], capture_output=True, text=True)
        check(h.returncode == 0 and h.stdout.startswith("usage: cgpt " + cmd),
              f"cgpt {cmd} --help: {h.returncode} {h.stdout[:80]!r}")
        for m in re.finditer(r"^  (-\S+?)(?:, (--\S+))?(?: ([A-Z][^ ]*))?(?:  |$)", h.stdout, re.M):
            takes_value = m.group(3) is not None
            for spelling in filter(None, (m.group(1), m.group(2))):
                args = [spelling] + (["1"] if takes_value else []) + ["--help"]
                p = subprocess.run([CGPT, *cmd.split(), *args], capture_output=True, text=True)
                n += 1
                check("unknown option" not in p.stderr,
                      f"cgpt {cmd} --help lists {spelling} but the parser refuses it: {p.stderr!r}")
    check(n >= 100, f"only {n} option spellings checked")
    # and the docs stand alone: nothing points outside the repository
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    for f in files.split():
        if f.endswith((".md", ".c", ".h", ".py", ".sh", ".mjs")) and "node_modules" not in f:
            with open(os.path.join(ROOT, f), errors="replace") as fh:
                check(OUTSIDE not in fh.read(), f"{f} points outside the repository")


def deps_and_make(tmp):
    run_pkgs = subprocess.run(["scripts/install-deps.sh", "list", "run"], cwd=ROOT,
                              capture_output=True, text=True).stdout.split()
    test_pkgs = subprocess.run(["scripts/install-deps.sh", "list", "test"], cwd=ROOT,
                               capture_output=True, text=True).stdout.split()
    for p in ["libopenblas-dev", "libmicrohttpd-dev", "gcc", "pkg-config"]:
        check(p in run_pkgs, f"make run installs {p}")
    for p in ["python3-torch", "libcriterion-dev", "python3-numpy", "curl"]:
        check(p not in run_pkgs and p in test_pkgs, f"only make test installs {p}")
    dry = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True).stdout
    check("install-deps.sh run" in dry and "install-deps.sh test" not in dry,
          f"make run installs the run set only: {dry[:300]!r}")
    env = dict(os.environ, PKG_CONFIG_LIBDIR=os.path.join(tmp, "no-pkgconfig"))
    p = subprocess.run(["make", f"BUILD={tmp}/nobuild", "all"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    check(p.returncode != 0 and "make deps" in p.stderr and "libopenmpi-dev" in p.stderr
          and "No such file" not in p.stderr and "error:" not in p.stderr,
          f"make without the libraries: {p.stderr[-500:]!r}")


def limits_said(tmp):
    env = dict(os.environ, CGPT_MODEL=os.path.join(tmp, "nope.gguf"))
    p = subprocess.run([CGPT, "run", "-p", "hi"], env=env, capture_output=True, text=True)
    check(p.returncode == 1 and "$CGPT_MODEL" in p.stderr and p.stderr.count("\n") == 1,
          f"a bad $CGPT_MODEL is named: {p.stderr!r}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([CGPT, "serve", "--port", str(port)], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 1 and p.stderr.count("\n") == 1 and "in use" in p.stderr
              and p.stderr.startswith("cgpt serve:"), f"a busy port: {p.stderr!r}")


def main():
    tmp = tempfile.mkdtemp(prefix="cgpt-readme-")
    try:
        help_agrees()
        every_option_parses()
        deps_and_make(tmp)
        limits_said(tmp)
        run_examples(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"readme: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
