/* chat.c - `cgpt chat [-m MODEL]`: a terminal ChatGPT.
 *
 * On a terminal: line editing and history (libedit), the reply streamed as
 * it is generated, Ctrl-C stops the reply (not the program), Ctrl-D quits.
 * A line ending in a backslash continues on the next line (multi-line
 * input). Commands: /system TEXT, /reset, /save FILE, /load FILE, /stats,
 * /help, /quit. When the conversation no longer fits the context, the
 * oldest turns (after the system message) are dropped and the user is told.
 *
 * With stdin not a terminal (a pipe): no banner, no prompts; each input
 * line is one user message and its reply is printed followed by a newline.
 *
 * In both modes a line starting with '/' is a command, and one starting
 * with "//" is a message that starts with a single '/' (the first is
 * dropped). The context is the model's (its trained length, at most 4096)
 * unless -c asks for another.
 *
 * The conversation is a JSON message list rendered through the model's
 * chat template every turn; the engine reuses the KV cache for the prefix
 * that did not change, so each turn only computes the new text.
 *
 * Moderation (on unless --no-moderation; docs/SAFETY.md): a message the
 * policy blocks is answered with the policy's refusal and left out of the
 * conversation; a reply is printed only as checks pass it (on
 * mod_stream_due's schedule and at the end), and one the policy blocks stops
 * there, with a notice on stderr. Flags and blocks go to the data
 * directory's audit (route "chat"), as the server's do. */
#include <editline/readline.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "engine/generate.h"
#include "store/store.h"

#define CHAT_MAX_INPUT (1u << 20) /* bytes of one user message */
#define CHAT_REPLY_RESERVE 256    /* context kept free for the reply when trimming */

typedef struct {
    CliModel cm;
    GenSession gs;
    GenParams gp;
    json_t *messages; /* the conversation */
    bool tty;
    char *reply;      /* the reply being streamed */
    size_t reply_len, reply_cap;
    GenStats last;
    bool have_last;
    /* moderation (NULL: off) */
    Moderator *mod;
    Store *store;      /* the audit; NULL when the data directory cannot be opened */
    ModStream ms;
    size_t printed;    /* bytes of the reply shown */
    bool blocked;
    unsigned blocked_cats;
    const char *context; /* the user message being answered */
} Chat;

static GenSession *volatile g_active; /* for the SIGINT handler */

/* Ctrl-C: stop the reply being generated. At the prompt it only reminds how
 * to leave; reads restart (SA_RESTART) so the line being typed survives. */
static void on_sigint(int sig) {
    (void)sig;
    static const char hint[] = "\n(Ctrl-D or /quit to leave)\n";
    if (g_active)
        gen_cancel(g_active);
    else if (write(STDERR_FILENO, hint, sizeof hint - 1) < 0)
        return;
}

/* Record a flag or block in the audit (best effort: a chat without a data
 * directory still runs). */
static void audit(Chat *c, SafeDir dir, const ModResult *r, const char *text, size_t len) {
    if (!c->store || r->v.action == POLICY_ALLOW)
        return;
    char cats[SAFE_N_CAT * 24] = "", hash[2 * MOD_HASH_BYTES + 1];
    for (int k = 0; k < SAFE_N_CAT; k++)
        if (r->v.flagged & (1u << k)) {
            size_t n = strlen(cats);
            snprintf(cats + n, sizeof cats - n, "%s%s", n ? "," : "", safe_cat_name(k));
        }
    mod_hash_hex(r->hash, hash);
    StoreAudit a = {.route = "chat",
                    .direction = safe_dir_name(dir),
                    .action = r->v.action == POLICY_BLOCK ? "block" : "flag",
                    .categories = cats,
                    .classifier = mod_name(c->mod),
                    .error = r->error ? r->why : "",
                    .content_hash = hash,
                    .content = mod_policy(c->mod)->audit_content ? text : NULL,
                    .content_len = len};
    Err err = {0};
    if (store_audit_add(c->store, &a, &err))
        fprintf(stderr, "cgpt chat: audit: %s\n", err.msg);
}

/* Check the reply so far (final: it ended); show what passed. False when
 * the policy blocked it. */
static bool check_reply(Chat *c, bool final) {
    if (!c->mod) {
        fwrite(c->reply + c->printed, 1, c->reply_len - c->printed, stdout);
        c->printed = c->reply_len;
        fflush(stdout);
        return true;
    }
    if (c->blocked || !mod_stream_due(&c->ms, c->reply_len, final))
        return !c->blocked;
    ModResult r;
    mod_stream_check(c->mod, &c->ms, c->reply, c->reply_len, c->context,
                     c->context ? strlen(c->context) : 0, &r);
    audit(c, SAFE_OUTPUT, &r, c->reply, c->reply_len);
    if (r.v.action == POLICY_BLOCK) {
        c->blocked = true;
        c->blocked_cats = r.v.blocked;
        return false;
    }
    fwrite(c->reply + c->printed, 1, c->reply_len - c->printed, stdout);
    c->printed = c->reply_len;
    fflush(stdout);
    return true;
}

static bool on_text(void *ctx, const char *text, size_t len) {
    Chat *c = ctx;
    if (c->reply_len + len + 1 > c->reply_cap) {
        size_t cap = (c->reply_cap + len + 1) * 2;
        char *nb = realloc(c->reply, cap);
        if (!nb)
            return false;
        c->reply = nb;
        c->reply_cap = cap;
    }
    memcpy(c->reply + c->reply_len, text, len);
    c->reply_len += len;
    c->reply[c->reply_len] = '\0';
    return check_reply(c, false); /* false stops the generation */
}

/* The categories of a mask, for a notice. */
static void cat_list(unsigned mask, char *out, size_t cap) {
    out[0] = '\0';
    for (int k = 0; k < SAFE_N_CAT; k++)
        if (mask & (1u << k)) {
            size_t n = strlen(out);
            snprintf(out + n, cap - n, "%s%s", n ? ", " : "", safe_cat_name(k));
        }
}

static void add_message(Chat *c, const char *role, const char *content, size_t len) {
    json_t *m = json_object();
    json_object_set_new(m, "role", json_string(role));
    json_object_set_new(m, "content", json_stringn(content, len));
    json_array_append_new(c->messages, m);
}

static bool has_system(const Chat *c) {
    json_t *first = json_array_get(c->messages, 0);
    return first && !strcmp(json_string_value(json_object_get(first, "role")), "system");
}

/* Render and tokenize the conversation, dropping the oldest turns (after a
 * system message) until it fits with room for a reply. */
static Status build_prompt(Chat *c, int32_t **ids, size_t *n, Err *err) {
    int n_ctx = c->gs.cap, dropped = 0;
    for (;;) {
        Status st = chat_tokenize(c->cm.fmt, c->cm.tok, c->messages, true, NULL, ids, n, err);
        if (st)
            return st;
        int reserve = n_ctx / 4 < CHAT_REPLY_RESERVE ? n_ctx / 4 : CHAT_REPLY_RESERVE;
        if ((int)*n + reserve <= n_ctx)
            break;
        size_t first = has_system(c) ? 1 : 0;
        if (json_array_size(c->messages) <= first + 1) {
            free(*ids);
            *ids = NULL;
            return err_set(err, STATUS_LIMIT,
                           "the message needs %zu tokens; the context holds %d (use -c)", *n,
                           n_ctx);
        }
        free(*ids);
        *ids = NULL;
        json_array_remove(c->messages, first);
        dropped++;
    }
    if (dropped)
        fprintf(stderr, "(context full: dropped the %d oldest message%s)\n", dropped,
                dropped > 1 ? "s" : "");
    return STATUS_OK;
}

static Status turn(Chat *c, const char *input, size_t len, Err *err) {
    if (c->mod) { /* the message first: a block answers the refusal, and it stays out */
        SafeText t = {.dir = SAFE_INPUT, .text = input, .len = len};
        ModResult r;
        mod_check(c->mod, &t, &r);
        audit(c, SAFE_INPUT, &r, input, len);
        if (r.v.action == POLICY_BLOCK) {
            char cats[512];
            cat_list(r.v.blocked, cats, sizeof cats);
            puts(policy_refusal(mod_policy(c->mod), r.error ? 0 : r.v.blocked));
            fflush(stdout);
            if (c->tty)
                fprintf(stderr, "(not sent: the content policy blocks %s)\n",
                        r.error ? "everything while the classifier fails" : cats);
            return STATUS_OK;
        }
    }
    add_message(c, "user", input, len);
    int32_t *ids = NULL;
    size_t n = 0;
    Status st = build_prompt(c, &ids, &n, err);
    if (st) {
        json_array_remove(c->messages, json_array_size(c->messages) - 1);
        return st;
    }
    c->reply_len = c->printed = 0;
    c->ms = (ModStream){0};
    c->blocked = false;
    c->context = input;
    if (c->reply)
        c->reply[0] = '\0';
    g_active = &c->gs;
    st = gen_generate(&c->gs, ids, (int)n, &c->gp, on_text, c, NULL, &c->last, err);
    g_active = NULL;
    free(ids);
    if (st)
        return st;
    c->have_last = true;
    check_reply(c, true); /* the rest of the reply, checked */
    if (c->blocked && !c->printed) /* nothing shown: the refusal stands as the reply */
        fputs(policy_refusal(mod_policy(c->mod), c->blocked_cats), stdout);
    putchar('\n');
    if (c->blocked) {
        char cats[512];
        cat_list(c->blocked_cats, cats, sizeof cats);
        fprintf(stderr, "(reply stopped: the content policy blocks %s)\n", cats);
    } else if (c->last.finish == GEN_FINISH_CANCELLED && c->tty) {
        fprintf(stderr, "(stopped)\n");
    }
    add_message(c, "assistant", c->reply ? c->reply : "", c->printed);
    return STATUS_OK;
}

static void print_help(void) {
    fprintf(stderr, "commands:\n"
                    "  /system TEXT   set the system message (starts a new conversation)\n"
                    "  /reset         start a new conversation\n"
                    "  /save FILE     save the conversation as JSON\n"
                    "  /load FILE     load a conversation saved with /save\n"
                    "  /stats         speed of the last reply and context used\n"
                    "  /help          this list\n"
                    "  /quit          leave (or Ctrl-D)\n"
                    "end a line with \\ to continue on the next; Ctrl-C stops a reply\n");
}

static void reset(Chat *c, const char *system) {
    json_array_clear(c->messages);
    if (system && *system)
        add_message(c, "system", system, strlen(system));
    gen_session_reset(&c->gs);
}

/* Returns false to quit. */
static bool command(Chat *c, const char *line) {
    Err err = {0};
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
        return false;
    if (!strcmp(line, "/help")) {
        print_help();
    } else if (!strcmp(line, "/reset")) {
        json_t *sys = has_system(c) ? json_incref(json_array_get(c->messages, 0)) : NULL;
        reset(c, sys ? json_string_value(json_object_get(sys, "content")) : NULL);
        json_decref(sys);
        fprintf(stderr, "(new conversation)\n");
    } else if (!strncmp(line, "/system", 7) && (line[7] == ' ' || !line[7])) {
        reset(c, line[7] ? line + 8 : "");
        fprintf(stderr, "(system message set; new conversation)\n");
    } else if (!strncmp(line, "/save ", 6)) {
        if (json_dump_file(c->messages, line + 6, JSON_INDENT(2)))
            fprintf(stderr, "cannot write '%s'\n", line + 6);
        else
            fprintf(stderr, "(saved %zu messages to %s)\n", json_array_size(c->messages), line + 6);
    } else if (!strncmp(line, "/load ", 6)) {
        json_error_t je;
        json_t *m = json_load_file(line + 6, JSON_REJECT_DUPLICATES, &je);
        char *out = NULL;
        uint8_t *mask = NULL;
        size_t len;
        if (!m) {
            fprintf(stderr, "cannot load '%s': line %d: %s\n", line + 6, je.line, je.text);
        } else if (!json_is_array(m) ||
                   chat_render(c->cm.fmt, m, true, NULL, &out, &mask, &len, &err)) {
            fprintf(stderr, "cannot load '%s': %s\n", line + 6,
                    err.msg[0] ? err.msg : "not an array of messages");
            json_decref(m);
        } else {
            json_decref(c->messages);
            c->messages = m;
            gen_session_reset(&c->gs);
            fprintf(stderr, "(loaded %zu messages)\n", json_array_size(m));
        }
        free(out);
        free(mask);
    } else if (!strcmp(line, "/stats")) {
        if (c->have_last) {
            GenStats *s = &c->last;
            double ptok = s->n_prompt - s->n_reused;
            fprintf(stderr, "prompt: %d tokens (%d reused), %.1f tokens/s\n", s->n_prompt,
                    s->n_reused, s->t_prompt > 0 ? ptok / s->t_prompt : 0);
            fprintf(stderr, "reply:  %d tokens, %.1f tokens/s (%s)\n", s->n_generated,
                    s->t_generate > 0 ? s->n_generated / s->t_generate : 0,
                    gen_finish_name(s->finish));
        }
        fprintf(stderr, "context: %d of %d tokens used\n", c->gs.n_cached, c->gs.cap);
    } else {
        fprintf(stderr, "unknown command '%s' (try /help)\n", line);
    }
    return true;
}

/* Read one message: on a terminal with libedit (a trailing backslash
 * continues), else one line from stdin. Returns an owned string or NULL at
 * end of input. */
static char *read_message(bool tty) {
    if (!tty) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            free(line);
            return NULL;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        return line;
    }
    char *msg = NULL;
    size_t len = 0;
    for (;;) {
        char *line = readline(msg ? "... " : "> ");
        if (!line)
            return msg;
        size_t n = strlen(line);
        bool more = n > 0 && line[n - 1] == '\\';
        if (more)
            line[--n] = '\0';
        char *nb = realloc(msg, len + n + 2);
        if (!nb) {
            free(line);
            return msg;
        }
        msg = nb;
        if (len)
            msg[len++] = '\n';
        memcpy(msg + len, line, n + 1);
        len += n;
        free(line);
        if (!more)
            break;
    }
    if (len)
        add_history(msg);
    return msg;
}

enum {
    O_MODEL = 1,
    O_SYSTEM,
    O_CTX,
    O_N,
    O_THREADS,
    O_TFILE,
    O_IGNORE_EOS,
    O_POLICY,
    O_MOD_LEXICON,
    O_MOD_MODEL,
    O_NO_MODERATION,
    O_DATA_DIR,
    O_KV_TYPE
};

static const ArgOpt CHAT_OPTS[] = {
    CLI_OPT_MODEL(O_MODEL),
    {O_SYSTEM, "--system", "TEXT", "the system message"},
    {O_CTX, "-c|--ctx", "N", "context size (default: the model's, at most 4096)"},
    {O_N, "-n|--n-predict", "N",
     "at most N tokens a reply (default -1: until the context is full)"},
    CLI_OPT_THREADS(O_THREADS),
    CLI_OPT_KV_TYPE(O_KV_TYPE),
    CLI_OPT_TEMPLATE(O_TFILE),
    {O_IGNORE_EOS, "--ignore-eos", NULL, "keep generating past end-of-turn tokens"},
    CLI_OPT_POLICY(O_POLICY),
    CLI_OPT_MOD_LEXICON(O_MOD_LEXICON),
    CLI_OPT_MOD_MODEL(O_MOD_MODEL),
    CLI_OPT_NO_MODERATION(O_NO_MODERATION),
    {O_DATA_DIR, "--data-dir", "DIR",
     "where the moderation audit goes (default $CGPT_DATA_DIR or ~/.cgpt)"},
    {0},
};

static int cmd_chat(int argc, char **argv) {
    const char *model = NULL, *system = NULL, *tfile = NULL, *data_dir = NULL, *v;
    CliModeration mo = {0};
    bool no_mod = false;
    long ctx = 0, threads = 0, n_max = -1;
    KVType kv_type = CLI_KV_DEFAULT;
    unsigned sp_set = 0;
    Chat c = {0};
    c.gp.sampling = sampler_defaults();
    Err err = {0};
    Args a = args_start(argc, argv, 1);
    for (int id;
         (id = cli_next_sampling(&a, &CLI_CHAT, &c.gp.sampling, &sp_set, &v, &err)) != ARG_END;) {
        Status s = STATUS_OK;
        switch (id) {
        case ARG_ERROR: return cli_fail("chat", &err);
        case ARG_HELP: cli_help(&CLI_CHAT); return 0;
        case ARG_POSITIONAL:
            s = err_set(&err, STATUS_INVALID,
                        "unexpected argument '%s' (messages are typed, not "
                        "given as arguments)",
                        v);
            break;
        case O_MODEL: model = v; break;
        case O_IGNORE_EOS: c.gp.ignore_eos = true; break;
        case O_SYSTEM: system = v; break;
        case O_TFILE: tfile = v; break;
        case O_CTX: s = args_int(a.opt, v, 16, MODEL_MAX_CTX, &ctx, &err); break;
        case O_N: s = args_int(a.opt, v, -1, MODEL_MAX_CTX, &n_max, &err); break;
        case O_THREADS: s = args_int(a.opt, v, 0, CLI_MAX_THREADS, &threads, &err); break;
        case O_KV_TYPE: s = cli_kv_type(a.opt, v, &kv_type, &err); break;
        case O_POLICY: mo.policy = v; break;
        case O_MOD_LEXICON: mo.lexicon = v; break;
        case O_MOD_MODEL: mo.guard_model = v; break;
        case O_NO_MODERATION: no_mod = true; break;
        case O_DATA_DIR: data_dir = v; break;
        }
        if (s)
            return cli_fail("chat", &err);
    }
    if (no_mod && (mo.policy || mo.lexicon || mo.guard_model)) {
        err_set(&err, STATUS_INVALID, "--no-moderation with a moderation option");
        return cli_fail("chat", &err);
    }
    if (!no_mod) {
        if (cli_moderator(&mo, &c.mod, &err))
            return cli_fail("chat", &err);
        Err serr = {0}; /* no audit is no reason not to chat */
        if (store_open(&c.store, cli_data_dir(data_dir), &serr))
            c.store = NULL;
    }
    const char *path;
    if (cli_model_path(model, &path, &err))
        return cli_fail("chat", &err);
    c.tty = isatty(STDIN_FILENO);
    c.gp.max_tokens = (int)n_max;
    c.messages = json_array();
    ModelParams mp = {.n_threads = (int)threads,
                      .n_ctx = (int)ctx,
                      .n_seq_max = 1,
                      .n_batch = 256,
                      .kv_type = kv_type};
    int rc = 1;
    if (cli_load(&c.cm, path, &mp, tfile, true, &err))
        goto done;
    if (model_config(c.cm.m)->encoder) { /* bert, nomic-bert: embeddings only */
        err_set(&err, STATUS_UNSUPPORTED, "an embedding model (%s) cannot generate text",
                model_config(c.cm.m)->arch_name);
        goto done;
    }
    if (gen_session_init(&c.gs, c.cm.m, c.cm.tok, 0, &err))
        goto done;
    cli_sampling_resolve(&c.cm, sp_set, &c.gp.sampling);
    reset(&c, system);
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    rl_catch_signals = 0; /* libedit must not turn Ctrl-C into end of input */
    if (c.tty) {
        char samp[256];
        preset_describe(&c.gp.sampling, PRESET_TEMP | PRESET_TOP_K | PRESET_TOP_P | PRESET_MIN_P,
                        samp, sizeof samp);
        fprintf(stderr, "cgpt chat - %s (%s, context %d, template: %s; %s). /help for commands.\n",
                path, model_config(c.cm.m)->arch_name, c.gs.cap, chat_format_name(c.cm.fmt), samp);
    }
    for (;;) {
        char *msg = read_message(c.tty);
        if (!msg)
            break;
        bool go = true;
        const char *text = msg[0] == '/' && msg[1] == '/' ? msg + 1 : msg; /* "//x" sends "/x" */
        if (msg[0] == '/' && text == msg) {
            go = command(&c, msg);
        } else if (text[0]) {
            if (turn(&c, text, strlen(text), &err)) {
                if (!c.tty) { /* a script wants the failure in the exit code */
                    free(msg);
                    goto done;
                }
                fprintf(stderr, "cgpt chat: %s\n", err.msg);
            }
        }
        free(msg);
        if (!go)
            break;
    }
    rc = 0;
done:
    if (rc)
        cli_fail("chat", &err);
    signal(SIGINT, SIG_DFL);
    gen_session_free(&c.gs);
    cli_unload(&c.cm);
    json_decref(c.messages);
    free(c.reply);
    mod_free(c.mod);
    store_close(c.store);
    return rc;
}

const CliCommand CLI_CHAT = {
    .name = "chat",
    .synopsis = "[-m MODEL] [options]",
    .summary = "chat in the terminal (streams; /help inside)",
    .opts = CHAT_OPTS,
    .sampling = true,
    .notes = "Inside: a line ending in \\ continues on the next; a line starting with / is a\n"
             "command (/system TEXT, /reset, /save FILE, /load FILE, /stats, /help, /quit) and\n"
             "one starting with // sends the rest as a message starting with /. Ctrl-C stops a\n"
             "reply, Ctrl-D leaves. With a pipe on stdin each line gets one reply line; commands\n"
             "work there too. When the conversation fills the context the oldest turns are\n"
             "dropped, with a notice on stderr.\n",
    .main = cmd_chat,
};
