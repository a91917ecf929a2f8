/* job.c - scheduler events -> buffered deltas -> OpenAI JSON / SSE. */
#include "serve/job.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/perf.h"
#include "serve/oai.h"

typedef struct {
    SchedEvType type;
    int choice;
    int32_t token;
    float logprob;
    int n_top;
    SchedTopLogprob top[SCHED_MAX_TOP_LOGPROBS];
    size_t off, len; /* text in Job.text */
    GenFinish finish;
} JobEv;

struct Job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    JobSpec spec;
    char model[OAI_MAX_MODEL_BYTES + 1];
    char id[48];
    long long created;
    SchedReq *req;
    bool cancelled;
    /* events not yet drained (streaming) / all events (non-streaming) */
    JobEv *ev;
    int n_ev, cap_ev;
    char *text;
    size_t n_text, cap_text;
    bool ended;
    bool done_sent;  /* streaming: [DONE] (or the error event) written */
    bool role_sent;  /* streaming: the role chunks */
    int n_prompt, n_cached, n_generated;
    double t_first;
    GenFinish finish[SCHED_MAX_CHOICES];
    char error[256];
    /* inter-token latency */
    double t_last[SCHED_MAX_CHOICES];
    double gap_sum;
    long gap_n;
    /* the text of choice 0, kept whole (streaming drains the events) */
    char *reply;
    size_t n_reply, cap_reply;
    double t_submit, t_end;
    /* output moderation, one per choice (NULL without JobSpec.mod); only
     * the draining / answering thread touches them */
    struct JobMod *mod;
    char *mod_context;
    /* reply parsing (spec.parse), touched only by the draining / answering
     * thread: a parser per choice for streams, what its events gave since
     * the last chunk, whether the choice made calls */
    ToolParser *tp[SCHED_MAX_CHOICES];
    uint64_t tool_seed;
    struct JobParsed {
        char *content, *reasoning;
        size_t n_content, n_reasoning, cap_content, cap_reasoning;
        json_t *calls; /* tool-call deltas, or NULL */
        bool oom;
    } parsed;
    bool made_calls[SCHED_MAX_CHOICES];
};

#define JOB_FINGERPRINT "fp_cgpt"

static void mod_free_choices(Job *j);
static bool mod_blocked(const Job *j, int c);
static struct JobMod *mod_alloc(int n_choices);
static char *mod_released(const Job *j, size_t *len);

Job *job_new(const JobSpec *spec) {
    Job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 2;
    j->spec = *spec;
    snprintf(j->model, sizeof j->model, "%s", spec->model ? spec->model : "");
    j->spec.model = j->model;
    uint8_t rnd[12];
    randombytes_buf(rnd, sizeof rnd);
    char hex[25];
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(j->id, sizeof j->id, "%s-%s", spec->kind == JOB_CHAT ? "chatcmpl" : "cmpl", hex);
    j->created = (long long)time(NULL);
    j->t_first = -1;
    j->t_submit = perf_now();
    randombytes_buf(&j->tool_seed, sizeof j->tool_seed);
    if (spec->mod) {
        j->mod = mod_alloc(spec->n_choices);
        j->mod_context = spec->mod_context ? strdup(spec->mod_context) : NULL;
        if (!j->mod || (spec->mod_context && !j->mod_context)) {
            j->spec.audit = (JobAudit){0}; /* the caller still owns it */
            job_unref(j);
            job_unref(j);
            return NULL;
        }
        j->spec.mod_context = j->mod_context;
    }
    return j;
}

void job_unref(Job *j) {
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    SchedReq *r = left == 0 ? j->req : NULL;
    pthread_mutex_unlock(&j->mu);
    if (left)
        return;
    if (r)
        sched_release(r);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    mod_free_choices(j);
    if (j->spec.audit.free)
        j->spec.audit.free(j->spec.audit.ctx);
    free(j->mod_context);
    for (int c = 0; c < SCHED_MAX_CHOICES; c++)
        toolcall_free(j->tp[c]);
    free(j->parsed.content);
    free(j->parsed.reasoning);
    json_decref(j->parsed.calls);
    free(j->ev);
    free(j->text);
    free(j->reply);
    free(j);
}

void job_attach(Job *j, SchedReq *r) {
    pthread_mutex_lock(&j->mu);
    j->req = r;
    bool cancel = j->cancelled;
    pthread_mutex_unlock(&j->mu);
    if (cancel)
        sched_cancel(r);
}

void job_cancel(Job *j) {
    pthread_mutex_lock(&j->mu);
    j->cancelled = true;
    SchedReq *r = j->req;
    bool ended = j->ended;
    pthread_mutex_unlock(&j->mu);
    if (r && !ended)
        sched_cancel(r);
}

static bool push_text(Job *j, const char *s, size_t n, size_t *off) {
    if (j->n_text + n > j->cap_text) {
        size_t cap = j->cap_text ? j->cap_text * 2 : 1024;
        while (cap < j->n_text + n)
            cap *= 2;
        char *t = realloc(j->text, cap);
        if (!t)
            return false;
        j->text = t;
        j->cap_text = cap;
    }
    if (n)
        memcpy(j->text + j->n_text, s, n);
    *off = j->n_text;
    j->n_text += n;
    return true;
}

static JobEv *push_ev(Job *j) {
    if (j->n_ev == j->cap_ev) {
        int cap = j->cap_ev ? j->cap_ev * 2 : 16;
        JobEv *e = realloc(j->ev, sizeof(JobEv) * (size_t)cap);
        if (!e)
            return NULL;
        j->ev = e;
        j->cap_ev = cap;
    }
    return &j->ev[j->n_ev++];
}

void job_on_event(void *ctx, const SchedEvent *ev) {
    Job *j = ctx;
    double now = perf_now();
    pthread_mutex_lock(&j->mu);
    if (ev->type == SCHED_EV_END) {
        j->ended = true;
        j->t_end = now;
        j->n_prompt = ev->n_prompt;
        j->n_cached = ev->n_cached;
        j->n_generated = ev->n_generated;
        j->t_first = ev->t_first;
        if (ev->finish == GEN_FINISH_ERROR && !j->error[0])
            snprintf(j->error, sizeof j->error, "%s", ev->error ? ev->error : "engine error");
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        job_unref(j); /* the engine's reference */
        return;
    }
    int c = ev->choice;
    if (ev->type == SCHED_EV_TOKEN && c >= 0 && c < SCHED_MAX_CHOICES) {
        if (j->t_last[c] > 0) {
            j->gap_sum += now - j->t_last[c];
            j->gap_n++;
        }
        j->t_last[c] = now;
    }
    if (ev->type == SCHED_EV_FINISH && ev->finish == GEN_FINISH_ERROR && !j->error[0])
        snprintf(j->error, sizeof j->error, "%s", ev->error ? ev->error : "engine error");
    if (c == 0 && ev->len) {
        if (j->n_reply + ev->len > j->cap_reply) {
            size_t cap = j->cap_reply ? j->cap_reply * 2 : 1024;
            while (cap < j->n_reply + ev->len)
                cap *= 2;
            char *r = realloc(j->reply, cap);
            if (r) {
                j->reply = r;
                j->cap_reply = cap;
            }
        }
        if (j->n_reply + ev->len <= j->cap_reply) {
            memcpy(j->reply + j->n_reply, ev->text, ev->len);
            j->n_reply += ev->len;
        }
    }
    JobEv *e = push_ev(j);
    size_t off = 0;
    if (!e || !push_text(j, ev->text, ev->len, &off)) {
        if (e)
            j->n_ev--;
        if (!j->error[0])
            snprintf(j->error, sizeof j->error, "out of memory buffering the reply");
    } else {
        e->type = ev->type;
        e->choice = c;
        e->token = ev->token;
        e->logprob = ev->logprob;
        e->n_top = ev->n_top < SCHED_MAX_TOP_LOGPROBS ? ev->n_top : SCHED_MAX_TOP_LOGPROBS;
        if (e->n_top > 0)
            memcpy(e->top, ev->top, sizeof(SchedTopLogprob) * (size_t)e->n_top);
        e->off = off;
        e->len = ev->len;
        e->finish = ev->finish;
        if (ev->type == SCHED_EV_FINISH && c >= 0 && c < SCHED_MAX_CHOICES)
            j->finish[c] = ev->finish;
    }
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

bool job_wait(Job *j, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->ended && (j->n_ev == 0 || !j->spec.stream)) {
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts))
            break;
    }
    bool ready = j->ended || (j->spec.stream && j->n_ev > 0);
    pthread_mutex_unlock(&j->mu);
    return ready;
}

bool job_ended(Job *j) {
    pthread_mutex_lock(&j->mu);
    bool e = j->ended;
    pthread_mutex_unlock(&j->mu);
    return e;
}

const char *job_id(const Job *j) { return j->id; }

void job_usage(Job *j, int *n_prompt, int *n_cached, int *n_generated) {
    pthread_mutex_lock(&j->mu);
    *n_prompt = j->n_prompt;
    *n_cached = j->n_cached;
    *n_generated = j->n_generated;
    pthread_mutex_unlock(&j->mu);
}

void job_latency(Job *j, double *ttft, double *itl) {
    pthread_mutex_lock(&j->mu);
    *ttft = j->t_first;
    *itl = j->gap_n ? j->gap_sum / (double)j->gap_n : -1;
    pthread_mutex_unlock(&j->mu);
}

char *job_reply(Job *j, size_t *len) {
    if (j->mod) /* what the checks let out */
        return mod_released(j, len);
    pthread_mutex_lock(&j->mu);
    char *r = malloc(j->n_reply + 1);
    if (r) {
        if (j->n_reply)
            memcpy(r, j->reply, j->n_reply);
        r[j->n_reply] = '\0';
        *len = j->n_reply;
    }
    pthread_mutex_unlock(&j->mu);
    return r;
}

char *job_reply_page(Job *j, size_t *len) {
    char *r = job_reply(j, len);
    if (!r || !j->spec.parse || !(j->spec.tool_flags & TOOLCALL_THINK_OPEN))
        return r;
    static const char open[] = "<think>";
    char *t = malloc(sizeof open - 1 + *len + 1);
    if (t) {
        memcpy(t, open, sizeof open - 1);
        memcpy(t + sizeof open - 1, r, *len + 1);
        *len += sizeof open - 1;
    }
    free(r);
    return t;
}

void job_outcome(Job *j, JobOutcome *o) {
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&j->mu);
    o->ended = j->ended;
    o->cancelled = j->cancelled;
    o->n_prompt = j->n_prompt;
    o->n_generated = j->n_generated;
    o->seconds = (j->ended ? j->t_end : perf_now()) - j->t_submit;
    o->finish = j->finish[0];
    snprintf(o->error, sizeof o->error, "%s", j->error);
    pthread_mutex_unlock(&j->mu);
    if (j->mod && mod_blocked(j, 0))
        o->finish = JOB_FINISH_FILTERED;
}

static const char *finish_reason(GenFinish f) {
    if (f == JOB_FINISH_FILTERED)
        return "content_filter";
    switch (f) {
    case GEN_FINISH_EOG:
    case GEN_FINISH_STOP:
        return "stop";
    case GEN_FINISH_LENGTH:
    case GEN_FINISH_CONTEXT:
        return "length";
    default:
        return "stop";
    }
}

/* ------------------------------------------------------------ logprobs */

static OaiTokenLogprob piece_of(const Tokenizer *t, int32_t id, float lp) {
    size_t n;
    const char *p = tok_piece(t, id, true, &n);
    return (OaiTokenLogprob){p ? p : "", n, lp};
}

/* A token event's piece and its top alternatives (as many as requested),
 * their bytes views of the tokenizer's pieces (valid while the job's model is
 * loaded). */
typedef struct {
    OaiTokenLogprob tok, top[SCHED_MAX_TOP_LOGPROBS];
    int n_top;
} Pieces;

static void pieces_of(const Job *j, const JobEv *e, Pieces *p) {
    p->tok = piece_of(j->spec.tok, e->token, e->logprob);
    p->n_top = e->n_top < j->spec.top_logprobs ? e->n_top : j->spec.top_logprobs;
    for (int i = 0; i < p->n_top; i++)
        p->top[i] = piece_of(j->spec.tok, e->top[i].id, e->top[i].logprob);
}

/* Chat: one {"token","logprob","bytes","top_logprobs"} entry. */
static json_t *chat_lp_entry(const Job *j, const JobEv *e) {
    Pieces p;
    pieces_of(j, e, &p);
    return oai_logprob_entry(&p.tok, p.top, p.n_top);
}

/* Legacy completions: append one token to the logprobs object. */
static void legacy_lp_add(const Job *j, json_t *lp, const JobEv *e, size_t *text_off) {
    Pieces p;
    pieces_of(j, e, &p);
    oai_completion_logprobs_add(lp, &p.tok, p.top, p.n_top, (long long)*text_off);
    *text_off += p.tok.piece_len;
}

/* Everything one choice produced among events [0, n): its text (into *out),
 * its logprobs (chat: {"content":[..],"refusal":null}; completion: the
 * legacy object) or NULL, and whether it finished. */
typedef struct {
    char *text;
    size_t len;
    json_t *logprobs;
    bool finished;
    GenFinish finish;
    bool any;
} ChoiceDelta;

static void collect(const Job *j, const JobEv *ev, int n, int choice, ChoiceDelta *d,
                    size_t *legacy_off) {
    memset(d, 0, sizeof *d);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (ev[i].choice == choice && ev[i].type != SCHED_EV_END)
            total += ev[i].len;
    d->text = malloc(total + 1);
    json_t *content = NULL;
    if (j->spec.logprobs)
        d->logprobs = j->spec.kind == JOB_CHAT ? json_object() : oai_completion_logprobs_new();
    if (d->logprobs && j->spec.kind == JOB_CHAT)
        content = json_array();
    for (int i = 0; i < n; i++) {
        const JobEv *e = &ev[i];
        if (e->choice != choice || e->type == SCHED_EV_END)
            continue;
        d->any = true;
        if (d->text && e->len) {
            memcpy(d->text + d->len, j->text + e->off, e->len);
            d->len += e->len;
        }
        if (e->type == SCHED_EV_TOKEN && d->logprobs && e->token >= 0) {
            if (content)
                json_array_append_new(content, chat_lp_entry(j, e));
            else
                legacy_lp_add(j, d->logprobs, e, legacy_off);
        }
        if (e->type == SCHED_EV_FINISH) {
            d->finished = true;
            d->finish = e->finish;
        }
    }
    if (content) {
        json_object_set_new(d->logprobs, "content", content);
        json_object_set_new(d->logprobs, "refusal", json_null());
    }
    if (d->text)
        d->text[d->len] = 0;
}

static json_t *usage_json(const Job *j) {
    OaiUsage u = {j->n_prompt, j->n_generated, j->n_cached};
    return oai_usage_json(&u);
}

/* ------------------------------------------------------------ SSE */

static bool append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return false;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

static void append_event(char **buf, size_t *len, size_t *cap, json_t *obj) {
    char *s = oai_dump(obj);
    json_decref(obj);
    if (!s)
        return;
    append(buf, len, cap, "data: ", 6);
    append(buf, len, cap, s, strlen(s));
    append(buf, len, cap, "\n\n", 2);
    free(s);
}

static json_t *chunk(const Job *j) {
    json_t *c = oai_envelope(j->id, j->spec.kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion",
                             j->created, j->model, JOB_FINGERPRINT);
    if (j->spec.include_usage)
        json_object_set_new(c, "usage", json_null());
    return c;
}

static void sse_raw(const Job *j, int index, bool role, const char *text, size_t len,
                    json_t *logprobs, const char *finish, char **buf, size_t *n, size_t *cap) {
    json_t *c = chunk(j);
    json_t *ch = j->spec.kind == JOB_CHAT
                     ? oai_chat_chunk_choice(index, role, text, len, logprobs, finish)
                     : oai_completion_choice(index, text ? text : "", text ? len : 0, logprobs, finish);
    json_array_append_new(json_object_get(c, "choices"), ch);
    append_event(buf, n, cap, c);
}

/* ------------------------------------------------------------ reply parsing */

/* A ToolParser's events, gathered into the next chunk's delta. */
static void on_parsed(void *user, const ToolEvent *ev) {
    struct JobParsed *p = user;
    json_t *last;
    switch (ev->kind) {
    case TOOLCALL_CONTENT:
        p->oom |= !append(&p->content, &p->n_content, &p->cap_content, ev->text, ev->len);
        break;
    case TOOLCALL_REASONING:
        p->oom |= !append(&p->reasoning, &p->n_reasoning, &p->cap_reasoning, ev->text, ev->len);
        break;
    case TOOLCALL_CALL_BEGIN:
        if (!p->calls)
            p->calls = json_array();
        json_array_append_new(p->calls, json_pack("{s:i,s:s,s:s,s:{s:s,s:s}}", "index", ev->index,
                                                  "id", ev->id, "type", "function", "function",
                                                  "name", ev->name, "arguments", ""));
        break;
    case TOOLCALL_CALL_ARGS:
        if (!p->calls)
            p->calls = json_array();
        last = json_array_get(p->calls, json_array_size(p->calls) - 1);
        if (!last || json_integer_value(json_object_get(last, "index")) != ev->index)
            json_array_append_new(p->calls, last = json_pack("{s:i,s:{s:s}}", "index", ev->index,
                                                             "function", "arguments", ""));
        if (last) {
            json_t *f = json_object_get(last, "function");
            const char *old = json_string_value(json_object_get(f, "arguments"));
            size_t n = old ? strlen(old) : 0;
            char *both = malloc(n + ev->len + 1);
            if (!both) {
                p->oom = true;
                break;
            }
            memcpy(both, old ? old : "", n);
            memcpy(both + n, ev->text, ev->len);
            both[n + ev->len] = '\0';
            json_object_set_new(f, "arguments", oai_string_bytes(both, n + ev->len));
            free(both);
        }
        break;
    case TOOLCALL_CALL_END: break;
    }
}

/* Choice c's parser, made on first use (NULL when out of memory). */
static ToolParser *parser_of(Job *j, int c) {
    if (!j->tp[c])
        j->tp[c] = toolcall_new(j->spec.tool_format, j->spec.tool_flags, j->tool_seed + (uint64_t)c,
                                on_parsed, &j->parsed);
    return j->tp[c];
}

/* The gathered delta as one chunk (with 'logprobs', taken), then cleared. */
static void sse_parsed(Job *j, int index, json_t *logprobs, char **buf, size_t *n, size_t *cap) {
    struct JobParsed *p = &j->parsed;
    if (p->n_content || p->n_reasoning || p->calls || logprobs) {
        json_t *c = chunk(j);
        json_t *ch = oai_chat_chunk_choice(index, false, p->n_content ? p->content : NULL,
                                           p->n_content, logprobs, NULL);
        json_t *delta = json_object_get(ch, "delta");
        if (p->n_reasoning)
            json_object_set_new(delta, "reasoning_content",
                                oai_string_bytes(p->reasoning, p->n_reasoning));
        if (p->calls) {
            json_object_set_new(delta, "tool_calls", p->calls);
            p->calls = NULL;
            j->made_calls[index] = true;
        }
        json_array_append_new(json_object_get(c, "choices"), ch);
        append_event(buf, n, cap, c);
    }
    json_decref(p->calls);
    p->calls = NULL;
    p->n_content = p->n_reasoning = 0;
}

/* A stream's text for choice index: through the parser when the job reads
 * replies, else as it is; a finish chunk when 'finish' (after the
 * parser's last events; "tool_calls" for a choice that made calls and
 * ended on its own). */
static void sse_choice_f(Job *j, int index, bool role, const char *text, size_t len,
                         json_t *logprobs, GenFinish *finish, char **buf, size_t *n, size_t *cap) {
    if (!j->spec.parse || j->spec.kind != JOB_CHAT || role) {
        sse_raw(j, index, role, text, len, logprobs, finish ? finish_reason(*finish) : NULL, buf, n,
                cap);
        return;
    }
    ToolParser *tp = parser_of(j, index);
    if (text && len && tp)
        toolcall_push(tp, text, len);
    if (finish && tp)
        toolcall_finish(tp);
    sse_parsed(j, index, logprobs, buf, n, cap);
    if (finish) {
        bool own = *finish == GEN_FINISH_EOG || *finish == GEN_FINISH_STOP;
        const char *why = own && j->made_calls[index] ? "tool_calls" : finish_reason(*finish);
        sse_raw(j, index, false, NULL, 0, NULL, why, buf, n, cap);
    }
}

/* Text (finish NULL) goes through sse_choice_f; a finish given as text
 * (content_filter) ends the choice as it is. */
static void sse_choice(Job *j, int index, bool role, const char *text, size_t len, json_t *logprobs,
                       const char *finish, char **buf, size_t *n, size_t *cap) {
    if (finish)
        sse_raw(j, index, role, text, len, logprobs, finish, buf, n, cap);
    else
        sse_choice_f(j, index, role, text, len, logprobs, NULL, buf, n, cap);
}

/* ------------------------------------------------------------ moderation */

/* One choice under output moderation: its text so far, what was let out,
 * the deltas held until the next check, and what the audit was told. */
struct JobMod {
    char *acc;
    size_t len, cap;
    size_t released;
    ModStream ms;
    bool blocked;
    unsigned audited; /* categories already recorded as flagged */
    ChoiceDelta *held;
    int n_held, cap_held;
};

static void mod_free_choices(Job *j) {
    if (!j->mod)
        return;
    for (int c = 0; c < (j->spec.n_choices > 0 ? j->spec.n_choices : 1); c++) {
        struct JobMod *m = &j->mod[c];
        for (int i = 0; i < m->n_held; i++) {
            free(m->held[i].text);
            json_decref(m->held[i].logprobs);
        }
        free(m->held);
        free(m->acc);
    }
    free(j->mod);
    j->mod = NULL;
}

static bool mod_blocked(const Job *j, int c) { return j->mod && j->mod[c].blocked; }

static struct JobMod *mod_alloc(int n_choices) {
    return calloc((size_t)(n_choices > 0 ? n_choices : 1), sizeof(struct JobMod));
}

static char *mod_released(const Job *j, size_t *len) {
    const struct JobMod *m = &j->mod[0];
    char *r = malloc(m->released + 1);
    if (r) {
        if (m->released)
            memcpy(r, m->acc, m->released);
        r[m->released] = '\0';
        *len = m->released;
    }
    return r;
}

static bool acc_add(struct JobMod *m, const char *t, size_t n) {
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        while (cap < m->len + n + 1)
            cap *= 2;
        char *p = realloc(m->acc, cap);
        if (!p)
            return false;
        m->acc = p;
        m->cap = cap;
    }
    if (n)
        memcpy(m->acc + m->len, t, n);
    m->len += n;
    m->acc[m->len] = '\0';
    return true;
}

/* Check choice c's text up to 'upto' (final: it ended). Records flags (each
 * category once) and blocks; true when the text may go out. */
static bool mod_step(Job *j, int c, size_t upto, bool final) {
    struct JobMod *m = &j->mod[c];
    if (!mod_stream_due(&m->ms, upto, final))
        return !m->blocked;
    ModResult r;
    size_t ctx_len = j->mod_context ? strlen(j->mod_context) : 0;
    mod_stream_check(j->spec.mod, &m->ms, m->acc, upto, j->mod_context, ctx_len, &r);
    bool news = (r.v.flagged & ~m->audited) != 0;
    if (r.v.action == POLICY_BLOCK || (r.v.action == POLICY_FLAG && news)) {
        m->audited |= r.v.flagged;
        if (j->spec.audit.record)
            j->spec.audit.record(j->spec.audit.ctx, SAFE_OUTPUT, &r, m->acc, upto);
    }
    if (r.v.action == POLICY_BLOCK) {
        m->blocked = true;
        return false;
    }
    m->released = upto;
    return true;
}

static void held_push(struct JobMod *m, ChoiceDelta *d) {
    if (m->n_held == m->cap_held) {
        int cap = m->cap_held ? m->cap_held * 2 : 8;
        ChoiceDelta *p = realloc(m->held, sizeof *p * (size_t)cap);
        if (!p) { /* drop it: the text stays in acc, only this chunk is lost */
            free(d->text);
            json_decref(d->logprobs);
            return;
        }
        m->held = p;
        m->cap_held = cap;
    }
    m->held[m->n_held++] = *d;
}

/* One choice's new events as SSE, through moderation when it is on. Takes
 * d's text and logprobs. */
static void emit_choice(Job *j, int c, ChoiceDelta *d, char **buf, size_t *len, size_t *cap) {
    if (!j->mod) {
        if (d->len || d->logprobs) {
            sse_choice(j, c, false, d->text ? d->text : "", d->len, d->logprobs, NULL, buf, len,
                       cap);
            d->logprobs = NULL;
        }
        if (d->finished)
            sse_choice_f(j, c, false, NULL, 0, NULL, &d->finish, buf, len, cap);
        free(d->text);
        json_decref(d->logprobs);
        return;
    }
    struct JobMod *m = &j->mod[c];
    bool finished = d->finished;
    GenFinish finish = d->finish;
    if (m->blocked || !acc_add(m, d->text ? d->text : "", d->len)) {
        bool oom = !m->blocked;
        free(d->text);
        json_decref(d->logprobs);
        if (oom) { /* cannot check what it cannot hold: stop, as a failed check would */
            m->blocked = true;
            job_cancel(j);
            sse_choice(j, c, false, NULL, 0, NULL, "content_filter", buf, len, cap);
        }
        return;
    }
    if (d->len || d->logprobs) {
        d->finished = false;
        held_push(m, d);
    } else {
        free(d->text);
        json_decref(d->logprobs);
    }
    if (!mod_step(j, c, m->len, finished)) {
        if (m->blocked) {
            for (int i = 0; i < m->n_held; i++) {
                free(m->held[i].text);
                json_decref(m->held[i].logprobs);
            }
            m->n_held = 0;
            job_cancel(j);
            sse_choice(j, c, false, NULL, 0, NULL, "content_filter", buf, len, cap);
        }
        return;
    }
    if (m->released == m->len) { /* checked through the end: let it all out */
        for (int i = 0; i < m->n_held; i++) {
            ChoiceDelta *h = &m->held[i];
            sse_choice(j, c, false, h->text ? h->text : "", h->len, h->logprobs, NULL, buf, len,
                       cap);
            free(h->text);
        }
        m->n_held = 0;
    }
    if (finished && m->n_held == 0)
        sse_choice_f(j, c, false, NULL, 0, NULL, &finish, buf, len, cap);
}

void job_refuse(Job *j, const char *refusal, int n_prompt) {
    size_t n = strlen(refusal);
    mod_free_choices(j); /* the refusal is ours: not checked, let out whole */
    for (int c = 0; c < j->spec.n_choices; c++) {
        SchedEvent t = {.type = SCHED_EV_TOKEN, .choice = c, .token = -1, .text = refusal, .len = n};
        SchedEvent f = {.type = SCHED_EV_FINISH, .choice = c, .finish = JOB_FINISH_FILTERED};
        job_on_event(j, &t);
        job_on_event(j, &f);
    }
    SchedEvent e = {.type = SCHED_EV_END, .n_prompt = n_prompt, .finish = JOB_FINISH_FILTERED};
    job_on_event(j, &e); /* drops the engine's reference */
}

/* ------------------------------------------------------------ answers */

/* A chat choice from the whole reply through the parser: content (null
 * when there are calls and no text), reasoning_content when there was
 * any, tool_calls when there were calls. Takes d's logprobs. */
static json_t *parsed_choice(Job *j, int c, ChoiceDelta *d, GenFinish fin) {
    ToolResult tr;
    bool ok = toolcall_parse(j->spec.tool_format, j->spec.tool_flags, j->tool_seed + (uint64_t)c,
                             d->text ? d->text : "", d->len, &tr) == STATUS_OK;
    bool own = fin == GEN_FINISH_EOG || fin == GEN_FINISH_STOP;
    const char *fr = own && ok && tr.n_calls ? "tool_calls" : finish_reason(fin);
    json_t *ch = ok ? oai_chat_choice(c, tr.content, tr.content_len, d->logprobs, fr)
                    : oai_chat_choice(c, d->text ? d->text : "", d->len, d->logprobs, fr);
    d->logprobs = NULL;
    json_t *msg = json_object_get(ch, "message");
    if (ok && tr.reasoning_len)
        json_object_set_new(msg, "reasoning_content",
                            oai_string_bytes(tr.reasoning, tr.reasoning_len));
    if (ok && tr.n_calls) {
        json_t *calls = json_array();
        for (int i = 0; i < tr.n_calls; i++) {
            const ToolCall *t = &tr.calls[i];
            json_array_append_new(
                calls, json_pack("{s:s,s:s,s:{s:o,s:o}}", "id", t->id, "type", "function",
                                 "function", "name", oai_string_bytes(t->name, strlen(t->name)),
                                 "arguments", oai_string_bytes(t->arguments, t->arguments_len)));
        }
        json_object_set_new(msg, "tool_calls", calls);
        if (!tr.content_len)
            json_object_set_new(msg, "content", json_null());
    }
    if (ok)
        toolcall_result_free(&tr);
    return ch;
}

json_t *job_response(Job *j, const char **error) {
    pthread_mutex_lock(&j->mu);
    if (j->error[0]) {
        *error = j->error;
        pthread_mutex_unlock(&j->mu);
        return NULL;
    }
    bool chat = j->spec.kind == JOB_CHAT;
    json_t *r = oai_envelope(j->id, chat ? "chat.completion" : "text_completion", j->created,
                             j->model, JOB_FINGERPRINT);
    json_t *choices = json_object_get(r, "choices");
    for (int c = 0; c < j->spec.n_choices; c++) {
        ChoiceDelta d;
        size_t off = 0;
        collect(j, j->ev, j->n_ev, c, &d, &off);
        GenFinish fin = d.finished ? d.finish : GEN_FINISH_LENGTH;
        if (j->mod && d.text && acc_add(&j->mod[c], d.text, d.len)) {
            /* the checks a stream would have made, in the same steps */
            size_t upto = 0;
            bool ok = true;
            while (ok && upto < d.len) {
                size_t step = mod_stream_step(&j->mod[c].ms);
                upto = d.len - upto > step ? upto + step : d.len;
                ok = mod_step(j, c, upto, upto == d.len);
            }
            if (j->mod[c].blocked) {
                d.len = j->mod[c].released;
                d.text[d.len] = '\0';
                json_decref(d.logprobs); /* they would describe text not given */
                d.logprobs = NULL;
                fin = JOB_FINISH_FILTERED;
            }
        }
        const char *fr = finish_reason(fin);
        if (chat && j->spec.parse)
            json_array_append_new(choices, parsed_choice(j, c, &d, fin));
        else
            json_array_append_new(
                choices,
                chat ? oai_chat_choice(c, d.text ? d.text : "", d.len, d.logprobs, fr)
                     : oai_completion_choice(c, d.text ? d.text : "", d.len, d.logprobs, fr));
        free(d.text);
    }
    json_object_set_new(r, "usage", usage_json(j));
    pthread_mutex_unlock(&j->mu);
    return r;
}

bool job_drain_sse(Job *j, char **buf, size_t *len, size_t *cap) {
    pthread_mutex_lock(&j->mu);
    if (j->done_sent) {
        pthread_mutex_unlock(&j->mu);
        return true;
    }
    bool chat = j->spec.kind == JOB_CHAT;
    if (!j->role_sent && chat) {
        for (int c = 0; c < j->spec.n_choices; c++)
            sse_choice(j, c, true, "", 0, NULL, NULL, buf, len, cap);
    }
    j->role_sent = true;
    if (j->error[0]) {
        OaiError e;
        oai_error_set(&e, 500, "server_error", NULL, NULL, "%s", j->error);
        append_event(buf, len, cap, oai_error_json(&e));
        append(buf, len, cap, "data: [DONE]\n\n", 14);
        j->done_sent = true;
        j->n_ev = 0;
        j->n_text = 0;
        pthread_mutex_unlock(&j->mu);
        return true;
    }
    ChoiceDelta d[SCHED_MAX_CHOICES];
    int nc = j->spec.n_choices < SCHED_MAX_CHOICES ? j->spec.n_choices : SCHED_MAX_CHOICES;
    for (int c = 0; c < nc; c++) {
        size_t off = 0;
        collect(j, j->ev, j->n_ev, c, &d[c], &off);
    }
    j->n_ev = 0;
    j->n_text = 0;
    bool ended = j->ended;
    json_t *usage = ended && j->spec.include_usage ? usage_json(j) : NULL;
    /* moderation reads text outside the lock: the engine thread must not
     * wait on a check */
    pthread_mutex_unlock(&j->mu);
    for (int c = 0; c < nc; c++) {
        if (d[c].any) {
            emit_choice(j, c, &d[c], buf, len, cap);
        } else {
            free(d[c].text);
            json_decref(d[c].logprobs);
        }
    }
    if (ended) {
        if (usage) {
            json_t *u = oai_envelope(j->id, chat ? "chat.completion.chunk" : "text_completion",
                                     j->created, j->model, JOB_FINGERPRINT);
            json_object_set_new(u, "usage", usage);
            append_event(buf, len, cap, u);
        }
        append(buf, len, cap, "data: [DONE]\n\n", 14);
        pthread_mutex_lock(&j->mu);
        j->done_sent = true;
        pthread_mutex_unlock(&j->mu);
    }
    return ended;
}
