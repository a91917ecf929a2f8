/* fuzz_hub.c - libFuzzer target for what `cgpt pull` reads from outside:
 * references (hub_ref_parse, from the command line) and a repository's
 * tree listing (hub_tree_parse, from the network) with the file pick over
 * it (hub_pick).
 *
 * Input layout: byte 0 picks the mode (even: a reference, the rest as a
 * string; odd: a listing); for a listing, byte 1 picks the quant asked
 * ("" or one of a few tags) and the rest is the JSON. Checks: a parsed
 * reference has names within their limits and an upper-case quant; every
 * listed entry has a safe path (no "..", no leading '/'); a pick returns
 * indices in range, of .gguf files, in part order for split sets. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hub/ref.h"

static void fuzz_ref(const uint8_t *d, size_t n) {
    char *s = malloc(n + 1);
    if (!s)
        return;
    memcpy(s, d, n);
    s[n] = '\0';
    HubRef r;
    Err err = {0};
    if (hub_ref_parse(s, &r, &err) == STATUS_OK) {
        if (r.kind == HUB_REF_HF &&
            (!r.owner[0] || !r.repo[0] || strlen(r.owner) > HUB_MAX_PART || strchr(r.repo, '/')))
            abort();
        for (const char *q = r.quant; *q; q++)
            if (*q >= 'a' && *q <= 'z')
                abort();
    } else if (!err.msg[0]) {
        abort();
    }
    free(s);
}

static void fuzz_tree(const uint8_t *d, size_t n) {
    static const char *quants[] = {"", "Q4_K_M", "Q8_0", "F16"};
    const char *quant = quants[n ? d[0] % 4 : 0];
    if (n)
        d++, n--;
    json_t *tree = json_loadb((const char *)d, n, 0, NULL);
    if (!tree)
        return;
    HubEntry *e = NULL;
    int ne = 0;
    Err err = {0};
    if (hub_tree_parse(tree, &e, &ne, &err) == STATUS_OK) {
        HubListed *l = calloc((size_t)ne + 1, sizeof *l);
        for (int i = 0; l && i < ne; i++) {
            if (e[i].path[0] == '/' || strstr(e[i].path, ".."))
                abort();
            l[i] = (HubListed){.path = e[i].path, .size = e[i].size};
        }
        int idx[64], ni = 0;
        char q[HUB_MAX_QUANT + 1];
        if (l && hub_pick(l, ne, quant, "o/r", idx, &ni, q, &err) == STATUS_OK) {
            if (ni < 1 || ni > 64)
                abort();
            int prev_part = 0;
            for (int k = 0; k < ni; k++) {
                if (idx[k] < 0 || idx[k] >= ne)
                    abort();
                size_t pl = strlen(l[idx[k]].path);
                if (pl < 5 || strcasecmp(l[idx[k]].path + pl - 5, ".gguf"))
                    abort();
                int part, parts;
                if (ni > 1 && (!hub_split_of(l[idx[k]].path, &part, &parts) ||
                               part != prev_part + 1 || parts != ni))
                    abort();
                prev_part = k + 1;
            }
            if (quant[0] && strcmp(q, quant))
                abort();
        }
        free(l);
    }
    hub_entries_free(e, ne);
    json_decref(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n == 0)
        return 0;
    if (d[0] % 2 == 0)
        fuzz_ref(d + 1, n - 1);
    else
        fuzz_tree(d + 1, n - 1);
    return 0;
}
