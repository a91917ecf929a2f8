/* pool.h - the models a server offers, loaded when they are asked for.
 *
 * Every model on offer is an entry: its id, its file, and a state
 * (unloaded, loading, loaded, unloading). A request takes a reference with
 * pool_acquire(): an unloaded model is loaded then, on the requesting
 * thread, while later requests for it wait; a loaded one is handed out at
 * once. pool_release() gives the reference back when the request has ended
 * (for a stream: when its last byte is sent).
 *
 * Room. Before a load the pool makes room for it: while loading would pass
 * max_loaded models resident, or memory_budget bytes, it unloads the least
 * recently used loaded model that is idle (no reference, and its scheduler
 * neither runs nor queues anything) and is not pinned. A model in use is
 * never unloaded: when nothing can go, the request waits until something
 * can (up to wait_seconds, then STATUS_BUSY). Bytes count each loaded
 * model's file size (its weights, mapped or repacked) plus the KV pool pages
 * it has touched (sched_stats' kv_bytes_resident), and for the model to load
 * its file size; a model whose file alone passes the budget is refused
 * (STATUS_LIMIT).
 *
 * Keep-alive (Ollama's meaning): a model idle for keep_alive seconds after
 * its last request is unloaded by the pool's own thread; < 0 keeps models
 * until room is needed, 0 unloads one as soon as its last request ends.
 * Pinned models (loaded before the server starts: `cgpt serve -m`) stay.
 *
 * What is on offer: fixed entries (pool_add), and, with a scan hook, the
 * hook's list, read again when it is older than POOL_SCAN_SECONDS and the
 * list is looked at (also by the pool's thread), and for a request naming
 * an id not on offer, by a scan that started after the request arrived: a
 * model pulled while the server runs is found by the next request; one
 * removed is no longer offered and is unloaded once idle. The default
 * model (a request that names none) is the first on offer.
 *
 * Counters survive unloads: a model's scheduler counters (tokens, requests)
 * are added to its entry when it is unloaded, so /metrics never goes back.
 *
 * Thread safety: every function may be called from any thread. Entries are
 * never freed before pool_free(), so an id or a ServerModel handed out stays
 * readable; the model itself only while the reference is held. */
#ifndef CGPT_SERVE_POOL_H
#define CGPT_SERVE_POOL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "chat/chat.h"
#include "core/err.h"
#include "engine/sched.h"
#include "model/model.h"
#include "sample/preset.h"
#include "tokenizer/tokenizer.h"

#define POOL_MAX_MODELS 1024 /* entries on offer */
#define POOL_ID_MAX 256      /* bytes of an id, with its NUL */
#define POOL_SCAN_SECONDS 2.0
#define POOL_WAIT_SECONDS 600.0 /* default: how long a request waits for room */
#define POOL_KEEP_ALIVE 300.0   /* default keep-alive: 5 minutes */

/* A loaded model as served. */
typedef struct {
    const char *id; /* model id clients send and /v1/models lists */
    Model *model;
    const Tokenizer *tok;
    const ChatFormat *fmt;
    Sched *sched; /* started */
    long long created;
    SamplePreset preset; /* the file's general.sampling.*: defaults for unset request fields */
    void *handle;        /* the loader's own (PoolHooks) */
} ServerModel;

/* A model on offer, as a scan lists it. */
typedef struct {
    char id[POOL_ID_MAX];
    char path[PATH_MAX]; /* its (first) GGUF file */
    long long created;   /* Unix time */
    uint64_t bytes;      /* all its files */
    int n_ctx;           /* the context it will be served with (0: not known before loading) */
} PoolOffer;

typedef struct {
    /* Load the model at o->path: fill *out (started scheduler; id is set
     * by the pool). Runs on a request's thread with no lock held. */
    Status (*load)(void *ctx, const PoolOffer *o, ServerModel *out, Err *err);
    /* Stop and free what load made. */
    void (*unload)(void *ctx, ServerModel *m);
    /* The models on offer now, in order (owned: free()). NULL: only the
     * pool_add() entries. */
    Status (*scan)(void *ctx, PoolOffer **out, int *n, Err *err);
    void *ctx;
} PoolHooks;

typedef struct {
    int max_loaded;         /* models resident at once; 0: no limit */
    uint64_t memory_budget; /* bytes (see above); 0: no limit */
    double keep_alive;      /* seconds; < 0: forever */
    double wait_seconds;    /* a request's wait for room or a load; 0: POOL_WAIT_SECONDS */
    PoolHooks hooks;
} PoolConfig;

typedef enum { POOL_UNLOADED, POOL_LOADING, POOL_LOADED, POOL_UNLOADING } PoolState;

/* One entry as pool_list() shows it. */
typedef struct {
    char id[POOL_ID_MAX];
    long long created;
    PoolState state;
    int n_ctx; /* served context (0: not known until loaded) */
    int refs;  /* requests holding it */
    bool pinned;
    uint64_t bytes;      /* file bytes */
    uint64_t loads;      /* times loaded */
    double load_seconds; /* the last load's duration (0: never) */
    SchedStats stats;    /* live when loaded, plus the counters of earlier loads */
} PoolInfo;

typedef struct {
    int loaded, loading; /* models now */
    uint64_t loads, load_failures;
    uint64_t unloads_lru, unloads_idle, unloads_removed; /* why models were unloaded */
    double load_seconds_total;
    uint64_t bytes_loaded; /* as the budget counts them */
} PoolStats;

typedef struct Pool Pool;

/* Start a pool (and its keep-alive thread). */
Status pool_new(Pool **out, const PoolConfig *cfg, Err *err);
/* Unloads everything (servers using it stopped first) and frees. */
void pool_free(Pool *p);

/* Offer a model. 'loaded' (borrowed contents, copied): already loaded and
 * pinned (never unloaded); NULL: loaded on demand. Two entries with one id:
 * STATUS_INVALID. */
Status pool_add(Pool *p, const PoolOffer *o, const ServerModel *loaded, Err *err);

/* How a waiting request notices that its client left. */
typedef struct {
    bool (*gone)(void *arg);
    void *arg;
} PoolWaiter;

/* A reference to model 'id' (NULL or "": the default; an id without ':'
 * also names the only model on offer whose id is "ID:QUANT"), loading it
 * when needed. Errors: STATUS_NOT_FOUND (no such model on offer), STATUS_LIMIT
 * (its file alone passes the memory budget), STATUS_BUSY (no room within
 * the wait: every loaded model is in use; or the waiter's client left),
 * and the loader's errors ("cannot load model 'X': ..."). */
Status pool_acquire(Pool *p, const char *id, const PoolWaiter *w, const ServerModel **out,
                    Err *err);
/* Give back a reference pool_acquire() gave (NULL: nothing). */
void pool_release(Pool *p, const ServerModel *m);

/* Is 'id' on offer? (No load.) NULL or "": is there any model. */
bool pool_has(Pool *p, const char *id);
/* The default model's id into out ("" when none is on offer). */
void pool_default_id(Pool *p, char *out, size_t cap);
/* The models on offer, in order: owned array (free()), *n entries. Only
 * entries ever loaded when 'loaded_only'. NULL when out of memory. */
PoolInfo *pool_list(Pool *p, bool loaded_only, int *n);
void pool_stats(Pool *p, PoolStats *st);

const char *pool_state_name(PoolState s);

#endif
