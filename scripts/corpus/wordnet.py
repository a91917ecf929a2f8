"""WordNet 3.0 (wordnet-base): parse data.* / index.* and render synsets as text."""
import os
import re

from util import BuildError, one_line

POS_FILES = (("n", "noun"), ("v", "verb"), ("a", "adj"), ("r", "adv"))
POS_NAME = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
_MARKER = re.compile(r"\((a|p|ip)\)$")


def lemma_text(w):
    return _MARKER.sub("", w).replace("_", " ")


class Synset:
    __slots__ = ("key", "pos", "words", "hypernyms", "instance_of", "antonyms",
                 "similar", "definition", "examples")


def _split_gloss(g):
    defs, exs = [], []
    for part in re.split(r";\s*", g.strip()):
        part = part.strip()
        if not part:
            continue
        if part.startswith('"'):
            ex = part.strip().strip('"').strip()
            # drop attributions after the closing quote ("..." - Shakespeare)
            ex = re.sub(r'"\s*-+\s*[^"]*$', "", ex).strip().strip('"').strip()
            if ex:
                exs.append(ex)
        elif not exs:
            defs.append(part)
    return "; ".join(defs).strip(), exs


class WordNet:
    def __init__(self, pkg):
        base = pkg.must("usr/share/wordnet")
        self.synsets = {}
        self.index = {}  # (lemma, pos) -> [synset keys] in sense order
        self.tagged = {}  # (lemma, pos) -> tagsense count
        for pos, fname in POS_FILES:
            self._read_data(os.path.join(base, "data." + fname), pos)
        for pos, fname in POS_FILES:
            self._read_index(os.path.join(base, "index." + fname), pos)
        self.lemmas = set(l for (l, _p) in self.index)
        for pos, fname in POS_FILES:
            p = os.path.join(base, fname + ".exc")
            with open(p, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if parts:
                        self.lemmas.add(lemma_text(parts[0]).lower())

    def _read_data(self, path, filepos):
        if not os.path.exists(path):
            raise BuildError("wordnet-base lacks %s" % path)
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith("  "):
                    continue
                try:
                    head, _, gloss = line.partition(" | ")
                    t = head.split()
                    off, ss_type = t[0], t[2]
                    wcnt = int(t[3], 16)
                    words = [t[4 + 2 * i] for i in range(wcnt)]
                    i = 4 + 2 * wcnt
                    pcnt = int(t[i])
                    i += 1
                    ptrs = []
                    for _ in range(pcnt):
                        ptrs.append((t[i], t[i + 1], t[i + 2], t[i + 3]))
                        i += 4
                except (IndexError, ValueError):
                    raise BuildError("%s:%d: unparsable WordNet data line" % (path, lineno))
                s = Synset()
                s.key = (filepos, off)
                s.pos = ss_type
                s.words = [lemma_text(w) for w in words]
                s.hypernyms, s.instance_of, s.antonyms, s.similar = [], [], [], []
                for sym, toff, tpos, st in ptrs:
                    tpos = "a" if tpos == "s" else tpos
                    if sym == "@":
                        s.hypernyms.append((tpos, toff))
                    elif sym == "@i":
                        s.instance_of.append((tpos, toff))
                    elif sym == "!":
                        src, tgt = int(st[:2], 16), int(st[2:], 16)
                        s.antonyms.append((src, (tpos, toff), tgt))
                    elif sym == "&":
                        s.similar.append((tpos, toff))
                s.definition, s.examples = _split_gloss(gloss)
                self.synsets[s.key] = s

    def _read_index(self, path, pos):
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith("  "):
                    continue
                t = line.split()
                try:
                    lemma = lemma_text(t[0])
                    scnt, pcnt = int(t[2]), int(t[3])
                    tagged = int(t[5 + pcnt])
                    offs = t[6 + pcnt:6 + pcnt + scnt]
                except (IndexError, ValueError):
                    raise BuildError("%s:%d: unparsable WordNet index line" % (path, lineno))
                self.index[(lemma, pos)] = [(pos, o) for o in offs]
                self.tagged[(lemma, pos)] = tagged

    def head(self, key):
        return self.synsets[key].words[0]

    def antonym_pairs(self, s):
        """[(word in s, antonym word)]"""
        out = []
        for src, tkey, tgt in s.antonyms:
            t = self.synsets.get(tkey)
            if t is None or src < 1 or tgt < 1 or src > len(s.words) or tgt > len(t.words):
                continue
            out.append((s.words[src - 1], t.words[tgt - 1]))
        return out

    def render(self, s):
        """The synset as a short natural paragraph."""
        head = s.words[0]
        pos = POS_NAME[s.pos]
        parts = ["%s (%s): %s." % (head, pos, s.definition)]
        if s.examples:
            parts.append("For example: " + "; ".join('"%s"' % e for e in s.examples[:3]) + ".")
        if len(s.words) > 1:
            parts.append("Synonyms: %s." % ", ".join(s.words[1:]))
        for k in s.hypernyms[:3]:
            h = self.head(k)
            if s.pos == "n":
                parts.append("%s %s is a kind of %s." % (article(head).capitalize(), head, h))
            elif s.pos == "v":
                parts.append("To %s is a way to %s." % (head, h))
        for k in s.instance_of[:2]:
            parts.append("%s is an instance of %s %s." % (cap1(head), article(self.head(k)), self.head(k)))
        if s.pos in ("a", "s") and s.similar and s.pos == "s":
            parts.append("It is similar to %s." % self.head(s.similar[0]))
        for w, a in self.antonym_pairs(s)[:3]:
            parts.append("The opposite of %s is %s." % (w, a))
        return one_line(" ".join(parts))


def cap1(s):
    return s[:1].upper() + s[1:]


def article(w):
    return "an" if w[:1].lower() in "aeiou" else "a"
