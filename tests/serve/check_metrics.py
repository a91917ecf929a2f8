#!/usr/bin/python3
"""check_metrics.py - validate cgpt's /metrics text independently of the C code.

Usage: check_metrics.py METRICS.txt [EXPECT.json]

Two oracles:
  1. A hand-written line checker for the Prometheus text exposition format
     0.0.4: every line is a HELP, TYPE or sample line of the grammar; each
     family's HELP and TYPE come before its samples, once; a family's samples
     are contiguous; histograms have ascending le buckets that are
     cumulative, end in +Inf, and +Inf equals _count; _sum is present.
  2. The official Python client's parser (python3-prometheus-client,
     prometheus_client.parser.text_string_to_metric_families) must read the
     text, and every cgpt family must come out with the expected type.

EXPECT.json (optional): a list of [sample_name, {labels}, value] that must
appear exactly, compared on the parsed (unescaped) label values.
Exits 1 with one line per problem; prints a summary line.
"""
import json
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

# The families cgpt exposes and their types (from the brief).
FAMILIES = {
    "cgpt_http_requests_total": "counter",
    "cgpt_requests_refused_total": "counter",
    "cgpt_requests_running": "gauge",
    "cgpt_requests_queued": "gauge",
    "cgpt_prompt_tokens_total": "counter",
    "cgpt_cached_prompt_tokens_total": "counter",
    "cgpt_generated_tokens_total": "counter",
    "cgpt_generation_tokens_per_second": "gauge",
    "cgpt_kv_blocks_used": "gauge",
    "cgpt_kv_blocks_free": "gauge",
    "cgpt_kv_blocks_cached": "gauge",
    "cgpt_kv_resident_bytes": "gauge",
    "cgpt_prefix_cache_hits_total": "counter",
    "cgpt_requests_cancelled_total": "counter",
    "cgpt_embedding_requests_total": "counter",
    "cgpt_embedding_tokens_total": "counter",
    "cgpt_connections_open": "gauge",
    "cgpt_time_to_first_token_seconds": "histogram",
    "cgpt_inter_token_latency_seconds": "histogram",
    "cgpt_moderation_total": "counter",
    "cgpt_models_loaded": "gauge",
    "cgpt_models_loading": "gauge",
    "cgpt_model_loaded": "gauge",
    "cgpt_model_last_load_seconds": "gauge",
    "cgpt_model_loads_total": "counter",
    "cgpt_model_load_failures_total": "counter",
    "cgpt_model_load_seconds_total": "counter",
    "cgpt_model_unloads_total": "counter",
    "cgpt_model_memory_bytes": "gauge",
}
LABELS = {  # label names each family's samples carry (besides le)
    "cgpt_http_requests_total": {"route", "code"},
    "cgpt_requests_refused_total": {"reason"},
    "cgpt_moderation_total": {"direction", "category", "action"},
    "cgpt_connections_open": set(),
    "cgpt_time_to_first_token_seconds": set(),
    "cgpt_inter_token_latency_seconds": set(),
    "cgpt_models_loaded": set(),
    "cgpt_models_loading": set(),
    "cgpt_model_loads_total": set(),
    "cgpt_model_load_failures_total": set(),
    "cgpt_model_load_seconds_total": set(),
    "cgpt_model_unloads_total": {"reason"},
    "cgpt_model_memory_bytes": set(),
}

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL = LABEL_NAME + r"=" + LABEL_VALUE
FLOAT = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN)"
SAMPLE_RE = re.compile(
    r"^(" + NAME + r")(?:\{(?:(" + LABEL + r"(?:," + LABEL + r")*),?)?\})? (" + FLOAT
    + r")(?: -?[0-9]+)?$"
)
HELP_RE = re.compile(r"^# HELP (" + NAME + r") ((?:[^\\\n]|\\[\\n])*)$")
TYPE_RE = re.compile(r"^# TYPE (" + NAME + r") (counter|gauge|histogram|summary|untyped)$")
LABEL_ITER = re.compile(r"(" + LABEL_NAME + r")=(" + LABEL_VALUE + r")")


def unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v[1:-1])


def fval(s):
    return {"+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf, "NaN": math.nan}.get(s) or float(s)


def family_of(sample, types):
    """The TYPE'd family a sample name belongs to (histogram suffixes)."""
    if sample in types:
        return sample
    for suf in ("_bucket", "_sum", "_count"):
        if sample.endswith(suf) and types.get(sample[: -len(suf)]) == "histogram":
            return sample[: -len(suf)]
    return None


def check_grammar(text, problems):
    """Oracle 1. Returns {family: [(sample_name, labels dict, value)]}."""
    if not text.endswith("\n"):
        problems.append("text does not end with a newline")
    helps, types, samples = {}, {}, {}
    done = set()  # families whose samples are finished
    current = None
    for no, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            m = HELP_RE.match(line) or TYPE_RE.match(line)
            if not m:
                problems.append(f"line {no}: malformed comment: {line!r}")
                continue
            name = m.group(1)
            seen = helps if line.startswith("# HELP") else types
            if name in seen:
                problems.append(f"line {no}: second {line[:6]} for {name}")
            if name in samples:
                problems.append(f"line {no}: {line[:6]} for {name} after its samples")
            seen[name] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            problems.append(f"line {no}: not a sample line: {line!r}")
            continue
        fam = family_of(m.group(1), types)
        if fam is None:
            problems.append(f"line {no}: sample {m.group(1)} has no TYPE before it")
            continue
        if fam not in helps:
            problems.append(f"line {no}: sample {m.group(1)} has no HELP before it")
        if fam != current:
            if fam in done:
                problems.append(f"line {no}: samples of {fam} are not contiguous")
            if current:
                done.add(current)
            current = fam
        labels = {}
        for lm in LABEL_ITER.finditer(m.group(2) or ""):
            if lm.group(1) in labels:
                problems.append(f"line {no}: label {lm.group(1)} twice")
            labels[lm.group(1)] = unescape(lm.group(2))
        samples.setdefault(fam, []).append((m.group(1), labels, fval(m.group(3))))
    for name, typ in FAMILIES.items():
        if types.get(name) != typ:
            problems.append(f"family {name}: TYPE {types.get(name)!r}, want {typ!r}")
        if name not in helps:
            problems.append(f"family {name}: no HELP")
    for name in types:
        if name not in FAMILIES:
            problems.append(f"unexpected family {name}")
    return types, samples


def check_values(types, samples, problems):
    for fam, rows in samples.items():
        typ = types[fam]
        want_labels = LABELS.get(fam, {"model"})
        for name, labels, v in rows:
            if set(k for k in labels if k != "le") != want_labels:
                problems.append(f"{name}{labels}: labels {sorted(labels)}, want {sorted(want_labels)}")
            if typ == "counter" and name.endswith("_seconds_total"):
                if not v >= 0:  # a sum of seconds: any value >= 0
                    problems.append(f"{name}{labels}: counter value {v} is not >= 0")
            elif typ == "counter" and not (v >= 0 and v == int(v)):
                problems.append(f"{name}{labels}: counter value {v} is not a whole number >= 0")
            if typ == "gauge" and math.isnan(v):
                problems.append(f"{name}{labels}: NaN")
        if typ == "counter" and not fam.endswith("_total"):
            problems.append(f"{fam}: counter name does not end in _total")
        if typ == "histogram":
            check_histogram(fam, rows, problems)


def check_histogram(fam, rows, problems):
    groups = {}
    for name, labels, v in rows:
        key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            if "le" not in labels:
                problems.append(f"{name}: bucket without le")
                continue
            g["buckets"].append((fval(labels["le"]), v))
        elif name == fam + "_sum":
            g["sum"] = v
        elif name == fam + "_count":
            g["count"] = v
        else:
            problems.append(f"{fam}: unexpected sample {name}")
    for key, g in groups.items():
        b = g["buckets"]
        where = f"{fam}{dict(key)}"
        if not b or b[-1][0] != math.inf:
            problems.append(f"{where}: last bucket is not le=\"+Inf\"")
            continue
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if not le1 > le0:
                problems.append(f"{where}: le {le1} after {le0} (not ascending)")
            if c1 < c0:
                problems.append(f"{where}: bucket le={le1} count {c1} < {c0} (not cumulative)")
        if g["count"] is None or g["sum"] is None:
            problems.append(f"{where}: _count or _sum missing")
        elif b[-1][1] != g["count"]:
            problems.append(f"{where}: +Inf bucket {b[-1][1]} != _count {g['count']}")
        if g["count"] == 0 and g["sum"] not in (0, None):
            problems.append(f"{where}: empty histogram with _sum {g['sum']}")


def check_with_client(text, problems):
    """Oracle 2: the official client parser."""
    try:
        fams = list(text_string_to_metric_families(text))
    except Exception as e:  # noqa: BLE001 - any parse failure is a finding
        problems.append(f"prometheus_client cannot parse the text: {e}")
        return []
    got = {}
    for f in fams:
        full = f.name + "_total" if f.type == "counter" else f.name
        got[full] = f.type
    for name, typ in FAMILIES.items():
        if got.get(name) != typ:
            problems.append(f"prometheus_client reads {name} as {got.get(name)!r}, want {typ!r}")
    return [s for f in fams for s in f.samples]


def check_expect(expect, parsed, problems):
    for name, labels, value in expect:
        hits = [s for s in parsed if s.name == name and s.labels == labels]
        if len(hits) != 1:
            problems.append(f"expected sample {name}{labels} found {len(hits)} times")
        elif not math.isclose(hits[0].value, value, rel_tol=1e-12, abs_tol=1e-12):
            problems.append(f"{name}{labels} = {hits[0].value}, want {value}")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    problems = []
    types, samples = check_grammar(text, problems)
    check_values(types, samples, problems)
    parsed = check_with_client(text, problems)
    n_expect = 0
    if len(sys.argv) == 3:
        with open(sys.argv[2], encoding="utf-8") as f:
            expect = json.load(f)
        n_expect = len(expect)
        check_expect(expect, parsed, problems)
    for p in problems:
        print("check_metrics:", p)
    n_samples = sum(len(r) for r in samples.values())
    print(f"check_metrics: {len(types)} families, {n_samples} samples, {n_expect} expectations, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
