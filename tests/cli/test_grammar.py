#!/usr/bin/python3
"""test_grammar.py - `cgpt run --grammar-file` and `--json-schema` on the
built-in model: every sampled output (20 seeds, temperature 1.2) is a
sentence of the grammar / JSON valid against the schema (checked here with
Python's json module and the schema's meaning written out by hand), and bad
grammars and schemas are one-line errors naming what is wrong.
Usage: tests/cli/test_grammar.py [CGPT]  (Debian's /usr/bin/python3)."""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CGPT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "cgpt")
passed = failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok -", what)
    else:
        failed += 1
        print("not ok -", what, detail)


def run(*args):
    return subprocess.run([CGPT, "run", *args], capture_output=True, text=True, timeout=120)


SCHEMA = {"type": "object",
          "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": -3, "maximum": 12},
                         "tag": {"enum": ["red", "green", None]}},
          "required": ["ok", "n"], "additionalProperties": False}


def valid(v):
    return (isinstance(v, dict) and set(v) <= {"ok", "n", "tag"} and {"ok", "n"} <= set(v)
            and isinstance(v["ok"], bool) and type(v["n"]) is int and -3 <= v["n"] <= 12
            and v.get("tag", "red") in ("red", "green", None))


with tempfile.TemporaryDirectory() as tmp:
    bad = []
    for seed in range(20):
        p = run("--chat", "-p", "Describe a light.", "--json-schema", json.dumps(SCHEMA), "--temp", "1.2",
                "--seed", str(seed), "-n", "200")
        fin = re.search(r"finish: (\w+)", p.stderr)
        try:
            ok = p.returncode == 0 and fin and fin.group(1) == "stop" and valid(json.loads(p.stdout))
        except ValueError:
            ok = False
        if not ok:
            bad.append((seed, p.stdout[-300:], p.stderr[-300:]))
    check(not bad, "--json-schema: 20 sampled outputs are JSON valid against the schema", bad[:2])
    g = os.path.join(tmp, "g.gbnf")
    with open(g, "w") as f:
        f.write('root ::= ("yes" | "no") (", " word)?\nword ::= [a-z]{1,8}\n')
    outs = [run("--chat", "-p", "Is water wet?", "--grammar-file", g, "--temp", "1.5", "--seed", str(s)).stdout.rstrip("\n")
            for s in range(20)]
    check(all(re.fullmatch(r"(yes|no)(, [a-z]{1,8})?", o) for o in outs), "--grammar-file: 20 outputs match the grammar",
          outs)
    with open(g, "w") as f:
        f.write('root ::= "a" missing\n')
    p = run("-p", "x", "--grammar-file", g)
    check(p.returncode != 0 and "'missing'" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
          "an undefined rule is a one-line error naming it", p.stderr)
    p = run("-p", "x", "--json-schema", '{"type":"integer","multipleOf":2}')
    check(p.returncode != 0 and "unsupported keyword 'multipleOf'" in p.stderr, "an unsupported keyword is named",
          p.stderr)
    p = run("-p", "x", "--json-schema", '{"type":"string","pattern":"^(?=a)"}')
    check(p.returncode != 0 and "lookahead" in p.stderr, "an unsupported pattern construct is named", p.stderr)
    p = run("-p", "x", "--json-schema", "{oops")
    check(p.returncode != 0 and "--json-schema: invalid JSON" in p.stderr, "bad JSON is named", p.stderr)
    p = run("-p", "x", "--json-schema", "{}", "--grammar-file", g)
    check(p.returncode != 0 and "not both" in p.stderr, "--grammar-file with --json-schema is refused", p.stderr)

print(f"test_grammar: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
