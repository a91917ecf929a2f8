/* job.h - one generation request as the HTTP side sees it: the bridge
 * between the scheduler's events (engine thread) and the connection's
 * thread that writes the response.
 *
 * job_on_event() is the SchedOnEvent callback: it only appends the event
 * (text bytes, token, logprobs) to the job's buffers under the job's mutex
 * and signals; all JSON is built on the connection's thread:
 *   - streaming: job_wait() then job_drain_sse() turns what arrived into
 *     SSE events ("data: <chunk>\n\n"), coalescing the tokens each choice
 *     produced since the last drain into one chunk, the finish chunks, the
 *     usage chunk (include_usage) and "data: [DONE]\n\n" at the end; an
 *     engine error becomes "data: {"error":...}\n\n", then [DONE];
 *   - non-streaming: job_wait() until ended, then job_response() builds the
 *     whole chat.completion / text_completion object.
 *
 * Lifetime: job_new() returns a job holding two references, the caller's
 * and the engine's; the engine's is dropped after SCHED_EV_END (inside
 * job_on_event), the caller's with job_unref(). */
#ifndef CGPT_SERVE_JOB_H
#define CGPT_SERVE_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "chat/toolcall.h"
#include "engine/sched.h"
#include "safety/moderate.h"
#include "tokenizer/tokenizer.h"

typedef enum { JOB_CHAT, JOB_COMPLETION } JobKind;

/* A flag or block to record (the server writes it to the audit and the
 * metrics): the direction, the verdict and the text checked. */
typedef struct {
    void (*record)(void *ctx, SafeDir dir, const ModResult *r, const char *text, size_t len);
    void (*free)(void *ctx);
    void *ctx; /* owned by the job once job_new() returns */
} JobAudit;

/* A finish of our own beside the engine's: moderation stopped the choice
 * (finish_reason "content_filter"). */
#define JOB_FINISH_FILTERED ((GenFinish)101)

typedef struct {
    JobKind kind;
    bool stream;
    bool include_usage;
    bool logprobs;
    int top_logprobs;
    int n_choices;
    const char *model;      /* copied */
    const Tokenizer *tok;   /* borrowed: token pieces for logprobs */
    /* Output moderation (NULL: none). Text is let out only once a check
     * passed it: in streams a check runs on the schedule of
     * mod_stream_due (MOD_STREAM_FIRST bytes at first, then
     * MOD_STREAM_EVERY) and at the end, so a reply arrives in such steps; a
     * non-streaming reply is checked the same way before it is answered.
     * A block stops the request: the choice ends with content_filter and
     * keeps only the text already let out. */
    Moderator *mod;         /* borrowed */
    const char *mod_context; /* the prompt's last user text, for classifiers that read it; copied */
    JobAudit audit;         /* called for every flag or block (record may be NULL) */
    /* Chat replies read by chat/toolcall.h's parser: content, reasoning
     * (message.reasoning_content) and tool calls (message.tool_calls, in
     * streams as OpenAI's tool-call deltas: index, id, type and name
     * first, then argument fragments). A choice that made calls and ended
     * on its own finishes with "tool_calls". */
    bool parse;
    ToolFormat tool_format;
    unsigned tool_flags; /* TOOLCALL_THINK* */
} JobSpec;

typedef struct Job Job;

Job *job_new(const JobSpec *spec);
void job_unref(Job *j);
/* The SchedOnEvent callback; ctx is the Job. */
void job_on_event(void *ctx, const SchedEvent *ev);

/* Answer without the engine: every choice is 'refusal' and ends with
 * content_filter (an input the policy blocks); n_prompt counts in usage.
 * Drops the engine's reference: call instead of sched_submit. */
void job_refuse(Job *j, const char *refusal, int n_prompt);

/* Set the scheduler handle (after sched_submit) so cancel can reach it. */
void job_attach(Job *j, SchedReq *r);
/* Cancel the request (client gone); safe to call more than once. */
void job_cancel(Job *j);

/* Wait up to 'timeout_ms' for new events; true when there is something to
 * drain or the job has ended. */
bool job_wait(Job *j, int timeout_ms);
bool job_ended(Job *j);

/* Streaming: append the SSE bytes for everything that arrived to *buf
 * (growing it; *len and *cap updated). Returns true once the stream is
 * complete ([DONE] appended). */
bool job_drain_sse(Job *j, char **buf, size_t *len, size_t *cap);

/* After the end: the response object, or NULL when the engine failed
 * (then *error gets the message, static until job_unref). */
json_t *job_response(Job *j, const char **error);

/* The text of choice 0 so far, whole (streaming drains events but not
 * this; with moderation, only what a check let out): an owned
 * NUL-terminated copy (free()), *len its bytes; NULL when out of memory.
 * With moderation, call it from the thread that drains the job. */
char *job_reply(Job *j, size_t *len);
/* job_reply() as the page stores it: the text the assistant's turn holds,
 * so that it alone says where reasoning is. When the prompt opened the
 * model's thinking (TOOLCALL_THINK_OPEN, DeepSeek-R1's templates), the
 * model's text starts inside <think> without writing it: "<think>" is put
 * in front. Owned, as job_reply(). */
char *job_reply_page(Job *j, size_t *len);

typedef struct {
    bool ended;     /* the engine is done with it */
    bool cancelled; /* job_cancel() was called (the client left) */
    int n_prompt, n_generated;
    double seconds;   /* from job_new() to the end (or to now) */
    GenFinish finish; /* of choice 0, once ended (JOB_FINISH_FILTERED: moderation) */
    char error[256];  /* "" unless the engine failed */
} JobOutcome;

/* Where the request stands, for storing it (the page keeps its replies). */
void job_outcome(Job *j, JobOutcome *o);

/* The request's id ("chatcmpl-..." / "cmpl-...") and token counts at the end. */
const char *job_id(const Job *j);
void job_usage(Job *j, int *n_prompt, int *n_cached, int *n_generated);
/* Seconds from submit to the first token (< 0 if none) and the mean gap
 * between the tokens of a choice (< 0 if fewer than two). */
void job_latency(Job *j, double *ttft, double *itl);

#endif
