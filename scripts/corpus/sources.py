"""Extractors: each returns a list of Doc and fills the fact tables used by
the chat recipes.  A Doc's facts are only asked about in the chat set when
the Doc lands in the training split."""
import glob
import gzip
import os
import re
import subprocess

import dictd
import quiz
import rdata
from util import BuildError, blocked, clean_text, in_holdout, one_line, reflow
from wordnet import WordNet, article


class Doc:
    __slots__ = ("text", "source", "facts")

    def __init__(self, text, source, facts=()):
        self.text = text
        self.source = source
        self.facts = list(facts)


# ---------------------------------------------------------------- WordNet
def wordnet_docs(pkg, tiny):
    wn = WordNet(pkg)
    docs = []
    for key in sorted(wn.synsets):
        s = wn.synsets[key]
        if not s.definition or OFFENSIVE_GLOSS.search(s.definition):
            continue
        if tiny and not in_holdout("wn-tiny:%s:%s" % key, TINY_WORDNET_PER_MILLE):
            continue
        docs.append(Doc(wn.render(s), pkg.name, [("wn", key)]))
    return wn, docs


TINY_WORDNET_PER_MILLE = 60
# WordNet marks slurs and obscenities in the gloss; such synsets are dropped.
OFFENSIVE_GLOSS = re.compile(r"\b(offensive|ethnic slur|obscene|vulgar|disparaging|derogatory|"
                             r"slur|taboo)\b", re.IGNORECASE)


# ---------------------------------------------------------------- elements
def element_docs(pkg):
    docs = []
    for head, body in dictd.entries(pkg.must("usr/share/dictd/elements.index"),
                                    pkg.must("usr/share/dictd/elements.dict.dz")):
        lines = body.strip("\n").split("\n")
        name = lines[0].strip()
        fields = {}
        rest = []
        for ln in lines[1:]:
            m = re.match(r"^(Symbol|Atomic number|Atomic weight):\s*(.*)$", ln)
            if m:
                fields[m.group(1)] = m.group(2).strip()
            else:
                rest.append(ln)
        if "Symbol" not in fields or "Atomic number" not in fields:
            continue
        if not name.isalpha():
            continue
        name = name.capitalize()
        sym, num = fields["Symbol"], fields["Atomic number"]
        if not num.isdigit() or not re.match(r"^[A-Z][a-z]{0,2}$", sym):
            continue
        weight = fields.get("Atomic weight", "").strip("()[] ")
        text = "%s (symbol %s) is the chemical element with atomic number %s" % (name, sym, num)
        if weight:
            text += " and atomic weight %s" % weight
        text += ". "
        desc = one_line(" ".join(rest))
        if desc:
            text += desc
        docs.append(Doc(one_line(text), pkg.name,
                        [("element", (name, sym, num))]))
    if len(docs) < 100:
        raise BuildError("dict-elements: only %d elements parsed" % len(docs))
    return docs


# ---------------------------------------------------------------- acronyms
_VERA_PAREN = re.compile(r"\s*\([^()]*\)")


_VERA_CTX = re.compile(r"\(([^()]*)\)")


def _vera_case(e):
    """V.E.R.A. capitalises the letters that make the acronym ("ACcess
    TEchnologies aNd"); write the words normally."""
    def word(m):
        w = m.group(0)
        if re.match(r"^[A-Z]{2,}[a-z]+$", w):
            return w[0] + w[1:].lower()
        if re.match(r"^[a-z]+[A-Z][a-z]*$", w):
            return w.lower()
        return w
    return re.sub(r"[A-Za-z]+", word, e)


def vera_docs(pkg, tiny):
    groups = {}
    for head, body in dictd.entries(pkg.must("usr/share/dictd/vera.index"),
                                    pkg.must("usr/share/dictd/vera.dict.dz")):
        lines = body.strip("\n").split("\n")
        acr = lines[0].strip()
        exp = one_line(" ".join(lines[1:]))
        if not acr or not exp:
            continue
        groups.setdefault(acr, []).append(exp)
    docs = []
    chunk, facts = [], []
    for acr in sorted(groups):
        if tiny and not in_holdout("vera-tiny:" + acr, 100):
            continue
        exps = groups[acr]
        clean = []
        for e in exps:
            e = _VERA_PAREN.sub("", e)
            e = re.sub(r',\s*".*$', "", e).strip().rstrip(",;")
            e = _vera_case(e)
            if e and e not in clean:
                clean.append(e)
        if not clean:
            continue
        if len(clean) == 1:
            line = "%s stands for %s." % (acr, clean[0])
            if (re.match(r"^[A-Z][A-Z0-9]{1,7}$", acr) and re.match(r"^[A-Za-z][A-Za-z0-9 /&'.-]+$", clean[0])
                    and len(clean[0].split()) >= 2):
                facts.append(("acronym", (acr, clean[0])))
        else:
            line = "%s can stand for %s." % (acr, "; ".join(clean[:6]))
        ctx = _VERA_CTX.search(exps[0])
        if len(clean) == 1 and ctx and len(exps) == 1:
            line = line[:-1] + " (%s)." % ctx.group(1)
        chunk.append(line)
        if len(chunk) == 12:
            docs.append(Doc("\n".join(chunk), pkg.name, facts))
            chunk, facts = [], []
    if chunk:
        docs.append(Doc("\n".join(chunk), pkg.name, facts))
    return docs


# ---------------------------------------------------------------- quiz
QUIZ_CAPITALS = ("africa", "america", "asia", "europe", "province", "state")
_THE = re.compile(r"^(United |Republic |Czech |Dominican |Central African |Democratic |"
                  r"Netherlands|Philippines|Maldives|Seychelles|Comoros|Bahamas|Gambia|"
                  r"Falkland |Faroe |Cayman |Turks |British |Isle of|Vatican|People's )|"
                  r"(Islands|Republic|Kingdom|States|Territory|Territories|Emirates)$")


def place(name):
    """The name as it reads inside a sentence ('the United Kingdom')."""
    if name.startswith("The "):
        return "the " + name[4:]
    if _THE.search(name):
        return "the " + name
    return name


def quiz_docs(pkg):
    base = pkg.must("usr/share/games/bsdgames/quiz")

    def rows(name):
        path = os.path.join(base, name)
        if not os.path.exists(path):
            raise BuildError("bsdgames lacks quiz file %s" % name)
        return [[quiz.canonical(f, path).strip() for f in r] for r in quiz.read(path)]

    docs = []
    seen = set()
    region = {"africa": "Africa", "america": "the Americas", "asia": "Asia", "europe": "Europe",
              "province": "Canada", "state": "the United States"}
    for fname in QUIZ_CAPITALS:
        lines, facts = [], []
        for r in rows(fname):
            if len(r) < 2 or not r[0] or not r[1]:
                continue
            country, cap = r[0], r[1]
            if country in seen or len(country) < 4:
                continue
            seen.add(country)
            kind = {"state": "state", "province": "province"}.get(fname, "country")
            s = "The capital of %s is %s." % (place(country), cap)
            if fname == "state" and len(r) > 2 and r[2]:
                s += " The postal abbreviation of %s is %s." % (country, r[2])
            lines.append(s)
            facts.append(("capital", (country, cap, kind)))
        # chunks of 8 sentences: a held-out chunk loses few facts
        for i in range(0, len(lines), 8):
            head = "Capitals in %s. " % region[fname]
            docs.append(Doc(head + " ".join(lines[i:i + 8]), pkg.name, facts[i:i + 8]))
    lines, facts = [], []
    seen = set()
    for r in rows("collectives"):
        if len(r) < 2 or r[0] in seen:
            continue
        seen.add(r[0])
        lines.append("A group of %s is called %s %s." % (r[0], article(r[1]), r[1]))
        facts.append(("collective", (r[0], r[1])))
    for i in range(0, len(lines), 8):
        docs.append(Doc("Collective nouns. " + " ".join(lines[i:i + 8]), pkg.name, facts[i:i + 8]))
    lines, facts = [], []
    for r in rows("babies"):
        if len(r) < 2:
            continue
        lines.append("A young %s is called %s %s." % (r[1], article(r[0]), r[0]))
        facts.append(("baby", (r[1], r[0])))
    docs.append(Doc("Names of young animals. " + " ".join(lines), pkg.name, facts))
    # presidents of the United States
    lines = []
    for r in rows("pres"):
        if len(r) >= 2:
            lines.append("%s was President of the United States from %s." % (r[0], r[1].replace("-", " to ")))
    docs.append(Doc(" ".join(lines), pkg.name))
    lines = []
    for r in rows("sov"):
        if len(r) >= 3:
            lines.append("%s reigned in England in the %sth century and was succeeded by %s." % (r[0], r[1], r[2]))
    docs.append(Doc(" ".join(lines), pkg.name))
    lines = []
    for r in rows("flowers"):
        if len(r) >= 2:
            lines.append("In the language of flowers, %s means %s." % (r[0].lower(), r[1].lower()))
    docs.append(Doc(" ".join(lines), pkg.name))
    return docs


# ---------------------------------------------------------------- man pages
MAN_PACKAGES = ("coreutils", "grep", "sed", "findutils", "tar", "gzip", "bzip2", "xz-utils",
                "less", "procps", "diffutils", "gawk", "file", "rsync", "wget", "curl", "make",
                "openssh-client", "man-db", "util-linux", "bash", "zip", "unzip")
MAN_PACKAGES_TINY = ("grep", "sed")
MAN_MAX_CHARS = 6000
_GROFF = ["groff", "-k", "-Kutf-8", "-t", "-mandoc", "-Tutf8", "-P-cbou", "-rHY=0", "-rLL=250n"]


def _render_man(path):
    with gzip.open(path, "rb") as f:
        src = f.read()
    r = subprocess.run(_GROFF, input=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}, check=False)
    if r.returncode != 0:
        raise BuildError("groff failed on %s: %s" % (path, r.stderr.decode(errors="replace")[:200]))
    return r.stdout.decode("utf-8", errors="replace")


def _sections(text):
    secs, cur = {}, None
    for ln in text.split("\n"):
        if re.match(r"^[A-Z][A-Z /-]+$", ln):
            cur = ln.strip()
            secs.setdefault(cur, [])
        elif cur is not None:
            secs[cur].append(ln)
    return secs


def man_docs(pkgs):
    docs = []
    for pkg in pkgs:
        pages = sorted(glob.glob(pkg.path("usr/share/man/man1/*.1.gz")) +
                       glob.glob(pkg.path("usr/share/man/man8/*.8.gz")))
        for path in pages:
            if os.path.islink(path):
                continue
            text = _render_man(path)
            secs = _sections(text)
            name = one_line(" ".join(secs.get("NAME", [])))
            m = re.match(r"^(\S+(?:, \S+)*)\s+[-\u2010\u2012\u2013\u2014]+\s+(.+)$", name)
            if not m:
                continue
            cmds, desc = m.group(1), m.group(2).strip()
            desc = desc.split(". ")[0].rstrip(".")  # some NAME lines run into the synopsis
            cmd = cmds.split(",")[0].strip()
            body = []
            for ln in secs.get("DESCRIPTION", []):
                body.append(ln.strip())
            desc_text = reflow("\n".join(body))
            if len(desc_text) > MAN_MAX_CHARS:
                cut = desc_text.rfind("\n\n", 0, MAN_MAX_CHARS)
                desc_text = desc_text[:cut if cut > 0 else MAN_MAX_CHARS]
            text = "%s - %s\n\nThe %s command: %s.\n\n%s" % (cmds, desc, cmd, desc, desc_text)
            docs.append(Doc(clean_text(text), pkg.name, [("command", (cmd, desc))]))
    return docs


# ---------------------------------------------------------------- Austen
AUSTEN_CHUNK = 12000


def austen_docs(pkg):
    vecs = rdata.character_vectors(pkg.must("usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"))
    if len(vecs) < 6:
        raise BuildError("janeaustenr: expected 6 novels, found %d" % len(vecs))
    docs = []
    for lines in vecs:
        title = lines[0].strip().title()
        chapters, cur = [], []
        for ln in lines:
            if re.match(r"^(CHAPTER|Chapter)\s+[0-9IVXLC]+\.?\s*$", ln.strip()) and cur:
                chapters.append(cur)
                cur = []
            cur.append(ln)
        chapters.append(cur)
        for ci, ch in enumerate(chapters):
            text = re.sub(r"_([^_\n]+)_", r"\1", reflow("\n".join(ch)))  # _italics_
            if ci == 0 and len(text) < 400:
                continue
            paras = text.split("\n\n")
            buf = ""
            part = 0
            for p in paras:
                if buf and len(buf) + len(p) > AUSTEN_CHUNK:
                    docs.append(Doc("%s, by Jane Austen.\n\n%s" % (title, buf), pkg.name))
                    buf, part = "", part + 1
                buf = p if not buf else buf + "\n\n" + p
            if buf:
                docs.append(Doc("%s, by Jane Austen.\n\n%s" % (title, buf), pkg.name))
    return docs


# ---------------------------------------------------------------- jargon
def jargon_docs(pkg):
    with gzip.open(pkg.must("usr/share/doc/jargon-text/jargon.txt.gz"), "rt", encoding="utf-8",
                   errors="replace") as f:
        raw = f.read()
    lines = [ln for ln in raw.split("\n") if not re.search(r"[\u2500-\u257f]", ln)]
    text = "\n".join(lines)
    start = text.find("\n:(abbrev")  # glossary start
    entries = re.split(r"\n\s*(?=:[^:\n]{1,60}:)", text)
    docs = []
    for e in entries:
        m = re.match(r"^:([^:\n]{1,60}):\s*(.*?)\n", e)
        if not m:
            continue
        word, pos = m.group(1).strip(), m.group(2).strip()
        body = reflow(e[m.end():])
        body = re.sub(r"\{([^{}]*)\}", r"\1", body)
        if len(body) < 40 or blocked(body):
            continue
        head = "%s (%s)" % (word, pos.rstrip(",.")) if pos else word
        docs.append(Doc("%s, from the Jargon File: %s" % (head, body), pkg.name))
    if len(docs) < 1000:
        raise BuildError("jargon-text: only %d entries parsed (start %d)" % (len(docs), start))
    return docs


# ---------------------------------------------------------------- Devil's Dictionary
def devil_docs(pkg):
    docs = []
    for head, body in dictd.entries(pkg.must("usr/share/dictd/devil.index"),
                                    pkg.must("usr/share/dictd/devil.dict.dz")):
        t = clean_text(body)
        if len(t) < 30 or blocked(t):
            continue
        docs.append(Doc("From The Devil's Dictionary by Ambrose Bierce:\n" + t, pkg.name))
    return docs


# ---------------------------------------------------------------- fortunes
FORTUNE_FILES = {
    "fortunes-min": ("fortunes", "literature", "riddles"),
    "fortunes": ("art", "computers", "education", "food", "goedel", "humorists", "kids",
                 "linux", "magic", "medicine", "paradoxum", "people", "pets", "platitudes",
                 "science", "songs-poems", "sports", "startrek", "tao", "wisdom", "work"),
}


def fortune_docs(pkg):
    docs = []
    for name in FORTUNE_FILES[pkg.name]:
        path = pkg.must("usr/share/games/fortunes/" + name)
        with open(path, encoding="utf-8", errors="replace") as f:
            raw = f.read()
        for item in raw.split("\n%\n"):
            t = clean_text(item.strip("%\n"))
            if len(t) < 20 or blocked(t):
                continue
            docs.append(Doc(t, pkg.name))
    return docs


# ---------------------------------------------------------------- Chinese
def fortunes_zh_docs(pkg):
    docs = []
    for name in ("tang300", "song100"):
        path = pkg.must("usr/share/games/fortunes/" + name)
        with open(path, encoding="utf-8", errors="replace") as f:
            raw = clean_text(f.read())
        for item in raw.split("\n%"):
            lines = [ln.strip() for ln in item.strip("%\n").split("\n") if ln.strip()]
            if len(lines) < 3:
                continue
            m1 = re.match(r"^(?:题目[:：])?《(.+)》$", lines[0])
            m2 = re.match(r"^作者[:：]\s*([^（(]+)", lines[1])
            if not m1 or not m2:
                continue
            title, author = m1.group(1).strip(), m2.group(1).strip()
            poem = "\n".join(lines[2:])
            text = "《%s》\n作者：%s\n%s" % (title, author, poem)
            docs.append(Doc(text, pkg.name, [("poem", (title, author, poem))]))
    path = pkg.must("usr/share/games/fortunes/chinese")
    with open(path, encoding="utf-8", errors="replace") as f:
        raw = clean_text(f.read())
    for item in raw.split("\n%"):
        t = clean_text(item.strip("%\n"))
        if len(t) >= 10:
            docs.append(Doc(t, pkg.name))
    return docs
