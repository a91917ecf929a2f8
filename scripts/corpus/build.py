#!/usr/bin/python3
"""Deterministic training-data builder for cgpt's built-in model.

  build.py [--tiny] [--out DIR] [--cache DIR]

Fetches Debian data packages into the cache (apt-get download), unpacks them
with dpkg-deb -x into a temporary directory, and writes pretrain.jsonl,
pretrain_eval.jsonl, sft.jsonl, sft_eval.jsonl, MANIFEST.json and
ATTRIBUTION.md into DIR.  Same packages -> byte-identical outputs."""
import argparse
import json
import os
import random
import re
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep scripts/corpus free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import debs  # noqa: E402
import recipes  # noqa: E402
import sources  # noqa: E402
from util import BuildError, blocked, in_holdout, sha256_file, write_jsonl  # noqa: E402

BUILDER_VERSION = "1"
PRETRAIN_EVAL_PER_MILLE = 10  # 1 %
SFT_EVAL_PER_MILLE = 20       # 2 %

# package -> (licence as named in its copyright file, what we take)
PACKAGES = {
    "wordnet-base": ("WordNet 3.0 licence (permissive, Princeton University)",
                     "all synsets: glosses, examples, synonyms, hypernyms, antonyms"),
    "dict-elements": ("public domain", "element names, symbols, atomic numbers and weights, descriptions"),
    "dict-vera": ("GFDL-NIV-1.1+", "acronyms and their expansions"),
    "bsdgames": ("BSD (3-clause, University of California)",
                 "quiz(6) data: capitals, US states, collective nouns, young animals, presidents, "
                 "sovereigns, language of flowers"),
    "fortunes-min": ("BSD (fortune) / public-domain quotations", "fortunes, literature, riddles files "
                     "(offensive words filtered)"),
    "fortunes": ("BSD (fortune) / public-domain quotations", "a fixed list of fortune files "
                 "(offensive and topical files skipped, blocklist applied)"),
    "fortunes-zh": ("GPL-3.0+", "Tang 300 and Song 100 poems (title, author, text) and Chinese sayings"),
    "r-cran-janeaustenr": ("MIT (package); the novels are public domain",
                           "the text of Jane Austen's six novels"),
    "jargon-text": ("public domain (the Jargon File)", "glossary entries"),
    "dict-devil": ("public domain (The Devil's Dictionary, Ambrose Bierce)",
                   "dictionary entries (blocklist applied)"),
}
MAN_LICENCES = {
    "coreutils": "GPL-3+", "grep": "GPL-3+", "sed": "GPL-3+", "findutils": "GPL-3+", "tar": "GPL-3+",
    "gzip": "GPL-3+", "bzip2": "BSD-variant (bzip2 licence)", "xz-utils": "public domain / GPL-2+ / LGPL-2.1+",
    "less": "GPL-3+ or BSD-2-clause (less licence)", "procps": "GPL-2+ / LGPL-2+", "diffutils": "GPL-3+",
    "gawk": "GPL-3+", "file": "BSD-2-clause", "rsync": "GPL-3+", "wget": "GPL-3+",
    "curl": "curl licence (MIT/X style)", "make": "GPL-3+", "openssh-client": "BSD (OpenSSH licence)",
    "man-db": "GPL-2+", "util-linux": "GPL-2+ (and others per file)", "bash": "GPL-3+",
    "zip": "Info-ZIP licence (BSD-style)", "unzip": "Info-ZIP licence (BSD-style)",
}

FULL_SOURCES = ["wordnet-base", "dict-elements", "dict-vera", "bsdgames", "fortunes-min", "fortunes",
                "fortunes-zh", "r-cran-janeaustenr", "jargon-text", "dict-devil"]
TINY_SOURCES = ["wordnet-base", "dict-elements", "dict-vera", "bsdgames", "fortunes-min", "fortunes-zh"]

OUTPUTS = ["pretrain.jsonl", "pretrain_eval.jsonl", "sft.jsonl", "sft_eval.jsonl"]


class Knowledge:
    """Facts whose pretraining document is in the training split."""

    def __init__(self, wn, train_docs, all_docs):
        self.wn = wn
        self.facts = {k: [] for k in ("element", "capital", "collective", "baby", "acronym",
                                      "command", "poem")}
        self.train_synsets = set()
        for d in train_docs:
            for kind, val in d.facts:
                if kind == "wn":
                    self.train_synsets.add(val)
                else:
                    self.facts[kind].append(val)
        self.all_poems = [v for d in all_docs for kind, v in d.facts if kind == "poem"]
        self.first_senses = recipes._first_senses(wn, self.train_synsets, tagged_only=True)
        words = set()
        for (lemma, pos) in wn.index:
            if re.match(r"^[a-z]{3,10}$", lemma) and wn.tagged[(lemma, pos)] > 0 and not blocked(lemma):
                words.add(lemma)
        self.simple_words = sorted(words)


def log(msg):
    sys.stderr.write("corpus: %s\n" % msg)
    sys.stderr.flush()


def build(args):
    t0 = time.time()
    cache = os.path.abspath(args.cache)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    names = TINY_SOURCES if args.tiny else FULL_SOURCES
    man_names = sources.MAN_PACKAGES_TINY if args.tiny else sources.MAN_PACKAGES
    with tempfile.TemporaryDirectory(prefix="cgpt-corpus-") as tmp:
        pkgs = {}
        for n in list(names) + list(man_names):
            pkgs[n] = debs.fetch(cache, n, tmp)
        log("fetched %d packages (%.1fs)" % (len(pkgs), time.time() - t0))

        docs = []
        wn, d = sources.wordnet_docs(pkgs["wordnet-base"], args.tiny)
        docs += d
        docs += sources.element_docs(pkgs["dict-elements"])
        docs += sources.vera_docs(pkgs["dict-vera"], args.tiny)
        docs += sources.quiz_docs(pkgs["bsdgames"])
        docs += sources.man_docs([pkgs[n] for n in man_names])
        for n in ("fortunes-min", "fortunes"):
            if n in pkgs:
                docs += sources.fortune_docs(pkgs[n])
        docs += sources.fortunes_zh_docs(pkgs["fortunes-zh"])
        if "r-cran-janeaustenr" in pkgs:
            docs += sources.austen_docs(pkgs["r-cran-janeaustenr"])
        if "jargon-text" in pkgs:
            docs += sources.jargon_docs(pkgs["jargon-text"])
        if "dict-devil" in pkgs:
            docs += sources.devil_docs(pkgs["dict-devil"])
        log("extracted %d documents (%.1fs)" % (len(docs), time.time() - t0))

        uniq, seen = [], set()
        for doc in docs:
            if doc.text and doc.text not in seen:
                seen.add(doc.text)
                uniq.append(doc)
        train = [x for x in uniq if not in_holdout(x.text, PRETRAIN_EVAL_PER_MILLE)]
        held = [x for x in uniq if in_holdout(x.text, PRETRAIN_EVAL_PER_MILLE)]
        random.Random("cgpt-corpus/pretrain").shuffle(train)

        know = Knowledge(wn, train, uniq)
        rows = recipes.generate(know, args.tiny)
        random.Random("cgpt-corpus/sft").shuffle(rows)
        sft_train, sft_eval = [], []
        for name, messages, checkable in rows:
            r = {"messages": messages, "recipe": name, "checkable": checkable}
            key = recipes.question_key(messages)
            (sft_eval if in_holdout(key, SFT_EVAL_PER_MILLE) else sft_train).append(r)
        log("generated %d chat examples (%.1fs)" % (len(rows), time.time() - t0))

        data = {
            "pretrain.jsonl": [{"text": x.text, "source": x.source} for x in train],
            "pretrain_eval.jsonl": [{"text": x.text, "source": x.source} for x in held],
            "sft.jsonl": sft_train,
            "sft_eval.jsonl": sft_eval,
        }
        files = {}
        for fname in OUTPUTS:
            path = os.path.join(out, fname)
            tmp_path = path + ".tmp"
            n = write_jsonl(tmp_path, data[fname])
            os.replace(tmp_path, path)
            files[fname] = {"sha256": sha256_file(path), "lines": n, "bytes": os.path.getsize(path)}

        per_source = {}
        for split, items in (("train", train), ("eval", held)):
            for x in items:
                e = per_source.setdefault(x.source, {"docs": 0, "chars": 0, "eval_docs": 0})
                if split == "train":
                    e["docs"] += 1
                    e["chars"] += len(x.text)
                else:
                    e["eval_docs"] += 1
        per_recipe = {}
        for split, items in (("train", sft_train), ("eval", sft_eval)):
            for r in items:
                e = per_recipe.setdefault(r["recipe"], {"train": 0, "eval": 0, "checkable": r["checkable"]})
                e[split] += 1
        packages = {}
        for n in sorted(pkgs):
            p = pkgs[n]
            lic = PACKAGES[n][0] if n in PACKAGES else MAN_LICENCES[n]
            packages[n] = {"version": p.version, "deb": os.path.basename(p.deb), "sha256": p.sha256,
                           "licence": lic}
        manifest = {
            "builder": "scripts/corpus/build.py",
            "builder_version": BUILDER_VERSION,
            "flags": {"tiny": bool(args.tiny)},
            "splits": {"pretrain_eval_per_mille": PRETRAIN_EVAL_PER_MILLE,
                       "sft_eval_per_mille": SFT_EVAL_PER_MILLE,
                       "hash": "sha1 of document text / of the user messages joined by newlines"},
            "recipe_cap": recipes.RECIPE_CAP,
            "packages": packages,
            "files": files,
            "sources": dict(sorted(per_source.items())),
            "recipes": dict(sorted(per_recipe.items())),
        }
        with open(os.path.join(out, "MANIFEST.json"), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=False))
            f.write("\n")
        write_attribution(os.path.join(out, "ATTRIBUTION.md"), pkgs)
    log("done: %s (%.1fs)" % (", ".join("%s %d lines %d bytes" % (k, v["lines"], v["bytes"])
                                         for k, v in files.items()), time.time() - t0))


def write_attribution(path, pkgs):
    lines = ["# Attribution of the cgpt training corpus", "",
             "The corpus is built from these Debian packages (exact versions and .deb hashes are in "
             "MANIFEST.json). Each licence is as named in the package's "
             "`/usr/share/doc/<package>/copyright` file.", "",
             "| package | version | licence | what was taken |", "|---|---|---|---|"]
    for n in sorted(pkgs):
        p = pkgs[n]
        if n in PACKAGES:
            lic, what = PACKAGES[n]
        else:
            lic, what = MAN_LICENCES[n], "NAME and DESCRIPTION of its section 1 and 8 manual pages"
        lines.append("| %s | %s | %s | %s |" % (n, p.version, lic, what))
    lines += ["", "WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. "
              "(WordNet licence: permission to use, copy, modify and distribute for any purpose "
              "without fee, provided the copyright notice appears on all copies.)", ""]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description="Build cgpt's training corpus from Debian packages.")
    ap.add_argument("--tiny", action="store_true", help="small build from a few packages (tests)")
    ap.add_argument("--out", default="build/corpus", help="output directory")
    ap.add_argument("--cache", default="build/debs", help="directory of downloaded .deb files")
    args = ap.parse_args()
    try:
        build(args)
    except BuildError as e:
        sys.stderr.write("corpus: error: %s\n" % e)
        return 1
    except OSError as e:
        sys.stderr.write("corpus: error: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
