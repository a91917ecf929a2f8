"""Shared helpers: errors, text cleaning, stable hashing, JSON lines."""
import hashlib
import json
import re
import unicodedata


class BuildError(Exception):
    """A failure the builder reports as one line and a non-zero exit."""


def sha1_hex(s):
    return hashlib.sha1(s.encode("utf-8")).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def in_holdout(key, percent_per_mille):
    """Stable split: True when sha1(key) falls in the held-out slice.

    percent_per_mille: size of the slice in parts per thousand."""
    return int(sha1_hex(key)[:8], 16) % 1000 < percent_per_mille


_CTRL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u2028\u2029\ufeff]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SPACES = re.compile(r"[ \t]+")


def strip_ansi(s):
    return _ANSI.sub("", s)


def clean_text(s):
    """NFC, no control characters (tab and newline kept), trimmed lines,
    at most one blank line in a row."""
    s = unicodedata.normalize("NFC", strip_ansi(s))
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CTRL.sub("", s)
    lines = [ln.rstrip() for ln in s.split("\n")]
    out = []
    blank = False
    for ln in lines:
        if not ln.strip():
            if out and not blank:
                out.append("")
            blank = True
            continue
        blank = False
        out.append(ln)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out).strip("\n")


def one_line(s):
    """Collapse all whitespace to single spaces."""
    return _SPACES.sub(" ", " ".join(s.split())).strip()


def reflow(s):
    """Join hard-wrapped lines into paragraphs separated by one blank line."""
    paras = []
    for block in re.split(r"\n\s*\n", s):
        t = one_line(block)
        if t:
            paras.append(t)
    return "\n\n".join(paras)


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def write_jsonl(path, rows):
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(dumps(r))
            f.write("\n")
            n += 1
    return n


# Words whose presence drops a whole fortune / dictionary entry.
BLOCKLIST = re.compile(
    r"\b(nigg\w*|negro\w*|nigra|kike\w*|chink\w*|spic|spics|wop|wops|dago\w*|"
    r"fag|fags|faggot\w*|dyke\w*|tranny|retard\w*|cunt\w*|fuck\w*|shit\w*|"
    r"bitch\w*|whore\w*|slut\w*|rape\w*|raping|rapist\w*|pussy|cock|cocks|"
    r"dick|dicks|penis\w*|vagina\w*|orgasm\w*|porn\w*|masturbat\w*|"
    r"hitler|nazi\w*|jew|jews|jewish|gook\w*|squaw\w*|darkie\w*|coon|coons|"
    r"homo|homos|queer\w*|suicide|kill yourself|sex|sexy|sexual\w*|blowjob\w*|"
    r"tits|boobs?|breasts?|nude|naked|drunk\w*|cocaine|heroin|marijuana)\b",
    re.IGNORECASE,
)


def blocked(s):
    return BLOCKLIST.search(s) is not None
