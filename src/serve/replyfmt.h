/* replyfmt.h - what a chat request asks its reply to be (the grammar
 * field, response_format, tools and tool_choice), turned into what the
 * engine and the job need: the messages and template variables to render,
 * the GBNF grammar sampling follows, and how the job reads the output.
 *
 * The model's tool-call format comes from its chat template
 * (toolcall_detect: Hermes/Qwen, Llama 3, Mistral, gpt-oss harmony, or
 * GENERIC for a template that knows no tools).
 *   - Native formats: the tools go to the template as `tools`, and the
 *     messages as the request has them.
 *   - GENERIC: the model is told the tools and the reply form in a system
 *     message, and its replies are always constrained to
 *     {"tool_calls": [...]} or {"response": "..."} (tool_choice auto); past
 *     assistant tool calls and tool results are written into the messages
 *     as that JSON ({"tool_response": ...} in a user message), since the
 *     template cannot render them.
 * The grammar, by what the request asks:
 *   grammar                  the request's own GBNF (checked here: 400)
 *   response_format          json_object: any JSON object; json_schema:
 *                            the schema compiled (jsonschema.h; an
 *                            unsupported keyword is a 400 naming it)
 *   tool_choice required     one call (or several with parallel_tool_calls)
 *   / named                  in the model's format, each call's arguments
 *                            valid against its tool's parameters schema
 *   tool_choice auto         nothing for native formats (the model chooses
 *                            and the parser reads what it wrote); with a
 *                            response_format, that format or calls
 * A forced call skips a reasoning model's <think> block (the grammar starts
 * at the call).
 *
 * Reasoning (<think>, harmony's analysis channel) is split off whenever the
 * template shows the model writes it, tools or not. */
#ifndef CGPT_SERVE_REPLYFMT_H
#define CGPT_SERVE_REPLYFMT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "chat/toolcall.h"
#include "serve/oai.h"

typedef struct {
    json_t *messages; /* owned: what to render (a copy when rewritten, else a new reference) */
    json_t *extra;    /* owned: template variables ({"tools": [...]}) or NULL */
    char *grammar;    /* owned GBNF, or NULL: free sampling */
    size_t grammar_len;
    ToolFormat parse;    /* how the job reads the output (TOOL_FORMAT_NONE: as text) */
    unsigned flags;      /* TOOLCALL_THINK* for the parser */
    bool parser;         /* the output goes through a ToolParser */
    bool render_special; /* harmony: control tokens' text stays in the output */
} ReplyFmt;

/* Fill 'out' for request r (a validated chat request) and a model whose
 * chat template's source is tmpl[0..tmpl_len) (NULL: none known). A bad
 * grammar or schema fills 'e' with a 400 naming the field. 'out' is
 * zeroed on failure; free with replyfmt_free (also a zeroed one). */
Status replyfmt_prepare(const OaiRequest *r, const char *tmpl, size_t tmpl_len, ReplyFmt *out,
                        OaiError *e);
void replyfmt_free(ReplyFmt *f);

#endif
