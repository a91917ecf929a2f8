/* template.c - the public face of the template engine (template.h): source
 * normalization as Jinja2 does it (\r\n and \r become \n, one trailing
 * newline is dropped: keep_trailing_newline=False), then lexing
 * (tmpl_lex.c), parsing (tmpl_parse.c) and rendering (tmpl_eval.c), with
 * errors unwound by longjmp to here and every arena freed on the way out.
 *
 * Dict iteration order is insertion order: variables come from jansson,
 * whose objects iterate in insertion order, so a dict built by parsing a
 * JSON request keeps the request's key order, as Python's json.loads does. */
#include "chat/template.h"

#include <stdlib.h>
#include <string.h>

#include "chat/tmpl_impl.h"

#define TMPL_DEFAULT_MAX_OUTPUT ((size_t)16 << 20)

Template *tmpl_parse(const char *src, size_t len, Err *err) {
    if (!src && len)
        return err_set(err, STATUS_INVALID, "template source is NULL"), NULL;
    if (len > TMPL_MAX_SOURCE) {
        err_set(err, STATUS_LIMIT, "template source is %zu bytes (limit %u)", len, TMPL_MAX_SOURCE);
        return NULL;
    }
    Template *t = calloc(1, sizeof *t);
    if (!t) {
        err_set(err, STATUS_NOMEM, "out of memory");
        return NULL;
    }
    t->arena.limit = TMPL_MAX_MEMORY;
    TFail f;
    f.err = err;
    if (setjmp(f.jb)) {
        ta_free(&t->arena);
        free(t);
        return NULL;
    }
    char *s = ta_alloc(&t->arena, len + 1, &f);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n > 0 && s[n - 1] == '\n')
        n--;
    s[n] = '\0';
    TTok *toks;
    size_t n_toks;
    tmpl_lex(s, n, &t->arena, &f, &toks, &n_toks);
    t->body = tmpl_parse_tokens(toks, n_toks, &t->arena, &f);
    return t;
}

void tmpl_free(Template *t) {
    if (!t)
        return;
    ta_free(&t->arena);
    free(t);
}

Status tmpl_render(const Template *t, const json_t *vars, const TmplLimits *lim, char **out,
                   uint8_t **out_mask, size_t *out_len, Err *err) {
    return tmpl_render_ex(t, vars, NULL, lim, out, out_mask, out_len, err);
}

Status tmpl_render_ex(const Template *t, const json_t *vars, const json_t *trusted,
                      const TmplLimits *lim, char **out, uint8_t **out_mask, size_t *out_len,
                      Err *err) {
    *out = NULL;
    *out_mask = NULL;
    *out_len = 0;
    if (!t)
        return err_set(err, STATUS_INVALID, "no template");
    size_t max_output = lim && lim->max_output ? lim->max_output : TMPL_DEFAULT_MAX_OUTPUT;
    /* on the heap: its contents change between setjmp and longjmp */
    TArena *arena = calloc(1, sizeof *arena);
    if (!arena)
        return err_set(err, STATUS_NOMEM, "out of memory");
    arena->limit = TMPL_MAX_MEMORY;
    TFail f;
    Err local = {0};
    f.err = err ? err : &local;
    TBuf buf;
    if (setjmp(f.jb)) {
        ta_free(arena);
        free(arena);
        return f.err->status;
    }
    tb_init(&buf, arena, &f, max_output);
    tmpl_eval_render(t, vars, trusted, lim, arena, &f, &buf);
    char *o = malloc(buf.n + 1);
    uint8_t *m = malloc(buf.n ? buf.n : 1);
    if (!o || !m) {
        free(o);
        free(m);
        ta_free(arena);
        free(arena);
        return err_set(err, STATUS_NOMEM, "out of memory (%zu bytes of output)", buf.n);
    }
    if (buf.n) {
        memcpy(o, buf.b, buf.n);
        memcpy(m, buf.m, buf.n);
    }
    o[buf.n] = '\0';
    *out = o;
    *out_mask = m;
    *out_len = buf.n;
    ta_free(arena);
    free(arena);
    return STATUS_OK;
}
