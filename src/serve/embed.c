/* embed.c - POST /v1/embeddings: validate -> authenticate -> model ->
 * tokenize -> rate limit -> the scheduler's engine thread (sched_embed) ->
 * vectors as floats or base64.
 *
 * Every vector is L2-normalised (OpenAI's are); `dimensions` keeps the
 * first d components and normalises again, which is what Matryoshka-trained
 * models (nomic-embed-text v1.5, OpenAI's text-embedding-3) are trained for
 * and what their users ask for; for other models the truncated vector is
 * still a unit vector, only less faithful. Strings are tokenized with the
 * model's BOS / EOS rules (BERT's [CLS] ... [SEP]); token id inputs are
 * taken as they are. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/perf.h"
#include "serve/server_impl.h"

#define EMBED_MAX_TOKENS (1 << 22) /* tokens in one request, all inputs */

static enum MHD_Result fail(Server *s, SrvReq *q, struct MHD_Connection *c, OaiEmbedRequest *r,
                            const ServerModel *m, double retry) {
    oai_embed_request_free(r);
    if (m)
        pool_release(s->cfg.pool, m);
    return srv_respond_error(s, q, c, &q->err, retry);
}

/* Every input's token ids, one after another, and their lengths. */
static Status tokenize_inputs(const ServerModel *m, const OaiEmbedRequest *r, int32_t **tokens,
                              int32_t *lens, long long *total, OaiError *e) {
    int V = tok_n_vocab(m->tok);
    size_t cap = 0;
    for (int i = 0; i < r->n_inputs; i++) {
        const json_t *x = json_array_get(r->inputs, (size_t)i);
        cap += r->ids ? json_array_size(x) : json_string_length(x) + 3;
    }
    if (cap > EMBED_MAX_TOKENS)
        return oai_error_set(e, 400, "invalid_request_error", NULL, "input",
                             "input: about %zu tokens is above the limit of %d per request", cap,
                             EMBED_MAX_TOKENS);
    *tokens = malloc(sizeof **tokens * (cap ? cap : 1));
    if (!*tokens)
        return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t n = 0;
    TokEncodeOpts o = {.add_bos = tok_add_bos(m->tok), .add_eos = tok_add_eos(m->tok)};
    for (int i = 0; i < r->n_inputs; i++) {
        const json_t *x = json_array_get(r->inputs, (size_t)i);
        char param[48];
        snprintf(param, sizeof param, r->n_inputs > 1 || !r->ids ? "input[%d]" : "input", i);
        size_t k = 0;
        if (r->ids) {
            for (size_t j = 0; j < json_array_size(x); j++) {
                json_int_t t = json_integer_value(json_array_get(x, j));
                if (t >= V)
                    return oai_error_set(e, 400, "invalid_request_error", NULL, param,
                                         "%s[%zu]: token id %lld is out of range [0, %d)", param, j,
                                         (long long)t, V);
                (*tokens)[n + k++] = (int32_t)t;
            }
        } else {
            Err err = {0};
            if (tok_encode(m->tok, json_string_value(x), json_string_length(x), &o, *tokens + n,
                           cap - n, &k, &err))
                return oai_error_set(e, 400, "invalid_request_error", NULL, param, "%s: %s", param,
                                     err.msg);
        }
        lens[i] = (int32_t)k;
        n += k;
    }
    *total = (long long)n;
    return STATUS_OK;
}

/* One vector as the response's "embedding": floats, or base64 of the
 * little-endian float32 bytes (what the SDKs decode). */
static json_t *vector_json(const float *v, int d, bool base64) {
    if (!base64) {
        json_t *a = json_array();
        for (int i = 0; i < d; i++)
            json_array_append_new(a, json_real((double)v[i]));
        return a;
    }
    size_t nb = (size_t)d * 4;
    unsigned char *b = malloc(nb ? nb : 1);
    size_t cap = sodium_base64_ENCODED_LEN(nb, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);
    json_t *j = NULL;
    if (b && s) {
        for (int i = 0; i < d; i++) { /* the x86-64 layout is little-endian already */
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++)
                b[4 * i + k] = (unsigned char)(u >> (8 * k));
        }
        sodium_bin2base64(s, cap, b, nb, sodium_base64_VARIANT_ORIGINAL);
        j = json_string(s);
    }
    free(b);
    free(s);
    return j;
}

enum MHD_Result srv_route_embeddings(Server *s, SrvReq *q, struct MHD_Connection *c) {
    OaiEmbedRequest r;
    memset(&r, 0, sizeof r);
    if (!srv_authenticate(s, c, &q->auth, &q->err))
        return srv_respond_error(s, q, c, &q->err, 0);
    if (oai_parse_embeddings(q->body, q->len, &s->cfg.limits, &r, &q->err))
        return fail(s, q, c, &r, NULL, 0);
    double retry = 0;
    const ServerModel *m = srv_acquire_model(s, q, r.model[0] ? r.model : NULL, &retry);
    if (!m)
        return fail(s, q, c, &r, NULL, retry);
    int n_embd = model_config(m->model)->n_embd;
    if (r.dimensions > n_embd) {
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "dimensions",
                      "dimensions: %d is more than the model's %d", r.dimensions, n_embd);
        return fail(s, q, c, &r, m, 0);
    }
    int d = r.dimensions ? r.dimensions : n_embd;
    int32_t *lens = malloc(sizeof *lens * (size_t)r.n_inputs);
    int32_t *tokens = NULL;
    long long total = 0;
    if (!lens) {
        oai_error_set(&q->err, 500, "server_error", NULL, NULL, "out of memory");
        return fail(s, q, c, &r, m, 0);
    }
    if (tokenize_inputs(m, &r, &tokens, lens, &total, &q->err)) {
        free(tokens);
        free(lens);
        return fail(s, q, c, &r, m, 0);
    }
    int cost = total > INT32_MAX ? INT32_MAX : (int)total;
    RlVerdict v = rl_begin(s->rl, q->auth.tenant, &q->auth.limits, cost, perf_now(), &q->rl);
    q->has_rl = !q->auth.anonymous || q->auth.limits.rpm || q->auth.limits.tpm;
    if (v != RL_OK) {
        free(tokens);
        free(lens);
        oai_error_set(&q->err, 429, "requests", "rate_limit_exceeded", NULL,
                      "Rate limit reached for %s. Please try again in %.1fs.",
                      v == RL_REQUESTS ? "requests per minute"
                      : v == RL_TOKENS ? "tokens per minute"
                                       : "concurrent requests",
                      q->rl.retry_after);
        metrics_refused(s->metrics, v == RL_STREAMS ? "streams" : "rate_limit");
        return fail(s, q, c, &r, m, q->rl.retry_after > 0 ? q->rl.retry_after : 1);
    }
    float *out = malloc(sizeof *out * (size_t)n_embd * (size_t)r.n_inputs);
    Err err = {0};
    Status st = out ? sched_embed(m->sched, tokens, lens, r.n_inputs, true, out, &err)
                    : err_set(&err, STATUS_NOMEM, "out of memory for %d vectors", r.n_inputs);
    rl_finish(s->rl, q->auth.tenant, cost, st ? 0 : cost, perf_now());
    free(tokens);
    if (st) {
        free(out);
        free(lens);
        if (st == STATUS_BUSY)
            oai_error_set(&q->err, 503, "server_error", "server_overloaded", NULL, "%s", err.msg);
        else if (st == STATUS_LIMIT && strstr(err.msg, "context_length_exceeded"))
            oai_error_set(&q->err, 400, "invalid_request_error", "context_length_exceeded", "input",
                          "%s", err.msg + strlen("context_length_exceeded: "));
        else
            oai_error_set(&q->err, st == STATUS_NOMEM ? 500 : 400,
                          st == STATUS_NOMEM ? "server_error" : "invalid_request_error", NULL,
                          "input", "%s", err.msg);
        return fail(s, q, c, &r, m, st == STATUS_BUSY ? 1 : 0);
    }
    json_t *data = json_array();
    for (int i = 0; i < r.n_inputs; i++) {
        float *vec = out + (size_t)i * (size_t)n_embd;
        if (d < n_embd) { /* the first d components, normalised again */
            double ss = 0;
            for (int k = 0; k < d; k++)
                ss += (double)vec[k] * vec[k];
            float scale = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (int k = 0; k < d; k++)
                vec[k] *= scale;
        }
        json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i,
                                              "embedding", vector_json(vec, d, r.base64)));
    }
    free(out);
    free(lens);
    json_t *resp =
        json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", m->id,
                  "usage", "prompt_tokens", (json_int_t)total, "total_tokens", (json_int_t)total);
    oai_embed_request_free(&r);
    pool_release(s->cfg.pool, m);
    return srv_respond_json(s, q, c, 200, resp);
}
