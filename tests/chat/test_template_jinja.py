#!/usr/bin/python3
"""test_template_jinja.py - our template engine against real Jinja2.

Renders every template below with every variable set, once with Jinja2
configured as transformers configures it (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, transformers' own tojson,
raise_exception, strftime_now) and once with build/tools/render (CGPT_BUILD=DIR: DIR/tools/render), and
requires byte-identical output, or an error from both. Run from the repo
root after `make build/tools/render`. Exits non-zero on any mismatch; the
last line is "N passed, N failed".
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# the build to test: build/ unless CGPT_BUILD names another (make BUILD=...);
# RENDER names the binary itself
RENDER = os.environ.get("RENDER") or os.path.join(os.environ.get("CGPT_BUILD") or "build",
                                                  "tools", "render")


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' tojson: json.dumps without Jinja's HTML escaping
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


class Generation(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} renders its body, as transformers'
    AssistantTracker does (which also records where the body landed)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_render")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[Generation, jinja2.ext.loopcontrols])
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception
ENV.globals["strftime_now"] = strftime_now


def jinja_render(src, variables):
    try:
        return True, ENV.from_string(src).render(**variables)
    except Exception as e:  # any Jinja2 error counts as an error
        return False, "%s: %s" % (type(e).__name__, e)


def our_render(src, variables, tmpdir):
    tpath = os.path.join(tmpdir, "t.jinja")
    vpath = os.path.join(tmpdir, "v.json")
    with open(tpath, "w", encoding="utf-8", newline="") as f:
        f.write(src)
    with open(vpath, "w", encoding="utf-8") as f:
        json.dump(variables, f, ensure_ascii=False)
    p = subprocess.run([RENDER, tpath, vpath], capture_output=True, timeout=30)
    if p.returncode == 0:
        return True, p.stdout.decode("utf-8", "surrogateescape")
    if p.returncode == 1:
        return False, p.stderr.decode("utf-8", "replace").strip()
    return None, "render crashed or misused (rc %d): %s" % (p.returncode, p.stderr.decode("utf-8", "replace"))


# ---- variable sets ----

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}}]

VARSETS = [
    {"messages": [{"role": "user", "content": "Hello!"}],
     "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>"},
    {"messages": [{"role": "system", "content": "You are helpful."},
                  {"role": "user", "content": "What's 2+2?\n  Think <|im_start|> \"carefully\"."},
                  {"role": "assistant", "content": "  4  "},
                  {"role": "user", "content": "Thanks — ünïcødé ✓ 日本"}],
     "add_generation_prompt": False, "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    {"messages": [{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "call_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]},
                  {"role": "tool", "content": "{\"temp\": 21.5}", "tool_call_id": "call_1"},
                  {"role": "assistant", "content": "It is 21.5°C."}],
     "tools": TOOLS, "add_generation_prompt": True, "bos_token": "<s>", "eos_token": "</s>"},
    {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
     "add_generation_prompt": True, "bos_token": "", "eos_token": ""},
    {"messages": [], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "sys"},
                  {"role": "user", "content": [{"type": "text", "text": "part one"},
                                               {"type": "text", "text": "part two"}]}],
     "x": 3, "y": 2.5, "n": None, "flag": False, "s": "  Mixed Case  ", "lst": [3, 1, 2],
     "d": {"b": 1, "a": 2, "C": 3}, "big": 1e16, "small": 1e-05, "neg": -7},
]

# ---- templates ----

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

LLAMA3 = """{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"""

LLAMA2 = """{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"""

MISTRAL = """{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"""

GEMMA = """{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"""

PHI3 = """{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"""

QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

LLAMA31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

SMOLLM = """{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}"""

DEEPSEEK = """{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments']|tojson + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments']|tojson + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"""

CONTENT_PARTS = """{%- for m in messages %}
{%- if m.content is string %}{{ m.role }}: {{ m.content }}
{% else %}{{ m.role }}: {% for p in m.content %}{% if p.type == 'text' %}{{ p.text }}{% endif %}{% if not loop.last %} | {% endif %}{% endfor %}
{% endif %}
{%- endfor %}"""

SNIPPETS = [
    # whitespace control
    "a  {{ 1 }}  b\n  {% if true %}\n  x\n  {% endif %}\n  y\n",
    "a\n    {%- if true -%}\n   x   \n  {%- endif %}   \nz",
    "  {%+ if true %}kept{% endif %}\n{% if true +%}\nno-trim{% endif %}",
    "{# comment #}\n  {# indented comment #}\nline\n{#- strip -#}   after",
    "{% raw %}{{ not evaluated }} {% if %}{% endraw %}\nnext",
    "{{- '  ' -}}  x  {{- ' ' }}\n",
    "line1\r\nline2\r{% if true %}\r\nin\r\n{% endif %}\r\n",
    "trailing newline kept?\n\n",
    "{% for i in range(3) %}\n  {{ i }}\n{% endfor %}\n",
    "{% for i in [1,2] %}   {{ i }}   {% endfor %}",
    # values and formatting
    "{{ 1.0 }} {{ 2.5e-3 }} {{ 1e16 }} {{ 123456789012345.0 }} {{ 0.1 + 0.2 }} {{ -0.0 }} {{ 1/3 }} {{ 10/5 }}",
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
    "{{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1, 2] + [3] }} {{ 'a' ~ 1 ~ none ~ true }} {{ 'x' + 'y' }}",
    "{{ true }} {{ false }} {{ none }} {{ True }} {{ [true, none, 'it\\'s', \"q\\\"\"] }} {{ {'k': [1, (2, 3)], 1: 'one'} }}",
    "{{ (1,) }} {{ () }} {{ ('a', 'b') }} {{ [] }} {{ {} }}",
    "{{ x }}|{{ y }}|{{ n }}|{{ flag }}|{{ s }}|{{ lst }}|{{ d }}|{{ big }}|{{ small }}|{{ neg }}",
    "{{ x + y }} {{ x * y }} {{ x / 2 }} {{ x // 2 }} {{ neg % 3 }} {{ neg // 2 }} {{ -x }} {{ x > y }}",
    "{{ undefined_var }}|{{ undefined_var is defined }}|{{ undefined_var | default('dflt') }}|{{ none | default('d2') }}|{{ '' | default('d3', true) }}",
    "{{ messages[0].nope }}|{{ messages[0]['nope'] is defined }}|{{ d.a }}|{{ d['b'] }}|{{ d.zz | default(5) }}",
    "{{ nope.attr }}",
    "{{ nope[0] }}",
    "{{ nope + 1 }}",
    "{% for x in nope %}never{% else %}empty{% endfor %}|{{ nope | length }}|{{ nope | list }}",
    # truthiness
    "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}",
    "{{ 1 if 0 }}|{{ 'a' if 0 else 'b' }}|{{ 0 or 'x' }}|{{ 1 and 'y' }}|{{ not 0 }}|{{ [] or none }}",
    # comparisons and in
    "{{ 1 == 1.0 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1,2] == [1,2] }} {{ 'ell' in 'hello' }} {{ 2 in [1,2] }} {{ 'a' in {'a':1} }} {{ 'z' not in 'abc' }}",
    "{{ 1 < 'a' }}",
    "{{ 'a' in 1 }}",
    # loops
    "{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }}{{ loop.revindex0 }} {% endfor %}",
    "{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.nextitem.role | default('-') }} {% endfor %}",
    "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% for i in range(6) if i is odd %}{{ i }}{{ loop.length }}{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héllo' %}[{{ c }}]{% endfor %}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}",
    "{% set x = 5 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
    "{% for i in range(2) %}{% for j in range(2) %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }}{% endfor %}",
    "{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}",
    # namespace and set
    "{% set ns = namespace(count=0, names=[]) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.names = ns.names + [m.role] %}{% endfor %}{{ ns.count }} {{ ns.names }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (3, 4) %}{{ t[0] }}",
    "{% set block %}\n  Hello {{ 'W' }}\n{% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}",
    "{% set d2 = {'a': 1} %}{% set d2.a = 2 %}",
    "{% with a = 1, b = 'x' %}{{ a }}{{ b }}{% endwith %}{{ a }}",
    # macros
    "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='C') }}",
    "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner {{ 1 + 1 }}{% endcall %}",
    "{% macro row(x) %}[{{ caller(x * 2) }}]{% endmacro %}{% call(v) row(21) %}v={{ v }}{% endcall %}",
    "{% macro m() %}{{ late }}{% endmacro %}{% set late = 'L' %}{{ m() }}",
    "{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1) }}",
    "{% filter upper %}hello {{ 'there' }}{% endfilter %}",
    # filters
    "{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'Hello' | upper }}|{{ 'Hello' | lower }}|{{ 'hello world-foo(bar' | title }}|{{ 'hELLO wORLD' | capitalize }}",
    "{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'ab' | replace('', '.') }}",
    "{{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}{{ 'abc' | first }}{{ [] | first }}|{{ [1, 2, 3] | join('-') }}|{{ lst | sort | list }}|{{ lst | sort(reverse=true) }}",
    "{{ messages | map(attribute='role') | list }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}",
    "{{ [1, 2, 3, 4] | select('even') | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} {{ ['a', 'B'] | map('upper') | list }} {{ [0, 1, ''] | select | list }}",
    "{{ d | items | list }}|{{ d | dictsort }}|{{ d | dictsort(case_sensitive=true) }}|{{ d | dictsort(by='value', reverse=true) }}",
    "{{ d | length }} {{ 'héllo' | length }} {{ lst | count }} {{ 42 | string }} {{ '12' | int + 1 }} {{ '3.5' | float }} {{ 'x' | int }} {{ '7' | int(base=16) }} {{ 3.9 | int }} {{ 'nan?' | float(1.5) }}",
    "{{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.1 | round(method='ceil') }} {{ 2.9 | round(0, 'floor') }} {{ 7 | round }}",
    "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'x\\n\\ny' | indent('> ', blank=true) }}",
    "{{ '<a href=\"x\">&' | e }} {{ '<b>' | safe }} {{ [1, 2, 2, 1] | unique | list }} {{ [1, 2, 3] | sum }} {{ [4, 1, 9] | min }} {{ [4, 1, 9] | max }} {{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }}",
    "{{ '%s is %d' | format('x', 3) }} {{ '%s-%s' % ('a', 'b') }} {{ '{} and {}'.format(1, 'two') }} {{ '{0}{name}'.format('a', name='b') }}",
    "{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ 'one two  three' | wordcount }}",
    # tojson
    "{{ messages | tojson }}",
    "{{ d | tojson(indent=2) }}|{{ d | tojson(sort_keys=true) }}|{{ [1, [2, {'a': []}], {}] | tojson(indent=4) }}",
    "{{ 'ü \"q\" \\\\ \\n \\t \\u0001 <tag> &' | tojson }} {{ 'ü' | tojson(ensure_ascii=true) }} {{ 1.0 | tojson }} {{ [none, true, 1e16, 1e-7] | tojson }}",
    "{{ d | tojson(separators=(',', ':')) }} {{ d | tojson(indent='\\t') }} {{ {1: 'a', none: 'b', true: 'c'} | tojson }}",
    "{{ nope | tojson }}",
    "{{ tools | tojson(indent=4) if tools is defined else 'no tools' }}",
    # slicing and strings
    "{{ messages[1:] | length }} {{ lst[::-1] }} {{ lst[-1] }} {{ lst[1:2] }} {{ 'hello'[1:3] }} {{ 'héllo'[::-1] }} {{ 'hello'[-3:] }} {{ lst[5] is defined }} {{ 'abc'[::2] }} {{ lst[:-1] }} {{ lst[10:] }}",
    "{{ '  x y  '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ 'AbC'.lower() }}{{ 'abc'.upper() }}|{{ 'hello world'.title() }}",
    "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.count('l') }} {{ 'a-b'.replace('-', '_') }} {{ ', '.join(['x', 'y']) }} {{ 'x'.lstrip() }}{{ '..x..'.rstrip('.') }} {{ 'abc'.capitalize() }} {{ '42'.isdigit() }}",
    "{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'pre_x'.removeprefix('pre_') }} {{ 'x.py'.removesuffix('.py') }}",
    # tests
    "{{ 'a' is string }} {{ 1 is string }} {{ d is mapping }} {{ lst is mapping }} {{ lst is sequence }} {{ 'a' is sequence }} {{ 1 is iterable }} {{ d is iterable }} {{ none is none }} {{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ true is boolean }} {{ 1 is integer }} {{ 1.0 is float }}",
    "{{ 4 is divisibleby 2 }} {{ 3 is even }} {{ 3 is odd }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 1 is eq 1 }} {{ 1 is ne 2 }} {{ 1 is lt 2 }} {{ 2 is ge 2 }} {{ 'a' is in 'abc' }} {{ none is sameas none }} {{ x is not defined }} {{ nope is undefined }}",
    # errors
    "{{ raise_exception('custom failure: ' ~ 42) }}",
    "{% if messages|length > 100 %}{{ raise_exception('too long') }}{% endif %}ok",
    "{% for %}",
    "{% if true %}unclosed",
    "{% endfor %}",
    "{{ 1 + }}",
    "{{ x | no_such_filter }}",
    "{{ x is no_such_test }}",
    "{% include 'x' %}",
    "{{ 1 / 0 }}",
    "{{ 'a' + 1 }}",
    "{{ range(200000) | length }}",
    "{{ [1, 2] | selectattr('x') | length }}",
    "{% break %}",
    "{{ foo( }}",
    "{{ 'unterminated }}",
    "{% set x = [1] %}{{ x.append(2) }}",
    "{{ {'a': 1}.items() | list }} {{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b', 'z') }} {{ {'a': 1}.keys() | list }} {{ {'a': 1}.values() | list }}",
    "{{ strftime_now('%Y') | length }} {{ strftime_now('%d %b %Y') == strftime_now('%d %b %Y') }}",
    "{% generation %}gen {{ 1 }}{% endgeneration %}",
    "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% endif %}{% endfor %}",
    # scoping
    "{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}{% for i in [1] %}{% set x = 3 %}{% endfor %}{{ x }}",
    "{% macro outer() %}{% set v = 'in' %}{{ v }}{% endmacro %}{% set v = 'out' %}{{ outer() }}{{ v }}",
    "{% set ns = namespace(found=false) %}{% for m in messages %}{% if m.role == 'system' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
    "{%- for m in messages -%}\n  {{- m.role -}}\n  {%- if not loop.last %}, {% endif -%}\n{%- endfor %}\n",
    "  {% if true %}\n    x\n  {% endif %}\n\t{% if true %}tab{% endif %}\n {{ 'var' }} {% if true %}y{% endif %}",
    "{{ 'a' }}\n{% if true %}\n{{ 'b' }}\n{% endif %}\n{{ 'c' }}",
    "{% if messages %}{{ messages[0].content if messages[0].content is string else messages[0].content | map(attribute='text') | join('\\n') }}{% endif %}",
    "{{ messages | selectattr('role', 'in', ['user', 'system']) | list | length }} {{ messages | selectattr('tool_calls', 'defined') | list | length }} {{ messages | selectattr('tool_calls') | list | length }}",
    "{% if messages|selectattr('role', 'equalto', 'nobody') %}generator is truthy{% endif %}",
    "{{ {'a': {'b': 1}} }}{{ {'a': {'b': {'c': 2}}}['a']['b'] }}",
    # none and undefined where Jinja2 has quirks: select/map of a falsy value
    # are empty, first/last of undefined are undefined, int/float/indent of
    # undefined raise, range() takes integers only
    "{{ none | selectattr('x') | list }}|{{ none | rejectattr('x') | list }}|{{ none | select | list }}|{{ 0 | reject | list }}|{{ none | map(attribute='x') | list }}|{{ false | map('upper') | list }}|{{ none | map | list }}",
    "{{ n | selectattr('role') | list }}|{{ n | map(attribute='role') | join(',') }}|{{ nope | selectattr('x') | first is defined }}",
    "{{ 5 | selectattr('x') | list }}",
    "[{{ nope | first }}][{{ nope | last }}] {{ nope | first is defined }}",
    "{{ none | int }} {{ none | float }} {{ n | int }}",
    "{{ nope | int }}",
    "{{ nope | float }}",
    "{{ n | indent }}",
    "{{ 5 | indent(2) }}",
    "{{ nope | indent }}",
    "{{ range(n) }}",
    "{{ range(0, none) | list }}",
    "{{ tools | default([]) | length }} {{ tools is defined }} {{ tools is none }} {% for t in tools | default([]) %}{{ t.function.name }}{% endfor %} {{ (tools or []) | length }}",
    "{% for t in n %}x{% endfor %}",
    "{% set ns = namespace(name=none, found=false) %}{% for m in messages %}{% if m.tool_calls is defined and m.tool_calls is not none %}{% set ns.found = true %}{% set ns.name = m.tool_calls[0].function.name %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.name }} {{ ns.name is none }}",
    "{{ messages | selectattr('tool_calls', 'defined') | map(attribute='tool_calls') | list | tojson }} {{ messages | map(attribute='tool_call_id', default='-') | join(',') }}",
    "{{ 0x1F }} {{ 1_000 }} {{ 0o17 }} {{ 0b101 }} {{ 1.5e3 }} {{ 'a' 'b' }} {{ \"\\x41\\u00e9\\U0001F600\" }}",
]

TEMPLATES = [CHATML, LLAMA3, LLAMA2, MISTRAL, GEMMA, PHI3, QWEN25, LLAMA31, SMOLLM, DEEPSEEK,
             CONTENT_PARTS] + SNIPPETS


def main():
    if not os.path.exists(RENDER):
        print("missing %s: run `make build/tools/render` first" % RENDER)
        return 2
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmpdir:
        for ti, src in enumerate(TEMPLATES):
            for vi, variables in enumerate(VARSETS):
                ok_j, out_j = jinja_render(src, variables)
                ok_o, out_o = our_render(src, variables, tmpdir)
                if ok_o is not None and ok_j == ok_o and (not ok_j or out_j == out_o):
                    passed += 1
                    continue
                failed += 1
                print("MISMATCH template %d vars %d" % (ti, vi))
                print("  template: %r" % src[:300])
                print("  jinja2:   %s %r" % ("ok" if ok_j else "error", out_j[:400]))
                print("  ours:     %s %r" % ("ok" if ok_o else "error", out_o[:400]))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
