/* fuzz_request.c - libFuzzer target for the OpenAI request parser
 * (serve/oai.c), exactly what the server runs on a body.
 *
 * The input is a request body. It goes to oai_parse_chat,
 * oai_parse_completion, oai_parse_embeddings and oai_parse_object with the
 * default limits. Every
 * rejection must carry a 4xx status, a type and a message, and its error
 * envelope must serialise; every accepted request must hold its
 * invariants (ranges, owned strings), and a chat request is answered with
 * a choice (text from the input's own bytes, so any bytes reach the
 * builders) and logprobs, dumped to JSON, and freed. An accepted chat
 * request's reply format is worked out for a template of each tool-call
 * format (serve/replyfmt.c: the generic format's rewritten messages, the
 * grammar from the grammar field, the schema or the tools), and any grammar
 * it gives must parse: a failure there is a 4xx, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sample/grammar.h"
#include "serve/oai.h"
#include "serve/replyfmt.h"

static volatile size_t sink;

static void check_error(const OaiError *e) {
    if (e->status < 400 || e->status > 599 || !e->type || !e->message[0])
        abort();
    json_t *j = oai_error_json(e);
    char *s = oai_dump(j);
    if (!s)
        abort(); /* an error envelope must always serialise */
    sink += strlen(s);
    free(s);
    json_decref(j);
}

static void check_request(const OaiRequest *r, const OaiLimits *lim) {
    if (!r->root || r->n < 1 || r->n > lim->max_n || r->n_stop < 0 || r->n_stop > OAI_MAX_STOP ||
        r->n_bias < 0 || r->n_bias > lim->max_logit_bias || r->top_logprobs < 0 ||
        r->top_logprobs > OAI_MAX_TOP_LOGPROBS || (r->top_logprobs && !r->logprobs) ||
        (r->include_usage && !r->stream) || r->max_tokens == 0 || r->max_tokens < -1 ||
        r->max_tokens > lim->max_tokens || !(r->temperature >= 0 && r->temperature <= 2) ||
        !(r->top_p >= 0 && r->top_p <= 1) || !(r->repeat_penalty > 0 && r->repeat_penalty <= 10))
        abort();
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i][0] || strlen(r->stop[i]) > OAI_MAX_STOP_BYTES)
            abort();
    for (int i = 0; i < r->n_bias; i++)
        if (r->bias[i].token < 0 || !(r->bias[i].bias >= -100 && r->bias[i].bias <= 100))
            abort();
    if (r->kind == OAI_CHAT && (!json_is_array(r->messages) || !json_array_size(r->messages)))
        abort();
    if (r->kind == OAI_COMPLETION && !r->prompt == !r->prompt_ids)
        abort();
}

/* A response for an accepted chat request; the text is the body's bytes. */
static void respond(const OaiRequest *r, const uint8_t *data, size_t size) {
    size_t len = size < 64 ? size : 64;
    json_t *env = oai_envelope("chatcmpl-fuzz", "chat.completion", 1, r->model, "fp");
    json_t *choices = json_object_get(env, "choices");
    OaiTokenLogprob top[3];
    for (int k = 0; k < 3; k++)
        top[k] = (OaiTokenLogprob){(const char *)data + k * len / 3, len / 3, -(float)k};
    for (int i = 0; i < r->n; i++) {
        json_t *lp = NULL;
        if (r->logprobs) {
            lp = json_array();
            json_array_append_new(lp, oai_logprob_entry(&top[0], top, r->top_logprobs % 4));
        }
        json_array_append_new(choices, oai_chat_choice(i, (const char *)data, len, lp, "stop"));
    }
    OaiUsage u = {.prompt_tokens = (int)size, .completion_tokens = (int)len};
    json_object_set_new(env, "usage", oai_usage_json(&u));
    char *s = oai_dump(env);
    if (!s)
        abort(); /* any bytes must give valid JSON */
    sink += strlen(s);
    free(s);
    json_decref(env);

    json_t *lp = oai_completion_logprobs_new();
    if (oai_completion_logprobs_add(lp, &top[0], top, 3, 0))
        abort();
    json_t *c = oai_completion_choice(0, (const char *)data, len, lp, NULL);
    s = oai_dump(c);
    if (!s)
        abort();
    free(s);
    json_decref(c);
}

/* Templates that make toolcall_detect pick each format (and <think>). */
static const char *const TEMPLATES[] = {
    "{{ messages }}",
    "<tool_call>{{ tools }}</tool_call><think>",
    "<|python_tag|>{{ tools }} ipython",
    "[TOOL_CALLS]{{ tools }}",
    "<|channel|>{{ tools }}",
};

static void reply_formats(const OaiRequest *r, const uint8_t *data, size_t size) {
    size_t k = size ? data[size - 1] % (sizeof TEMPLATES / sizeof *TEMPLATES) : 0;
    ReplyFmt f;
    OaiError e = {0};
    if (replyfmt_prepare(r, TEMPLATES[k], strlen(TEMPLATES[k]), &f, &e)) {
        check_error(&e);
        return;
    }
    if (!json_is_array(f.messages))
        abort();
    if (f.grammar) {
        Grammar *g = NULL;
        Err err = {0};
        Status st = grammar_parse(&g, f.grammar, f.grammar_len, NULL, &err);
        if (st && st != STATUS_LIMIT)
            abort(); /* what the server compiles must be a grammar */
        grammar_free(g);
    }
    replyfmt_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    OaiLimits lim = oai_default_limits();
    char *body = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    if (!body)
        return 0;
    memcpy(body, data, size);

    OaiRequest req;
    OaiError e = {0};
    if (oai_parse_chat(body, size, &lim, &req, &e) == STATUS_OK) {
        check_request(&req, &lim);
        respond(&req, data, size);
        reply_formats(&req, data, size);
        oai_request_free(&req);
    } else {
        check_error(&e);
        if (req.root)
            abort();
    }
    memset(&e, 0, sizeof e);
    if (oai_parse_completion(body, size, &lim, &req, &e) == STATUS_OK) {
        check_request(&req, &lim);
        oai_request_free(&req);
    } else {
        check_error(&e);
    }
    memset(&e, 0, sizeof e);
    OaiEmbedRequest er;
    if (oai_parse_embeddings(body, size, &lim, &er, &e) == STATUS_OK) {
        if (er.n_inputs < 1 || er.n_inputs > OAI_MAX_EMBED_INPUTS ||
            (size_t)er.n_inputs != json_array_size(er.inputs) || er.dimensions < 0)
            abort();
        oai_embed_request_free(&er);
    } else {
        check_error(&e);
    }
    memset(&e, 0, sizeof e);
    json_t *o = oai_parse_object(body, size, &lim, &e);
    if (o)
        json_decref(o);
    else
        check_error(&e);
    sink += (size_t)oai_json_depth(body, size, lim.max_json_depth);
    free(body);
    return 0;
}
