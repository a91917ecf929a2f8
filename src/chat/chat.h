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
 * `tools` / `documents` / `date_string` when given. */
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

/* Choose the template: 'override_src' (a template's source, e.g. from
 * --chat-template-file; may be NULL), else the model's
 * tokenizer.chat_template, else a built-in picked from the vocabulary
 * (<|eot_id|> -> Llama 3, <|im_start|> -> ChatML, else Llama 2). Returns an
 * owned format (free with chat_format_free) or NULL with 'err' filled. */
ChatFormat *chat_format_new(const GGUF *g, const Tokenizer *t, const char *override_src,
                            size_t override_len, Err *err);
void chat_format_free(ChatFormat *f);
/* A short description for logs: "model template", "built-in chatml", ... */
const char *chat_format_name(const ChatFormat *f);
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
