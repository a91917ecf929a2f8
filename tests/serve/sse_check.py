#!/usr/bin/env python3
"""Checks for tests/serve/test_sse.sh, on files curl wrote.

  sse_check.py sse BODY [OBJECT]
      The body is a well-framed SSE stream: every event is exactly
      "data: <payload>\\n\\n" (comment events ": ...\\n\\n" are tolerated and
      counted), each event's bytes are valid UTF-8 on their own (no event
      splits a character), each payload but the last is a JSON object (of
      'object' OBJECT when given, or an {"error":...} event), the last event is
      "data: [DONE]" and nothing follows it. Prints a JSON summary on stdout:
      {"events", "comments", "ids", "created", "text": {index: str},
       "finish": {index: [..]}, "roles": {index: n}, "usage": obj|null,
       "errors": [error objects]}. Exit 1 with a reason on stderr otherwise.
  sse_check.py envelope BODY [TYPE] [CODE] [PARAM]
      The body is {"error":{"message":str,"type":str,"param":..,"code":..}}
      with a non-empty message; TYPE/CODE/PARAM ("-" skips, "null" = JSON
      null) must match.
  sse_check.py get BODY EXPR
      Prints eval(EXPR) with j = the parsed JSON body (json.dumps for
      non-strings).
  sse_check.py metric FILE NAME [LABEL=VALUE...]
      Sum of the samples of metric NAME (Prometheus text) whose labels
      include the given ones; exit 1 when there is none.
"""
import json
import re
import sys


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def sse(path, obj=None):
    raw = open(path, "rb").read()
    if not raw:
        die("empty body")
    if not raw.endswith(b"\n\n"):
        die(f"body does not end with a blank line: ...{raw[-80:]!r}")
    events = raw[:-2].split(b"\n\n")
    out = {"events": 0, "comments": 0, "ids": [], "created": [], "text": {}, "finish": {},
           "roles": {}, "usage": None, "errors": [], "usage_chunks": 0, "null_usage_chunks": 0}
    done = False
    for k, ev in enumerate(events):
        try:
            text = ev.decode("utf-8")  # strict: an event that splits a character fails here
        except UnicodeDecodeError as e:
            die(f"event {k} is not valid UTF-8 on its own ({e}): {ev[:200]!r}")
        if done:
            die(f"event after [DONE]: {text[:200]!r}")
        if text.startswith(":"):
            if "\n" in text:
                die(f"multi-line comment event {k}: {text[:200]!r}")
            out["comments"] += 1
            continue
        if not text.startswith("data: ") or "\n" in text or "\r" in text:
            die(f"event {k} is not exactly one 'data: ' line: {text[:200]!r}")
        payload = text[6:]
        out["events"] += 1
        if payload == "[DONE]":
            done = True
            continue
        try:
            j = json.loads(payload)
        except ValueError as e:
            die(f"event {k} is not JSON ({e}): {payload[:200]!r}")
        if not isinstance(j, dict):
            die(f"event {k} is not an object: {payload[:200]!r}")
        if "error" in j:
            out["errors"].append(j["error"])
            continue
        if obj and j.get("object") != obj:
            die(f"event {k} has object {j.get('object')!r}, want {obj!r}")
        out["ids"].append(j.get("id"))
        out["created"].append(j.get("created"))
        if j.get("usage") is not None:
            out["usage"] = j["usage"]
            out["usage_chunks"] += 1
            if j.get("choices") != []:
                die(f"usage chunk {k} has choices {j.get('choices')!r}, want []")
        elif "usage" in j:
            out["null_usage_chunks"] += 1
        for ch in j.get("choices", []):
            i = str(ch.get("index"))
            delta = ch.get("delta")
            piece = delta.get("content") if isinstance(delta, dict) else ch.get("text")
            if isinstance(delta, dict) and delta.get("role"):
                if i in out["text"] or out["roles"].get(i):
                    die(f"event {k}: role on a later chunk of choice {i}")
                out["roles"][i] = out["roles"].get(i, 0) + 1
            out["text"].setdefault(i, "")
            if isinstance(piece, str):
                out["text"][i] += piece
            if ch.get("finish_reason") is not None:
                out["finish"].setdefault(i, []).append(ch["finish_reason"])
    if not done:
        die("the stream does not end with data: [DONE]")
    out["ids"] = sorted(set(out["ids"]))
    out["created"] = sorted(set(out["created"]))
    print(json.dumps(out, ensure_ascii=False))


def envelope(path, typ="-", code="-", param="-"):
    raw = open(path, "rb").read()
    try:
        j = json.loads(raw)
    except ValueError:
        die(f"not JSON: {raw[:300]!r}")
    e = j.get("error") if isinstance(j, dict) else None
    if not isinstance(e, dict) or set(e) < {"message", "type", "param", "code"}:
        die(f"not an error envelope: {raw[:300]!r}")
    if not isinstance(e["message"], str) or not e["message"]:
        die(f"empty message: {raw[:300]!r}")
    for name, want in (("type", typ), ("code", code), ("param", param)):
        if want == "-":
            continue
        if (None if want == "null" else want) != e[name]:
            die(f"error.{name} is {e[name]!r}, want {want!r}: {raw[:300]!r}")


def get(path, expr):
    j = json.loads(open(path, "rb").read())
    v = eval(expr, {"j": j, "len": len, "sorted": sorted, "set": set})
    print(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))


def metric(path, name, *labels):
    want = dict(l.split("=", 1) for l in labels)
    total, seen = 0.0, False
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in want.items()):
            total += float(m.group(4))
            seen = True
    if not seen:
        die(f"no sample of {name} {want}")
    print(int(total) if total == int(total) else total)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"sse": sse, "envelope": envelope, "get": get, "metric": metric}[cmd](*args)
