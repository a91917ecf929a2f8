/* ref.c - references and file picks (ref.h). */
#include "hub/ref.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool name_ok(const char *s, size_t n) {
    if (n == 0 || n > HUB_MAX_PART || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

Status hub_ref_parse(const char *s, HubRef *r, Err *err) {
    memset(r, 0, sizeof *r);
    size_t len = strlen(s);
    if (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7)) {
        if (len > HUB_MAX_URL)
            return err_set(err, STATUS_LIMIT, "a URL of %zu bytes (limit %d)", len, HUB_MAX_URL);
        const char *host = strstr(s, "://") + 3;
        const char *slash = strchr(host, '/');
        if (!slash || slash == host || len < 5 || strcasecmp(s + len - 5, ".gguf"))
            return err_set(err, STATUS_INVALID, "'%s': a URL must name a .gguf file", s);
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return err_set(err, STATUS_INVALID, "'%.80s': a blank or control byte in the URL",
                               s);
        r->kind = HUB_REF_URL;
        memcpy(r->url, s, len + 1);
        return STATUS_OK;
    }
    if (!strncmp(s, "hf.co/", 6))
        s += 6;
    else if (!strncmp(s, "huggingface.co/", 15))
        s += 15;
    const char *slash = strchr(s, '/');
    const char *colon = strchr(s, ':');
    if (!slash || (colon && colon < slash))
        return err_set(err, STATUS_INVALID,
                       "'%s': expected OWNER/REPO[:QUANT], hf.co/OWNER/REPO[:QUANT] or a URL", s);
    size_t no = (size_t)(slash - s);
    const char *rp = slash + 1;
    size_t nr = colon ? (size_t)(colon - rp) : strlen(rp);
    if (!name_ok(s, no) || !name_ok(rp, nr))
        return err_set(err, STATUS_INVALID,
                       "'%s': owner and repository are 1-%d characters of A-Z a-z 0-9 . _ -", s,
                       HUB_MAX_PART);
    memcpy(r->owner, s, no);
    memcpy(r->repo, rp, nr);
    if (colon) {
        const char *q = colon + 1;
        size_t nq = strlen(q);
        if (nq == 0 || nq > HUB_MAX_QUANT)
            return err_set(err, STATUS_INVALID, "'%s': a quant of 1-%d characters after ':'", s,
                           HUB_MAX_QUANT);
        for (size_t i = 0; i < nq; i++) {
            if (!isalnum((unsigned char)q[i]) && q[i] != '_')
                return err_set(err, STATUS_INVALID, "'%s': a quant is A-Z 0-9 and _ (Q4_K_M)", s);
            r->quant[i] = (char)toupper((unsigned char)q[i]);
        }
    }
    r->kind = HUB_REF_HF;
    return STATUS_OK;
}

static const char *base_of(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

bool hub_split_of(const char *path, int *part, int *n_parts) {
    const char *b = base_of(path);
    size_t n = strlen(b);
    /* -00001-of-00003.gguf: 20 bytes */
    if (n < 20 || strcasecmp(b + n - 5, ".gguf"))
        return false;
    const char *s = b + n - 20;
    int k, t, used = 0;
    if (sscanf(s, "-%5d-of-%5d%n", &k, &t, &used) != 2 || used != 15 || k < 1 || t < 1 || k > t)
        return false;
    for (int i = 1; i <= 5; i++)
        if (!isdigit((unsigned char)s[i]) || !isdigit((unsigned char)s[9 + i]))
            return false;
    *part = k;
    *n_parts = t;
    return true;
}

static bool tag_ok(const char *t, size_t n) {
    char u[HUB_MAX_QUANT + 1];
    if (n == 0 || n > HUB_MAX_QUANT)
        return false;
    for (size_t i = 0; i < n; i++)
        u[i] = (char)toupper((unsigned char)t[i]);
    u[n] = '\0';
    if (!strcmp(u, "F16") || !strcmp(u, "F32") || !strcmp(u, "BF16"))
        return true;
    size_t i = 0;
    if (u[0] == 'I' && u[1] == 'Q')
        i = 2;
    else if (u[0] == 'Q')
        i = 1;
    else
        return false;
    if (i >= n || u[i] < '1' || u[i] > '8')
        return false;
    for (i++; i < n; i++)
        if (!isalnum((unsigned char)u[i]) && u[i] != '_')
            return false;
    return true;
}

bool hub_quant_of(const char *path, char *out, size_t cap) {
    const char *b = base_of(path);
    size_t n = strlen(b);
    int k, t;
    if (hub_split_of(b, &k, &t))
        n -= 20;
    else if (n >= 5 && !strcasecmp(b + n - 5, ".gguf"))
        n -= 5;
    /* the last token (between '-' or '.') that is a quant tag */
    size_t end = n;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && b[start - 1] != '-' && b[start - 1] != '.')
            start--;
        if (tag_ok(b + start, end - start) && end - start < cap) {
            for (size_t i = start; i < end; i++)
                out[i - start] = (char)toupper((unsigned char)b[i]);
            out[end - start] = '\0';
            return true;
        }
        if (start == 0)
            break;
        end = start - 1;
    }
    if (cap)
        out[0] = '\0';
    return false;
}

typedef struct {
    int first;         /* index of part 1 (or the file) */
    int n_parts, have; /* parts expected, parts seen */
    int idx[64];       /* by part number - 1 */
    uint64_t size;
    char quant[HUB_MAX_QUANT + 1];
} Group;

/* Is 'q' one of the comma-separated tags in 'list' (whole tags: Q4_K is
 * not Q4_K_M)? */
static bool listed(const char *list, const char *q) {
    size_t n = strlen(q);
    for (const char *p = list; (p = strstr(p, q)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ',' || !p[n]))
            return true;
    return false;
}

/* The default pick's order: Q4_K_M, then any quant tag, then none; the
 * smaller first within each. */
static int rank(const Group *a) { return !strcmp(a->quant, "Q4_K_M") ? 0 : a->quant[0] ? 1 : 2; }

static bool better(const Group *a, const Group *b) {
    return rank(a) != rank(b) ? rank(a) < rank(b) : a->size < b->size;
}

/* The file name with a split suffix cut: the key of its group. */
static size_t stem_len(const char *path) {
    int k, t;
    size_t n = strlen(path);
    return hub_split_of(path, &k, &t) ? n - 20 : n;
}

Status hub_pick(const HubListed *files, int n, const char *quant, const char *repo, int *idx,
                int *n_idx, char quant_out[HUB_MAX_QUANT + 1], Err *err) {
    *n_idx = 0;
    quant_out[0] = '\0';
    Group *g = calloc((size_t)(n > 0 ? n : 1), sizeof *g);
    if (!g)
        return err_set(err, STATUS_NOMEM, "out of memory");
    int ng = 0;
    for (int i = 0; i < n; i++) {
        const char *p = files[i].path;
        size_t len = strlen(p);
        if (len < 5 || strcasecmp(p + len - 5, ".gguf") || !strncasecmp(base_of(p), "mmproj", 6))
            continue;
        int part = 1, parts = 1;
        hub_split_of(p, &part, &parts);
        if (parts > 64)
            continue;
        size_t sl = stem_len(p);
        int j = 0;
        for (; j < ng; j++) {
            const char *q = files[g[j].first].path;
            if (stem_len(q) == sl && !strncmp(q, p, sl) && g[j].n_parts == parts)
                break;
        }
        if (j == ng) {
            g[ng].first = i;
            g[ng].n_parts = parts;
            for (int k = 0; k < 64; k++)
                g[ng].idx[k] = -1;
            hub_quant_of(p, g[ng].quant, sizeof g[ng].quant);
            ng++;
        }
        if (g[j].idx[part - 1] < 0) {
            g[j].idx[part - 1] = i;
            g[j].have++;
            g[j].size += files[i].size;
        }
    }
    int best = -1;
    char have[512] = "";
    size_t hl = 0;
    for (int j = 0; j < ng; j++) {
        if (g[j].have != g[j].n_parts)
            continue; /* a split set with parts missing */
        if (g[j].quant[0] && !listed(have, g[j].quant) && hl + strlen(g[j].quant) + 3 < sizeof have)
            hl += (size_t)snprintf(have + hl, sizeof have - hl, "%s%s", hl ? ", " : "", g[j].quant);
        if (quant[0] ? !strcmp(g[j].quant, quant) : (best < 0 || better(&g[j], &g[best])))
            if (best < 0 || !quant[0] || g[j].size < g[best].size)
                best = j;
    }
    Status st = STATUS_OK;
    if (best < 0) {
        if (ng == 0)
            st = err_set(err, STATUS_NOT_FOUND, "%s has no GGUF file", repo);
        else if (quant[0])
            st = err_set(err, STATUS_NOT_FOUND, "%s has no %s file (it has: %s)", repo, quant,
                         hl ? have : "no quant tags in its file names");
        else
            st = err_set(err, STATUS_NOT_FOUND,
                         "%s has no complete GGUF file (split parts missing)", repo);
    } else {
        for (int k = 0; k < g[best].n_parts; k++)
            idx[(*n_idx)++] = g[best].idx[k];
        snprintf(quant_out, HUB_MAX_QUANT + 1, "%s", g[best].quant);
    }
    free(g);
    return st;
}

static bool path_ok(const char *p) {
    if (!p[0] || p[0] == '/' || strstr(p, ".."))
        return false;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\')
            return false;
    return true;
}

Status hub_tree_parse(const json_t *tree, HubEntry **out, int *n_out, Err *err) {
    *out = NULL;
    *n_out = 0;
    if (!json_is_array(tree))
        return err_set(err, STATUS_FORMAT, "the repository's tree is not a list");
    if (json_array_size(tree) > HUB_MAX_FILES)
        return err_set(err, STATUS_LIMIT, "the repository lists %zu entries (limit %d)",
                       json_array_size(tree), HUB_MAX_FILES);
    HubEntry *e = calloc(json_array_size(tree) + 1, sizeof *e);
    if (!e)
        return err_set(err, STATUS_NOMEM, "out of memory");
    int n = 0;
    size_t i;
    const json_t *it;
    json_array_foreach(tree, i, it) {
        const char *type = json_string_value(json_object_get(it, "type"));
        const char *path = json_string_value(json_object_get(it, "path"));
        json_int_t size = json_integer_value(json_object_get(it, "size"));
        if (!type || strcmp(type, "file") || !path || !path_ok(path) || size < 0)
            continue;
        const char *oid = json_string_value(json_object_get(json_object_get(it, "lfs"), "oid"));
        if (!(e[n].path = strdup(path))) {
            hub_entries_free(e, n);
            return err_set(err, STATUS_NOMEM, "out of memory");
        }
        e[n].size = (uint64_t)size;
        if (oid && strlen(oid) == 64 && strspn(oid, "0123456789abcdef") == 64)
            memcpy(e[n].sha256, oid, 65);
        n++;
    }
    *out = e;
    *n_out = n;
    return STATUS_OK;
}

void hub_entries_free(HubEntry *e, int n) {
    for (int i = 0; e && i < n; i++)
        free(e[i].path);
    free(e);
}
