#!/usr/bin/python3
"""Checks a built training corpus (scripts/corpus/build.py).

  test_corpus.py DIR                 check the corpus in DIR (e.g. build/corpus-tiny)
  test_corpus.py --determinism       build --tiny twice into temporary dirs and
                                     compare every output byte for byte
                                     (optional: --cache DIR, default build/debs)

Stdlib only; run with /usr/bin/python3.  Exits non-zero on the first failure."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

OUTPUTS = ("pretrain.jsonl", "pretrain_eval.jsonl", "sft.jsonl", "sft_eval.jsonl")
FACT_RECIPES = ("element", "capital", "acronym", "wn_define", "quiz_misc", "poem_author", "man_what")
CAP = 0.12
MAX_CHECKABLE_CHARS = 400
FACT_SAMPLE = 3000  # fact checks per run (all of them in a tiny corpus)

failures = []


def fail(msg):
    failures.append(msg)
    if len(failures) <= 20:
        print("FAIL: " + msg)


def read_jsonl(path):
    rows = []
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        fail("%s: not UTF-8: %s" % (path, e))
        return rows
    if text and not text.endswith("\n"):
        fail("%s: last line not newline-terminated" % path)
    for i, line in enumerate(text.split("\n")[:-1], 1):
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            fail("%s:%d: bad JSON: %s" % (path, i, e))
    return rows


def check_pretrain(rows, name):
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or set(r) != {"text", "source"}:
            fail("%s:%d: keys %s, want text, source" % (name, i, sorted(r) if isinstance(r, dict) else r))
            continue
        if not isinstance(r["text"], str) or not r["text"].strip():
            fail("%s:%d: empty or non-string text" % (name, i))
        if not isinstance(r["source"], str) or not r["source"]:
            fail("%s:%d: empty source" % (name, i))


def check_sft(rows, name):
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or set(r) != {"messages", "recipe", "checkable"}:
            fail("%s:%d: keys %s, want messages, recipe, checkable" % (name, i, sorted(r) if isinstance(r, dict) else r))
            continue
        if not isinstance(r["recipe"], str) or not r["recipe"]:
            fail("%s:%d: bad recipe" % (name, i))
        if not isinstance(r["checkable"], bool):
            fail("%s:%d: checkable is not a boolean" % (name, i))
        msgs = r["messages"]
        if not isinstance(msgs, list) or len(msgs) < 2:
            fail("%s:%d: messages must be a list of at least 2" % (name, i))
            continue
        roles = []
        for m in msgs:
            if not isinstance(m, dict) or set(m) != {"role", "content"} or not isinstance(m["content"], str) \
                    or not m["content"].strip():
                fail("%s:%d: bad message %r" % (name, i, m))
            roles.append(m.get("role") if isinstance(m, dict) else None)
        body = roles[1:] if roles[0] == "system" else roles
        want = ["user", "assistant"] * (len(body) // 2)
        if body != want or not body:
            fail("%s:%d: roles %s: want optional system then user/assistant turns ending with assistant"
                 % (name, i, roles))
        if r.get("checkable") is True and len(msgs[-1]["content"]) > MAX_CHECKABLE_CHARS:
            fail("%s:%d: checkable reply longer than %d characters" % (name, i, MAX_CHECKABLE_CHARS))


def question_key(r):
    return "\n".join(m["content"] for m in r["messages"] if m["role"] == "user")


def norm(s):
    return " ".join(s.lower().split()).rstrip(".")


def check_dir(d):
    data = {}
    for f in OUTPUTS:
        p = os.path.join(d, f)
        if not os.path.exists(p):
            fail("missing %s" % p)
            return
        data[f] = read_jsonl(p)
    check_pretrain(data["pretrain.jsonl"], "pretrain.jsonl")
    check_pretrain(data["pretrain_eval.jsonl"], "pretrain_eval.jsonl")
    check_sft(data["sft.jsonl"], "sft.jsonl")
    check_sft(data["sft_eval.jsonl"], "sft_eval.jsonl")
    if failures:
        return
    for f in OUTPUTS:
        if not data[f]:
            fail("%s is empty" % f)

    # splits are disjoint
    train_text = set(r["text"] for r in data["pretrain.jsonl"])
    both = [r for r in data["pretrain_eval.jsonl"] if r["text"] in train_text]
    if both:
        fail("%d held-out pretraining documents also in pretrain.jsonl" % len(both))
    train_q = set(question_key(r) for r in data["sft.jsonl"])
    train_last = set(r["messages"][-2]["content"] for r in data["sft.jsonl"])
    both = [question_key(r) for r in data["sft_eval.jsonl"] if question_key(r) in train_q]
    if both:
        fail("%d eval questions also in sft.jsonl, e.g. %r" % (len(both), both[0]))
    both = [r["messages"][-2]["content"] for r in data["sft_eval.jsonl"]
            if len(r["messages"]) == 2 and r["messages"][-2]["content"] in train_last]
    if both:
        fail("%d single-turn eval questions asked in sft.jsonl, e.g. %r" % (len(both), both[0]))

    # recipe caps
    counts = {}
    rows = data["sft.jsonl"] + data["sft_eval.jsonl"]
    for r in rows:
        counts[r["recipe"]] = counts.get(r["recipe"], 0) + 1
    for name, n in sorted(counts.items()):
        if n > CAP * len(rows) + 1:
            fail("recipe %s has %d of %d examples (cap %.0f%%)" % (name, n, len(rows), CAP * 100))
    for name in FACT_RECIPES:
        if name not in counts and name != "man_what":
            fail("recipe %s missing" % name)

    # facts asked about are in the pretraining text (training split)
    corpus = "\n".join(norm(r["text"]) for r in data["pretrain.jsonl"])
    facts = [r for r in rows if r["recipe"] in FACT_RECIPES]
    step = max(1, len(facts) // FACT_SAMPLE)
    checked = 0
    for r in facts[::step]:
        ans = norm(r["messages"][-1]["content"])
        checked += 1
        if ans not in corpus:
            fail("recipe %s: answer %r not in pretrain.jsonl" % (r["recipe"], r["messages"][-1]["content"]))

    # generated answers are right (independent recomputation)
    import datetime
    import re
    for r in rows:
        q, a = r["messages"][-2]["content"], r["messages"][-1]["content"]
        if r["recipe"] == "weekday":
            m = re.search(r"(\d{4})-(\d\d)-(\d\d)", q)
            if m:
                want = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                        "Sunday")[datetime.date(*map(int, m.groups())).weekday()]
                if a != want:
                    fail("weekday %r -> %r, want %s" % (q, a, want))
        elif r["recipe"] == "arithmetic":
            m = re.search(r"(\d+) (\+|-|\*|x|×|plus|minus|times) (\d+)", q)
            if not m:
                fail("arithmetic question not understood: %r" % q)
                continue
            x, op, y = int(m.group(1)), m.group(2), int(m.group(3))
            want = x + y if op in ("+", "plus") else x - y if op in ("-", "minus") else x * y
            if a != str(want):
                fail("arithmetic %r -> %r, want %d" % (q, a, want))

    # manifest
    mpath = os.path.join(d, "MANIFEST.json")
    try:
        with open(mpath, encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError) as e:
        fail("MANIFEST.json unreadable: %s" % e)
        return
    for f in OUTPUTS:
        p = os.path.join(d, f)
        e = man.get("files", {}).get(f)
        if e is None:
            fail("MANIFEST.json lacks %s" % f)
            continue
        with open(p, "rb") as fh:
            b = fh.read()
        if e.get("sha256") != hashlib.sha256(b).hexdigest():
            fail("MANIFEST.json sha256 of %s does not match the file" % f)
        if e.get("bytes") != len(b) or e.get("lines") != b.count(b"\n"):
            fail("MANIFEST.json size/lines of %s do not match the file" % f)
    for name, p in sorted(man.get("packages", {}).items()):
        if not p.get("version") or len(p.get("sha256", "")) != 64 or not p.get("licence"):
            fail("MANIFEST.json package %s lacks version/sha256/licence" % name)
    if not os.path.exists(os.path.join(d, "ATTRIBUTION.md")):
        fail("ATTRIBUTION.md missing")
    else:
        with open(os.path.join(d, "ATTRIBUTION.md"), encoding="utf-8") as f:
            att = f.read()
        for name in man.get("packages", {}):
            if "| %s |" % name not in att:
                fail("ATTRIBUTION.md does not list %s" % name)
    print("corpus %s: %d+%d documents, %d+%d chat examples, %d recipes, %d facts checked"
          % (d, len(data["pretrain.jsonl"]), len(data["pretrain_eval.jsonl"]), len(data["sft.jsonl"]),
             len(data["sft_eval.jsonl"]), len(counts), checked))


def determinism(cache):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = os.path.join(root, "scripts", "corpus", "build.py")
    with tempfile.TemporaryDirectory(prefix="cgpt-corpus-det-") as tmp:
        dirs = [os.path.join(tmp, "a"), os.path.join(tmp, "b")]
        for d in dirs:
            r = subprocess.run(["/usr/bin/python3", build, "--tiny", "--out", d, "--cache", cache], cwd=root)
            if r.returncode != 0:
                fail("build.py --tiny --out %s failed (%d)" % (d, r.returncode))
                return
        names = sorted(set(os.listdir(dirs[0])) | set(os.listdir(dirs[1])))
        for n in names:
            pa, pb = os.path.join(dirs[0], n), os.path.join(dirs[1], n)
            if not (os.path.exists(pa) and os.path.exists(pb)):
                fail("%s present in only one build" % n)
                continue
            with open(pa, "rb") as fa, open(pb, "rb") as fb:
                if fa.read() != fb.read():
                    fail("%s differs between two builds" % n)
        print("determinism: %d files identical in two --tiny builds" % len(names) if not failures else "")


def main(argv):
    if len(argv) >= 2 and argv[1] == "--determinism":
        cache = "build/debs"
        if len(argv) >= 4 and argv[2] == "--cache":
            cache = argv[3]
        determinism(os.path.abspath(cache))
    elif len(argv) == 2:
        check_dir(argv[1])
    else:
        sys.stderr.write(__doc__)
        return 2
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
