/* template.h - the Jinja subset that GGUF chat templates use, rendered as
 * Hugging Face transformers renders them (docs/spec/chat-templates.md):
 * trim_blocks, lstrip_blocks, loop controls ({% break %}, {% continue %}),
 * an immutable sandbox, globals raise_exception(msg) and strftime_now(fmt),
 * `tojson` with ensure_ascii=False (+ indent, separators, sort_keys).
 *
 * Supported: {{ }}, {% %}, {# #} with '-' / '+' whitespace control; if /
 * elif / else, for (else, loop.index/index0/first/last/length/revindex/
 * revindex0/previtem/nextitem, tuple unpacking, `if` filter), set (incl.
 * block set), namespace(), macro / call, filter blocks; expressions with
 * literals (strings, ints, floats, true/false/none, lists, dicts, tuples),
 * attribute and item access, slices, arithmetic, ~ concatenation,
 * comparisons, and/or/not, in / not in, is tests (defined, undefined, none,
 * string, number, integer, mapping, iterable, sequence, boolean, even, odd,
 * true, false, equalto/eq ...), conditional expressions, filters (trim,
 * length/count, tojson, upper, lower, title, capitalize, replace, default/d,
 * first, last, join, list, map(attribute=), select/reject/selectattr/
 * rejectattr, items, dictsort, string, int, float, abs, round, indent,
 * safe, e/escape...), string methods (strip, lstrip, rstrip, split,
 * startswith, endswith, upper, lower, title, replace, find, count, format),
 * dict methods (items, keys, values, get).
 *
 * Input marking: every output byte remembers whether it came from template
 * text (literals in the template) or from the variables passed in (message
 * contents, roles, tools): out_mask[i] is 1 for template text, 0 for data.
 * The tokenizer lets special tokens match only where the mask is 1, so a
 * user who types "<|im_start|>" gets plain text, not a control token.
 *
 * Rendering is bounded (TmplLimits): steps, recursion depth, output bytes,
 * loop iterations. Errors - syntax (with line and column), runtime type
 * errors, raise_exception, limits - come back as STATUS_INVALID / LIMIT
 * with a message; never a crash or a hang. Values come in as jansson JSON. */
#ifndef CGPT_CHAT_TEMPLATE_H
#define CGPT_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TMPL_MAX_SOURCE (1u << 20) /* bytes of template source */

typedef struct {
    uint64_t max_steps; /* evaluation steps; 0: 10 million */
    int max_depth;      /* nesting of calls/expressions; 0: 256 */
    size_t max_output;  /* bytes of output; 0: 16 MiB */
} TmplLimits;

typedef struct Template Template;

/* Parse 'len' bytes of template source. Returns an owned template (free with
 * tmpl_free) or NULL with 'err' filled: "line 3, column 14: unexpected
 * 'endfor' (open block: if)". */
Template *tmpl_parse(const char *src, size_t len, Err *err);
void tmpl_free(Template *t);

/* Render with the variables of the JSON object 'vars' (borrowed). On
 * success *out (NUL-terminated, *out_len bytes) and *out_mask (*out_len
 * bytes) are owned by the caller (free()). On failure both are NULL. */
Status tmpl_render(const Template *t, const json_t *vars, const TmplLimits *lim, char **out,
                   uint8_t **out_mask, size_t *out_len, Err *err);

/* As tmpl_render, plus 'trusted' (a JSON object or NULL): variables that
 * count as template text in the output mask (mask 1), for the model's own
 * markup such as bos_token / eos_token, which must tokenize as control
 * tokens. A name in both objects takes the trusted value. */
Status tmpl_render_ex(const Template *t, const json_t *vars, const json_t *trusted,
                      const TmplLimits *lim, char **out, uint8_t **out_mask, size_t *out_len,
                      Err *err);

#endif
