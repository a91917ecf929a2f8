/* fuzz_toolcall.c - libFuzzer target for the streamed tool-call parser.
 *
 * Input layout: byte 0 -> format (% 6), byte 1 -> flags (% 4), byte 2 seeds
 * the splits; the rest is the model's text. The text is parsed whole, byte
 * by byte, and at 8 random multi-splits with empty pieces; the merged
 * events (adjacent CONTENT / REASONING / same-call ARGS joined) and the ids
 * must be identical every time, calls must be numbered 0, 1, ... with
 * BEGIN before ARGS before END and none left open, and when the text is
 * valid UTF-8 no fragment may end inside a character. toolcall_parse must
 * give the same content and calls. Pieces are exactly sized so ASan sees
 * any overrun. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/toolcall.h"
#include "core/rng.h"
#include "core/utf8.h"

typedef struct {
    char *s; /* records: kind byte, index byte, then text; merged */
    size_t n, cap;
    int last_kind, last_index, open, next_index;
    bool check_utf8;
} Rec;

static void put(Rec *r, const void *s, size_t n) {
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2 + 64;
        r->s = realloc(r->s, r->cap);
        if (!r->s)
            abort();
    }
    memcpy(r->s + r->n, s, n);
    r->n += n;
}

static void on_event(void *user, const ToolEvent *ev) {
    Rec *r = user;
    bool text = ev->kind == TOOLCALL_CONTENT || ev->kind == TOOLCALL_REASONING ||
                ev->kind == TOOLCALL_CALL_ARGS;
    if (text) {
        if (ev->len == 0)
            abort();
        if (r->check_utf8 && utf8_valid_len(ev->text, ev->len, NULL) != ev->len)
            abort();
        if ((ev->kind == TOOLCALL_CALL_ARGS) != (r->open == 1))
            abort(); /* arguments only inside a call; content never inside one */
        if (ev->kind == TOOLCALL_CALL_ARGS && ev->index != r->next_index - 1)
            abort();
        if (r->last_kind == (int)ev->kind && r->last_index == ev->index) {
            put(r, ev->text, ev->len);
            return;
        }
    }
    char h[2] = {(char)('0' + ev->kind), (char)ev->index};
    put(r, "\x01", 1);
    put(r, h, 2);
    if (ev->kind == TOOLCALL_CALL_BEGIN) {
        if (r->open || ev->index != r->next_index || !ev->name || !ev->name[0] || !ev->id)
            abort();
        r->open = 1;
        r->next_index++;
        put(r, ev->id, strlen(ev->id));
        put(r, "\x02", 1);
        put(r, ev->name, strlen(ev->name));
    } else if (ev->kind == TOOLCALL_CALL_END) {
        if (!r->open || ev->index != r->next_index - 1)
            abort();
        r->open = 0;
    } else {
        put(r, ev->text, ev->len);
    }
    r->last_kind = (int)ev->kind;
    r->last_index = ev->index;
}

static Rec stream(ToolFormat f, unsigned flags, const uint8_t *t, size_t n, const bool *cut,
                  const bool *empties, bool utf8) {
    Rec r = {.last_kind = -1, .check_utf8 = utf8};
    ToolParser *p = toolcall_new(f, flags, 1234, on_event, &r);
    if (!p)
        abort();
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !cut[i])
            continue;
        size_t end = i < n ? i + 1 : n, len = end - at;
        char *piece = malloc(len ? len : 1);
        memcpy(piece, t + at, len);
        if (toolcall_push(p, piece, len) != STATUS_OK)
            abort();
        free(piece);
        if (empties && i < n && empties[i] && toolcall_push(p, NULL, 0) != STATUS_OK)
            abort();
        at = end;
    }
    if (toolcall_finish(p) != STATUS_OK || r.open)
        abort();
    toolcall_free(p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3 || size > 8192)
        return 0;
    ToolFormat f = (ToolFormat)(data[0] % 6);
    unsigned flags = data[1] % 4;
    uint64_t seed = data[2];
    const uint8_t *t = data + 3;
    size_t n = size - 3;
    bool utf8 = utf8_valid_len((const char *)t, n, NULL) == n;
    bool *cut = calloc(n + 1, 1), *emp = calloc(n + 1, 1);
    Rec whole = stream(f, flags, t, n, cut, NULL, utf8);
    for (size_t i = 0; i < n; i++)
        cut[i] = true;
    Rec got = stream(f, flags, t, n, cut, NULL, utf8);
    if (got.n != whole.n || (whole.n && memcmp(got.s, whole.s, whole.n) != 0))
        abort();
    free(got.s);
    Rng rng;
    rng_seed(&rng, seed);
    for (int round = 0; round < 8; round++) {
        uint64_t every = 1 + rng_u64(&rng) % 16;
        for (size_t i = 0; i < n; i++) {
            cut[i] = rng_u64(&rng) % every == 0;
            emp[i] = rng_u64(&rng) % 7 == 0;
        }
        got = stream(f, flags, t, n, cut, emp, utf8);
        if (got.n != whole.n || (whole.n && memcmp(got.s, whole.s, whole.n) != 0))
            abort();
        free(got.s);
    }
    /* the whole-text result agrees with the stream */
    ToolResult res;
    if (toolcall_parse(f, flags, 1234, (const char *)t, n, &res) != STATUS_OK)
        abort();
    if (res.n_calls != whole.next_index)
        abort();
    for (int i = 0; i < res.n_calls; i++)
        if (!res.calls[i].name || !res.calls[i].arguments)
            abort();
    toolcall_result_free(&res);
    free(whole.s);
    free(cut);
    free(emp);
    return 0;
}
