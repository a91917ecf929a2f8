#!/usr/bin/env python3
"""End-to-end checks of `cgpt chat`, `cgpt run -p`, `cgpt template`,
`cgpt tokenize` and `cgpt perplexity` on a random model whose vocabulary is
a working byte-level BPE (randmodel: one token per byte, ChatML specials).

- pipe mode: each input line gets one reply; the first reply equals
  `cgpt run --chat` on the same message (same template, greedy), and the
  second equals `cgpt run` on the prompt `cgpt template` renders for the
  whole conversation - so the chat keeps its history and reuses the cache
  without changing a token;
- a pseudo-terminal: banner, prompt, streamed reply, /help, /stats, /system,
  /save and /load, a multi-line message, Ctrl-C stopping a long reply
  without ending the program, Ctrl-D ending it with status 0;
- tokenize: ids are the UTF-8 bytes (the vocabulary's definition), --pieces
  prints them back;
- perplexity: equals exp(mean NLL) computed in NumPy from the same model's
  logits (tests/ref's independent forward), chunked as documented.
Usage: tests/cli/test_chat.py [CGPT]  (run with /usr/bin/python3)."""
import json, os, pty, select, shutil, signal, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
CGPT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
GEN = os.path.join(ROOT, "build", "tools", "genmodel")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def run(*args, stdin=None, timeout=120):
    p = subprocess.run([CGPT, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="cgpt-chat-")
    model = os.path.join(tmp, "m.gguf")
    subprocess.run([GEN, "--arch", "llama", "--vocab", "300", "--embd", "64", "--layers", "2",
                    "--heads", "4", "--kv-heads", "2", "--head-dim", "16", "--ff", "128",
                    "--ctx", "512", "--seed", "5", "-o", model], check=True)
    greedy = ["--temp", "0", "-n", "6"]

    # tokenize: byte-level vocabulary, ids 3 + byte
    rc, out, err = run("tokenize", "-m", model, "-p", "hé!")
    want = " ".join(str(3 + b) for b in "hé!".encode()) + "\n"
    check(rc == 0 and out.decode() == want, f"tokenize: got {out!r} {err!r}, want {want!r}")
    rc, out, err = run("tokenize", "-m", model, "-p", "a<|im_start|>b", "--special")
    check(rc == 0 and out.split()[1] == b"259", f"tokenize --special: {out!r}")
    rc, out, err = run("tokenize", "-m", model, "-p", "a<|im_start|>b")
    check(rc == 0 and b"259" not in out.split(), f"tokenize plain text: {out!r}")
    rc, out, err = run("tokenize", "-m", model, "-p", "ab", "--pieces")
    check(rc == 0 and out == b"100\ta\n101\tb\n", f"tokenize --pieces: {out!r}")

    # pipe mode vs run --chat / template + run
    rc, out, err = run("chat", "-m", model, *greedy, stdin=b"hello\nhow are you\n")
    check(rc == 0, f"chat pipe exit {rc}: {err!r}")
    rc1, r1, e1 = run("run", "-m", model, "--chat", "-p", "hello", *greedy)
    check(rc1 == 0, f"run --chat: {e1!r}")
    reply1 = r1[:-1]  # run prints the reply and a newline
    check(out.startswith(reply1 + b"\n"), f"first chat reply {out!r} != run --chat {r1!r}")
    conv = [{"role": "user", "content": "hello"},
            {"role": "assistant", "content": reply1.decode("utf-8", "replace")},
            {"role": "user", "content": "how are you"}]
    cf = os.path.join(tmp, "conv.json")
    with open(cf, "w") as f:
        json.dump(conv, f)
    rc, prompt, err = run("template", "-m", model, "-f", cf)
    check(rc == 0 and prompt.endswith(b"<|im_start|>assistant\n"), f"template: {prompt!r} {err!r}")
    pf = os.path.join(tmp, "prompt.txt")
    with open(pf, "wb") as f:
        f.write(prompt)
    rc, r2, e2 = run("run", "-m", model, "-f", pf, *greedy)
    reply2 = r2[len(prompt):-1]
    check(out == reply1 + b"\n" + reply2 + b"\n",
          f"second chat reply: chat gave {out!r}, template+run gave {reply2!r}")

    # errors
    rc, out, err = run("chat", "-m", os.path.join(tmp, "nope.gguf"), stdin=b"hi\n")
    check(rc == 1 and err.count(b"\n") == 1, f"chat with a missing model: {rc} {err!r}")
    lone = os.path.join(tmp, "lone-cgpt")  # a binary with no models/ beside it
    shutil.copy(CGPT, lone)
    p = subprocess.run([lone, "chat"], input=b"hi\n", capture_output=True, timeout=60, cwd=tmp,
                       env={k: v for k, v in os.environ.items() if k != "CGPT_MODEL"})
    rc, out, err = p.returncode, p.stdout, p.stderr
    check(rc == 1 and b"-m MODEL" in err, f"chat without a model: {err!r}")

    # perplexity against NumPy
    text = ("The quick brown fox jumps over the lazy dog. " * 8).encode()
    tf = os.path.join(tmp, "text.txt")
    with open(tf, "wb") as f:
        f.write(text)
    rc, out, err = run("perplexity", "-m", model, "-f", tf, "-c", "64")
    check(rc == 0, f"perplexity: {err!r}")
    if rc == 0:
        got = float(out.decode().strip().splitlines()[-1].split(":")[1])
        import numpy as np
        import gguf_np, ref_model
        ids = [3 + b for b in text]
        ctx = 64
        nll, cnt = 0.0, 0
        M = ref_model.RefModel(gguf_np.load(model))
        for c in range(len(ids) // ctx):
            chunk = ids[c * ctx:(c + 1) * ctx]
            logits = np.asarray(M.forward(chunk))  # (ctx, n_vocab): row p predicts p + 1
            for i in range(ctx // 2, ctx):
                row = logits[i - 1].astype(np.float64)
                m = row.max()
                nll += m + np.log(np.exp(row - m).sum()) - row[chunk[i]]
                cnt += 1
        want = float(np.exp(nll / cnt))
        check(abs(got - want) <= 1e-3 * want, f"perplexity {got} vs NumPy {want}")

    pty_checks(model, tmp)
    print(f"chat: {passed} passed, {failed} failed")
    return 1 if failed else 0


def pty_checks(model, tmp):
    big = os.path.join(tmp, "big.gguf")  # slow enough that a reply is still running at Ctrl-C
    subprocess.run([GEN, "--arch", "llama", "--vocab", "300", "--embd", "512", "--layers", "4",
                    "--heads", "8", "--kv-heads", "4", "--head-dim", "64", "--ff", "1024",
                    "--ctx", "4096", "--seed", "6", "-o", big], check=True)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(CGPT, [CGPT, "chat", "-m", big, "--temp", "0", "-n", "-1", "-c", "4096",
                        "--ignore-eos"])
    buf = bytearray()

    def pump(t):
        r, _, _ = select.select([fd], [], [], t)
        if r:
            try:
                buf.extend(os.read(fd, 65536))
            except OSError:
                return False
        return True

    def wait(pat, since=0, t=30):
        """Read until 'pat' appears at or after offset 'since'; returns the
        offset just past it, or -1."""
        end = time.time() + t
        while True:
            i = buf.find(pat, since)
            if i >= 0:
                return i + len(pat)
            if time.time() > end or not pump(0.2):
                return -1

    def prompt_after(pat, what):
        """'pat' then a fresh prompt: the program is waiting for a line again
        (keys sent earlier could be lost while the terminal changes mode)."""
        i = wait(pat, len(buf) - 4096 if len(buf) > 4096 else 0)
        check(i >= 0, f"{what}: {bytes(buf[-300:])!r}")
        check(wait(b"> ", max(i, 0)) >= 0, f"prompt after {what}")

    def send(b):
        os.write(fd, b)

    check(wait(b"/help for commands") >= 0, f"banner: {bytes(buf)!r}")
    check(wait(b"> ") >= 0, "first prompt")
    send(b"/help\r")
    prompt_after(b"/system TEXT", "help text")
    send(b"first line \\\r")
    check(wait(b"... ", len(buf) - 10) >= 0, "continuation prompt")
    send(b"second line\r")
    i = wait(b"second line\r\n")
    check(i >= 0, "second line echoed")
    end = time.time() + 30
    while len(buf) < i + 40 and time.time() < end:  # the reply is streaming
        pump(0.2)
    check(len(buf) >= i + 40, "the reply streams before it ends")
    os.kill(pid, signal.SIGINT)  # Ctrl-C stops the reply
    prompt_after(b"(stopped)", "Ctrl-C stops the reply")
    os.kill(pid, signal.SIGINT)  # Ctrl-C at the prompt does not end the program
    check(wait(b"/quit to leave", i) >= 0, "Ctrl-C at the prompt")
    send(b"/stats\r")
    prompt_after(b"context:", "stats")
    save = os.path.join(tmp, "saved.json")
    send(f"/save {save}\r".encode())
    prompt_after(b"(saved", "save")
    send(f"/load {save}\r".encode())
    prompt_after(b"(loaded", "load")
    send(b"/system You are terse.\r")
    prompt_after(b"system message set", "system")
    time.sleep(0.2)
    send(b"\x04")  # Ctrl-D at an empty prompt ends the program
    status, end, resent = None, time.time() + 30, False
    while status is None and time.time() < end:
        pump(0.2)  # keep reading: a child blocked on a full terminal never exits
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        elif not resent and time.time() > end - 25:
            send(b"\x04")
            resent = True
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        check(False, f"Ctrl-D did not end the chat: {bytes(buf[-300:])!r}")
    else:
        check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"exit status {status}")
    try:
        with open(save) as f:
            msgs = json.load(f)
        check(msgs[0]["role"] == "user" and msgs[0]["content"] == "first line \nsecond line",
              f"saved conversation: {msgs!r}")
    except (OSError, ValueError, KeyError, IndexError) as e:
        check(False, f"saved conversation unreadable: {e}")


if __name__ == "__main__":
    sys.exit(main())
