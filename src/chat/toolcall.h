/* toolcall.h - a model's generated text split into content, reasoning and
 * tool calls, as it streams, for the tool-call formats real models use; the
 * format picked from a chat template; GBNF text forcing a format's calls.
 *
 * Formats (what the parser reads; whitespace between JSON tokens is free):
 *   HERMES   Hermes 2 Pro, Qwen 2.5/3, ChatML models. Content, then calls:
 *              <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
 *            several in a row. "arguments" may also be a JSON string (its
 *            decoded text is the arguments) or be missing ("{}").
 *   LLAMA3   Llama 3.1-3.3. The reply (after leading whitespace) is a JSON
 *            object {"name": "f", "parameters": {...}} ("arguments" also
 *            read), calls separated by ';'. <|python_tag|> anywhere starts
 *            calls: a JSON object as above, or a builtin call
 *            `name.call(k="v", n=1, b=True)` (Python literals: strings,
 *            numbers, True/False/None; arguments become a JSON object), or
 *            else Python code: a call to "python" with {"code": "<the rest>"}.
 *   MISTRAL  [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...] (extra
 *            keys such as "id" ignored; a lone object also read), and the
 *            newer [TOOL_CALLS]f[ARGS]{...}, repeated. Ids: 9 alphanumerics.
 *   HARMONY  gpt-oss. Messages `<|start|>assistant<|channel|>C<|message|>
 *            BODY<|end|>` (the prompt supplies the first <|start|>assistant).
 *            C analysis -> reasoning; final or commentary -> content; a
 *            header with a recipient (`to=functions.f`, before or after
 *            <|channel|>; a bare `to=NAME` keeps NAME) makes BODY the raw
 *            arguments of a call to f, ended by <|call|> (or <|end|>,
 *            <|return|>, the next <|start|>/<|channel|>, end of text).
 *   GENERIC  Models with no native format, constrained by toolcall_grammar():
 *            the reply is {"tool_calls": [{"name": "f", "arguments": {...}},
 *            ...]} or {"response": "text"} (the decoded string is content).
 *   NONE     No calls: all content (reasoning still split off per flags).
 * Reasoning: with TOOLCALL_THINK, <think>...</think> anywhere in content is
 * reasoning (an unclosed one stays reasoning: it already streamed); with
 * TOOLCALL_THINK_OPEN the text starts inside one (the prompt opened it, as
 * DeepSeek-R1's does). Whitespace at the start of the reply (except NONE),
 * right after <think>, </think>, or after a call is dropped.
 *
 * Streaming. Text goes in in any pieces (a piece may split a tag or a UTF-8
 * character anywhere); events come out through a callback. The parse IS
 * the stream: the events of "push everything, then finish" are those of any
 * split, once adjacent CONTENT / REASONING / same-call ARGS are merged. Text
 * that might still be the start of a tag is held back until it cannot be;
 * events never end inside a UTF-8 character of valid input (incomplete
 * characters wait for their bytes). Arguments stream as they arrive.
 *
 * Malformed and truncated output never fails:
 *   - Before a call's name and the start of its arguments are known, its
 *     text is held. If the structure breaks (bad JSON, no name, a name that
 *     is not a string, a structure not the format's, a held part over
 *     TOOLCALL_MAX_HELD, arguments neither an object nor a string, LLAMA3 /
 *     GENERIC objects without arguments, or the end of text), the held
 *     text is released as content, literally, and scanning resumes as
 *     content at the byte that broke it (so a later good call is found).
 *     Structure that was already consumed after a call (separators, "]")
 *     is part of that held text. A LLAMA3 builtin call that is not
 *     complete is Python code (a call to "python").
 *   - CALL_BEGIN comes once the name is known and the arguments start; the
 *     arguments then stream (JSON checked byte by byte). If the JSON breaks,
 *     the call ends there (CALL_END; its arguments are the prefix that was
 *     valid) and the rest is content from the breaking byte.
 *   - Text that ends inside a begun call's arguments ends the call with the
 *     partial arguments (the server reports finish_reason "length"). The
 *     same for a HARMONY call without <|call|> (an end-of-generation token
 *     that usually is not in the text): its body is the arguments.
 *   - Structure between calls (</tool_call>, ';', ',', ']') that is missing
 *     at the end of text is not an error; the separators are dropped.
 */
#ifndef CGPT_CHAT_TOOLCALL_H
#define CGPT_CHAT_TOOLCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    TOOL_FORMAT_NONE,
    TOOL_FORMAT_GENERIC,
    TOOL_FORMAT_HERMES,
    TOOL_FORMAT_LLAMA3,
    TOOL_FORMAT_MISTRAL,
    TOOL_FORMAT_HARMONY,
} ToolFormat;

#define TOOLCALL_THINK 1u      /* <think>...</think> is reasoning */
#define TOOLCALL_THINK_OPEN 2u /* the prompt opened <think>: start in reasoning */

#define TOOLCALL_MAX_HELD (256u << 10) /* bytes held before a call is known */
#define TOOLCALL_MAX_NAME 256          /* bytes of a decoded tool name */
#define TOOLCALL_MAX_DEPTH 128         /* JSON nesting inside a call */
#define TOOLCALL_MAX_HEADER 256        /* bytes of a harmony message header */
#define TOOLCALL_ID_MAX 32             /* bytes of an id, NUL included */

typedef enum {
    TOOLCALL_CONTENT,
    TOOLCALL_REASONING,
    TOOLCALL_CALL_BEGIN,
    TOOLCALL_CALL_ARGS,
    TOOLCALL_CALL_END,
} ToolEventKind;

/* One event; every pointer is a view valid until the callback returns. */
typedef struct {
    ToolEventKind kind;
    int index;        /* CALL_*: the call's number in the reply, from 0; else -1 */
    const char *id;   /* CALL_BEGIN: "call_" + 24 alphanumerics, or 9 for MISTRAL */
    const char *name; /* CALL_BEGIN: the tool's name, NUL-terminated */
    const char *text; /* CONTENT / REASONING / CALL_ARGS: 'len' bytes */
    size_t len;
} ToolEvent;

typedef void (*ToolEventFn)(void *user, const ToolEvent *ev);

typedef struct ToolParser ToolParser;

/* A parser for 'fmt' with TOOLCALL_* 'flags'; ids come from 'seed' (the same
 * seed gives the same ids). 'fn' (borrowed with 'user') gets the events.
 * Returns owned, free with toolcall_free(); NULL when out of memory. */
ToolParser *toolcall_new(ToolFormat fmt, unsigned flags, uint64_t seed, ToolEventFn fn, void *user);
void toolcall_free(ToolParser *p);
/* Feed 'len' bytes (borrowed). STATUS_NOMEM when out of memory (the parser
 * then ignores everything else); STATUS_INVALID after toolcall_finish(). */
Status toolcall_push(ToolParser *p, const char *text, size_t len);
/* End of generation: release held text, end an open call. Once. */
Status toolcall_finish(ToolParser *p);

/* Whole-text convenience over the streaming parser. */
typedef struct {
    char id[TOOLCALL_ID_MAX];
    char *name;      /* NUL-terminated */
    char *arguments; /* NUL-terminated JSON text (partial when cut off) */
    size_t arguments_len;
} ToolCall;

typedef struct {
    char *content; /* NUL-terminated, never NULL after success */
    size_t content_len;
    char *reasoning; /* NUL-terminated, never NULL after success */
    size_t reasoning_len;
    ToolCall *calls;
    int n_calls;
} ToolResult;

/* Parse 'text' whole. Fills 'out' (owned, free with toolcall_result_free(),
 * which also takes a zeroed result). STATUS_NOMEM only. */
Status toolcall_parse(ToolFormat fmt, unsigned flags, uint64_t seed, const char *text, size_t len,
                      ToolResult *out);
void toolcall_result_free(ToolResult *r);

/* The format a chat template's source (borrowed) implies, by the markers it
 * renders: <|channel|> -> HARMONY, [TOOL_CALLS] -> MISTRAL, <tool_call> ->
 * HERMES, <|python_tag|> or "parameters" with ipython -> LLAMA3, anything
 * else -> GENERIC. *flags (may be NULL) gets TOOLCALL_THINK when it renders
 * <think> or </think>, plus TOOLCALL_THINK_OPEN when the generation prompt
 * (the text after the last add_generation_prompt) opens <think> without
 * closing it. */
ToolFormat toolcall_detect(const char *template_src, size_t len, unsigned *flags);
/* "none", "generic", "hermes", "llama3", "mistral", "harmony". */
const char *toolcall_format_name(ToolFormat fmt);

/* GBNF text whose root's sentences are exactly calls in 'fmt' to tools
 * names[i] (each [A-Za-z0-9_.-]+, at most 64 bytes), tool i's arguments
 * being rule arg_rules[i] (a name [A-Za-z0-9-]+ defined by the caller in
 * the same grammar). One call, or one or more with 'parallel' (HARMONY: one
 * call per message, so 'parallel' is ignored). The spacing is fixed:
 *   HERMES   <tool_call>\n{"name": "f", "arguments": ARGS}\n</tool_call>
 *            joined by "\n"
 *   LLAMA3   {"name": "f", "parameters": ARGS} joined by "; "
 *   MISTRAL  [TOOL_CALLS] [{"name": "f", "arguments": ARGS}, ...]
 *   HARMONY  optional <|channel|>analysis<|message|>TEXT<|end|><|start|>assistant
 *            (TEXT without "<"), then
 *            <|channel|>commentary to=functions.f <|constrain|>json<|message|>ARGS
 *            (<|call|> ends generation, so it is not part of the text)
 *   GENERIC  {"tool_calls": [{"name": "f", "arguments": ARGS}, ...]}
 * 'allow_content' (tool_choice "auto") also admits replies without calls:
 * GENERIC {"response": "<JSON string>"}; HARMONY a final message; LLAMA3
 * text not starting with '{', '<' or whitespace; HERMES and MISTRAL content
 * (without "<t" / "[T") optionally followed by calls. The text's first
 * rule is "root" (a caller may rename it); every other starts with "tc-". *out is owned (free()),
 * *len its length. STATUS_INVALID for NONE, n < 1, a bad name or rule name. */
Status toolcall_grammar(ToolFormat fmt, const char *const *names, const char *const *arg_rules,
                        int n, bool parallel, bool allow_content, char **out, size_t *len,
                        Err *err);

#endif
