#!/usr/bin/python3
"""test_jsonschema.py - the JSON Schema -> GBNF compiler against ajv.

tests/sample/jsonschema_corpus.json holds schemas, each with JSON texts
labelled valid / invalid, and schemas our compiler must refuse with a given
message. The oracle is ajv 8 (JSON Schema 2020-12) with ajv-formats
(tests/sample/jsonschema_oracle.mjs, npm packages in tests/js); the code
under test is build/tools/schemacheck (src/sample/jsonschema.c compiles the
schema, src/sample/grammar.c matches each text).

Checks:
  1. every label in the corpus is ajv's verdict (the corpus is right);
  2. the grammar accepts exactly the texts ajv accepts, on every labelled
     text (the corpus is written in the grammar's canonical form), except
     the texts labelled "outside": valid (ajv says so) but outside the
     canonical form, which the grammar must refuse;
  3. mutations of the valid texts (a character dropped, a digit changed,
     a quote swapped, a character doubled; never inside an object key, so
     keys keep their order): whatever the grammar accepts, ajv accepts
     (soundness, no exception), and what ajv accepts the grammar accepts
     unless the text is outside the canonical form (jsonschema.h): more
     whitespace than one json-ws, a lone surrogate escape, a duplicate key,
     a number the grammar does not write (-0 or an exponent where the
     schema bounds it, "1.0" for an integer, over 15 digits);
  4. the refused schemas are refused with the message given.

  CGPT_BUILD=/tmp/b /usr/bin/python3 tests/sample/test_jsonschema.py
Prints failures and "N passed, N failed"; exits non-zero on failure.
"""

import json
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("CGPT_BUILD") or os.path.join(ROOT, "build")
SCHEMACHECK = os.path.join(BUILD, "tools", "schemacheck")
ORACLE = os.path.join(HERE, "jsonschema_oracle.mjs")
CORPUS = os.path.join(HERE, "jsonschema_corpus.json")
MUTATIONS_PER_SCHEMA = 80


def run_lines(cmd, cases):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
        path = f.name
    try:
        out = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({out.returncode}): {out.stderr[-2000:]}")
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    if len(lines) != len(cases):
        sys.exit(f"{cmd[0]}: {len(lines)} lines for {len(cases)} cases")
    return lines


def key_spans(text):
    """Index ranges of the object keys (quotes included) of a JSON text."""
    spans, i, n = [], 0, len(text)
    while i < n:
        if text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            k = j + 1
            while k < n and text[k] in " \t\n\r":
                k += 1
            if k < n and text[k] == ":":
                spans.append((i, j + 1))
            i = j + 1
        else:
            i += 1
    return spans


def mutations(text, rng):
    keys = key_spans(text)
    in_key = lambda i: any(a <= i < b for a, b in keys)
    out = set()
    for i, ch in enumerate(text):
        if in_key(i):
            continue
        out.add(text[:i] + text[i + 1:])                 # dropped
        out.add(text[:i] + ch + text[i:])                # doubled
        if ch.isdigit():
            for d in (str((int(ch) + 1) % 10), str((int(ch) + 9) % 10), "0", "9"):
                out.add(text[:i] + d + text[i + 1:])     # another digit
        if ch == '"':
            out.add(text[:i] + "'" + text[i + 1:])       # a quote swapped
        if ch in "-:.T":
            out.add(text[:i] + "x" + text[i + 1:])
    out.discard(text)
    return sorted(out)


def number_tokens(text):
    """The number literals outside strings."""
    toks, i, n = [], 0, len(text)
    while i < n:
        if text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text[i] in "-0123456789":
            m = re.match(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text[i:])
            if not m:
                i += 1
                continue
            toks.append(m.group(0))
            i += len(m.group(0))
        else:
            i += 1
    return toks


WS_OK = re.compile(r"( |\n[ \t]{0,20})$")


def whitespace_and_escapes(text):
    """Why the text's whitespace or escapes are not the grammar's, or None."""
    i, n, prev = 0, len(text), None
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    if text[i + 1] == "u":
                        cp = int(text[i + 2:i + 6], 16)
                        if 0xD800 <= cp <= 0xDBFF:
                            if text[i + 6:i + 8] != "\\u" or not (
                                    0xDC00 <= int(text[i + 8:i + 12], 16) <= 0xDFFF):
                                return "a lone surrogate escape"
                            i += 6
                        elif 0xDC00 <= cp <= 0xDFFF:
                            return "a lone surrogate escape"
                        i += 6
                    else:
                        i += 2
                else:
                    i += 1
            i += 1
            prev = '"'
        elif ch in " \t\n\r":
            j = i
            while j < n and text[j] in " \t\n\r":
                j += 1
            if i == 0 or j == n or not WS_OK.match(text[i:j]):
                return "whitespace beyond one json-ws"
            i = j
        else:
            i += 1
    return None


def outside_canonical_form(text, schema_text):
    """Why a valid text is not one the grammar writes (None: it is)."""
    why = whitespace_and_escapes(text)
    if why:
        return why
    try:
        def hook(pairs):
            keys = [k for k, _ in pairs]
            if len(keys) != len(set(keys)):
                raise ValueError("duplicate key")
            return dict(pairs)
        json.loads(text, object_pairs_hook=hook)
    except ValueError as e:
        return str(e)
    bounded = re.search(r'"(minimum|maximum|exclusiveMinimum|exclusiveMaximum)"', schema_text)
    for tok in number_tokens(text):
        m = re.match(r"-?(\d+)(?:\.(\d+))?(?:[eE][-+]?(\d+))?$", tok)
        ip, fp, ep = m.group(1), m.group(2) or "", m.group(3)
        if len(ip) > 15 or len(fp) > 15 or (ep and len(ep) > 2):
            return "digits past the bounds written"
        if len(ip) > 1 and ip[0] == "0":
            return None  # not JSON at all: ajv refuses it too
        if bounded and (tok.startswith("-0") and float(tok) == 0):
            return "-0 under bounds"
        if bounded and (ep or len(ip) + len(fp) > 15):
            return "exponent or over 15 digits under bounds"
        if '"integer"' in schema_text and (fp or ep):
            return "an integer written with a fraction or exponent"
    return None


def main():
    for p in (SCHEMACHECK, ORACLE, CORPUS):
        if not os.path.exists(p):
            sys.exit(f"missing {p} (make BUILD=... tools; scripts/install-node-deps.sh)")
    corpus = json.load(open(CORPUS, encoding="utf-8"))
    schemas, errors = corpus["schemas"], corpus["errors"]
    rng = random.Random(18)
    cases = []
    for s in schemas:
        muts = set()
        for v in s["valid"]:
            muts.update(mutations(v, rng))
        muts -= set(s["valid"]) | set(s["invalid"]) | set(s["outside"])
        muts = sorted(muts)
        rng.shuffle(muts)
        s["mutations"] = sorted(muts[:MUTATIONS_PER_SCHEMA])
        cases.append({"schema": s["schema"], "strings": s["valid"] + s["invalid"] + s["outside"] + s["mutations"]})
    ajv = run_lines(["node", ORACLE], cases)
    ours = run_lines([SCHEMACHECK], cases)
    passed = failed = 0
    n_strings = n_mut = n_outside = 0

    def bad(msg):
        nonlocal failed
        failed += 1
        print("FAIL", msg)

    for s, case, a, o in zip(schemas, cases, ajv, ours):
        name = s["name"]
        if not a["ok"]:
            bad(f"{name}: ajv cannot compile the schema: {a['error']}")
            continue
        if not o["ok"]:
            bad(f"{name}: schemacheck refused the schema: {o['error']}")
            continue
        n_lab = len(s["valid"]) + len(s["invalid"])
        n_out = len(s["outside"])
        labels = [True] * len(s["valid"]) + [False] * len(s["invalid"])
        schema_text = json.dumps(s["schema"])
        ok = True
        for i, text in enumerate(case["strings"]):
            av, ov = a["valid"][i], bool(o["match"][i])
            n_strings += 1
            if i < n_lab:
                if av != labels[i]:
                    ok = False
                    bad(f"{name}: corpus says {'valid' if labels[i] else 'invalid'} but ajv says "
                        f"{'valid' if av else 'invalid'}: {text!r}")
                elif ov != av:
                    ok = False
                    bad(f"{name}: grammar {'accepts' if ov else 'refuses'} {text!r}, ajv "
                        f"{'accepts' if av else 'refuses'}")
                continue
            if i < n_lab + n_out:
                if not av or ov:
                    ok = False
                    bad(f"{name}: outside the canonical form {text!r}: ajv "
                        f"{'accepts' if av else 'refuses'} (want accepts), grammar "
                        f"{'accepts' if ov else 'refuses'} (want refuses)")
                continue
            n_mut += 1
            if ov and not av:
                ok = False
                bad(f"{name}: unsound: the grammar accepts the mutation {text!r}, ajv refuses it")
            elif av and not ov:
                why = outside_canonical_form(text, schema_text)
                if why is None:
                    ok = False
                    bad(f"{name}: the grammar refuses the valid canonical mutation {text!r}")
                else:
                    n_outside += 1
        if ok:
            passed += 1
    # refused schemas
    ecases = [{"schema": e["schema"], "strings": []} for e in errors]
    for e, o in zip(errors, run_lines([SCHEMACHECK], ecases)):
        if o["ok"]:
            bad(f"refused schema '{e['name']}' compiled")
        elif e["error"] not in o["error"]:
            bad(f"refused schema '{e['name']}': message {o['error']!r} lacks {e['error']!r}")
        else:
            passed += 1
    print(f"test_jsonschema: {len(schemas)} schemas, {n_strings} strings checked against ajv "
          f"({n_mut} mutations, {n_outside} valid ones outside the canonical form), "
          f"{len(errors)} refused schemas")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
