/* oai.h - the OpenAI API's JSON: parsing and validating requests into C
 * structs, building responses, chunks and error envelopes (jansson).
 * No HTTP, no engine: pure functions over bytes and structs, so the fuzzer
 * (fuzz/fuzz_request.c) drives exactly what the server runs.
 *
 * Requests (docs/spec/openai-api.md §3.2, §3.7):
 *   chat:       model, messages (required), n, stream, stream_options
 *               {include_usage}, stop (string | array), max_tokens /
 *               max_completion_tokens, temperature, top_p, top_k, min_p,
 *               seed, presence_penalty, frequency_penalty, repeat_penalty,
 *               logit_bias, logprobs, top_logprobs, user.
 *   completion: model, prompt (string | [string] of one | [int] token ids |
 *               [[int]] of one), the same sampling fields, echo (false only),
 *               logprobs as an int 0..OAI_MAX_TOP_LOGPROBS (legacy API).
 *   tokenize:   {"content": str, "add_special": bool, "with_pieces": bool}
 *               or {"model", "prompt"/"messages"} (llama.cpp / vLLM style)
 *   detokenize: {"tokens": [int]}
 * Unknown fields are accepted and ignored (the spec's "ignorable extras").
 * Fields present as JSON null mean "default".
 *
 * Every rejection fills an OaiError with the HTTP status, the OpenAI type
 * and code, the offending field in 'param' (dotted path such as
 * "messages[3].content" or "logit_bias.123") and a message that names the
 * field, the value's problem and the limit. */
#ifndef CGPT_SERVE_OAI_H
#define CGPT_SERVE_OAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "sample/preset.h"

/* Named limits (defaults; the server may lower them with options). */
#define OAI_MAX_BODY_BYTES (8u << 20) /* request body */
#define OAI_MAX_JSON_DEPTH 64         /* nesting of arrays/objects */
#define OAI_MAX_MESSAGES 1024         /* messages per chat request */
#define OAI_MAX_N 16                  /* choices per request */
#define OAI_MAX_TOKENS_LIMIT (1 << 20) /* max_tokens accepted (then capped by the context) */
#define OAI_MAX_STOP 4                /* stop strings (OpenAI's limit) */
#define OAI_MAX_STOP_BYTES 256        /* bytes per stop string */
#define OAI_MAX_LOGIT_BIAS 300        /* logit_bias entries (OpenAI's limit) */
#define OAI_MAX_TOP_LOGPROBS 20
#define OAI_MAX_MODEL_BYTES 256       /* model name */
#define OAI_MAX_USER_BYTES 256        /* user field */
#define OAI_MAX_PROMPT_IDS (1 << 20)  /* token ids in a prompt / tokens to detokenize */
#define OAI_MAX_PARAM_BYTES 128       /* an error's param path */
#define OAI_MAX_TOOL_CALLS 128        /* tool_calls of one assistant message */
#define OAI_MAX_ID_BYTES 256          /* a tool call id */
#define OAI_MAX_TOOLS 128             /* tools per request (OpenAI's limit) */
#define OAI_MAX_NAME_BYTES 64         /* a function's or a schema's name */
#define OAI_MAX_GRAMMAR_BYTES (1 << 20) /* the grammar field (GRAMMAR_MAX_TEXT) */

typedef struct {
    size_t max_body_bytes;
    int max_json_depth;
    int max_messages;
    int max_n;
    int max_tokens;
    int max_logit_bias;
} OaiLimits;

/* The OAI_MAX_* values. */
OaiLimits oai_default_limits(void);

typedef struct {
    int status;        /* HTTP status: 400, 401, 404, 413, 429, 500, 503 */
    const char *type;  /* "invalid_request_error", "authentication_error", ... (static) */
    const char *code;  /* "context_length_exceeded", "invalid_api_key", ... or NULL (static) */
    char param[OAI_MAX_PARAM_BYTES]; /* "" for none (JSON null) */
    char message[512];
} OaiError;

/* Fill 'e' (printf-style message); returns STATUS_INVALID for convenience. */
Status oai_error_set(OaiError *e, int status, const char *type, const char *code, const char *param,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error":{"message","type","param","code"}} (param/code null when unset).
 * Owned json_t. */
json_t *oai_error_json(const OaiError *e);

typedef enum { OAI_CHAT, OAI_COMPLETION } OaiKind;

/* What the reply must be (response_format): free text, any JSON object, or
 * JSON valid against a schema. */
typedef enum { OAI_FORMAT_TEXT, OAI_FORMAT_JSON_OBJECT, OAI_FORMAT_JSON_SCHEMA } OaiFormat;

/* tool_choice: none (the default without tools), auto (the default with
 * them), required (at least one call), named (a call to that function). */
typedef enum { OAI_TOOLS_NONE, OAI_TOOLS_AUTO, OAI_TOOLS_REQUIRED, OAI_TOOLS_NAMED } OaiToolChoice;

typedef struct {
    int32_t token;
    float bias; /* -100..100 */
} OaiBias;

typedef struct {
    OaiKind kind;
    json_t *root;     /* the parsed body (owned; freed by oai_request_free) */
    char model[OAI_MAX_MODEL_BYTES + 1]; /* "" when absent or null (the server's default) */
    /* chat: the messages array, borrowed from root, validated for shape:
     * every element an object with a string role in system, developer,
     * user, assistant, tool; content a string, null or absent (assistant
     * only, with or without tool_calls), or an array of
     * {"type":"text","text":str} parts (any other part type rejected with
     * 400 naming the index); name, when given, a string. */
    json_t *messages;
    /* completion: the prompt as text (owned, NUL-terminated) or as ids. */
    char *prompt;
    size_t prompt_len;
    int32_t *prompt_ids; /* owned; token ids range-checked later by the server */
    int n_prompt_ids;

    int n;              /* 1..max_n */
    bool stream;
    bool include_usage; /* stream_options.include_usage (stream_options without stream: 400) */
    int max_tokens;     /* -1: not given; else 1..max_tokens limit (0 rejected) */
    float temperature;  /* 0..2, default 1 */
    float top_p;        /* 0..1, default 1 (0: only the most likely token, i.e. greedy) */
    int top_k;          /* >= 0, default 0 (off) */
    float min_p;        /* 0..1, default 0 */
    float presence_penalty;  /* -2..2 */
    float frequency_penalty; /* -2..2 */
    float repeat_penalty;    /* (0, 10], default 1 (llama.cpp extension) */
    bool has_seed;
    uint64_t seed;      /* any JSON integer; negative values wrap to uint64 */
    unsigned sampling_set; /* PRESET_* bits of the sampling fields given (null = not given);
                            * the model's general.sampling.* fills the others */
    OaiBias *bias;      /* owned, n_bias entries; keys are decimal token ids < 2^31 */
    int n_bias;
    bool logprobs;
    int top_logprobs;   /* 0..OAI_MAX_TOP_LOGPROBS; without logprobs:true -> 400 */
    char *stop[OAI_MAX_STOP]; /* owned, non-empty, <= OAI_MAX_STOP_BYTES each */
    int n_stop;
    char user[OAI_MAX_USER_BYTES + 1];

    /* chat only. grammar: the "grammar" field (llama.cpp's GBNF extension),
     * borrowed from root, NULL when absent; its syntax is checked later
     * (sample/grammar.h). A grammar and a JSON response_format together are
     * a 400. */
    const char *grammar;
    size_t grammar_len;
    OaiFormat format;
    /* response_format.json_schema.schema (an object or a boolean), borrowed;
     * NULL when not given (any JSON value). Compiled later (jsonschema.h),
     * where an unsupported keyword is a 400. */
    const json_t *schema;
    /* tools: the validated array (every element {"type":"function",
     * "function":{"name" [a-zA-Z0-9_-]{1,64} unique, "description"?: str,
     * "parameters"?: object, "strict"?: bool}}), borrowed; NULL when absent
     * or empty. tool_choice other than none without tools is a 400, and so
     * are the deprecated functions / function_call. */
    json_t *tools;
    OaiToolChoice tool_choice;
    int tool_named;           /* OAI_TOOLS_NAMED: the index in tools */
    bool parallel_tool_calls; /* default true */
} OaiRequest;

/* An embeddings request (/v1/embeddings): model, input (a string, an
 * array of strings, an array of token ids, or an array of such arrays;
 * nothing empty; at most OAI_MAX_EMBED_INPUTS inputs), encoding_format
 * ("float" or "base64"), dimensions (>= 1; checked against the model
 * later), user. Token ids are checked to be integers in [0, 2^31) here and
 * against the vocabulary later. */
#define OAI_MAX_EMBED_INPUTS 2048 /* inputs per embeddings request (OpenAI's limit) */
typedef struct {
    json_t *root;
    char model[OAI_MAX_MODEL_BYTES + 1];
    json_t *inputs; /* owned: an array of n_inputs strings or of n_inputs id arrays */
    int n_inputs;
    bool ids; /* the inputs are token id arrays */
    bool base64;
    int dimensions; /* 0: the model's */
    char user[OAI_MAX_USER_BYTES + 1];
} OaiEmbedRequest;

Status oai_parse_embeddings(const char *body, size_t len, const OaiLimits *lim,
                            OaiEmbedRequest *req, OaiError *e);
void oai_embed_request_free(OaiEmbedRequest *req);

/* The name of tools[i] (a validated tools array). */
const char *oai_tool_name(const json_t *tools, size_t i);

/* Parse and validate a request body of 'len' bytes (not NUL-terminated).
 * Checks, in order: len against max_body_bytes (413), nesting depth by a
 * scan of the raw bytes before parsing (400, "nesting deeper than N"), JSON
 * syntax and encoding (jansson: invalid UTF-8, lone surrogates, numbers out
 * of range -> 400 naming the line/column), the top level being an object,
 * then every field's type and range (400 with param). On success *req is
 * filled (free with oai_request_free); on failure *req is zeroed and 'e'
 * filled. 'lim' NULL means oai_default_limits(). Completion: logprobs k
 * sets logprobs = true and top_logprobs = k. */
Status oai_parse_chat(const char *body, size_t len, const OaiLimits *lim, OaiRequest *req,
                      OaiError *e);
Status oai_parse_completion(const char *body, size_t len, const OaiLimits *lim, OaiRequest *req,
                            OaiError *e);
void oai_request_free(OaiRequest *req);

/* The dotted path ("messages[3].content", "seed") of the JSON value that
 * starts before byte 'off' of body[0..len) - what a parse error at 'off'
 * is about - into out[cap] ("" at the top level). Only for bodies whose
 * nesting oai_json_depth() accepted. */
void oai_json_path_at(const char *body, size_t len, size_t off, char *out, size_t cap);

/* Parse just a JSON object body with the same size/depth/syntax checks
 * (for /tokenize, /detokenize). Owned json_t or NULL with 'e' filled. */
json_t *oai_parse_object(const char *body, size_t len, const OaiLimits *lim, OaiError *e);

/* Max nesting depth of the JSON text (arrays/objects; brackets inside
 * strings, including escaped quotes, do not count). Stops counting early
 * and returns limit + 1 once the depth exceeds 'limit'. */
int oai_json_depth(const char *body, size_t len, int limit);

/* ----------------------------------------------------------- responses */

/* One token's logprob entry: {"token","logprob","bytes":[..],"top_logprobs":[..]}.
 * 'piece' is the token's bytes (any bytes; "token" gets them as a string
 * with invalid UTF-8 replaced by U+FFFD, "bytes" the exact values). */
typedef struct {
    const char *piece;
    size_t piece_len;
    float logprob;
} OaiTokenLogprob;

json_t *oai_logprob_entry(const OaiTokenLogprob *tok, const OaiTokenLogprob *top, int n_top);

/* A JSON string from arbitrary bytes: invalid UTF-8 sequences become U+FFFD. */
json_t *oai_string_bytes(const char *s, size_t len);

typedef struct {
    int prompt_tokens, completion_tokens, cached_tokens;
} OaiUsage;

/* {"prompt_tokens","completion_tokens","total_tokens",
 *  "prompt_tokens_details":{"cached_tokens"},"completion_tokens_details":{"reasoning_tokens":0}} */
json_t *oai_usage_json(const OaiUsage *u);

/* The fixed envelope of a response or chunk: id, object, created, model,
 * system_fingerprint, and an empty "choices" array to append to. */
json_t *oai_envelope(const char *id, const char *object, long long created, const char *model,
                     const char *fingerprint);

/* A chat choice: {"index","message":{"role":"assistant","content","refusal":null},
 * "logprobs":{"content":[..],"refusal":null} | null,"finish_reason"}.
 * 'logprobs' (owned by the result afterwards) may be NULL; a JSON array (of
 * oai_logprob_entry objects) is wrapped as {"content":[..],"refusal":null},
 * an object is used as it is. finish_reason NULL is JSON null. */
json_t *oai_chat_choice(int index, const char *text, size_t len, json_t *logprobs,
                        const char *finish_reason);
/* A chat chunk choice: {"index","delta":{...},"logprobs":..|null,"finish_reason":..|null}.
 * role_first adds "role":"assistant"; text NULL omits "content";
 * finish_reason NULL is JSON null. */
json_t *oai_chat_chunk_choice(int index, bool role_first, const char *text, size_t len,
                              json_t *logprobs, const char *finish_reason);
/* A completion choice (also for streaming chunks): {"index","text",
 * "logprobs": legacy object {"tokens","token_logprobs","top_logprobs","text_offset"} | null,
 * "finish_reason"}. */
json_t *oai_completion_choice(int index, const char *text, size_t len, json_t *logprobs,
                              const char *finish_reason);

/* The legacy completion logprobs object, empty:
 * {"tokens":[],"token_logprobs":[],"top_logprobs":[],"text_offset":[]}. Owned. */
json_t *oai_completion_logprobs_new(void);
/* Append one token to 'lp' (from oai_completion_logprobs_new): its text
 * (invalid UTF-8 -> U+FFFD), its logprob, an object {text: logprob} of its
 * 'n_top' alternatives, and 'text_offset' (the token's byte offset in the
 * choice's text). Returns 0, or -1 when out of memory. */
int oai_completion_logprobs_add(json_t *lp, const OaiTokenLogprob *tok, const OaiTokenLogprob *top,
                                int n_top, long long text_offset);

/* {"object":"model","id","created","owned_by"} */
json_t *oai_model_json(const char *id, long long created, const char *owned_by);

/* Serialise compactly (JSON_COMPACT, UTF-8 kept); owned string or NULL. */
char *oai_dump(const json_t *j);

#endif
