/* routes.c - POST /v1/chat/completions, /v1/completions, /tokenize,
 * /detokenize: validate -> authenticate -> rate limit -> prompt ->
 * scheduler -> wait or stream. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/perf.h"
#include "serve/job.h"
#include "serve/replyfmt.h"
#include "serve/server_impl.h"

#define ROUTE_POLL_MS 50 /* how often a waiting request looks at its socket */

/* ------------------------------------------------------------ prompt */

/* Render 'messages' through the model's chat template (with the generation
 * prompt) and tokenize. */
static Status render_messages(const ServerModel *m, json_t *messages, const json_t *extra,
                              int32_t **ids, int *n, OaiError *e) {
    Err err = {0};
    size_t nn = 0;
    /* "developer" is the newer name of "system" (spec 3.3); templates know "system". */
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg) {
        json_t *role = json_object_get(msg, "role");
        if (json_is_string(role) && !strcmp(json_string_value(role), "developer"))
            json_object_set_new(msg, "role", json_string("system"));
    }
    if (chat_tokenize(m->fmt, m->tok, messages, true, extra, ids, &nn, &err) != STATUS_OK) {
        oai_error_set(e, 400, "invalid_request_error", NULL, "messages", "%s", err.msg);
        return STATUS_INVALID;
    }
    *n = (int)nn;
    return STATUS_OK;
}

static Status completion_prompt(const ServerModel *m, const OaiRequest *r, int32_t **ids, int *n,
                                OaiError *e) {
    int V = tok_n_vocab(m->tok);
    if (r->prompt_ids) {
        for (int i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] < 0 || r->prompt_ids[i] >= V)
                return oai_error_set(e, 400, "invalid_request_error", NULL, "prompt",
                                     "prompt[%d]: token id %d is out of range [0, %d)", i,
                                     r->prompt_ids[i], V);
        *ids = malloc(sizeof(int32_t) * (size_t)(r->n_prompt_ids ? r->n_prompt_ids : 1));
        if (!*ids)
            return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        memcpy(*ids, r->prompt_ids, sizeof(int32_t) * (size_t)r->n_prompt_ids);
        *n = r->n_prompt_ids;
        return STATUS_OK;
    }
    size_t cap = r->prompt_len + 3;
    *ids = malloc(sizeof(int32_t) * cap);
    if (!*ids)
        return oai_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    TokEncodeOpts o = {.add_bos = tok_add_bos(m->tok)};
    size_t nn = 0;
    Err err = {0};
    if (tok_encode(m->tok, r->prompt ? r->prompt : "", r->prompt_len, &o, *ids, cap, &nn, &err)) {
        free(*ids);
        *ids = NULL;
        return oai_error_set(e, 400, "invalid_request_error", NULL, "prompt", "%s", err.msg);
    }
    *n = (int)nn;
    return STATUS_OK;
}

/* ------------------------------------------------------------ params */

static Status sched_params(const ServerModel *m, const OaiRequest *r, const ReplyFmt *rf,
                           const SrvAuth *auth, int max_tokens, SchedReqParams *p, LogitBias *bias,
                           OaiError *e) {
    memset(p, 0, sizeof *p);
    p->n_choices = r->n;
    p->max_tokens = max_tokens;
    SamplerParams *sp = &p->sampling;
    *sp = sampler_defaults();
    sp->temperature = r->top_p <= 0 ? 0 : r->temperature;
    sp->top_k = r->top_k;
    sp->top_p = r->top_p <= 0 ? 1 : r->top_p;
    sp->min_p = r->min_p;
    sp->repeat_penalty = r->repeat_penalty > 0 ? r->repeat_penalty : 1;
    sp->presence_penalty = r->presence_penalty;
    sp->frequency_penalty = r->frequency_penalty;
    sp->penalty_last_n = -1;
    /* Fields the request leaves unset take the model file's recommendation
     * (sample/preset.h); top_p 0 means greedy, which fixes the temperature. */
    unsigned given = r->sampling_set;
    if (r->top_p <= 0 && (given & PRESET_TOP_P))
        given |= PRESET_TEMP;
    preset_apply(&m->preset, given, sp);
    if (r->has_seed) {
        sp->seed = r->seed;
    } else {
        uint64_t seed;
        randombytes_buf(&seed, sizeof seed);
        sp->seed = seed;
    }
    int V = tok_n_vocab(m->tok);
    for (int i = 0; i < r->n_bias; i++) {
        if (r->bias[i].token >= V)
            return oai_error_set(e, 400, "invalid_request_error", NULL, "logit_bias",
                                 "logit_bias: token id %d is out of range [0, %d)",
                                 r->bias[i].token, V);
        bias[i].token = r->bias[i].token;
        bias[i].bias = r->bias[i].bias <= -100 ? -INFINITY : r->bias[i].bias;
    }
    sp->bias = bias;
    sp->n_bias = r->n_bias;
    p->stop = (const char *const *)r->stop;
    p->n_stop = r->n_stop;
    p->logprobs = r->logprobs;
    p->top_logprobs = r->logprobs ? r->top_logprobs : 0;
    json_t *ie = json_object_get(r->root, "ignore_eos");
    p->ignore_eos = json_is_true(ie);
    p->grammar = rf->grammar;
    p->grammar_len = rf->grammar_len;
    p->render_special = rf->render_special;
    memcpy(p->tenant, auth->tenant, sizeof p->tenant);
    return STATUS_OK;
}

/* ------------------------------------------------------------ streaming */

typedef struct {
    Server *s;
    Job *job;
    int fd;
    char *buf;
    size_t len, cap, off;
    bool done;
    SrvAuth auth;
    int cost;
    double t_start;
    SrvHook *hook;  /* may be NULL */
    double t_saved; /* when hook->progress last ran */
    const ServerModel *model; /* the pool's reference, given back at the end */
} Stream;

static void finish_accounting(Server *s, Job *job, const SrvAuth *auth, int cost) {
    int n_prompt = 0, n_cached = 0, n_gen = 0;
    job_usage(job, &n_prompt, &n_cached, &n_gen);
    rl_finish(s->rl, auth->tenant, cost, n_prompt + n_gen, perf_now());
    double ttft, itl;
    job_latency(job, &ttft, &itl);
    if (ttft >= 0)
        metrics_ttft(s->metrics, ttft);
    if (itl >= 0)
        metrics_itl(s->metrics, itl);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    Stream *st = cls;
    (void)pos;
    for (;;) {
        if (st->off < st->len) {
            size_t n = st->len - st->off < max ? st->len - st->off : max;
            memcpy(buf, st->buf + st->off, n);
            st->off += n;
            return (ssize_t)n;
        }
        if (st->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        st->len = st->off = 0;
        if (srv_client_gone(st->fd)) { /* nobody to tell: end quietly */
            job_cancel(st->job);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (atomic_load(&st->s->stopping)) { /* tell the client why the stream ends */
            job_cancel(st->job);
            static const char bye[] =
                "data: {\"error\":{\"message\":\"The server is shutting down; the reply is "
                "incomplete.\",\"type\":\"server_error\",\"param\":null,\"code\":"
                "\"server_shutting_down\"}}\n\ndata: [DONE]\n\n";
            free(st->buf);
            st->buf = strdup(bye);
            st->len = st->buf ? strlen(bye) : 0;
            st->cap = st->len;
            st->done = true;
            continue;
        }
        job_wait(st->job, ROUTE_POLL_MS);
        st->done = job_drain_sse(st->job, &st->buf, &st->len, &st->cap);
        double now = perf_now();
        if (st->hook && !st->done && now - st->t_saved >= SRV_HOOK_SECONDS) {
            st->hook->progress(st->hook, st->job, false);
            st->t_saved = now;
        }
    }
}

static void stream_free(void *cls) {
    Stream *st = cls;
    atomic_fetch_sub(&st->s->busy, 1);
    job_cancel(st->job); /* no-op when it ended */
    if (st->hook) {      /* the end, also when the client left: store it */
        st->hook->progress(st->hook, st->job, true);
        st->hook->free(st->hook);
    }
    finish_accounting(st->s, st->job, &st->auth, st->cost);
    job_unref(st->job);
    pool_release(st->s->cfg.pool, st->model);
    free(st->buf);
    free(st);
}

/* Takes the model's reference (given back when the stream ends). */
static enum MHD_Result start_stream(Server *s, SrvReq *q, struct MHD_Connection *c, Job *job,
                                    int cost, SrvHook *hook, const ServerModel *m) {
    Stream *st = calloc(1, sizeof *st);
    if (!st) {
        job_cancel(job);
        if (hook) {
            hook->progress(hook, job, true);
            hook->free(hook);
        }
        finish_accounting(s, job, &q->auth, cost);
        job_unref(job);
        pool_release(s->cfg.pool, m);
        atomic_fetch_sub(&s->busy, 1);
        return MHD_NO;
    }
    *st = (Stream){.s = s,
                   .job = job,
                   .fd = q->fd,
                   .auth = q->auth,
                   .cost = cost,
                   .hook = hook,
                   .t_saved = perf_now(),
                   .model = m};
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    for (int i = 0; hook && i < SRV_HOOK_HEADERS && hook->headers[i][0][0]; i++)
        MHD_add_response_header(r, hook->headers[i][0], hook->headers[i][1]);
    return srv_respond(s, q, c, 200, r);
}

/* Wait for the whole answer, watching the socket. False when the client
 * left (the request was cancelled). */
static bool wait_job(Server *s, SrvReq *q, Job *job) {
    bool gone = false, cancelled = false;
    while (!job_ended(job)) {
        if (!cancelled && (srv_client_gone(q->fd) || atomic_load(&s->stopping))) {
            gone = !atomic_load(&s->stopping);
            cancelled = true;
            job_cancel(job);
        }
        job_wait(job, ROUTE_POLL_MS);
    }
    return !gone;
}

/* ------------------------------------------------------------ generate */

static enum MHD_Result fail(Server *s, SrvReq *q, struct MHD_Connection *c, OaiRequest *r,
                            int32_t *ids, double retry_after) {
    free(ids);
    oai_request_free(r);
    return srv_respond_error(s, q, c, &q->err, retry_after);
}

enum MHD_Result srv_route_generate(Server *s, SrvReq *q, struct MHD_Connection *c, OaiKind kind) {
    OaiRequest r;
    memset(&r, 0, sizeof r);
    if (!srv_authenticate(s, c, &q->auth, &q->err))
        return srv_respond_error(s, q, c, &q->err, 0);
    Status st = kind == OAI_CHAT
                    ? oai_parse_chat(q->body, q->len, &s->cfg.limits, &r, &q->err)
                    : oai_parse_completion(q->body, q->len, &s->cfg.limits, &r, &q->err);
    if (st)
        return fail(s, q, c, &r, NULL, 0);
    return srv_generate(s, q, c, kind, &r, NULL);
}

/* A hook that was never started is still freed (its owner may undo). */
static enum MHD_Result fail_hook(Server *s, SrvReq *q, struct MHD_Connection *c, OaiRequest *r,
                                 int32_t *ids, double retry_after, SrvHook *hook) {
    if (hook)
        hook->free(hook);
    return fail(s, q, c, r, ids, retry_after);
}

/* Tokens the page leaves for a reply before it shortens a conversation. */
static int page_reply_room(int n_ctx) { return n_ctx / 4 < 512 ? n_ctx / 4 : 512; }

/* Removes the first message that is not a system message, unless it is
 * the last one; false when there is none to remove. */
static bool drop_oldest_turn(json_t *messages) {
    size_t n = json_array_size(messages);
    for (size_t i = 0; i + 1 < n; i++) {
        const char *role = json_string_value(json_object_get(json_array_get(messages, i), "role"));
        if (role && !strcmp(role, "system"))
            continue;
        return json_array_remove(messages, i) == 0;
    }
    return false;
}

/* generate() once the reply's format is known (chat; zeroed otherwise). */
static enum MHD_Result generate_with(Server *s, SrvReq *q, struct MHD_Connection *c, OaiKind kind,
                                     OaiRequest *rp, SrvHook *hook, const ServerModel *m,
                                     bool *kept, const ReplyFmt *rf) {
    OaiRequest r = *rp;
    int32_t *ids = NULL;
    int n = 0;
    Status st;
    ASSERT(!hook || r.stream); /* only streams are stored as they go */
    if ((kind == OAI_CHAT ? render_messages(m, rf->messages, rf->extra, &ids, &n, &q->err)
                          : completion_prompt(m, &r, &ids, &n, &q->err)))
        return fail_hook(s, q, c, &r, ids, 0, hook);
    int n_ctx = sched_n_ctx(m->sched);
    /* The page keeps a long conversation going, as ChatGPT does: while the
     * prompt leaves less than page_reply_room() tokens for the reply, its
     * oldest turn after the system prompt is left out of the prompt (the
     * store keeps it; the newest message always stays). */
    while (hook && kind == OAI_CHAT && n >= n_ctx - page_reply_room(n_ctx) &&
           drop_oldest_turn(rf->messages)) {
        free(ids);
        ids = NULL;
        if (render_messages(m, rf->messages, rf->extra, &ids, &n, &q->err))
            return fail_hook(s, q, c, &r, ids, 0, hook);
    }
    if (n < 1 || n >= n_ctx) {
        oai_error_set(&q->err, 400, "invalid_request_error", "context_length_exceeded",
                      kind == OAI_CHAT ? "messages" : "prompt",
                      "This model's maximum context length is %d tokens. However, your %s "
                      "resulted in %d tokens (and at least one more is needed for the reply).",
                      n_ctx, kind == OAI_CHAT ? "messages" : "prompt", n);
        return fail_hook(s, q, c, &r, ids, 0, hook);
    }
    /* A limit the request sets must fit beside the prompt (OpenAI answers
     * 400 naming both numbers, before any byte of a stream); without one
     * the reply may run to the end of the context. */
    int room = n_ctx - n;
    if (r.max_tokens > room) {
        const char *what = kind == OAI_CHAT ? "messages" : "prompt";
        oai_error_set(&q->err, 400, "invalid_request_error", "context_length_exceeded", what,
                      "This model's maximum context length is %d tokens. However, you requested "
                      "%lld tokens (%d in the %s, %d in the completion). Please reduce the "
                      "length of the %s or the completion.",
                      n_ctx, (long long)n + r.max_tokens, n, what, r.max_tokens, what);
        return fail_hook(s, q, c, &r, ids, 0, hook);
    }
    int max_tokens = r.max_tokens < 0 ? room : r.max_tokens;
    long long cost = (long long)n + (long long)r.n * max_tokens;
    /* The reply's share of the estimate is capped by the budget; a prompt
     * larger than the whole budget is refused by rl_begin (RL_TOKENS). */
    if (q->auth.limits.tpm > 0 && cost > q->auth.limits.tpm)
        cost = n > q->auth.limits.tpm ? n : q->auth.limits.tpm;
    RlVerdict v = rl_begin(s->rl, q->auth.tenant, &q->auth.limits, (int)cost, perf_now(), &q->rl);
    q->has_rl = !q->auth.anonymous || q->auth.limits.rpm || q->auth.limits.tpm;
    if (v != RL_OK) {
        const char *what = v == RL_REQUESTS ? "requests per minute"
                           : v == RL_TOKENS ? "tokens per minute"
                                            : "concurrent requests";
        oai_error_set(&q->err, 429, "requests", "rate_limit_exceeded", NULL,
                      "Rate limit reached for %s. Please try again in %.1fs.", what,
                      q->rl.retry_after);
        metrics_refused(s->metrics, v == RL_STREAMS ? "streams" : "rate_limit");
        return fail_hook(s, q, c, &r, ids, q->rl.retry_after > 0 ? q->rl.retry_after : 1, hook);
    }
    SchedReqParams p;
    LogitBias bias[OAI_MAX_LOGIT_BIAS];
    if (sched_params(m, &r, rf, &q->auth, max_tokens, &p, bias, &q->err)) {
        rl_finish(s->rl, q->auth.tenant, (int)cost, 0, perf_now());
        return fail_hook(s, q, c, &r, ids, 0, hook);
    }
    /* moderation of the input: a block answers the refusal without the
     * engine (after the rate limit counted it) */
    const char *route = hook ? "page" : q->route;
    char *context = NULL;
    unsigned blocked = 0;
    bool refuse =
        srv_check_input(s, &q->auth, route, kind, &r, &blocked, &context) == POLICY_BLOCK;
    JobSpec js = {.kind = kind == OAI_CHAT ? JOB_CHAT : JOB_COMPLETION,
                  .stream = r.stream,
                  .include_usage = r.include_usage,
                  .logprobs = r.logprobs && !refuse,
                  .top_logprobs = r.top_logprobs,
                  .n_choices = r.n,
                  .model = m->id,
                  .tok = m->tok,
                  .mod = refuse || !s->cfg.moderate ? NULL : s->cfg.mod,
                  .mod_context = context,
                  .audit = s->cfg.mod && s->cfg.moderate && !refuse
                               ? srv_job_audit(s, &q->auth, route)
                               : (JobAudit){0},
                  .parse = rf->parser && !refuse,
                  .tool_format = rf->parse,
                  .tool_flags = rf->flags};
    Job *job = job_new(&js);
    free(context);
    if (!job) {
        if (js.audit.free)
            js.audit.free(js.audit.ctx);
        rl_finish(s->rl, q->auth.tenant, (int)cost, 0, perf_now());
        oai_error_set(&q->err, 500, "server_error", NULL, NULL, "out of memory");
        return fail_hook(s, q, c, &r, ids, 0, hook);
    }
    SchedReq *sr = NULL;
    Err err = {0};
    st = STATUS_OK;
    if (refuse)
        job_refuse(job, policy_refusal(mod_policy(s->cfg.mod), blocked), n);
    else
        st = sched_submit(m->sched, ids, n, &p, job_on_event, job, &sr, &err);
    free(ids);
    ids = NULL;
    if (st) {
        job_unref(job); /* the engine's reference: never taken */
        job_unref(job);
        rl_finish(s->rl, q->auth.tenant, (int)cost, 0, perf_now());
        double retry = 0;
        if (st == STATUS_BUSY) {
            oai_error_set(&q->err, 503, "server_error", "server_overloaded", NULL,
                          "The engine is currently overloaded (%s); please try again later.",
                          err.msg);
            metrics_refused(s->metrics, "queue_full");
            retry = 1;
        } else if (st == STATUS_LIMIT && strstr(err.msg, "context_length_exceeded")) {
            oai_error_set(&q->err, 400, "invalid_request_error", "context_length_exceeded",
                          kind == OAI_CHAT ? "messages" : "prompt", "%s", err.msg);
        } else {
            oai_error_set(&q->err, st == STATUS_NOMEM ? 500 : 400,
                          st == STATUS_NOMEM ? "server_error" : "invalid_request_error", NULL, NULL,
                          "%s", err.msg);
        }
        return fail_hook(s, q, c, &r, NULL, retry, hook);
    }
    if (sr)
        job_attach(job, sr);
    atomic_fetch_add(&s->busy, 1);
    bool stream = r.stream;
    oai_request_free(&r);
    if (hook && !hook->start(hook, job)) { /* could not store the start: give up */
        job_cancel(job);
        hook->free(hook);
        finish_accounting(s, job, &q->auth, (int)cost);
        job_unref(job);
        atomic_fetch_sub(&s->busy, 1);
        oai_error_set(&q->err, 500, "server_error", NULL, NULL, "could not store the conversation");
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    if (stream) {
        *kept = true;
        return start_stream(s, q, c, job, (int)cost, hook, m);
    }
    bool here = wait_job(s, q, job);
    finish_accounting(s, job, &q->auth, (int)cost);
    atomic_fetch_sub(&s->busy, 1);
    if (!here) {
        job_unref(job);
        metrics_http(s->metrics, q->route, 499);
        return MHD_NO; /* the client left: close */
    }
    if (atomic_load(&s->stopping)) {
        job_unref(job);
        oai_error_set(&q->err, 503, "server_error", "server_shutting_down", NULL,
                      "The server is shutting down; the request was cancelled.");
        return srv_respond_error(s, q, c, &q->err, 1);
    }
    const char *error = NULL;
    json_t *resp = job_response(job, &error);
    enum MHD_Result res;
    if (!resp) {
        oai_error_set(&q->err, 500, "server_error", NULL, NULL, "%s",
                      error ? error : "the engine failed");
        res = srv_respond_error(s, q, c, &q->err, 0);
    } else {
        res = srv_respond_json(s, q, c, 200, resp);
    }
    job_unref(job);
    return res;
}

/* srv_generate with the model's reference in hand; *kept: a stream took
 * it (given back when the stream ends), else the caller gives it back.
 * A chat request's reply format (replyfmt.h) is worked out first: the
 * messages and tools to render, the grammar, how to read the output. */
static enum MHD_Result generate(Server *s, SrvReq *q, struct MHD_Connection *c, OaiKind kind,
                                OaiRequest *rp, SrvHook *hook, const ServerModel *m, bool *kept) {
    ReplyFmt rf = {0};
    if (model_config(m->model)->encoder) {
        oai_error_set(&q->err, 400, "invalid_request_error", "model_not_supported", "model",
                      "model '%s' is an embedding model (%s): it answers /v1/embeddings, it "
                      "cannot generate text",
                      m->id, model_config(m->model)->arch_name);
        return fail_hook(s, q, c, rp, NULL, 0, hook);
    }
    if (kind == OAI_CHAT) {
        size_t tlen = 0;
        const char *tsrc = chat_format_source(m->fmt, &tlen);
        if (replyfmt_prepare(rp, tsrc, tlen, &rf, &q->err))
            return fail_hook(s, q, c, rp, NULL, 0, hook);
    }
    enum MHD_Result res = generate_with(s, q, c, kind, rp, hook, m, kept, &rf);
    replyfmt_free(&rf);
    return res;
}

enum MHD_Result srv_generate(Server *s, SrvReq *q, struct MHD_Connection *c, OaiKind kind,
                             OaiRequest *rp, SrvHook *hook) {
    /* No model named: the first one served (as llama.cpp does). An
     * unloaded model is loaded now, this request waiting. */
    double retry = 0;
    const ServerModel *m = srv_acquire_model(s, q, rp->model, &retry);
    if (!m) {
        if (srv_client_gone(q->fd)) { /* it left while the model loaded: close */
            if (hook)
                hook->free(hook);
            oai_request_free(rp);
            metrics_http(s->metrics, q->route, 499);
            return MHD_NO;
        }
        return fail_hook(s, q, c, rp, NULL, retry, hook);
    }
    bool kept = false;
    enum MHD_Result res = generate(s, q, c, kind, rp, hook, m, &kept);
    if (!kept)
        pool_release(s->cfg.pool, m);
    return res;
}

/* ------------------------------------------------------------ tokenize */

/* The start of /tokenize and /detokenize: authenticate, parse the body and
 * take its model from the pool (absent or null: the default). Returns the
 * owned body, or NULL (q->err set) when the key or the JSON is refused; *m
 * is NULL (q->err set, *retry the Retry-After) when the body names no model
 * this server has or it cannot be loaded; else the caller gives it back. */
static json_t *open_body(Server *s, SrvReq *q, struct MHD_Connection *c, const ServerModel **m,
                         double *retry) {
    *m = NULL;
    *retry = 0;
    if (!srv_authenticate(s, c, &q->auth, &q->err))
        return NULL;
    json_t *body = oai_parse_object(q->body, q->len, &s->cfg.limits, &q->err);
    if (!body)
        return NULL;
    json_t *mj = json_object_get(body, "model");
    if (mj && !json_is_null(mj) && !json_is_string(mj))
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "model",
                      "model: expected a string");
    else
        *m = srv_acquire_model(s, q, json_is_string(mj) ? json_string_value(mj) : NULL, retry);
    return body;
}

static enum MHD_Result tokenize(Server *s, SrvReq *q, struct MHD_Connection *c, json_t *body,
                                const ServerModel *m, double retry) {
    json_t *messages = json_object_get(body, "messages");
    if (m && json_is_array(messages)) { /* a chat, as the template renders it */
        int32_t *ids = NULL;
        int n = 0;
        if (render_messages(m, messages, NULL, &ids, &n, &q->err)) {
            json_decref(body);
            return srv_respond_error(s, q, c, &q->err, 0);
        }
        json_t *arr = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(arr, json_integer(ids[i]));
        free(ids);
        json_decref(body);
        return srv_respond_json(s, q, c, 200, json_pack("{s:o}", "tokens", arr));
    }
    json_t *content = json_object_get(body, "content");
    if (!content)
        content = json_object_get(body, "prompt");
    json_t *as = json_object_get(body, "add_special");
    if (m && !json_is_string(content))
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "content",
                      "content: expected a string");
    else if (m && as && !json_is_boolean(as) && !json_is_null(as))
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "add_special",
                      "add_special: expected a boolean");
    if (!m || !json_is_string(content) || (as && !json_is_boolean(as) && !json_is_null(as))) {
        json_decref(body);
        return srv_respond_error(s, q, c, &q->err, m ? 0 : retry);
    }
    size_t len = json_string_length(content);
    int32_t *ids = malloc(sizeof(int32_t) * (len + 3));
    size_t n = 0;
    Err err = {0};
    TokEncodeOpts o = {.add_bos = json_is_true(as) && tok_add_bos(m->tok),
                       .add_eos = json_is_true(as) && tok_add_eos(m->tok)};
    if (!ids || tok_encode(m->tok, json_string_value(content), len, &o, ids, len + 3, &n, &err)) {
        free(ids);
        json_decref(body);
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "content", "%s",
                      ids ? err.msg : "out of memory");
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(ids[i]));
    free(ids);
    json_decref(body);
    return srv_respond_json(s, q, c, 200, json_pack("{s:o}", "tokens", arr));
}

static enum MHD_Result detokenize(Server *s, SrvReq *q, struct MHD_Connection *c, json_t *body,
                                  const ServerModel *m, double retry) {
    json_t *toks = json_object_get(body, "tokens");
    size_t n = json_array_size(toks);
    if (m && (!json_is_array(toks) || n > OAI_MAX_PROMPT_IDS))
        oai_error_set(&q->err, 400, "invalid_request_error", NULL, "tokens",
                      "tokens: expected an array of at most %d token ids", OAI_MAX_PROMPT_IDS);
    int32_t *ids = m && json_is_array(toks) && n <= OAI_MAX_PROMPT_IDS
                       ? malloc(sizeof(int32_t) * (n ? n : 1))
                       : NULL;
    int V = m ? tok_n_vocab(m->tok) : 0;
    for (size_t i = 0; ids && i < n; i++) {
        json_t *t = json_array_get(toks, i);
        json_int_t v = json_is_integer(t) ? json_integer_value(t) : -1;
        if (v < 0 || v >= V) {
            oai_error_set(&q->err, 400, "invalid_request_error", NULL, "tokens",
                          "tokens[%zu]: expected a token id in [0, %d)", i, V);
            free(ids);
            ids = NULL;
            break;
        }
        ids[i] = (int32_t)v;
    }
    json_decref(body);
    if (!ids)
        return srv_respond_error(s, q, c, &q->err, m ? 0 : retry);
    size_t need = tok_decode(m->tok, ids, n, false, NULL, 0);
    char *txt = malloc(need + 1);
    if (txt)
        tok_decode(m->tok, ids, n, false, txt, need + 1);
    free(ids);
    if (!txt) {
        oai_error_set(&q->err, 500, "server_error", NULL, NULL, "out of memory");
        return srv_respond_error(s, q, c, &q->err, 0);
    }
    json_t *j = json_pack("{s:o}", "content", oai_string_bytes(txt, need));
    free(txt);
    return srv_respond_json(s, q, c, 200, j);
}

/* The route around tokenize or detokenize: the body, the model's
 * reference, given back after the answer. */
static enum MHD_Result with_model(Server *s, SrvReq *q, struct MHD_Connection *c,
                                  enum MHD_Result (*fn)(Server *, SrvReq *, struct MHD_Connection *,
                                                        json_t *, const ServerModel *, double)) {
    const ServerModel *m = NULL;
    double retry = 0;
    json_t *body = open_body(s, q, c, &m, &retry);
    enum MHD_Result res =
        body ? fn(s, q, c, body, m, retry) : srv_respond_error(s, q, c, &q->err, 0);
    pool_release(s->cfg.pool, m);
    return res;
}

enum MHD_Result srv_route_tokenize(Server *s, SrvReq *q, struct MHD_Connection *c) {
    return with_model(s, q, c, tokenize);
}

enum MHD_Result srv_route_detokenize(Server *s, SrvReq *q, struct MHD_Connection *c) {
    return with_model(s, q, c, detokenize);
}
