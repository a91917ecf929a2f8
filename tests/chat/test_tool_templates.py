#!/usr/bin/python3
"""Tool calling through the published templates of tool-calling models:
jinja2 (set up as transformers does) against cgpt (tools/chatrender), byte
for byte, errors as errors.

Every template below gets tools (three functions: nested JSON Schema with
enums, arrays, nested objects, numbers, defaults; descriptions with quotes,
backslashes and non-ASCII text), a user turn, assistant turns that call one
tool and two tools at once, tool results with tool_call_id and name, the
final answer, with and without a system message, with
add_generation_prompt true and false, and without tools.

Tool-call arguments are rendered both ways a template may meet them:
- "string": a JSON text, as the OpenAI API sends `function.arguments`;
- "object": the same JSON parsed into an object, which is what llama.cpp
  passes to templates that need objects (Qwen, Hermes, Llama 3.x, gpt-oss
  print `arguments | tojson`; a string there comes out JSON-quoted twice)
  and what cgpt passes with CHAT_ARGS_OBJECT or CHAT_ARGS_AUTO (chat.h).
Templates that concatenate the arguments to a string (Functionary,
DeepSeek-R1) raise in jinja2 with objects: cgpt must raise too.

Run with /usr/bin/python3 (python3-jinja2); CGPT_BUILD=DIR picks the build
(default build/). The last line is "N passed, N failed"; the exit status is
non-zero on any mismatch.
"""
import copy
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_chat_templates as tct  # noqa: E402  (the reference environment)

ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("CGPT_BUILD") or os.path.join(ROOT, "build")
CHATRENDER = os.path.join(BUILD, "tools", "chatrender")

# ---- tools ----

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the \"current\" weather in a city — Zürich, 東京, São Paulo",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Zürich\" or 'Köln'"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                         "description": "Temperature unit", "default": "celsius"},
                "days": {"type": "integer", "description": "Forecast days", "minimum": 1,
                         "maximum": 7},
            },
            "required": ["city"],
        },
    }},
    {"type": "function", "function": {
        "name": "book_trip",
        "description": "Book a trip (back\\slash, tab\there, emoji 🚀)",
        "parameters": {
            "type": "object",
            "properties": {
                "legs": {"type": "array", "description": "Flight legs",
                         "items": {"type": "object",
                                   "properties": {
                                       "from": {"type": "string", "description": "IATA code"},
                                       "to": {"type": "string", "description": "IATA code"},
                                       "date": {"type": "string", "format": "date",
                                                "description": "Departure date"}},
                                   "required": ["from", "to"]}},
                "party": {"type": "object", "description": "Who travels",
                          "properties": {
                              "adults": {"type": "integer", "description": "Adults"},
                              "names": {"type": "array", "items": {"type": "string"},
                                        "description": "Full names"}},
                          "required": ["adults"]},
                "cabin": {"type": "string", "enum": ["economy", "premium", "business"],
                          "description": "Cabin class"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]},
                         "description": "Tags"},
                "budget": {"type": ["number", "null"], "description": "Budget in €"},
            },
            "required": ["legs", "party"],
        },
    }},
    {"type": "function", "function": {
        "name": "ping",
        "description": "Check that the service answers",
        "parameters": {"type": "object", "properties": {}},
    }},
]

# ---- conversations ----

SYS = {"role": "system", "content": "You are a travel assistant. Answer briefly."}
USER = {"role": "user", "content": "Weather in Zürich, and book me ZRH→NRT on 2024-08-01?"}
ARGS1 = {"city": "Zürich", "unit": "celsius"}
ARGS2 = {"legs": [{"from": "ZRH", "to": "NRT", "date": "2024-08-01"}],
         "party": {"adults": 2, "names": ["Ann \"A\" Lee", "Bo Ü"]}, "cabin": "economy",
         "budget": None}
CALL1 = {"id": "call00001", "type": "function",
         "function": {"name": "get_weather", "arguments": ARGS1}}
CALL2 = {"id": "call00002", "type": "function",
         "function": {"name": "book_trip", "arguments": ARGS2}}
RESULT1 = {"role": "tool", "tool_call_id": "call00001", "name": "get_weather",
           "content": "{\"temperature\": 21.5, \"sky\": \"clear\", \"note\": \"Föhn\"}"}
RESULT2 = {"role": "tool", "tool_call_id": "call00002", "name": "book_trip",
           "content": "{\"booking\": \"XK42\", \"ok\": true}"}
ANSWER = {"role": "assistant", "content": "It is 21.5 °C and clear; booked (XK42)."}


def calls(*cs, content=None):
    return {"role": "assistant", "content": content, "tool_calls": list(cs)}


CONVS = {
    "user": [USER],
    "call": [USER, calls(CALL1)],
    "call+result": [USER, calls(CALL1), RESULT1],
    "call+result+answer": [USER, calls(CALL1), RESULT1, ANSWER],
    "call(content '')+result+answer": [USER, calls(CALL1, content=""), RESULT1, ANSWER],
    "parallel+results": [USER, calls(CALL1, CALL2), RESULT1, RESULT2],
    "parallel+results+answer": [USER, calls(CALL1, CALL2), RESULT1, RESULT2, ANSWER],
    "two rounds": [USER, calls(CALL1), RESULT1, calls(CALL2), RESULT2, ANSWER,
                   {"role": "user", "content": "Thanks!"}],
}


def with_string_args(msgs):
    """The OpenAI wire form: function.arguments as a JSON text."""
    out = copy.deepcopy(msgs)
    for m in out:
        for c in m.get("tool_calls") or []:
            c["function"]["arguments"] = json.dumps(c["function"]["arguments"],
                                                    ensure_ascii=False)
    return out


# name: (file, bos, eos, how tools are given: "var" = the tools variable,
# "system" = a JSON string in the system message's "tools" key (Phi-4-mini))
TEMPLATES = {
    "llama31": ("llama31.jinja", "<|begin_of_text|>", "<|eot_id|>", "var"),
    "llama32": ("llama32.jinja", "<|begin_of_text|>", "<|eot_id|>", "var"),
    "qwen25": ("qwen25.jinja", "", "<|im_end|>", "var"),
    "qwen3": ("qwen3.jinja", "", "<|im_end|>", "var"),
    "mistral-v3": ("mistral-v3.jinja", "<s>", "</s>", "var"),
    "mistral-nemo": ("mistral-nemo.jinja", "<s>", "</s>", "var"),
    "hermes2pro": ("hermes2pro-tool_use.jinja", "<|begin_of_text|>", "<|im_end|>", "var"),
    "functionary-v3.2": ("functionary-v3.2.jinja", "<|begin_of_text|>", "<|eot_id|>", "var"),
    "gpt-oss": ("gpt-oss.jinja", "<|startoftext|>", "<|return|>", "var"),
    "deepseek-r1-distill": ("deepseek-r1-distill.jinja", "<｜begin▁of▁sentence｜>",
                            "<｜end▁of▁sentence｜>", "var"),
    "phi4-mini": ("phi4-mini.jinja", "<|endoftext|>", "<|endoftext|>", "system"),
}


# Tools without array parameters: the Hermes 2 Pro template recurses without
# end on an array parameter (`json_spec|items` in json_to_python_type), in
# jinja2 as in cgpt, so it renders only with these.
FLAT_TOOLS = [TOOLS[0], TOOLS[2]]
FLAT_CONVS = ("user", "call+result+answer", "parallel+results+answer")


def cases_for(how):
    """(case name, messages, extra) for one template."""
    out = []
    for cname, conv in CONVS.items():
        has_calls = any(m.get("tool_calls") for m in conv)
        for tools_name, tools in (("", TOOLS), (", flat tools", FLAT_TOOLS)):
            if tools_name and cname not in FLAT_CONVS:
                continue
            # OpenAI sends content null beside tool_calls; some templates
            # need a string there (Qwen3, gpt-oss, Phi-4-mini raise on null).
            for content in ((None, "") if has_calls else ("-",)):
                for args in (("string", "object") if has_calls else ("-",)):
                    msgs = with_string_args(conv) if args == "string" else copy.deepcopy(conv)
                    if content == "":
                        for m in msgs:
                            if m.get("tool_calls"):
                                m["content"] = ""
                    for sys_ in (False, True):
                        extra = {"date_string": "26 Jul 2024"}
                        m = list(msgs)
                        if how == "system":
                            if not sys_:
                                continue
                            m = [dict(SYS, tools=json.dumps([t["function"] for t in tools],
                                                            ensure_ascii=False))] + m
                        else:
                            extra["tools"] = tools
                            if sys_:
                                m = [SYS] + m
                        name = "%s%s, args %s, content %s%s" % (
                            cname, tools_name, args, "null" if content is None else repr(content),
                            ", system" if sys_ else "")
                        out.append((name, m, extra))
    # no tools at all: the templates' plain path
    out.append(("no tools", [SYS, USER, ANSWER], {"date_string": "26 Jul 2024"}))
    out.append(("tools=[]", [USER], {"date_string": "26 Jul 2024", "tools": []}))
    return out


def render_ref(tmpl, messages, agp, bos, eos, extra):
    """tct.render_ref with the template compiled once."""
    try:
        vars_ = dict(extra)
        vars_.update(messages=tct.normalize(messages), add_generation_prompt=agp,
                     bos_token=bos, eos_token=eos)
        return tmpl.render(**vars_), None
    except tct.jinja2.exceptions.TemplateError as e:
        return None, str(e)
    except Exception as e:  # TypeError, RecursionError ... inside the template
        return None, "%s: %s" % (type(e).__name__, e)


def main():
    passed = failed = 0
    if not os.access(CHATRENDER, os.X_OK):
        print("test_tool_templates: %s not built (make tools, or CGPT_BUILD=DIR)" % CHATRENDER)
        print("0 passed, 1 failed")
        return 1
    only = set(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="cgpt-tools-") as tmpdir:
        for tname, (fname, bos, eos, how) in TEMPLATES.items():
            if only and tname not in only:
                continue
            path = os.path.join(tct.TDIR, fname)
            with open(path, encoding="utf-8", newline="") as f:
                src = f.read()
            tmpl = tct.ENV.from_string(src)
            n_case = n_bad = n_err = 0
            report = []
            for cname, msgs, extra in cases_for(how):
                for agp in (True, False):
                    n_case += 1
                    case = "%s, add_generation_prompt=%s" % (cname, str(agp).lower())
                    want, werr = render_ref(tmpl, msgs, agp, bos, eos, extra)
                    got, gerr = tct.render_ours(CHATRENDER, tmpdir, ["--template", path], msgs,
                                                agp, bos, eos, extra)
                    bad = None
                    if werr is not None:
                        n_err += 1
                        if gerr is None:
                            bad = "jinja2 raises %r, cgpt rendered %d bytes" % (werr, len(got))
                        elif not werr.startswith(("TypeError", "UndefinedError", "RecursionError")) and \
                                werr not in gerr:
                            bad = "error text differs\n    jinja2: %r\n    cgpt:   %r" % (werr,
                                                                                       gerr)
                    elif gerr is not None:
                        bad = "cgpt failed: %s" % gerr
                    elif want.encode("utf-8") != got:
                        bad = "output differs\n" + tct.show_diff(want.encode("utf-8"), got)
                    if bad:
                        failed += 1
                        n_bad += 1
                        report.append("  MISMATCH %s: %s" % (case, bad))
                    else:
                        passed += 1
            print("%-22s %3d renders (%2d raise in jinja2), %d mismatches" % (tname, n_case, n_err,
                                                                             n_bad))
            for line in report:
                print(line)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
