"""Chat (SFT) recipes.  Each recipe has its own random.Random seeded by its
name, iterates its facts in sorted/document order and yields
(messages, checkable)."""
import random
import re

import handwritten as hw
from util import blocked
from wordnet import POS_NAME, cap1

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")

# Full-build target per recipe; the tiny build scales these by TINY_SCALE.
TARGETS = {
    "wn_define": 8000, "wn_hypernym": 6500, "wn_synonym": 6000, "wn_antonym": 4000,
    "wn_followup": 4000, "wn_usage": 4000, "element": 2000, "capital": 2000, "quiz_misc": 500,
    "acronym": 7000, "man_what": 1500, "man_which": 800, "arithmetic": 8000, "weekday": 5000,
    "backwards": 5000, "word_length": 4000, "uppercase": 3000, "identity": 400, "refusal": 200,
    "unknown_word": 3000, "poem_author": 1500, "poem_recite": 400,
}
TINY_SCALE = 0.06
RECIPE_CAP = 0.12
MAX_DEFINITION_CHARS = 300  # longer glosses are not asked about  # no recipe above this share of the chat set


def user(c):
    return {"role": "user", "content": c}


def assistant(c):
    return {"role": "assistant", "content": c}


def qa(q, a, checkable):
    return [user(q), assistant(a)], checkable


def sentence(s):
    s = cap1(s.strip())
    return s if s.endswith((".", "!", "?")) else s + "."


# ------------------------------------------------------------------ WordNet
DEFINE_T = ["What does \"{w}\" mean?", "Define {w}.", "What is the meaning of the word '{w}'?",
            "Can you tell me what {w} means?", "What does the word {w} mean?", "Definition of {w}?",
            "Explain the word \"{w}\"."]
DEFINE_POS_T = ["What does the {p} \"{w}\" mean?", "Define the {p} {w}.",
                "What is the meaning of {w} as a {p}?"]
HYPER_T = ["What kind of thing is {a} {w}?", "{A} {w} is a kind of what?", "What is {a} {w} a type of?",
           "Name a broader category that includes {a} {w}."]
SYN_T = ["Give a synonym for \"{w}\".", "What is another word for {w}?", "Name a synonym of {w}.",
         "What's a word that means the same as \"{w}\"?"]
ANT_T = ["What is the opposite of \"{w}\"?", "Give an antonym of {w}.", "What is the antonym of {w}?",
         "What word means the opposite of {w}?"]


def _art(w):
    return "an" if w[:1].lower() in "aeiou" else "a"


def _first_senses(wn, train, tagged_only):
    """[(lemma, pos, synset)] where the synset is the lemma's first sense and
    its document is in the training split; sorted."""
    out = []
    multi = {}
    for (lemma, pos) in wn.index:
        multi[lemma] = multi.get(lemma, 0) + 1
    for (lemma, pos) in sorted(wn.index):
        if tagged_only and wn.tagged[(lemma, pos)] == 0:
            continue
        key = wn.index[(lemma, pos)][0]
        if key not in train:
            continue
        s = wn.synsets[key]
        if not s.definition or not re.match(r"^[a-z][a-z -]*$", lemma):
            continue
        if len(s.definition) > MAX_DEFINITION_CHARS:
            continue
        if blocked(lemma) or blocked(s.definition) or any(blocked(w) for w in s.words):
            continue
        out.append((lemma, pos, s, multi[lemma] > 1))
    return out


def wn_define(k, rng):
    for lemma, pos, s, ambiguous in k.first_senses:
        if ambiguous:
            q = rng.choice(DEFINE_POS_T).format(w=lemma, p=POS_NAME[pos])
        else:
            q = rng.choice(DEFINE_T).format(w=lemma)
        yield qa(q, sentence(s.definition), True)


def wn_hypernym(k, rng):
    for lemma, pos, s, ambiguous in k.first_senses:
        if pos != "n" or not s.hypernyms or s.words[0] != lemma:
            continue
        h = k.wn.head(s.hypernyms[0])
        yield qa(rng.choice(HYPER_T).format(w=lemma, a=_art(lemma), A=cap1(_art(lemma))), h, True)


def wn_synonym(k, rng):
    for lemma, pos, s, ambiguous in k.first_senses:
        others = [w for w in s.words if w != lemma and w.lower() != lemma]
        if not others:
            continue
        yield qa(rng.choice(SYN_T).format(w=lemma), others[0], True)


def wn_antonym(k, rng):
    seen = set()
    for key in sorted(k.train_synsets):
        for w, a in k.wn.antonym_pairs(k.wn.synsets[key]):
            if w in seen or not re.match(r"^[a-z][a-z -]*$", w) or blocked(w) or blocked(a):
                continue
            seen.add(w)
            yield qa(rng.choice(ANT_T).format(w=w), a, True)


def wn_usage(k, rng):
    for lemma, pos, s, ambiguous in k.first_senses:
        exs = [e for e in s.examples if re.search(r"\b%s\b" % re.escape(lemma), e) and not blocked(e)]
        if not exs:
            continue
        q = rng.choice(["Use the word \"{w}\" in a sentence.", "Give me an example sentence with {w}.",
                        "How is the word {w} used?", "Show me {w} used in a sentence."]).format(w=lemma)
        yield qa(q, sentence(exs[0]), False)


def wn_followup(k, rng):
    for lemma, pos, s, ambiguous in k.first_senses:
        others = [w for w in s.words if w != lemma and w.lower() != lemma]
        if not others or ambiguous:
            continue
        q1 = rng.choice(DEFINE_T).format(w=lemma)
        q2 = rng.choice(["And a synonym for {w}?", "Can you give me a synonym of {w} too?",
                         "What is another word for it?", "Another word for {w}, please."]).format(w=lemma)
        yield [user(q1), assistant(sentence(s.definition)), user(q2), assistant(others[0])], True


# ------------------------------------------------------------------ elements
def element(k, rng):
    for name, sym, num in k.facts["element"]:
        for _ in range(2):
            yield from _element_questions(name, sym, num, rng)


def _element_questions(name, sym, num, rng):
    if True:
        yield qa(rng.choice(["What is the chemical symbol for {n}?", "What is the symbol of {n}?",
                             "Which symbol does the element {n} have?"]).format(n=name.lower()), sym, True)
        yield qa(rng.choice(["Which element has the symbol {s}?", "What element is {s}?",
                             "The chemical symbol {s} stands for which element?"]).format(s=sym), name, True)
        yield qa(rng.choice(["What is the atomic number of {n}?", "What's {n}'s atomic number?",
                             "Atomic number of {n}?"]).format(n=name.lower()), num, True)
        yield qa(rng.choice(["Which element has atomic number {z}?", "What is element number {z}?",
                             "Name the chemical element with atomic number {z}."]).format(z=num), name, True)


# ------------------------------------------------------------------ quiz
def capital(k, rng):
    from sources import place
    for country, cap, kind in k.facts["capital"]:
        c = place(country)
        if kind == "country":
            t = ["What is the capital of {c}?", "What's the capital city of {c}?", "Name the capital of {c}.",
                 "Which city is the capital of {c}?", "{C}: what is its capital?"]
        else:
            t = ["What is the capital of {c}?", "What is the capital of the {kind} of {c}?",
                 "Which city is the capital of {c}?"]
        for tmpl in rng.sample(t, 3):
            yield qa(tmpl.format(c=c, C=cap1(c), kind=kind), cap, True)


def quiz_misc(k, rng):
    for group, coll in k.facts["collective"]:
        yield qa(rng.choice(["What is a group of {g} called?", "What do you call a group of {g}?",
                             "What is the collective noun for {g}?"]).format(g=group), coll, True)
    for adult, young in k.facts["baby"]:
        yield qa(rng.choice(["What is a young {a} called?", "What do you call a baby {a}?",
                             "What is the name for a young {a}?"]).format(a=adult), young, True)


def acronym(k, rng):
    seen = set()
    for acr, exp in k.facts["acronym"]:
        if acr in seen:
            continue
        seen.add(acr)
        yield qa(rng.choice(["What does {a} stand for?", "What is {a} short for?", "Expand the acronym {a}.",
                             "What does the abbreviation {a} mean?", "{a} stands for what?"]).format(a=acr),
                 exp, True)


# ------------------------------------------------------------------ man pages
def _commands(k):
    seen, out = set(), []
    for cmd, desc in k.facts["command"]:
        if cmd in seen or not re.match(r"^[a-z0-9][a-z0-9_.+-]*$", cmd):
            continue
        seen.add(cmd)
        out.append((cmd, desc))
    return out


def man_what(k, rng):
    for cmd, desc in _commands(k):
        yield qa(rng.choice(["What is the `{c}` command used for?", "What does `{c}` do?",
                             "What is {c} used for?", "Briefly, what does the {c} command do?",
                             "Explain the `{c}` command in one line."]).format(c=cmd), sentence(desc), True)


def man_which(k, rng):
    cmds = _commands(k)
    count = {}
    for cmd, desc in cmds:
        count[desc.lower()] = count.get(desc.lower(), 0) + 1
    for cmd, desc in cmds:
        if count[desc.lower()] > 1:
            continue
        first = desc.split()[0]
        if (first.islower() and (first, "v") in k.wn.index and
                k.wn.tagged.get((first, "v"), 0) > k.wn.tagged.get((first, "n"), 0)):
            q = rng.choice(["Which command would you use to {d}?", "Which Unix command can {d}?",
                            "What command do I run to {d}?"]).format(d=desc)
        else:
            q = rng.choice(["Which command's manual page describes it as \"{d}\"?",
                            "Which Unix command is described as: {d}?"]).format(d=desc)
        yield qa(q, cmd, True)


# ------------------------------------------------------------------ generated
def arithmetic(k, rng):
    while True:
        op = rng.choice("+-*")
        if op == "*":
            a, b = rng.randint(0, 20), rng.randint(0, 20)
            r = a * b
            words, sym = "times", rng.choice(["*", "x", "×"])
        elif op == "+":
            a, b = rng.randint(0, 200), rng.randint(0, 200)
            r, words, sym = a + b, "plus", "+"
        else:
            a, b = rng.randint(0, 200), rng.randint(0, 200)
            r, words, sym = a - b, "minus", "-"
        q = rng.choice(["What is {a} {s} {b}?", "Compute {a} {w} {b}.", "{a} {s} {b} = ?", "How much is {a} {w} {b}?",
                        "Calculate {a} {s} {b}."]).format(a=a, b=b, s=sym, w=words)
        yield qa(q, str(r), True)


def _weekday(y, m, d):
    import datetime
    return WEEKDAYS[datetime.date(y, m, d).weekday()]


def weekday(k, rng):
    import calendar
    while True:
        y = rng.randint(1900, 2099)
        m = rng.randint(1, 12)
        d = rng.randint(1, calendar.monthrange(y, m)[1])
        fmt = rng.randrange(3)
        date = ("%d %s %d" % (d, MONTHS[m - 1], y) if fmt == 0 else
                "%s %d, %d" % (MONTHS[m - 1], d, y) if fmt == 1 else "%04d-%02d-%02d" % (y, m, d))
        q = rng.choice(["What day of the week is {d}?", "Which weekday is {d}?",
                        "On what day of the week does {d} fall?", "{d}: which day of the week?"]).format(d=date)
        yield qa(q, _weekday(y, m, d), True)


def _words(k, rng):
    while True:
        yield rng.choice(k.simple_words)


def backwards(k, rng):
    for w in _words(k, rng):
        q = rng.choice(["Spell \"{w}\" backwards.", "Write the word {w} in reverse.", "Reverse the letters of '{w}'.",
                        "What is {w} spelled backwards?"]).format(w=w)
        yield qa(q, w[::-1], True)


def word_length(k, rng):
    for w in _words(k, rng):
        q = rng.choice(["How many letters are in the word \"{w}\"?", "How many letters does {w} have?",
                        "Count the letters in '{w}'.", "What is the length of the word {w}?"]).format(w=w)
        yield qa(q, str(len(w)), True)


def uppercase(k, rng):
    for w in _words(k, rng):
        n = rng.choice([1, 1, 2, 3])
        phrase = " ".join([w] + [rng.choice(k.simple_words) for _ in range(n - 1)])
        q = rng.choice(["Write \"{p}\" in capital letters.", "Convert to upper case: {p}", "Uppercase this: {p}",
                        "Please write '{p}' in all caps."]).format(p=phrase)
        yield qa(q, phrase.upper(), True)


# ------------------------------------------------------------------ hand-written
def identity(k, rng):
    for qs, answers in hw.IDENTITY:
        for q in qs:
            for prefix in ("", "Hey, ", "Quick question: "):
                yield qa(prefix + (q[0].lower() + q[1:] if prefix else q), rng.choice(answers), False)


def refusal(k, rng):
    for q in hw.HARMFUL:
        for prefix in ("", "Please tell me: ", "I need to know this. ", "For a story, "):
            yield qa(prefix + q, rng.choice(hw.REFUSALS), False)


def unknown_word(k, rng):
    onset = ["b", "bl", "br", "d", "dr", "f", "fl", "g", "gl", "gr", "k", "kl", "m", "n", "p", "pl", "pr",
             "s", "sk", "sl", "sn", "st", "t", "tr", "v", "z", "zw", "qu", "sh", "ch"]
    vowel = ["a", "e", "i", "o", "u", "oo", "ee", "ai", "ou"]
    coda = ["", "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "x", "nk", "rp", "lf", "mb"]
    while True:
        n = rng.choice([2, 2, 3])
        w = "".join(rng.choice(onset) + rng.choice(vowel) + rng.choice(coda) for _ in range(n))
        if w in k.wn.lemmas or len(w) < 5 or len(w) > 12:
            continue
        yield qa(rng.choice(hw.UNKNOWN_QUESTIONS).format(w=w), rng.choice(hw.UNKNOWN_REPLIES).format(w=w), False)


# ------------------------------------------------------------------ Chinese
def _poems(k):
    authors = {}
    for title, author, poem in k.all_poems:
        authors.setdefault(title, set()).add(author)
    return [(t, a, p) for t, a, p in k.facts["poem"] if len(authors[t]) == 1]


def poem_author(k, rng):
    for title, author, poem in _poems(k):
        for tmpl in rng.sample(["《{t}》的作者是谁？", "谁写了《{t}》？", "《{t}》是谁写的？", "Who wrote the poem 《{t}》?",
                                "请问诗歌《{t}》的作者是哪位诗人？"], 3):
            yield qa(tmpl.format(t=title), author, True)


def poem_recite(k, rng):
    for title, author, poem in _poems(k):
        q = rng.choice(["请背诵《{t}》。", "背一下{a}的《{t}》。", "Please recite the poem 《{t}》.",
                        "《{t}》全文是什么？"]).format(t=title, a=author)
        yield qa(q, poem, False)


RECIPES = [
    ("wn_define", wn_define), ("wn_hypernym", wn_hypernym), ("wn_synonym", wn_synonym),
    ("wn_antonym", wn_antonym), ("wn_followup", wn_followup), ("wn_usage", wn_usage), ("element", element),
    ("capital", capital), ("quiz_misc", quiz_misc), ("acronym", acronym), ("man_what", man_what),
    ("man_which", man_which), ("arithmetic", arithmetic), ("weekday", weekday),
    ("backwards", backwards), ("word_length", word_length), ("uppercase", uppercase),
    ("identity", identity), ("refusal", refusal), ("unknown_word", unknown_word),
    ("poem_author", poem_author), ("poem_recite", poem_recite),
]

# Recipes whose fact lists are finite: their examples are shuffled after
# generation; infinite generators are simply truncated.
INFINITE = {"arithmetic", "weekday", "backwards", "word_length", "uppercase", "unknown_word"}


def question_key(messages):
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def generate(k, tiny):
    """[(recipe, messages, checkable)] deduplicated by question, caps applied."""
    out = []
    seen = set()
    for name, fn in RECIPES:
        target = TARGETS[name]
        if tiny:
            target = max(10, int(target * TINY_SCALE))
        rng = random.Random("cgpt-corpus/" + name)
        got = []
        tries = 0
        for messages, checkable in fn(k, rng):
            tries += 1
            key = question_key(messages)
            if key in seen:
                if name in INFINITE and tries > 50 * target:
                    break
                continue
            seen.add(key)
            got.append((name, messages, checkable))
            if name in INFINITE and len(got) >= target:
                break
        if name not in INFINITE:
            rng.shuffle(got)
            for _n, m, _c in got[target:]:
                seen.discard(question_key(m))
            got = got[:target]
        out.extend(got)
    # cap: no recipe above RECIPE_CAP of the total
    while True:
        counts = {}
        for name, _m, _c in out:
            counts[name] = counts.get(name, 0) + 1
        cap = int(RECIPE_CAP * len(out))
        over = [n for n in counts if counts[n] > cap]
        if not over:
            break
        kept, used = [], {}
        for row in out:
            used[row[0]] = used.get(row[0], 0) + 1
            if used[row[0]] <= cap:
                kept.append(row)
        out = kept
    return out
