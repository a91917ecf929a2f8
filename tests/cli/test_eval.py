#!/usr/bin/env python3
"""End-to-end checks of `cgpt eval` against oracles it did not compute.

- metrics: SQuAD's normalize_answer and token F1, written here from the
  definition (lower, drop string.punctuation, re \\b(a|an|the)\\b -> ' ',
  str.split / ' '.join; F1 over the Counter intersection, 1 when both sides
  are empty), compared with `cgpt eval --score-pairs` on thousands of
  random strings (ASCII, Unicode spaces, Latin-1 / Cyrillic capitals,
  non-ASCII word characters and punctuation) - normalised strings exactly,
  EM exactly, F1 to 1e-12;
- a random model (build/tools/genmodel: byte-level vocabulary, built-in
  ChatML) on a small held-out file: every recipe reported with its counts,
  --json parses, the greedy reply of each single-turn record equals
  `cgpt run --chat --temp 0` on the same messages, EM/F1 per recipe equal the
  Python metrics over those replies, the baseline equals the most frequent
  training reply per recipe scored in Python, chat perplexity (overall and
  per recipe) and text perplexity (documents split at the context) equal
  exp(mean NLL) from NumPy logits (tests/ref RefModel) within 1e-3
  relative, --max-per-recipe keeps the first N of each recipe, two runs
  agree;
- bad inputs: exit 1 and one stderr line naming file:line and the problem.
Usage: test_eval.py [CGPT [TOOLS_DIR]]  (run with /usr/bin/python3)."""
import collections, json, os, random, re, shutil, string, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
CGPT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
TOOLS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build", "tools")
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def run(*args, cwd=None, timeout=120):
    p = subprocess.run([CGPT, *args], capture_output=True, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


# ---- the oracle: SQuAD v2.0 evaluation, from its definition ----

def normalize_answer(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(pred, gold):
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    same = sum((collections.Counter(p) & collections.Counter(g)).values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def em_score(pred, gold):
    return float(normalize_answer(pred) == normalize_answer(gold))


WORDS = ["a", "an", "the", "A", "An", "THE", "The", "cat", "Cat", "dog", "Paris", "42", "3.14",
         "don't", "U.S.A.", "(x)", "well-known", "x_y", "théâtre", "ÉCOLE", "école", "Straße",
         "Ж", "жЁ", "中文", "a—b", "“the”", "…", "€5", "😀", "、", "。", "×", "«a»", "¿the?",
         "°C", "x²", "µm", "½", "ª", "e\u0301", "the\u0301", "an\u00a0", "thé", "éthe", "ÀÉÎÕÜ",
         "ÑANDU", "naïve", "l'the", "the_end", "a-an-the", "ﬁ", "Ⅻ", "①", "«»", "\u200b",
         "ĄŁŻ", "łódź", "ŸĲŉ", "ΑΒΓΔ", "Άθήνα", "ΏΰΫ", "ＡＢＣ", "ＴＨＥ", "ПРИВЕТ", "İstanbul"[1:]]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85",
          "\u00a0", "\u2003", "\u3000", "\u2028", "\u202f", ".", ",", "!", "-", "_", ""]
CHARS = (string.ascii_letters + string.digits + string.punctuation + " \t\n" +
         "éßñжЖЁÉÑ中—“”…€😀、。×«»¿¡°²µª½\u0301\u00a0\u2003\u3000\x1f\x85" +
         "ĀāĆŁŸŹžΑΩΆΐωⅫⅰＡｚ")


def random_text(rng):
    if rng.random() < 0.15:
        return "".join(rng.choice(CHARS) for _ in range(rng.randrange(0, 30)))
    n = rng.randrange(0, 9)
    return "".join(rng.choice(WORDS) + rng.choice(SPACES) for _ in range(n))


def perturb(rng, s):
    """A reference related to s: same words reordered / dropped / duplicated /
    re-cased / re-punctuated, so EM and partial F1 both occur."""
    w = s.split()
    k = rng.randrange(6)
    if k == 0:
        return s
    if k == 1:
        return s.upper() if rng.random() < 0.5 else "The " + s + "!"
    if k == 2 and w:
        rng.shuffle(w)
    if k == 3 and w:
        w = w[: rng.randrange(len(w) + 1)]
    if k == 4 and w:
        w = w + [rng.choice(w)] * rng.randrange(1, 3)
    if k == 5:
        return random_text(rng)
    return rng.choice([" ", "  ", ", "]).join(w)


def test_metrics(tmp):
    rng = random.Random(1234)
    pairs = [("Paris", "paris."), ("the cat sat", "cat sat on mat"), ("", ""), ("the", "a"),
             ("x x y", "x y y"), ("", "cat"), ("ÉCOLE", "école"), ("the—cat", "—cat")]
    for _ in range(4000):
        p = random_text(rng)
        pairs.append((p, perturb(rng, p)) if rng.random() < 0.7 else (p, random_text(rng)))
    pf = os.path.join(tmp, "pairs.jsonl")
    with open(pf, "w", encoding="utf-8") as f:
        for p, r in pairs:
            f.write(json.dumps([p, r]) + "\n")
    rc, out, err = run("eval", "--score-pairs", pf)
    check(rc == 0, f"--score-pairs: exit {rc} {err!r}")
    lines = out.decode("utf-8").splitlines()
    check(len(lines) == len(pairs), f"--score-pairs: {len(lines)} lines for {len(pairs)} pairs")
    bad = 0
    n_em = n_partial = 0
    for (p, r), line in zip(pairs, lines):
        got = json.loads(line)
        want = (normalize_answer(p), normalize_answer(r), em_score(p, r), f1_score(p, r))
        n_em += want[2] == 1
        n_partial += 0 < want[3] < 1
        if (got["pred"], got["ref"]) != want[:2] or got["em"] != want[2] or \
                abs(got["f1"] - want[3]) > 1e-12:
            bad += 1
            if bad <= 5:
                print(f"  pair {p!r} / {r!r}: got {got}, want {want}")
    check(bad == 0, f"metrics: {bad} of {len(pairs)} pairs differ from the Python oracle")
    # the test data exercise both outcomes
    check(n_em > 300 and n_partial > 300, f"metrics coverage: {n_em} EM, {n_partial} partial F1")
    print(f"metrics: {len(pairs)} pairs, {n_em} exact matches, {n_partial} partial F1")


# ---- end to end on a random model ----

def chatml(msgs, gen):
    s = "".join("<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n" for m in msgs)
    return s + ("<|im_start|>assistant\n" if gen else "")


def byte_ids(text):
    """The random model's vocabulary: 3 + byte, 259/260 for the ChatML
    markers (only the template writes them here)."""
    ids, i = [], 0
    while i < len(text):
        for tok, tid in (("<|im_start|>", 259), ("<|im_end|>", 260)):
            if text.startswith(tok, i):
                ids.append(tid)
                i += len(tok)
                break
        else:
            ids.extend(3 + b for b in text[i].encode("utf-8"))
            i += 1
    return ids


def nll_sum(M, ids, first):
    import numpy as np
    logits = np.asarray(M.forward(ids), dtype=np.float64)  # row p predicts ids[p + 1]
    s = 0.0
    for i in range(first, len(ids)):
        row = logits[i - 1]
        m = row.max()
        s += m + np.log(np.exp(row - m).sum()) - row[ids[i]]
    return s, len(ids) - first


def make_records():
    recs = []
    sysmsg = {"role": "system", "content": "Be brief."}
    for i, (q, a) in enumerate([("2+2?", "4"), ("3+5?", "8"), ("9-1?", "8"), ("1+1?", "2")]):
        recs.append({"messages": [sysmsg, {"role": "user", "content": q},
                                  {"role": "assistant", "content": a}],
                     "recipe": "arith", "checkable": True})
    for w in ["hello", "The Cat", "naïve"]:
        recs.append({"messages": [{"role": "user", "content": "Echo: " + w},
                                  {"role": "assistant", "content": w}],
                     "recipe": "echo", "checkable": True, "extra": [1, 2]})
    for q in ["How are you?", "Tell me a joke."]:
        recs.append({"messages": [{"role": "user", "content": q},
                                  {"role": "assistant", "content": "I am a model; " + q.lower()}],
                     "recipe": "chitchat", "checkable": False})
    recs.append({"messages": [{"role": "user", "content": "Name a color."},
                              {"role": "assistant", "content": "Blue."},
                              {"role": "user", "content": "Another?"},
                              {"role": "assistant", "content": "Red."}],
                 "recipe": "multi", "checkable": True})
    recs.append({"messages": [{"role": "user", "content": "no recipe here"},
                              {"role": "assistant", "content": "ok"}]})  # recipe "default"
    return recs


def test_end_to_end(tmp):
    import numpy as np
    import gguf_np, ref_model
    model = os.path.join(tmp, "m.gguf")
    subprocess.run([os.path.join(TOOLS, "genmodel"), "--arch", "llama", "--vocab", "300",
                    "--embd", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
                    "--head-dim", "16", "--ff", "128", "--ctx", "512", "--seed", "9", "-o",
                    model], check=True)
    N = 8
    recs = make_records()
    hf = os.path.join(tmp, "heldout.jsonl")
    with open(hf, "w", encoding="utf-8") as f:
        f.write("\n")  # blank lines are skipped
        for i, r in enumerate(recs):
            f.write(json.dumps(r, ensure_ascii=i % 2 == 0) + "\n")
    train = [("arith", "8")] * 3 + [("arith", "4")] * 3 + [("arith", "2")] + \
            [("echo", "hello")] * 2 + [("echo", "cat")] * 2 + [("multi", "Red")] + \
            [("other", "x")]
    tf = os.path.join(tmp, "train.jsonl")
    with open(tf, "w") as f:
        for rcp, a in train:
            f.write(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": a}],
                                "recipe": rcp, "checkable": True}) + "\n")
    rng = random.Random(5)
    docs = ["The quick brown fox jumps over the lazy dog. " * 7,  # 315 bytes > ctx: 3 pieces
            "Short.", "x", "Émile a écrit ceci."]
    xf = os.path.join(tmp, "text.jsonl")
    with open(xf, "w") as f:
        for d in docs:
            f.write(json.dumps({"text": d, "source": "test"}) + "\n")
    CTX = 128
    pred = os.path.join(tmp, "pred.jsonl")
    t0 = time.time()
    rc, out, err = run("eval", "-m", model, "-f", hf, "--text", xf, "--baseline", tf, "-n",
                       str(N), "-c", str(CTX), "--json", "--predictions", pred, "-t", "2")
    check(rc == 0, f"eval --json: exit {rc} {err.decode()!r}")
    if rc != 0:
        return
    print(f"eval on the random model: {time.time() - t0:.1f} s")
    rep = json.loads(out)
    check(rep["model"] == model, f"model {rep['model']!r}")

    by = collections.defaultdict(list)
    for r in recs:
        by[r.get("recipe", "default")].append(r)
    check(sorted(rep["recipes"]) == sorted(by), f"recipes {sorted(rep['recipes'])}")
    # predictions: greedy replies, one per checkable record, file order
    with open(pred, encoding="utf-8") as f:
        preds = [json.loads(l) for l in f]
    checkable = [(i, r) for i, r in enumerate(recs) if r.get("checkable")]
    check([p["line"] for p in preds] == [i + 2 for i, _ in checkable],
          f"prediction lines {[p['line'] for p in preds]}")
    n_cmp = 0
    for (i, r), p in zip(checkable, preds):
        msgs = r["messages"]
        check(p["reference"] == msgs[-1]["content"], f"line {p['line']}: reference")
        if len(msgs) > 3 or msgs[-2]["role"] != "user":
            continue
        args = ["run", "-m", model, "--chat", "--temp", "0", "-n", str(N), "-p",
                msgs[-2]["content"]]
        if msgs[0]["role"] == "system":
            args += ["--system", msgs[0]["content"]]
        rc2, o2, e2 = run(*args)
        check(rc2 == 0 and o2[:-1] == p["prediction"].encode("utf-8"),
              f"line {p['line']}: eval reply {p['prediction']!r} != run --chat {o2!r}")
        n_cmp += 1
        check(p["exact_match"] == em_score(p["prediction"], p["reference"]) and
              abs(p["f1"] - f1_score(p["prediction"], p["reference"])) < 1e-12,
              f"line {p['line']}: scores {p}")
    check(n_cmp >= 7, f"only {n_cmp} replies compared with run --chat")

    # the model's outputs are noise: make the EM/F1 check meaningful by also
    # scoring replies equal to the references (the baseline below does)
    base = {}
    cnt = collections.defaultdict(collections.Counter)
    for rcp, a in train:
        cnt[rcp][a] += 1
    for rcp, c in cnt.items():
        top = max(c.values())
        base[rcp] = min(a for a, k in c.items() if k == top)
    check(base["arith"] == "4", "oracle tie-break")
    all_em = all_f1 = all_bem = all_bf1 = 0.0
    n_all = 0
    numpy_model = ref_model.RefModel(gguf_np.load(model))
    tot_nll, tot_tok = 0.0, 0
    for rcp, rs in by.items():
        got = rep["recipes"][rcp]
        ck = [r for r in rs if r.get("checkable")]
        ps = [p for p in preds if p["recipe"] == rcp]
        check(got["n"] == len(ck) and got["n_records"] == len(rs),
              f"{rcp}: n {got['n']}/{len(ck)} n_records {got['n_records']}/{len(rs)}")
        if ck:
            em = sum(em_score(p["prediction"], p["reference"]) for p in ps) / len(ps)
            f1 = sum(f1_score(p["prediction"], p["reference"]) for p in ps) / len(ps)
            b = base.get(rcp, "")
            bem = sum(em_score(b, r["messages"][-1]["content"]) for r in ck) / len(ck)
            bf1 = sum(f1_score(b, r["messages"][-1]["content"]) for r in ck) / len(ck)
            check(abs(got["exact_match"] - em) < 1e-12 and abs(got["f1"] - f1) < 1e-12,
                  f"{rcp}: EM/F1 {got['exact_match']}/{got['f1']} vs {em}/{f1}")
            check(abs(got["baseline_exact_match"] - bem) < 1e-12 and
                  abs(got["baseline_f1"] - bf1) < 1e-12,
                  f"{rcp}: baseline {got['baseline_exact_match']}/{got['baseline_f1']} vs "
                  f"{bem}/{bf1}")
            all_em += em * len(ck)
            all_f1 += f1 * len(ck)
            all_bem += bem * len(ck)
            all_bf1 += bf1 * len(ck)
            n_all += len(ck)
        else:
            check(got["exact_match"] is None and got["baseline_f1"] is None,
                  f"{rcp}: not checkable, yet {got}")
        # chat perplexity: reply tokens + the template's end-of-turn markup
        nll, ntok = 0.0, 0
        for r in rs:
            p_ids = byte_ids(chatml(r["messages"][:-1], True))
            a_ids = byte_ids(chatml(r["messages"], False))
            assert a_ids[:len(p_ids)] == p_ids
            s, k = nll_sum(numpy_model, a_ids, len(p_ids))
            nll, ntok = nll + s, ntok + k
        want = float(np.exp(nll / ntok))
        check(got["chat_tokens"] == ntok and abs(got["chat_perplexity"] - want) <= 1e-3 * want,
              f"{rcp}: chat ppl {got['chat_perplexity']} ({got['chat_tokens']} tokens) vs "
              f"NumPy {want} ({ntok})")
        tot_nll, tot_tok = tot_nll + nll, tot_tok + ntok
    ov = rep["overall"]
    check(ov["n"] == n_all and abs(ov["exact_match"] - all_em / n_all) < 1e-12 and
          abs(ov["f1"] - all_f1 / n_all) < 1e-12 and
          abs(ov["baseline_exact_match"] - all_bem / n_all) < 1e-12 and
          abs(ov["baseline_f1"] - all_bf1 / n_all) < 1e-12, f"overall {ov}")
    check(all_bem > 0 and 0 < all_bf1 / n_all < 1, f"baseline coverage {all_bem} {all_bf1}")
    want = float(np.exp(tot_nll / tot_tok))
    check(abs(rep["chat_perplexity"] - want) <= 1e-3 * want and rep["chat_tokens"] == tot_tok,
          f"chat perplexity {rep['chat_perplexity']} vs NumPy {want}")
    # text perplexity: no BOS for this vocabulary; windows of CTX overlapping by one
    nll, ntok = 0.0, 0
    for d in docs:
        ids = byte_ids(d)
        a = 0
        while a + 1 < len(ids):
            piece = ids[a:a + CTX]
            s, k = nll_sum(numpy_model, piece, 1)
            nll, ntok = nll + s, ntok + k
            a += CTX - 1
    want = float(np.exp(nll / ntok))
    check(ntok == sum(len(d.encode()) - 1 for d in docs), "oracle text token count")
    check(rep["text_tokens"] == ntok and abs(rep["text_perplexity"] - want) <= 1e-3 * want,
          f"text perplexity {rep['text_perplexity']} ({rep['text_tokens']}) vs NumPy {want} "
          f"({ntok})")
    check(rep["tokens_generated"] == sum(len(byte_ids(p["prediction"])) for p in preds) or
          rep["tokens_generated"] <= N * len(preds), f"tokens_generated {rep['tokens_generated']}")

    # deterministic: a second run (table form) gives the same numbers
    rc, out2, err2 = run("eval", "-m", model, "-f", hf, "--text", xf, "--baseline", tf, "-n",
                         str(N), "-c", str(CTX), "--json", "-t", "1")
    rep2 = json.loads(out2) if rc == 0 else {}
    for k in ("seconds",):
        rep.pop(k, None), rep2.pop(k, None)
    check(rep == rep2, "two runs (2 and 1 threads) differ")
    rc, table, err3 = run("eval", "-m", model, "-f", hf, "-n", str(N), "-c", str(CTX))
    t = table.decode()
    check(rc == 0 and all(re.search(r"^%s\s+%d\s+%d\s" % (re.escape(k), len(v),
                                                          sum(1 for r in v if r.get("checkable"))),
                                    t, re.M) for k, v in by.items()),
          f"table rows:\n{t}")
    check("chat perplexity: %.6f" % rep["chat_perplexity"] in t, f"table chat ppl:\n{t}")
    check("text perplexity" not in t and "base EM" in t, "table without --text")
    check(err3.count(b"\n") >= 2 and b"eval:" in err3, f"progress on stderr: {err3!r}")

    # --max-per-recipe: the first N of each recipe in file order
    rc, out, err = run("eval", "-m", model, "-f", hf, "-n", "2", "--max-per-recipe", "1",
                       "--json", "--predictions", pred)
    rep1 = json.loads(out) if rc == 0 else {"recipes": {}}
    check(rc == 0 and all(v["n_records"] == 1 for v in rep1["recipes"].values()) and
          len(rep1["recipes"]) == len(by), f"--max-per-recipe 1: {rep1}")
    with open(pred) as f:
        lines = [json.loads(l)["line"] for l in f]
    first_lines = sorted(min(i + 2 for i, r in enumerate(recs)
                             if r.get("recipe", "default") == k and r.get("checkable"))
                         for k in by if any(r.get("checkable") for r in by[k]))
    check(lines == first_lines, f"--max-per-recipe lines {lines} vs {first_lines}")
    return model, hf


def test_bad_inputs(tmp, model, hf):
    def bad(name, lines, want, opt="-f", extra=()):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        args = ["eval", "-m", model, "-n", "1"]
        args += ["-f", hf, opt, path] if opt != "-f" else ["-f", path]
        rc, out, err = run(*args, *extra)
        e = err.decode()
        check(rc == 1 and e.count("\n") == 1 and e.startswith("cgpt eval: ") and
              re.search(want, e), f"{name}: exit {rc}, stderr {e!r}, want /{want}/")

    good = json.dumps({"messages": [{"role": "user", "content": "q"},
                                    {"role": "assistant", "content": "a"}]})
    bad("json.jsonl", [good, "{\"messages\": [", good], r"json\.jsonl:2: not JSON")
    bad("nomsg.jsonl", [good, good, "{\"recipe\": \"x\"}"],
        r"nomsg\.jsonl:3: \"messages\" is missing")
    bad("notasst.jsonl", [json.dumps({"messages": [{"role": "user", "content": "q"}]})],
        r"notasst\.jsonl:1: the last message has role \"user\", not \"assistant\"")
    bad("empty.jsonl", ["", "  "], r"has no records")
    bad("recipe.jsonl", [json.dumps({"messages": [{"role": "assistant", "content": "a"}],
                                     "recipe": 3})], r"recipe\.jsonl:1: \"recipe\" is not a string")
    bad("role.jsonl", [good, json.dumps({"messages": [{"role": "user", "content": {"x": 1}},
                                                      {"role": "assistant", "content": "a"}]})],
        r"role\.jsonl:2: .*content")
    long_rec = json.dumps({"messages": [{"role": "user", "content": "q" * 300},
                                        {"role": "assistant", "content": "a"}]})
    bad("long.jsonl", [long_rec], r"long\.jsonl: every record is longer than the context of 64",
        extra=("-c", "64"))
    with open(os.path.join(tmp, "mixed.jsonl"), "w") as f:
        f.write(good + "\n" + long_rec + "\n")
    rc, out, err = run("eval", "-m", model, "-f", os.path.join(tmp, "mixed.jsonl"), "-c", "64",
                       "--json")
    check(rc == 0 and json.loads(out)["skipped_longer_than_context"] == 1
          and json.loads(out)["overall"]["n_records"] == 1,
          f"a record longer than the context is skipped and counted: {rc} {err!r}")
    bad("text.jsonl", [json.dumps({"text": "ok"}), json.dumps({"txt": "no"})],
        r"text\.jsonl:2: \"text\" is missing", opt="--text")
    bad("train.jsonl", [good, "[]"], r"train\.jsonl:2: not a JSON object", opt="--baseline")
    with open(os.path.join(tmp, "huge.jsonl"), "w") as f:
        f.write(good + "\n" + "x" * (16 << 20) + "y\n")
    rc, out, err = run("eval", "-m", model, "-f", os.path.join(tmp, "huge.jsonl"))
    check(rc == 1 and re.search(rb"huge\.jsonl:2: line longer than 16777216 bytes", err),
          f"line limit: {err!r}")
    for args, want in [(["-f", os.path.join(tmp, "missing.jsonl")], r"cannot open .*missing"),
                       (["-f", hf, "--text", os.path.join(tmp, "nope")], r"cannot open .*nope"),
                       (["-f", hf, "--bogus"], r"unknown option '--bogus'"),
                       (["-n", "5"], r"give the held-out chat records with -f FILE"),
                       (["-f", hf, "-n", "99999"], r"-n: 99999 is out of range")]:
        rc, out, err = run("eval", "-m", model, *args)
        e = err.decode()
        check(rc == 1 and e.count("\n") == 1 and re.search(want, e), f"{args}: {rc} {e!r}")
    # no -m and no built-in model (cwd without models/): says how to pass one
    lone = os.path.join(tmp, "lone-cgpt")  # a binary with no models/ beside it
    shutil.copy(CGPT, lone)
    p = subprocess.run([lone, "eval", "-f", hf], capture_output=True, timeout=60, cwd=tmp,
                       env={k: v for k, v in os.environ.items() if k != "CGPT_MODEL"})
    rc, out, err = p.returncode, p.stdout, p.stderr
    check(rc == 1 and b"-m MODEL" in err and err.count(b"\n") == 1, f"no model: {err!r}")
    rc, out, err = run("eval", "--score-pairs", os.path.join(tmp, "json.jsonl"))
    check(rc == 1 and b"json.jsonl:1: not a JSON array" in err, f"--score-pairs bad: {err!r}")


def main():
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="cgpt-eval-")
    test_metrics(tmp)
    r = test_end_to_end(tmp)
    if r:
        test_bad_inputs(tmp, *r)
    print(f"test_eval: {passed} passed, {failed} failed ({time.time() - t0:.1f} s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
