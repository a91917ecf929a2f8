/* grammarbench.c - test tool: what a grammar mask costs on a real
 * vocabulary.
 *
 *   grammarbench VOCAB.gguf GRAMMAR.gbnf TEXT
 *
 * Builds the vocabulary's trie (tok_piece of every token; end-of-generation
 * tokens as such), then walks TEXT (a sentence of the grammar) token by
 * token as the tokenizer splits it, timing one grammar_mask per step, and
 * prints "masks N, mean_us X, max_us Y, allowed_mean Z, trie_nodes W".
 * Exits 1 on any error, or when a token of TEXT is not allowed by the mask
 * before it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/perf.h"
#include "gguf/gguf.h"
#include "sample/grammar.h"
#include "tokenizer/tokenizer.h"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = b ? (size_t)len : 0;
    return b;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: grammarbench VOCAB.gguf GRAMMAR.gbnf TEXT\n");
        return 2;
    }
    Err err = {0};
    GGUF g;
    Tokenizer *t = NULL;
    if (gguf_open(&g, argv[1], &err) || tok_load(&t, &g, &err)) {
        fprintf(stderr, "grammarbench: %s: %s\n", argv[1], err.msg);
        return 1;
    }
    size_t glen;
    char *gtext = slurp(argv[2], &glen);
    Grammar *gr = NULL;
    if (!gtext || grammar_parse(&gr, gtext, glen, NULL, &err)) {
        fprintf(stderr, "grammarbench: %s: %s\n", argv[2], gtext ? err.msg : "cannot read");
        return 1;
    }
    int n = tok_n_vocab(t);
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    uint8_t *eog = malloc((size_t)n), *mask = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        pieces[i] = tok_piece(t, i, false, &lens[i]);
        eog[i] = tok_is_eog(t, i);
    }
    GrammarVocab *v = NULL;
    GrammarMasker *m = NULL;
    GrammarState *s = NULL;
    if (grammar_vocab_new(&v, n, pieces, lens, eog, &err) || grammar_masker_new(&m, v, &err) ||
        grammar_state_new(gr, &s, &err)) {
        fprintf(stderr, "grammarbench: %s\n", err.msg);
        return 1;
    }
    const char *text = argv[3];
    int32_t ids[4096];
    size_t nid = 0;
    if (tok_encode(t, text, strlen(text), NULL, ids, 4096, &nid, &err)) {
        fprintf(stderr, "grammarbench: %s\n", err.msg);
        return 1;
    }
    double total = 0, worst = 0;
    long allowed = 0;
    for (size_t k = 0; k < nid; k++) {
        double t0 = perf_now();
        int a = grammar_mask(m, s, mask);
        double dt = perf_now() - t0;
        total += dt;
        worst = dt > worst ? dt : worst;
        allowed += a;
        if (!mask[ids[k]]) {
            fprintf(stderr, "grammarbench: token %zu (%d) of the text is not allowed\n", k, ids[k]);
            return 1;
        }
        if (!grammar_accept_bytes(s, pieces[ids[k]], lens[ids[k]])) {
            fprintf(stderr, "grammarbench: token %zu refused\n", k);
            return 1;
        }
    }
    printf("masks %zu, mean_us %.1f, max_us %.1f, allowed_mean %.0f, vocab %d\n", nid,
           1e6 * total / (double)(nid ? nid : 1), 1e6 * worst,
           (double)allowed / (double)(nid ? nid : 1), n);
    grammar_state_free(s);
    grammar_masker_free(m);
    grammar_vocab_free(v);
    grammar_free(gr);
    free(pieces), free(lens), free(eog), free(mask), free(gtext);
    tok_free(t);
    gguf_close(&g);
    return 0;
}
