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
  logits (tests/ref's independent forward), chunked as documented;
- commands in pipe mode ('/quit' ends, '//x' sends '/x'), the context is
  the model's own (512 here, 1024 for a gpt2 file with learned positions,
  -c beyond those refused), the oldest turns dropped with a notice when the
  conversation fills it, and `run -n` past the context said once;
- general.sampling.* in the file (written by `cgpt meta`) sets the defaults
  of run and chat, a flag overrides each field, and a value out of range is
  one clear error; the expected tokens come from the same run with every
  setting given as flags.
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

    newcomer_checks(model, tmp)
    preset_checks(model, tmp)
    pty_checks(model, tmp)
    print(f"chat: {passed} passed, {failed} failed")
    return 1 if failed else 0


def newcomer_checks(model, tmp):
    greedy = ["--temp", "0", "-n", "6"]
    # a line starting with '/' is a command in pipe mode too
    rc, out, err = run("chat", "-m", model, *greedy, stdin=b"/quit\nhello\n")
    check(rc == 0 and out == b"", f"'/quit' in pipe mode: {rc} {out!r} {err!r}")
    rc, out, err = run("chat", "-m", model, *greedy, stdin=b"/stats\n")
    check(rc == 0 and out == b"" and b"of 512 tokens" in err,
          f"/stats in pipe mode, the model's context (512): {out!r} {err!r}")
    rc, out, err = run("chat", "-m", model, *greedy, stdin=b"/frobnicate\n")
    check(rc == 0 and out == b"" and b"unknown command" in err, f"unknown command: {err!r}")
    # '//' sends the rest as a message that starts with '/'
    rc, out, err = run("chat", "-m", model, *greedy, stdin=b"//etc/passwd\n")
    rc1, r1, e1 = run("run", "-m", model, "--chat", "-p", "/etc/passwd", *greedy)
    check(rc == 0 and rc1 == 0 and out == r1, f"'//' message: chat {out!r} vs run --chat {r1!r}")
    # -c asks for another context
    rc, out, err = run("chat", "-m", model, "-c", "128", *greedy, stdin=b"/stats\n")
    check(rc == 0 and b"of 128 tokens" in err, f"chat -c 128: {err!r}")
    # gpt2: 1024 learned positions; chat starts at that context, refuses more
    g2 = os.path.join(tmp, "gpt2.gguf")
    subprocess.run([GEN, "--arch", "gpt2", "--vocab", "300", "--embd", "64", "--layers", "2",
                    "--heads", "4", "--ff", "128", "--ctx", "1024", "--seed", "7", "-o", g2],
                   check=True)
    rc, out, err = run("chat", "-m", g2, *greedy, stdin=b"hello\n/stats\n")
    check(rc == 0 and out.count(b"\n") == 1 and b"of 1024 tokens" in err,
          f"chat on gpt2 (1024 positions): {rc} {out!r} {err!r}")
    rc, out, err = run("chat", "-m", g2, "-c", "2048", stdin=b"hello\n")
    check(rc == 1 and err.count(b"\n") == 1 and b"1024" in err, f"gpt2 -c 2048: {rc} {err!r}")
    # a small context fills: the oldest turns go, with a notice, and the chat goes on
    small = os.path.join(tmp, "small.gguf")
    subprocess.run([GEN, "--arch", "llama", "--vocab", "300", "--embd", "64", "--layers", "2",
                    "--heads", "4", "--kv-heads", "2", "--head-dim", "16", "--ff", "128",
                    "--ctx", "96", "--seed", "5", "-o", small], check=True)
    lines = b"".join(b"message number %d is here\n" % i for i in range(8))
    rc, out, err = run("chat", "-m", small, "--temp", "0", "-n", "8", stdin=lines + b"/stats\n")
    check(rc == 0 and out.count(b"\n") == 8 and b"(context full: dropped" in err
          and b"of 96 tokens" in err, f"context full in chat: {rc} {out!r} {err!r}")
    # run -n past the context: said once on stderr, and generation stops there
    rc, out, err = run("run", "-m", small, "-p", "hi", "-n", "300", "--temp", "0", "--ignore-eos")
    note = [l for l in err.decode().splitlines() if "does not fit" in l]
    check(rc == 0 and len(note) == 1 and "at most 95" in note[0] and "95 generated" in err.decode()
          and "context is full" in err.decode(), f"run -n 300 on a 96-token context: {err!r}")


def preset_checks(model, tmp):
    """general.sampling.* recommendations: user flag > file > built-in default."""
    pm = os.path.join(tmp, "preset.gguf")
    rc, out, err = run("meta", model, pm, "--set", "general.sampling.temp=0.7",
                       "--set", "general.sampling.top_k=5", "--set", "general.sampling.top_p=0.9",
                       "--set", "general.sampling.min_p=0.1",
                       "--set", "general.sampling.penalty_repeat=1.3")
    check(rc == 0, f"cgpt meta: {err!r}")
    rc, info, _ = run("info", "-m", pm)
    check(b"general.sampling.top_k = 5" in info and b"general.sampling.temp = 0.7" in info,
          f"info shows the new keys: {info!r}")
    explicit = ["--temp", "0.7", "--top-k", "5", "--top-p", "0.9", "--min-p", "0.1",
                "--repeat-penalty", "1.3"]
    base = ["--tokens", "1 2 3 4", "--ids", "-n", "24", "--seed", "11"]
    _, want, _ = run("run", "-m", model, *base, *explicit)
    rc, got, err = run("run", "-m", pm, *base)
    check(rc == 0 and got == want, f"file defaults: {got!r} vs flags {want!r} {err!r}")
    _, plain, _ = run("run", "-m", model, *base)
    check(plain != want, "the preset changes the tokens (else this test proves nothing)")
    # a flag wins over the file, field by field
    _, want2, _ = run("run", "-m", model, *base, *explicit[:-2], "--repeat-penalty", "1.0",
                      "--temp", "1.5")
    rc, got2, err = run("run", "-m", pm, *base, "--temp", "1.5", "--repeat-penalty", "1")
    check(rc == 0 and got2 == want2, f"flags over the file: {got2!r} vs {want2!r} {err!r}")
    # chat follows the same rule: greedy by the file's own temp 0
    gm = os.path.join(tmp, "greedy.gguf")
    run("meta", model, gm, "--set", "general.sampling.temp=0")
    rc, out, err = run("chat", "-m", gm, "-n", "6", stdin=b"hello\n")
    _, r1, _ = run("run", "-m", model, "--chat", "-p", "hello", "--temp", "0", "-n", "6")
    check(rc == 0 and out == r1, f"chat with the file's temp 0: {out!r} vs greedy {r1!r}")
    # a bad recommendation is one clear line naming the key and its range
    bm = os.path.join(tmp, "bad.gguf")
    run("meta", model, bm, "--set", "general.sampling.top_p=7")
    rc, out, err = run("run", "-m", bm, "-p", "hi", "-n", "2")
    check(rc == 1 and err.count(b"\n") == 1 and b"general.sampling.top_p" in err
          and b"(0, 1]" in err, f"top_p = 7 in the file: {err!r}")
    # meta's own errors
    for args, what in [(["--set", "x.unknown=1"], "a new key without a type"),
                       (["--set", "general.sampling.top_k=abc"], "a non-number"),
                       (["--set", "tokenizer.ggml.tokens=a"], "an array"),
                       (["--delete", "no.such.key"], "deleting a missing key"),
                       (["--set", "novalue"], "no '='")]:
        rc, out, err = run("meta", model, os.path.join(tmp, "x.gguf"), *args)
        check(rc == 1 and err.count(b"\n") == 1 and err.startswith(b"cgpt meta:"),
              f"meta with {what}: {rc} {err!r}")
    rc, out, err = run("meta", model, os.path.join(tmp, "s.gguf"), "--set-str", "general.name=x",
                       "--delete", "general.name")
    check(rc == 0, f"meta --set-str and --delete: {err!r}")


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
