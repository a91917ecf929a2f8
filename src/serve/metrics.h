/* metrics.h - the server's counters and histograms in Prometheus text
 * exposition format (version 0.0.4) for GET /metrics.
 *
 * Counters and gauges are set/added by the server; histograms have fixed
 * bucket bounds. metrics_render() writes everything as
 *   # HELP cgpt_<name> <help>
 *   # TYPE cgpt_<name> counter|gauge|histogram
 *   cgpt_<name>{labels} <value>
 * Thread-safe (one mutex). */
#ifndef CGPT_SERVE_METRICS_H
#define CGPT_SERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "engine/sched.h"
#include "safety/safety.h"
#include "serve/pool.h"

typedef struct Metrics Metrics;

Metrics *metrics_new(void);
void metrics_free(Metrics *m);

/* One HTTP response was sent: by route ("/v1/chat/completions", ...,
 * "other") and status code. */
void metrics_http(Metrics *m, const char *route, int status);
/* A generation finished: time to first token (seconds; < 0: none) and the
 * per-token gaps seen by the client (mean inter-token latency, seconds). */
void metrics_ttft(Metrics *m, double seconds);
void metrics_itl(Metrics *m, double seconds);
/* Requests refused: reason "queue_full", "rate_limit", "streams", "connections". */
void metrics_refused(Metrics *m, const char *reason);

/* A moderation flag or block: one count per category it names
 * (cgpt_moderation_total{direction,category,action}). */
void metrics_moderation(Metrics *m, SafeDir dir, unsigned categories, bool block);

/* Render everything plus each model's scheduler stats (running, queued,
 * tokens in/out, tokens/s (generated over busy seconds), KV blocks
 * used/free/cached, prefix-cache hits; labelled model="id"; counters
 * include earlier loads) and the pool's (models loaded, loads, unloads by
 * reason, load seconds, bytes; ps NULL: zeros). Returns an owned NUL-terminated string
 * (free()), NULL when out of memory. */
char *metrics_render(Metrics *m, const PoolInfo *models, int n_models, const PoolStats *ps,
                     int connections_open);

#endif
