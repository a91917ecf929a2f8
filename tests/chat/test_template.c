/* test_template.c - the template engine (chat/template.h) on small
 * templates with hand-written expected output: whitespace control,
 * undefined, values and formatting, loops, scoping, namespace, macros,
 * filters, tests, tojson; errors with line/column, limits, pathological
 * nesting; and input marking (mask 1 for template text, 0 for data).
 * tests/chat/test_template_jinja.py checks far more cases against Jinja2. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"

typedef struct {
    Status st;
    char *out;
    uint8_t *mask;
    size_t len;
    Err err;
} R;

static R render_lim(const char *src, const char *vars_json, const TmplLimits *lim) {
    R r = {0};
    json_error_t je;
    json_t *vars = json_loads(vars_json ? vars_json : "{}", 0, &je);
    cr_assert(vars, "bad vars json: %s", je.text);
    Template *t = tmpl_parse(src, strlen(src), &r.err);
    if (!t) {
        r.st = r.err.status;
        cr_assert(r.st != STATUS_OK);
        cr_assert(r.err.msg[0] != '\0');
        json_decref(vars);
        return r;
    }
    r.st = tmpl_render(t, vars, lim, &r.out, &r.mask, &r.len, &r.err);
    if (r.st != STATUS_OK) {
        cr_assert(r.out == NULL && r.mask == NULL);
        cr_assert(r.err.msg[0] != '\0');
    } else {
        cr_assert(strlen(r.out) <= r.len); /* NUL-terminated */
    }
    tmpl_free(t);
    json_decref(vars);
    return r;
}

static R render(const char *src, const char *vars_json) { return render_lim(src, vars_json, NULL); }

static void r_free(R *r) {
    free(r->out);
    free(r->mask);
}

static void expect(const char *src, const char *vars, const char *want) {
    R r = render(src, vars);
    cr_assert_eq(r.st, STATUS_OK, "template %.80s: %s", src, r.err.msg);
    cr_expect(r.len == strlen(want) && memcmp(r.out, want, r.len) == 0,
              "template %.80s\n got: [%s]\nwant: [%s]", src, r.out, want);
    r_free(&r);
}

static void expect_err(const char *src, const char *vars, Status st, const char *needle) {
    R r = render(src, vars);
    cr_expect_eq(r.st, st, "template %.80s: status %d (%s), want %d", src, r.st, r.err.msg, st);
    cr_expect(strstr(r.err.msg, needle) != NULL, "template %.80s: message [%s] lacks [%s]", src,
              r.err.msg, needle);
    r_free(&r);
}

#define MSGS                                                                                       \
    "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":"       \
    "\"hi\"},{\"role\":\"assistant\",\"content\":\" yo \"}],\"add_generation_prompt\":true}"

Test(tmpl_ws, trim_and_lstrip_blocks) {
    expect("a\n  {% if true %}\n  x\n  {% endif %}\nb", NULL, "a\n  x\nb");
    expect("{% for i in [1,2] %}\n{{ i }}\n{% endfor %}\n", NULL, "1\n2\n");
    /* lstrip does not apply to {{ }}, nor after text on the same line */
    expect("  {{ 1 }}\nx {% if true %}y{% endif %}", NULL, "  1\nx y");
    /* a single trailing newline of the source is dropped */
    expect("x\n", NULL, "x");
    expect("x\n\n", NULL, "x\n");
    expect("a\r\nb\rc", NULL, "a\nb\nc");
}

Test(tmpl_ws, minus_and_plus) {
    expect("a   {{- 'b' -}}   c", NULL, "abc");
    expect("a \n {%- if true -%} \n b {%- endif %}", NULL, "ab");
    expect("  {%+ if true %}x{% endif %}", NULL, "  x");
    expect("{% if true +%}\nx{% endif %}", NULL, "\nx");
    expect("{# c #}\n  {# c2 #}\nz", NULL, "z");
    expect("{% raw %}{{ x }}{% endraw %}", NULL, "{{ x }}");
    expect("{{ {'a': {'b': 1}} }}", NULL, "{'a': {'b': 1}}");
}

Test(tmpl_values, python_formatting) {
    expect("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }}",
           NULL, "1.0 0.30000000000000004 1e+16 1000000000000000.0 1e-05 0.0001 -0.0");
    expect("{{ true }} {{ false }} {{ none }} {{ [1, 'a', none] }} {{ ('x',) }}", NULL,
           "True False None [1, 'a', None] ('x',)");
    expect("{{ \"it's\" }} {{ [\"it's\"] }} {{ {'k': 1.5} }}", NULL, "it's [\"it's\"] {'k': 1.5}");
    expect("{{ x }} {{ y }} {{ z }}", "{\"x\": 2.0, \"y\": 3, \"z\": true}", "2.0 3 True");
}

Test(tmpl_values, arithmetic) {
    expect("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 7.5 // 2 }}", NULL,
           "3 -4 2 3.5 1024 3.0");
    expect("{{ 'ab' * 2 }} {{ [1] + [2] }} {{ 'a' ~ 1 ~ none }} {{ 3 * 'x' }}", NULL,
           "abab [1, 2] a1None xxx");
    expect_err("{{ 1 / 0 }}", NULL, STATUS_INVALID, "division by zero");
    expect_err("{{ 9223372036854775807 + 1 }}", NULL, STATUS_LIMIT, "overflow");
}

Test(tmpl_values, undefined) {
    expect("[{{ nope }}]{{ nope is defined }}{{ nope is undefined }}{{ nope | default('d') }}",
           NULL, "[]FalseTrued");
    expect("{{ d.missing }}|{{ d['missing'] is defined }}|{{ l[9] is defined }}",
           "{\"d\": {}, \"l\": [1]}", "|False|False");
    expect("{% for x in nope %}x{% else %}empty{% endfor %}{{ nope | length }}", NULL, "empty0");
    /* attribute of undefined is an error, as in Jinja2 */
    expect_err("{{ nope.attr }}", NULL, STATUS_INVALID, "'nope' is undefined");
}

Test(tmpl_values, truthiness_and_in) {
    expect(
        "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}",
        NULL, "FTFTFTFFF");
    expect("{{ 'el' in 'hello' }} {{ 2 in [1, 2] }} {{ 'a' in {'a': 1} }} {{ 'z' not in 'abc' }}",
           NULL, "True True True True");
    expect("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ [1] == [1] }}", NULL,
           "True False True True");
}

Test(tmpl_loops, loop_variables) {
    expect("{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
           "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
           MSGS, "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;");
    expect("{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>"
           "{{ loop.nextitem.role if loop.nextitem is defined else '-' }} {% endfor %}",
           MSGS, "->user system>assistant user>- ");
    expect("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
           "{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
           NULL, "0134");
    expect("{% for i in range(6) if i is odd %}{{ i }}/{{ loop.length }} {% endfor %}", NULL,
           "1/3 3/3 5/3 ");
    expect("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", "{\"d\":{\"b\":1,\"a\":2}}",
           "b=1;a=2;");
}

Test(tmpl_scope, set_namespace_with) {
    expect("{% set x = 5 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
           NULL, "51525");
    expect("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", NULL, "2");
    expect("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
           "{% endfor %}{{ ns.n }}",
           MSGS, "3");
    expect(
        "{% set b %}\n  hi {{ 1 }}\n{% endset %}[{{ b }}]{% set u | upper %}x{% endset %}{{ u }}",
        NULL, "[  hi 1\n]X");
    expect("{% with a = 1 %}{{ a }}{% endwith %}[{{ a }}]", NULL, "1[]");
    expect_err("{% set d = {} %}{% set d.x = 1 %}", NULL, STATUS_INVALID, "namespace");
}

Test(tmpl_macros, defaults_kwargs_caller) {
    expect("{% macro g(n, greet='Hello') %}{{ greet }}, {{ n }}!{% endmacro %}"
           "{{ g('A') }} {{ g('B', 'Hi') }} {{ g(greet='Yo', n='C') }}",
           NULL, "Hello, A! Hi, B! Yo, C!");
    expect("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}", NULL,
           "<in>");
    expect("{% macro r(x) %}[{{ caller(x * 2) }}]{% endmacro %}{% call(v) r(21) %}{{ v }}{% "
           "endcall %}",
           NULL, "[42]");
    expect("{% filter upper %}abc{{ 'd' }}{% endfilter %}", NULL, "ABCD");
}

Test(tmpl_filters, strings) {
    expect("{{ '  a  ' | trim }}|{{ 'xax' | trim('x') }}|{{ 'aB' | upper }}{{ 'aB' | lower }}|"
           "{{ 'hi there' | title }}|{{ 'hI' | capitalize }}|{{ 'a-b' | replace('-', '+') }}",
           NULL, "a|a|ABab|Hi There|Hi|a+b");
    expect("{{ 'a b'.split() }} {{ ' x '.strip() }} {{ 'ab'.startswith('a') }} {{ 'é'|length }} "
           "{{ 'héllo'[::-1] }} {{ 'hello'[1:3] }}",
           NULL, "['a', 'b'] x True 1 olléh el");
    expect("{{ 'a\nb' | indent(2) }}|{{ '%s=%d' | format('x', 3) }}|{{ '{}{}'.format(1, 'b') }}",
           NULL, "a\n  b|x=3|1b");
}

Test(tmpl_filters, sequences) {
    expect("{{ messages | map(attribute='role') | join(',') }}|"
           "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|"
           "{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | list }}",
           MSGS, "system,user,assistant|1|['system', 'assistant']");
    expect("{{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}{{ [3, 1, 2] | sort | list }}"
           "{{ [1, 2, 2] | unique | list }}{{ [1, 2] | sum }}{{ [1, 2, 3] | reverse | list }}",
           NULL, "32[1, 2, 3][1, 2]3[3, 2, 1]");
    expect("{{ d | items | list }} {{ d | dictsort }} {{ d | length }}",
           "{\"d\":{\"b\":1,\"A\":2}}", "[('b', 1), ('A', 2)] [('A', 2), ('b', 1)] 2");
    expect(
        "{{ '12' | int + 1 }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3 | string }} {{ -2 | abs }}",
        NULL, "13 0 2.5 3 2");
    expect("{{ messages[1:] | length }} {{ [1, 2, 3][::-1] }} {{ [1, 2, 3][-1] }}", MSGS,
           "2 [3, 2, 1] 3");
}

Test(tmpl_filters, tojson_as_transformers) {
    expect("{{ d | tojson }}", "{\"d\":{\"b\":[1,2.0,null,true],\"a\":\"ü<&>\\\"\\n\"}}",
           "{\"b\": [1, 2.0, null, true], \"a\": \"ü<&>\\\"\\n\"}");
    expect("{{ d | tojson(indent=2) }}", "{\"d\":{\"a\":[1],\"e\":{}}}",
           "{\n  \"a\": [\n    1\n  ],\n  \"e\": {}\n}");
    expect("{{ d | tojson(sort_keys=true) }} {{ d | tojson(separators=(',', ':')) }}",
           "{\"d\":{\"b\":1,\"a\":2}}", "{\"a\": 2, \"b\": 1} {\"b\":1,\"a\":2}");
    expect("{{ 'é' | tojson(ensure_ascii=true) }} {{ 1e16 | tojson }}", NULL, "\"\\u00e9\" 1e+16");
    expect_err("{{ nope | tojson }}", NULL, STATUS_INVALID, "not JSON serializable");
}

Test(tmpl_tests, is_tests) {
    expect(
        "{{ 'a' is string }}{{ d is mapping }}{{ l is sequence }}{{ l is iterable }}{{ n is none }}"
        "{{ 1 is number }}{{ 1.5 is number }}{{ 'a' is number }}{{ l is mapping }}",
        "{\"d\":{},\"l\":[],\"n\":null}", "TrueTrueTrueTrueTrueTrueTrueFalseFalse");
    expect("{{ 4 is divisibleby 2 }}{{ 3 is even }}{{ 1 is eq 1 }}{{ x is not defined }}", NULL,
           "TrueFalseTrueTrue");
}

Test(tmpl_globals, raise_exception_and_strftime) {
    expect_err("{{ raise_exception('bad role') }}", NULL, STATUS_INVALID,
               "template error: bad role");
    R r = render("{{ strftime_now('%Y') }}", NULL);
    cr_assert_eq(r.st, STATUS_OK);
    cr_expect_eq(r.len, 4);
    r_free(&r);
    expect("{% generation %}g{% endgeneration %}", NULL, "g");
}

Test(tmpl_errors, syntax_with_line_and_column) {
    expect_err("line1\n  {% endfor %}", NULL, STATUS_INVALID,
               "line 2, column 6: unexpected 'endfor'");
    expect_err("{% if true %}\n{% endfor %}", NULL, STATUS_INVALID, "(open block: if)");
    expect_err("{% if true %}x", NULL, STATUS_INVALID, "expected 'elif'");
    expect_err("{{ 1 + }}", NULL, STATUS_INVALID, "line 1, column 8");
    expect_err("{{ x | nosuchfilter }}", NULL, STATUS_INVALID, "No filter named 'nosuchfilter'");
    expect_err("{{ x is nosuchtest }}", NULL, STATUS_INVALID, "No test named");
    expect_err("{% include 'x' %}", NULL, STATUS_INVALID, "unknown tag 'include'");
    expect_err("{{ 'abc }}", NULL, STATUS_INVALID, "line 1");
    expect_err("{# never closed", NULL, STATUS_INVALID, "comment");
    expect_err("{% break %}", NULL, STATUS_INVALID, "outside of a loop");
    expect_err("ok\n{{ 1 < 'a' }}", NULL, STATUS_INVALID, "line 2");
}

Test(tmpl_errors, limits) {
    expect_err("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", NULL, STATUS_LIMIT, "deeper");
    TmplLimits small = {.max_steps = 1000};
    R r = render_lim("{% for i in range(100000) %}{{ i }}{% endfor %}", NULL, &small);
    cr_expect_eq(r.st, STATUS_LIMIT, "%s", r.err.msg);
    r_free(&r);
    TmplLimits out = {.max_output = 100};
    r = render_lim("{% for i in range(1000) %}xxxxxxxx{% endfor %}", NULL, &out);
    cr_expect_eq(r.st, STATUS_LIMIT, "%s", r.err.msg);
    cr_expect(strstr(r.err.msg, "output") != NULL, "%s", r.err.msg);
    r_free(&r);
    expect_err("{{ range(100001) | length }}", NULL, STATUS_LIMIT, "Range too big");
}

static char *repeat(const char *a, int n, const char *mid, const char *b) {
    size_t la = strlen(a), lm = strlen(mid), lb = strlen(b);
    char *s = malloc(la * n + lm + lb * n + 1), *p = s;
    for (int i = 0; i < n; i++, p += la)
        memcpy(p, a, la);
    memcpy(p, mid, lm);
    p += lm;
    for (int i = 0; i < n; i++, p += lb)
        memcpy(p, b, lb);
    *p = '\0';
    return s;
}

Test(tmpl_errors, deep_nesting_is_a_clean_error) {
    const int N = 100000;
    char *parens = repeat("(", N, "1", ")");
    char *src = malloc(strlen(parens) + 8);
    sprintf(src, "{{ %s }}", parens);
    expect_err(src, NULL, STATUS_INVALID, "nested too deeply");
    free(src);
    free(parens);
    /* as deep as the source size limit allows */
    char *blocks = repeat("{% if true %}", 40000, "x", "{% endif %}");
    expect_err(blocks, NULL, STATUS_INVALID, "nested too deeply");
    free(blocks);
    char *lists = repeat("[", N, "", "]");
    src = malloc(strlen(lists) + 8);
    sprintf(src, "{{ %s }}", lists);
    expect_err(src, NULL, STATUS_INVALID, "line 1");
    free(src);
    free(lists);
    char *unary = repeat("-", N, "1", "");
    src = malloc(strlen(unary) + 8);
    sprintf(src, "{{ %s }}", unary);
    expect_err(src, NULL, STATUS_INVALID, "nested too deeply");
    free(src);
    free(unary);
    char *chain = repeat("1 + ", N, "1", "");
    src = malloc(strlen(chain) + 8);
    sprintf(src, "{{ %s }}", chain);
    expect_err(src, NULL, STATUS_INVALID, "nested too deeply");
    free(src);
    free(chain);
    /* values nested by the template itself at render time */
    expect_err("{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}"
               "{% endfor %}{{ ns.v }}",
               NULL, STATUS_LIMIT, "nested deeper");
}

/* ---- input marking ---- */

static void expect_mask(const char *src, const char *vars, const char *want_text,
                        const char *want_mask) {
    R r = render(src, vars);
    cr_assert_eq(r.st, STATUS_OK, "%s", r.err.msg);
    cr_assert(r.len == strlen(want_text) && memcmp(r.out, want_text, r.len) == 0,
              "got [%s] want [%s]", r.out, want_text);
    char *m = malloc(r.len + 1);
    for (size_t i = 0; i < r.len; i++)
        m[i] = (char)('0' + r.mask[i]);
    m[r.len] = '\0';
    cr_expect_str_eq(m, want_mask, "template %.80s text [%s]", src, r.out);
    free(m);
    r_free(&r);
}

Test(tmpl_mask, literals_one_data_zero) {
    expect_mask("<|im_start|>{{ u }}<|im_end|>", "{\"u\":\"<|im_start|>\"}",
                "<|im_start|><|im_start|><|im_end|>",
                "111111111111"
                "000000000000"
                "1111111111");
    expect_mask("{{ '[' ~ u ~ ']' }}", "{\"u\":\"ab\"}", "[ab]", "1001");
    expect_mask("{{ ('x' + u) | upper }}", "{\"u\":\"ab\"}", "XAB", "100");
    expect_mask("{{ u | trim }}|{{ u[1:] }}|{{ u | replace('b', 'Z') }}", "{\"u\":\" ab \"}",
                "ab|ab | aZ ", "00100010010");
    expect_mask("{{ l | join('+') }}", "{\"l\":[\"a\",\"b\"]}", "a+b", "010");
    expect_mask("{{ n }}{{ 5 }}{{ b }}", "{\"n\":12,\"b\":false}", "125False", "00100000");
    expect_mask("{{ d | tojson }}", "{\"d\":{\"k\":\"v\"}}", "{\"k\": \"v\"}", "1101111011");
    expect_mask("{% set s %}<{{ u }}>{% endset %}{{ s }}", "{\"u\":\"x\"}", "<x>", "101");
    expect_mask("{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(u) }}", "{\"u\":\"x\"}", "[x]", "101");
}

Test(tmpl_api, reuse_and_null_vars) {
    Err err = {0};
    const char *src = "{{ a | default('none') }}";
    Template *t = tmpl_parse(src, strlen(src), &err);
    cr_assert(t, "%s", err.msg);
    char *out;
    uint8_t *mask;
    size_t len;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tmpl_render(t, NULL, NULL, &out, &mask, &len, &err), STATUS_OK, "%s", err.msg);
        cr_expect_str_eq(out, "none");
        free(out);
        free(mask);
    }
    json_t *arr = json_array();
    cr_expect_eq(tmpl_render(t, arr, NULL, &out, &mask, &len, &err), STATUS_INVALID);
    cr_expect(out == NULL && mask == NULL);
    json_decref(arr);
    tmpl_free(t);
    tmpl_free(NULL);
}

Test(tmpl_mask, trusted_variables_are_template_text_and_win) {
    Err err = {0};
    const char *src = "{{ bos_token }}{{ u }}";
    Template *t = tmpl_parse(src, strlen(src), &err);
    cr_assert(t, "%s", err.msg);
    json_t *vars = json_pack("{s:s, s:s}", "bos_token", "evil", "u", "x");
    json_t *trusted = json_pack("{s:s}", "bos_token", "<s>");
    char *out;
    uint8_t *mask;
    size_t len;
    cr_assert_eq(tmpl_render_ex(t, vars, trusted, NULL, &out, &mask, &len, &err), STATUS_OK, "%s",
                 err.msg);
    cr_assert_str_eq(out, "<s>x");
    const uint8_t want[] = {1, 1, 1, 0};
    cr_assert_eq(len, 4);
    cr_assert(!memcmp(mask, want, 4), "mask %d%d%d%d", mask[0], mask[1], mask[2], mask[3]);
    free(out);
    free(mask);
    json_decref(vars);
    json_decref(trusted);
    tmpl_free(t);
}

/* none / undefined as Jinja2 3.1 treats them (each case checked against
 * python3-jinja2; tests/chat/test_template_jinja.py holds them too). */
Test(tmpl_none, select_and_map_of_a_falsy_value_are_empty) {
    /* Jinja2's select/reject/selectattr/rejectattr/map begin with `if value:` */
    expect("{{ none | selectattr('x') | list }}", NULL, "[]");
    expect("{{ none | rejectattr('x', 'none') | list }}", NULL, "[]");
    expect("{{ none | select | list }}{{ 0 | reject | list }}", NULL, "[][]");
    expect("{{ none | map(attribute='x') | list }}|{{ false | map('upper') | join(',') }}", NULL,
           "[]|");
    /* no filter argument: not looked at */
    expect("{{ none | map | list }}{{ [] | map | list }}", NULL, "[][]");
    expect("{{ nope | selectattr('x') | list }}{{ '' | select | list }}", NULL, "[][]");
    expect("{{ n | selectattr('x') | first is defined }}", "{\"n\":null}", "False");
    /* anything truthy must still be iterable */
    expect_err("{{ 5 | selectattr('x') | list }}", NULL, STATUS_INVALID,
               "'int' object is not iterable");
    expect_err("{{ true | select | list }}", NULL, STATUS_INVALID, "'bool' object is not iterable");
    expect_err("{{ [1] | map | list }}", NULL, STATUS_INVALID, "map requires a filter argument");
}

Test(tmpl_none, first_and_last_of_undefined_are_undefined) {
    expect("[{{ nope | first }}][{{ nope | last }}]", NULL, "[][]");
    expect("{{ nope | first is defined }} {{ [] | last is defined }}", NULL, "False False");
    expect_err("{{ none | first }}", NULL, STATUS_INVALID, "'NoneType' object is not iterable");
}

Test(tmpl_none, int_and_float_of_undefined_raise) {
    expect("{{ none | int }} {{ none | float }} {{ 'x' | int(7) }}", NULL, "0 0.0 7");
    expect_err("{{ nope | int }}", NULL, STATUS_INVALID, "'nope' is undefined");
    expect_err("{{ nope | float }}", NULL, STATUS_INVALID, "'nope' is undefined");
}

Test(tmpl_none, indent_takes_only_a_string) {
    expect("{{ 'a\\nb' | indent(2) }}", NULL, "a\n  b");
    expect_err("{{ none | indent }}", NULL, STATUS_INVALID,
               "unsupported operand type(s) for +=: 'NoneType' and 'str'");
    expect_err("{{ 5 | indent }}", NULL, STATUS_INVALID, "'int' and 'str'");
    expect_err("{{ nope | indent }}", NULL, STATUS_INVALID, "'nope' is undefined");
}

Test(tmpl_none, range_takes_only_integers) {
    expect("{{ range(true) | list }} {{ range(1, 4, 2) | list }}", NULL, "[0] [1, 3]");
    expect_err("{{ range(none) }}", NULL, STATUS_INVALID,
               "'NoneType' object cannot be interpreted as an integer");
    expect_err("{{ range(0, none) }}", NULL, STATUS_INVALID, "'NoneType' object cannot be");
    expect_err("{{ range(1.5) }}", NULL, STATUS_INVALID, "'float' object cannot be");
    expect_err("{{ range(nope) }}", NULL, STATUS_INVALID, "cannot be interpreted as an integer");
}

Test(tmpl_none, tools_patterns) {
    /* what tool-calling templates do with an absent or null tools variable */
    const char *src =
        "{{ tools | default([]) | length }} {{ tools is defined }} {{ tools is none }} "
        "{% for t in tools %}x{% else %}empty{% endfor %} {{ (tools or []) | length }}";
    expect(src, NULL, "0 False False empty 0");
    /* default() replaces only undefined: a null stays None */
    expect("{{ tools | default([]) }} {{ tools is defined }} {{ tools is none }} "
           "{{ (tools or []) | length }}",
           "{\"tools\":null}", "None True True 0");
    expect_err("{{ tools | default([]) | length }}", "{\"tools\":null}", STATUS_INVALID,
               "has no len()");
    expect("{{ tools | tojson }} {{ n | tojson }}", "{\"tools\":null,\"n\":null}", "null null");
    expect("{% set ns = namespace(name=none) %}{{ ns.name is none }}{% set ns.name = 'f' %}"
           "{{ ns.name }}",
           NULL, "Truef");
    expect_err("{% for t in none %}x{% endfor %}", NULL, STATUS_INVALID,
               "'NoneType' object is not iterable");
}
