/* chat.h - turning an OpenAI-style message list into the prompt a model
 * expects: the model's chat template (tokenizer.chat_template), an override
 * given by the user, or a built-in fallback (ChatML, Llama 3, Llama 2) when
 * the model has none, then tokenization with input marking.
 *
 * Messages are a JSON array of objects: role ("system", "user",
 * "assistant", "tool"), content (a string, or a list of {"type":"text",
 * "text":...} parts, which are joined for templates that expect a string),
 * optional name, tool_calls, tool_call_id. The template sees `messages`,
 * `add_generation_prompt`, `bos_token`, `eos_token` (the tokens' text), and
 * `tools` / `documents` / `date_string` when given.
 *
 * Tool calls: an assistant message may carry `tool_calls` (content null or
 * absent is then allowed), a tool result `tool_call_id` and `name`; they
 * reach the template unchanged, except for `function.arguments` under
 * ChatArgsMode below. OpenAI sends arguments as a JSON text; most tool
 * templates (Qwen, Hermes, Llama 3.x, gpt-oss, Mistral) print
 * `arguments | tojson` and expect an object, so a string comes out quoted
 * twice, while others (Functionary, DeepSeek-R1) concatenate it as a string
 * and fail on an object. llama.cpp probes the template for which it needs
 * and parses the text into an object only for those (minja's
 * requires_object_arguments); CHAT_ARGS_AUTO does the same. The server
 * should use CHAT_ARGS_AUTO. */
#ifndef CGPT_CHAT_CHAT_H
#define CGPT_CHAT_CHAT_H

#include <jansson.h>
#include <stdbool.h>

#include "chat/template.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

typedef enum { CHAT_BUILTIN_NONE, CHAT_CHATML, CHAT_LLAMA3, CHAT_LLAMA2 } ChatBuiltin;

#define CHAT_MAX_MESSAGES 4096            /* messages in one conversation */
#define CHAT_MAX_CONTENT_BYTES (4u << 20) /* bytes of one message's content (parts joined) */
#define CHAT_MAX_PARTS 1024               /* parts in one content list */
#define CHAT_MAX_ROLE_BYTES 64            /* bytes of a role name */

typedef struct ChatFormat ChatFormat;

/* What chat_render does with a tool call's `function.arguments` string. */
typedef enum {
    CHAT_ARGS_AS_GIVEN = 0, /* unchanged (the default of every new format) */
    CHAT_ARGS_OBJECT,       /* a string that parses as a JSON object becomes that object;
                             * anything else (not JSON, an array, a number) stays a string */
    CHAT_ARGS_AUTO,         /* CHAT_ARGS_OBJECT when the template needs objects
                             * (chat_format_wants_object_arguments), else as given */
} ChatArgsMode;

/* Choose the template: 'override_src' (a template's source, e.g. from
 * --chat-template-file; may be NULL), else the model's
 * tokenizer.chat_template, else a built-in picked from the vocabulary
 * (<|eot_id|> -> Llama 3, <|im_start|> -> ChatML, else Llama 2). Returns an
 * owned format (free with chat_format_free) or NULL with 'err' filled. */
ChatFormat *chat_format_new(const GGUF *g, const Tokenizer *t, const char *override_src,
                            size_t override_len, Err *err);
void chat_format_free(ChatFormat *f);
/* Set how tool-call arguments reach the template (see ChatArgsMode); the
 * probe CHAT_ARGS_AUTO needs runs once, here. Not thread-safe against a
 * concurrent render of the same format: set it before sharing 'f'. */
void chat_format_set_arguments(ChatFormat *f, ChatArgsMode mode);
/* Whether the template prints tool-call arguments only when given an object:
 * a probe conversation (one call of "ipython" with {"argument_needle": ...})
 * rendered with the arguments as a JSON text and as an object; true when
 * only the object shows `"argument_needle":` in the output (llama.cpp's
 * test). False for a template that fails on both or shows both. */
bool chat_format_wants_object_arguments(const ChatFormat *f);
/* A short description for logs: "model template", "built-in chatml", ... */
const char *chat_format_name(const ChatFormat *f);
/* The template's Jinja source (the model's, the override or the
 * built-in's), NUL-terminated, *len bytes; a view valid until
 * chat_format_free. NULL (and 0) for a NULL format. */
const char *chat_format_source(const ChatFormat *f, size_t *len);
/* Which built-in the format uses; CHAT_BUILTIN_NONE for a model or override template. */
ChatBuiltin chat_format_builtin(const ChatFormat *f);

/* A format from template source or a built-in, without a model: 'bos_text' /
 * 'eos_text' (NUL-terminated, may be NULL for "") become bos_token /
 * eos_token. For tools and tests. Returns owned (chat_format_free) or NULL
 * with 'err' filled. */
ChatFormat *chat_format_from_source(const char *src, size_t len, const char *bos_text,
                                    const char *eos_text, Err *err);
ChatFormat *chat_format_from_builtin(ChatBuiltin b, const char *bos_text, const char *eos_text,
                                     Err *err);

/* The Jinja source of a built-in (static, NUL-terminated): the official
 * template of the family (ChatML as OpenHermes 2.5, Meta-Llama-3-Instruct,
 * Llama-2-chat). NULL for CHAT_BUILTIN_NONE. */
const char *chat_builtin_source(ChatBuiltin b);
/* A JSON value's type in words for error messages: "object", "array",
 * "string", "number" (integers and reals), "boolean", "null". */
const char *chat_json_type_name(const json_t *v);
const char *chat_builtin_name(ChatBuiltin b);

/* Render 'messages' (borrowed JSON array; see above). 'extra' may add
 * variables (tools, ...) or be NULL. Output as tmpl_render(). Validates the
 * messages: STATUS_INVALID naming the index and field for a missing role, a
 * content of the wrong type, ... */
Status chat_render(const ChatFormat *f, const json_t *messages, bool add_generation_prompt,
                   const json_t *extra, char **out, uint8_t **mask, size_t *len, Err *err);

/* Render and tokenize in one step (special tokens only from the template's
 * own text; BOS added when the model adds one and the text does not already
 * start with it). *ids is owned by the caller (free()). */
Status chat_tokenize(const ChatFormat *f, const Tokenizer *t, const json_t *messages,
                     bool add_generation_prompt, const json_t *extra, int32_t **ids, size_t *n,
                     Err *err);

#endif
