"""bsdgames quiz(6) data files: a small pattern language
  a|b    alternatives (first is canonical)
  {x}    optional part (canonical form includes it)
  [a|b]  required choice; two-character accent codes like 'e ^o ~a ,c
  \\     continues the line; fields are separated by ':'"""
import unicodedata

from util import BuildError

_ACCENT = {"'": "\u0301", "^": "\u0302", "~": "\u0303", "\u00b0": "\u030a"}


def _accent(alt):
    alt = alt.replace("\x08", "")  # overstrike backspaces
    if len(alt) == 2:
        a, b = alt
        if a in _ACCENT and b.isalpha():
            return unicodedata.normalize("NFC", b + _ACCENT[a])
        if b in _ACCENT and a.isalpha() and b != "'":
            return unicodedata.normalize("NFC", a + _ACCENT[b])
        if a == "," and b in "cC":
            return unicodedata.normalize("NFC", b + "\u0327")
        if a == "," and b in "sStT":
            return unicodedata.normalize("NFC", b + "\u0326")
        if a == "/" and b in "oO":
            return "\u00f8" if b == "o" else "\u00d8"
    return None


def _alts(s, path):
    """Split s at top-level '|'."""
    out, depth, cur = [], 0, ""
    for c in s:
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth < 0:
                raise BuildError("%s: unbalanced brackets in %r" % (path, s))
        if c == "|" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return out


def canonical(s, path="quiz"):
    """The canonical (first, fullest) spelling of a quiz pattern."""
    first = _alts(s, path)[0]
    out = ""
    i = 0
    while i < len(first):
        c = first[i]
        if c in "{[":
            depth, j = 1, i + 1
            while j < len(first) and depth:
                if first[j] in "{[":
                    depth += 1
                elif first[j] in "}]":
                    depth -= 1
                j += 1
            if depth:
                raise BuildError("%s: unbalanced brackets in %r" % (path, s))
            inner = first[i + 1:j - 1]
            alts = _alts(inner, path)
            acc = _accent(alts[0]) if c == "[" else None
            out += acc if acc is not None else canonical(alts[0], path)
            i = j
        else:
            out += c
            i += 1
    return out


def read(path):
    """[[field, ...]] (raw patterns) of one quiz file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        raw = f.read()
    rows = []
    buf = ""
    for line in raw.split("\n"):
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        buf += line
        if buf.strip():
            fields, depth, cur = [], 0, ""
            for c in buf:
                if c in "{[":
                    depth += 1
                elif c in "}]":
                    depth -= 1
                if c == ":" and depth == 0:
                    fields.append(cur)
                    cur = ""
                else:
                    cur += c
            fields.append(cur)
            rows.append(fields)
        buf = ""
    return rows
