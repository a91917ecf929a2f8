/* test_chat.c - chat.c: message validation (errors name the index and the
 * field), the content-part join, extra variables, the built-in choice from
 * the vocabulary, and chat_tokenize's input marking and BOS rule, over tiny
 * vocabulary GGUFs written with our writer. Rendering itself is the template
 * engine's (tests/chat/test_template*.c, test_chat_templates.py). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/chat.h"
#include "gguf/gguf_writer.h"

/* ---- helpers ---- */

static ChatFormat *fmt_src(const char *src) {
    Err err = {0};
    ChatFormat *f = chat_format_from_source(src, strlen(src), "<s>", "</s>", &err);
    cr_assert(f, "template %s: %s", src, err.msg);
    return f;
}

static json_t *parse(const char *js) {
    json_error_t je;
    json_t *v = json_loads(js, JSON_DECODE_ANY, &je);
    cr_assert(v, "bad test JSON %s: %s", js, je.text);
    return v;
}

/* Render 'messages_js' with 'src'; returns the output (owned) or NULL with
 * *st and err filled. */
static char *render(const char *src, const char *messages_js, const char *extra_js, bool agp,
                    Status *st, Err *err) {
    ChatFormat *f = fmt_src(src);
    json_t *m = parse(messages_js);
    json_t *x = extra_js ? parse(extra_js) : NULL;
    char *out = NULL;
    uint8_t *mask = NULL;
    size_t len = 0;
    *st = chat_render(f, m, agp, x, &out, &mask, &len, err);
    if (*st == STATUS_OK) {
        cr_assert(out && mask);
        cr_assert_eq(strlen(out), len);
    } else {
        cr_assert(!out);
    }
    free(mask);
    json_decref(m);
    json_decref(x);
    chat_format_free(f);
    return out;
}

static void expect_error(const char *messages_js, Status want, const char *needle) {
    Err err = {0};
    Status st;
    char *out = render("{{ messages | length }}", messages_js, NULL, true, &st, &err);
    cr_assert_null(out, "%s: rendered '%s', expected an error", messages_js, out ? out : "");
    cr_assert_eq(st, want, "%s: status %s, want %s (%s)", messages_js, status_name(st),
                 status_name(want), err.msg);
    cr_assert(strstr(err.msg, needle), "%s: error '%s' lacks '%s'", messages_js, err.msg, needle);
}

/* ---- validation ---- */

Test(chat_validate, errors_name_index_and_field) {
    expect_error("{\"role\":\"user\"}", STATUS_INVALID, "messages: expected an array (got object)");
    expect_error("[]", STATUS_INVALID, "messages: empty");
    expect_error("[{\"role\":\"user\",\"content\":\"a\"}, \"x\"]", STATUS_INVALID,
                 "messages[1]: expected an object (got string)");
    expect_error("[{\"role\":\"user\",\"content\":\"a\"}, {\"content\":\"b\"}]", STATUS_INVALID,
                 "messages[1]: missing 'role'");
    expect_error("[{\"role\":7,\"content\":\"a\"}]", STATUS_INVALID,
                 "messages[0].role: expected a string (got number)");
    expect_error("[{\"role\":\"\",\"content\":\"a\"}]", STATUS_INVALID, "messages[0].role: length 0");
    expect_error("[{\"role\":\"user\"}]", STATUS_INVALID, "messages[0]: missing 'content'");
    expect_error("[{\"role\":\"user\",\"content\":null}]", STATUS_INVALID,
                 "messages[0]: null 'content'");
    expect_error("[{\"role\":\"user\",\"content\":42}]", STATUS_INVALID,
                 "messages[0].content: expected a string or a list of text parts (got number)");
    expect_error("[{\"role\":\"user\",\"content\":{\"text\":\"a\"}}]", STATUS_INVALID,
                 "messages[0].content: expected a string or a list of text parts (got object)");
    expect_error("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                 "{\"type\":\"text\"}]}]",
                 STATUS_INVALID, "messages[0].content[1]: part without 'text'");
    expect_error("[{\"role\":\"user\",\"content\":[\"a\"]}]", STATUS_INVALID,
                 "messages[0].content[0]: expected a part object (got string)");
    expect_error("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]",
                 STATUS_INVALID, "messages[0].content[0].text: expected a string (got number)");
    expect_error("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]",
                 STATUS_INVALID, "messages[0].content[0]: unsupported part type 'image_url'");
    expect_error("[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":{}}]", STATUS_INVALID,
                 "messages[0].tool_calls: expected an array (got object)");
    expect_error("[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[1]}]", STATUS_INVALID,
                 "messages[0].tool_calls[0]: expected an object (got number)");
    expect_error("[{\"role\":\"tool\",\"content\":\"x\",\"tool_call_id\":9}]", STATUS_INVALID,
                 "messages[0].tool_call_id: expected a string (got number)");
}

Test(chat_validate, message_count_limit) {
    json_t *m = json_array();
    for (int i = 0; i < CHAT_MAX_MESSAGES; i++)
        json_array_append_new(m, json_pack("{s:s, s:s}", "role", i % 2 ? "assistant" : "user",
                                           "content", "x"));
    ChatFormat *f = fmt_src("{{ messages | length }}");
    Err err = {0};
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(chat_render(f, m, false, NULL, &out, NULL, &len, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(out, "4096");
    free(out);
    json_array_append_new(m, json_pack("{s:s, s:s}", "role", "user", "content", "x"));
    cr_assert_eq(chat_render(f, m, false, NULL, &out, NULL, &len, &err), STATUS_LIMIT);
    cr_assert(strstr(err.msg, "4097 messages exceed the limit of 4096"), "%s", err.msg);
    json_decref(m);
    chat_format_free(f);
}

Test(chat_validate, content_byte_limit) {
    size_t n = CHAT_MAX_CONTENT_BYTES + 1;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = 0;
    json_t *m = json_pack("[{s:s, s:s}]", "role", "user", "content", big);
    ChatFormat *f = fmt_src("{{ messages | length }}");
    Err err = {0};
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(chat_render(f, m, true, NULL, &out, NULL, &len, &err), STATUS_LIMIT, "%s",
                 err.msg);
    cr_assert(strstr(err.msg, "messages[0].content"), "%s", err.msg);
    json_decref(m);
    /* the same size as two parts joined by "\n": the limit is on the joined content */
    big[n / 2] = 0;
    m = json_pack("[{s:s, s:[{s:s,s:s},{s:s,s:s}]}]", "role", "user", "content", "type", "text",
                  "text", big, "type", "text", "text", big + n / 2 + 1);
    cr_assert_eq(chat_render(f, m, true, NULL, &out, NULL, &len, &err), STATUS_LIMIT, "%s",
                 err.msg);
    json_decref(m);
    free(big);
    chat_format_free(f);
}

/* ---- what the template sees ---- */

Test(chat_render, parts_joined_with_newline) {
    Err err = {0};
    Status st;
    char *out = render("{{ messages[0].content }}|{{ messages[0].content is string }}",
                       "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
                       "{\"text\":\" two \"}]}]",
                       NULL, true, &st, &err);
    cr_assert(out, "%s", err.msg);
    cr_assert_str_eq(out, "one\n two |True");
    free(out);
}

Test(chat_render, tool_call_without_content) {
    Err err = {0};
    Status st;
    char *out = render("{% for m in messages %}{{ m.role }}:{{ m.tool_calls | length if m.tool_calls "
                       "else m.content }};{% endfor %}",
                       "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
                       "\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                       "\"arguments\":{}}}]}]",
                       NULL, true, &st, &err);
    cr_assert(out, "%s", err.msg);
    cr_assert_str_eq(out, "user:hi;assistant:1;");
    free(out);
}

Test(chat_render, variables_and_extra) {
    Err err = {0};
    Status st;
    char *out = render("{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}"
                       "{{ tools[0].function.name }}{{ date_string }}{{ documents | length }}",
                       "[{\"role\":\"user\",\"content\":\"x\"}]",
                       "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get\"}}],"
                       "\"date_string\":\"26 Jul 2024\",\"documents\":[1,2]}",
                       false, &st, &err);
    cr_assert(out, "%s", err.msg);
    cr_assert_str_eq(out, "<s></s>Falseget26 Jul 20242");
    free(out);

    /* tools: null leaves `tools` undefined, as transformers' tools=None */
    out = render("{{ tools is defined }}", "[{\"role\":\"user\",\"content\":\"x\"}]",
                 "{\"tools\":null}", true, &st, &err);
    cr_assert(out, "%s", err.msg);
    cr_assert_str_eq(out, "False");
    free(out);

    out = render("x", "[{\"role\":\"user\",\"content\":\"x\"}]", "{\"messages\":[]}", true, &st,
                 &err);
    cr_assert_null(out);
    cr_assert(strstr(err.msg, "extra.messages: reserved"), "%s", err.msg);
    out = render("x", "[{\"role\":\"user\",\"content\":\"x\"}]", "{\"tools\":{}}", true, &st, &err);
    cr_assert_null(out);
    cr_assert(strstr(err.msg, "extra.tools: expected an array"), "%s", err.msg);
}

Test(chat_render, raise_exception_is_an_error) {
    Err err = {0};
    Status st;
    char *out = render("{% if messages[0].role == 'system' %}{{ raise_exception('System role not "
                       "supported') }}{% endif %}ok",
                       "[{\"role\":\"system\",\"content\":\"x\"}]", NULL, true, &st, &err);
    cr_assert_null(out);
    cr_assert_neq(st, STATUS_OK);
    cr_assert(strstr(err.msg, "System role not supported"), "%s", err.msg);
}

Test(chat_render, mask_marks_template_text) {
    /* bos_token is the model's markup: template text, like the literals */
    ChatFormat *f = fmt_src("{{ bos_token }}<|im_start|>{{ messages[0].role }}\n{{ messages[0].content }}");
    json_t *m = parse("[{\"role\":\"user\",\"content\":\"<|im_end|>\"}]");
    Err err = {0};
    char *out = NULL;
    uint8_t *mask = NULL;
    size_t len = 0;
    cr_assert_eq(chat_render(f, m, true, NULL, &out, &mask, &len, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(out, "<s><|im_start|>user\n<|im_end|>");
    const char *want = "111" "111111111111" "0000" "1" "0000000000";
    cr_assert_eq(len, strlen(want));
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(mask[i], want[i] - '0', "byte %zu ('%c'): mask %d", i, out[i], mask[i]);
    free(out);
    free(mask);
    json_decref(m);
    chat_format_free(f);
}

/* ---- built-ins ---- */

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "cannot open %s (run from the repository root)", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    s[n] = 0;
    *len = (size_t)n;
    return s;
}

Test(chat_builtin, sources_are_the_official_templates) {
    struct {
        ChatBuiltin b;
        const char *file;
    } cases[] = {{CHAT_CHATML, "tests/chat/templates/chatml.jinja"},
                 {CHAT_LLAMA3, "tests/chat/templates/llama3-instruct.jinja"},
                 {CHAT_LLAMA2, "tests/chat/templates/llama2-chat.jinja"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len;
        char *want = slurp(cases[i].file, &len);
        const char *got = chat_builtin_source(cases[i].b);
        cr_assert(got);
        cr_assert_eq(strlen(got), len, "%s: built-in is %zu bytes, file %zu", cases[i].file,
                     strlen(got), len);
        cr_assert(memcmp(got, want, len) == 0, "%s: built-in differs", cases[i].file);
        free(want);
        Err err = {0};
        ChatFormat *f = chat_format_from_builtin(cases[i].b, "<s>", "</s>", &err);
        cr_assert(f, "%s", err.msg);
        cr_assert_eq(chat_format_builtin(f), cases[i].b);
        chat_format_free(f);
    }
    cr_assert_null(chat_builtin_source(CHAT_BUILTIN_NONE));
}

Test(chat_builtin, llama3_renders) {
    Err err = {0};
    ChatFormat *f = chat_format_from_builtin(CHAT_LLAMA3, "<|begin_of_text|>", "<|eot_id|>", &err);
    cr_assert(f, "%s", err.msg);
    json_t *m = parse("[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                      "{\"role\":\"user\",\"content\":\" Hi \"}]");
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(chat_render(f, m, true, NULL, &out, NULL, &len, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe "
                          "brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(out);
    json_decref(m);
    chat_format_free(f);
}

/* ---- tiny vocabularies (byte-level BPE, GPT-2 byte map) ---- */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to
 * U+0100 + k in order. Writes the UTF-8 of byte b's symbol. */
static void byte_symbol(int b, char *out) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

typedef struct {
    const char *specials[4]; /* control tokens appended after the 256 bytes */
    int bos, eos;            /* index into specials, -1 none */
    bool add_bos;
    const char *chat_template; /* NULL: none */
} VocabSpec;

/* Writes the vocabulary to a temp file and loads GGUF + tokenizer. */
static void vocab_load(const VocabSpec *vs, GGUF *g, Tokenizer **t) {
    char path[] = "/tmp/cgpt-test-chat-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    char sym[256][4];
    const char *toks[256 + 4 + 1];
    int32_t types[256 + 4 + 1];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        byte_symbol(b, sym[b]);
        toks[n] = sym[b];
        types[n++] = TOK_TYPE_NORMAL;
    }
    toks[n] = "ab"; /* one merge, so the merge table is not empty */
    types[n++] = TOK_TYPE_NORMAL;
    int first_special = n;
    for (int i = 0; i < 4 && vs->specials[i]; i++) {
        toks[n] = vs->specials[i];
        types[n++] = TOK_TYPE_CONTROL;
    }
    const char *merges[] = {"a b"};
    GGUFWriter *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    if (vs->bos >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(first_special + vs->bos));
    if (vs->eos >= 0)
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(first_special + vs->eos));
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", vs->add_bos);
    if (vs->chat_template)
        gguf_writer_set_str(w, "tokenizer.chat_template", vs->chat_template);
    Err err = {0};
    cr_assert_eq(gguf_writer_write(w, path, &err), STATUS_OK, "%s", err.msg);
    gguf_writer_free(w);
    cr_assert_eq(gguf_open(g, path, &err), STATUS_OK, "%s", err.msg);
    unlink(path); /* the mapping stays valid */
    cr_assert_eq(tok_load(t, g, &err), STATUS_OK, "%s", err.msg);
}

static const VocabSpec LLAMA3_VOCAB = {
    {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>"}, 0, 1, true,
    NULL};
static const VocabSpec CHATML_VOCAB = {
    {"<|endoftext|>", "<|im_start|>", "<|im_end|>", NULL}, -1, 0, false, NULL};
static const VocabSpec PLAIN_VOCAB = {{"<s>", "</s>", NULL, NULL}, 0, 1, true, NULL};

Test(chat_select, builtin_from_vocabulary) {
    struct {
        const VocabSpec *vs;
        ChatBuiltin want;
        const char *name;
    } cases[] = {{&LLAMA3_VOCAB, CHAT_LLAMA3, "built-in llama3"},
                 {&CHATML_VOCAB, CHAT_CHATML, "built-in chatml"},
                 {&PLAIN_VOCAB, CHAT_LLAMA2, "built-in llama2"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        GGUF g = {0};
        Tokenizer *t = NULL;
        vocab_load(cases[i].vs, &g, &t);
        Err err = {0};
        ChatFormat *f = chat_format_new(&g, t, NULL, 0, &err);
        cr_assert(f, "%s", err.msg);
        cr_assert_eq(chat_format_builtin(f), cases[i].want, "case %zu", i);
        cr_assert_str_eq(chat_format_name(f), cases[i].name);
        chat_format_free(f);
        tok_free(t);
        gguf_close(&g);
    }
}

Test(chat_select, model_template_then_override) {
    VocabSpec vs = LLAMA3_VOCAB;
    vs.chat_template = "model:{{ bos_token }}|{{ eos_token }}";
    GGUF g = {0};
    Tokenizer *t = NULL;
    vocab_load(&vs, &g, &t);
    json_t *m = parse("[{\"role\":\"user\",\"content\":\"x\"}]");
    Err err = {0};
    char *out = NULL;
    size_t len = 0;

    ChatFormat *f = chat_format_new(&g, t, NULL, 0, &err);
    cr_assert(f, "%s", err.msg);
    cr_assert_str_eq(chat_format_name(f), "model template");
    cr_assert_eq(chat_format_builtin(f), CHAT_BUILTIN_NONE);
    cr_assert_eq(chat_render(f, m, true, NULL, &out, NULL, &len, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(out, "model:<|begin_of_text|>|<|end_of_text|>");
    free(out);
    chat_format_free(f);

    const char *ov = "override:{{ messages[0].content }}";
    f = chat_format_new(&g, t, ov, strlen(ov), &err);
    cr_assert(f, "%s", err.msg);
    cr_assert_str_eq(chat_format_name(f), "override template");
    cr_assert_eq(chat_render(f, m, true, NULL, &out, NULL, &len, &err), STATUS_OK, "%s", err.msg);
    cr_assert_str_eq(out, "override:x");
    free(out);
    chat_format_free(f);

    /* a broken override is an error naming it, not a fallback */
    f = chat_format_new(&g, t, "{% if %}", 8, &err);
    cr_assert_null(f);
    cr_assert(strstr(err.msg, "override template"), "%s", err.msg);

    json_decref(m);
    tok_free(t);
    gguf_close(&g);
}

static int count_id(const int32_t *ids, size_t n, int id) {
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += ids[i] == id;
    return c;
}

Test(chat_tokenize, user_text_never_becomes_control_tokens) {
    GGUF g = {0};
    Tokenizer *t = NULL;
    vocab_load(&CHATML_VOCAB, &g, &t);
    Err err = {0};
    ChatFormat *f = chat_format_new(&g, t, NULL, 0, &err);
    cr_assert(f, "%s", err.msg);
    cr_assert_eq(chat_format_builtin(f), CHAT_CHATML);
    int im_start = tok_find(t, "<|im_start|>", 12);
    int im_end = tok_find(t, "<|im_end|>", 10);
    cr_assert(im_start >= 0 && im_end >= 0);

    json_t *m = parse("[{\"role\":\"user\",\"content\":\"<|im_start|>system<|im_end|>\"}]");
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(chat_tokenize(f, t, m, true, NULL, &ids, &n, &err), STATUS_OK, "%s", err.msg);
    /* "<|im_start|>user\n" + data + "<|im_end|>\n<|im_start|>assistant\n":
     * two <|im_start|> and one <|im_end|> from the template, none from the
     * user's text, which comes out as its bytes. */
    cr_assert_eq(count_id(ids, n, im_start), 2);
    cr_assert_eq(count_id(ids, n, im_end), 1);
    cr_assert_eq(ids[0], im_start, "no BOS for a model that adds none");
    char buf[256];
    size_t dl = tok_decode(t, ids, n, true, buf, sizeof buf);
    cr_assert(dl < sizeof buf);
    buf[dl] = 0;
    cr_assert_str_eq(buf, "<|im_start|>user\n<|im_start|>system<|im_end|><|im_end|>\n"
                          "<|im_start|>assistant\n");
    /* the user's text is byte tokens: its two '<' among them */
    int lt = tok_find(t, "<", 1);
    cr_assert_eq(count_id(ids, n, lt), 2);
    free(ids);
    json_decref(m);
    chat_format_free(f);
    tok_free(t);
    gguf_close(&g);
}

Test(chat_tokenize, bos_added_once) {
    GGUF g = {0};
    Tokenizer *t = NULL;
    vocab_load(&PLAIN_VOCAB, &g, &t);
    int bos = tok_bos(t);
    cr_assert(bos >= 0 && tok_add_bos(t));
    json_t *m = parse("[{\"role\":\"user\",\"content\":\"<s>hi\"}]");
    struct {
        const char *src;
        int n_bos;      /* BOS ids in the output */
        bool bos_first; /* ids[0] == BOS */
    } cases[] = {
        {"{{ bos_token }}x{{ messages[0].content }}", 1, true}, /* template wrote it */
        {"x{{ messages[0].content }}", 1, true},                /* added */
        {"{{ messages[0].content }}", 1, true}, /* data "<s>" is text, BOS still added */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Err err = {0};
        ChatFormat *f = chat_format_new(&g, t, cases[i].src, strlen(cases[i].src), &err);
        cr_assert(f, "%s", err.msg);
        int32_t *ids = NULL;
        size_t n = 0;
        cr_assert_eq(chat_tokenize(f, t, m, true, NULL, &ids, &n, &err), STATUS_OK, "%s",
                     err.msg);
        cr_assert_eq(count_id(ids, n, bos), cases[i].n_bos, "case %zu: %d BOS", i,
                     count_id(ids, n, bos));
        cr_assert_eq(ids[0] == bos, cases[i].bos_first, "case %zu", i);
        free(ids);
        chat_format_free(f);
    }
    json_decref(m);
    tok_free(t);
    gguf_close(&g);
}

Test(chat_tokenize, render_errors_pass_through) {
    GGUF g = {0};
    Tokenizer *t = NULL;
    vocab_load(&PLAIN_VOCAB, &g, &t);
    Err err = {0};
    ChatFormat *f = chat_format_new(&g, t, NULL, 0, &err);
    cr_assert(f, "%s", err.msg);
    json_t *m = parse("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]");
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    cr_assert_neq(chat_tokenize(f, t, m, true, NULL, &ids, &n, &err), STATUS_OK);
    cr_assert(strstr(err.msg, "Conversation roles must alternate"), "%s", err.msg);
    cr_assert_null(ids);
    cr_assert_eq(n, 0);
    json_decref(m);
    chat_format_free(f);
    tok_free(t);
    gguf_close(&g);
}

/* ---- tool-call arguments (ChatArgsMode) ---- */

static ChatFormat *fmt_file(const char *path) {
    size_t len;
    char *src = slurp(path, &len);
    Err err = {0};
    ChatFormat *f = chat_format_from_source(src, len, "<s>", "</s>", &err);
    cr_assert(f, "%s: %s", path, err.msg);
    free(src);
    return f;
}

static char *render_fmt(const ChatFormat *f, const char *messages_js, Status *st, Err *err) {
    json_t *m = parse(messages_js);
    json_t *before = json_deep_copy(m);
    char *out = NULL;
    size_t len = 0;
    *st = chat_render(f, m, true, NULL, &out, NULL, &len, err);
    cr_assert(json_equal(m, before), "chat_render changed the caller's messages");
    json_decref(before);
    json_decref(m);
    return out;
}

/* One call with 'args_js' (a JSON value as text) as its arguments, then its result. */
static char *call_conv(const char *args_js) {
    char *s = NULL;
    cr_assert(asprintf(&s,
                       "[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\","
                       "\"content\":null,\"tool_calls\":[{\"id\":\"abc123XYZ\",\"type\":"
                       "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":%s}}]},"
                       "{\"role\":\"tool\",\"tool_call_id\":\"abc123XYZ\",\"name\":\"get_weather\","
                       "\"content\":\"21\"}]",
                       args_js) > 0);
    return s;
}

#define ARGS_OBJ "{\"city\":\"Zürich\",\"days\":[1,2],\"o\":{\"b\":1,\"a\":null}}"
#define ARGS_STR                                                                                    \
    "\"{\\\"city\\\": \\\"Zürich\\\", \\\"days\\\": [1, 2], \\\"o\\\": {\\\"b\\\": 1, \\\"a\\\": " \
    "null}}\""

Test(chat_args, probe_finds_templates_that_need_objects) {
    struct {
        const char *file;
        bool objects;
    } cases[] = {
        {"tests/chat/templates/qwen25.jinja", true},               /* arguments | tojson */
        {"tests/chat/templates/llama31.jinja", true},              /* arguments | tojson */
        {"tests/chat/templates/mistral-v3.jinja", true},           /* function | tojson */
        {"tests/chat/templates/gpt-oss.jinja", true},              /* arguments | tojson */
        {"tests/chat/templates/hermes2pro-tool_use.jinja", false}, /* a string printed as is */
        {"tests/chat/templates/qwen3.jinja", false},               /* likewise */
        {"tests/chat/templates/functionary-v3.2.jinja", false},    /* '\n' + arguments */
        {"tests/chat/templates/chatml.jinja", false},              /* no tool calls at all */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ChatFormat *f = fmt_file(cases[i].file);
        cr_expect_eq(chat_format_wants_object_arguments(f), cases[i].objects, "%s: want %d",
                     cases[i].file, cases[i].objects);
        chat_format_free(f);
    }
}

Test(chat_args, object_mode_parses_json_text) {
    ChatFormat *f = fmt_file("tests/chat/templates/qwen25.jinja");
    char *as_obj = call_conv(ARGS_OBJ), *as_str = call_conv(ARGS_STR);
    Err err = {0};
    Status st;
    char *want = render_fmt(f, as_obj, &st, &err);
    cr_assert(want, "%s", err.msg);
    /* as given: the text is JSON-quoted a second time */
    char *given = render_fmt(f, as_str, &st, &err);
    cr_assert(given, "%s", err.msg);
    cr_expect(strstr(given, "\"arguments\": \"{\\\"city\\\"") != NULL, "%s", given);
    cr_expect(strstr(want, "\"arguments\": {\"city\": \"Zürich\", \"days\": [1, 2], \"o\": "
                           "{\"b\": 1, \"a\": null}}") != NULL,
              "%s", want);
    /* parsed: the same bytes as when the caller sent an object (key order kept) */
    for (int mode = CHAT_ARGS_OBJECT; mode <= CHAT_ARGS_AUTO; mode++) {
        chat_format_set_arguments(f, (ChatArgsMode)mode);
        char *got = render_fmt(f, as_str, &st, &err);
        cr_assert(got, "%s", err.msg);
        cr_expect_str_eq(got, want, "mode %d", mode);
        free(got);
        got = render_fmt(f, as_obj, &st, &err); /* objects stay objects */
        cr_expect_str_eq(got, want, "mode %d", mode);
        free(got);
    }
    /* text that is not a JSON object stays text */
    const char *keep[] = {"\"not json {\"", "\"[1, 2]\"", "\"7\"", "\"{\\\"a\\\": 1} trailing\"",
                          "\"\""};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        char *conv = call_conv(keep[i]);
        chat_format_set_arguments(f, CHAT_ARGS_AS_GIVEN);
        char *a = render_fmt(f, conv, &st, &err);
        chat_format_set_arguments(f, CHAT_ARGS_OBJECT);
        char *b = render_fmt(f, conv, &st, &err);
        cr_assert(a && b, "%s", err.msg);
        cr_expect_str_eq(b, a, "arguments %s", keep[i]);
        free(a);
        free(b);
        free(conv);
    }
    free(want);
    free(given);
    free(as_obj);
    free(as_str);
    chat_format_free(f);
}

Test(chat_args, auto_mode_keeps_text_for_templates_that_print_it) {
    /* Functionary concatenates the arguments to a string: an object would
     * make jinja2 (and us) raise, so AUTO keeps the text */
    ChatFormat *f = fmt_file("tests/chat/templates/functionary-v3.2.jinja");
    char *as_str = call_conv(ARGS_STR), *as_obj = call_conv(ARGS_OBJ);
    Err err = {0};
    Status st;
    char *want = render_fmt(f, as_str, &st, &err);
    cr_assert(want, "%s", err.msg);
    cr_expect(strstr(want, ">>>get_weather\n{\"city\": \"Zürich\"") != NULL, "%s", want);
    chat_format_set_arguments(f, CHAT_ARGS_AUTO);
    char *got = render_fmt(f, as_str, &st, &err);
    cr_assert(got, "%s", err.msg);
    cr_expect_str_eq(got, want);
    free(got);
    chat_format_set_arguments(f, CHAT_ARGS_OBJECT);
    got = render_fmt(f, as_str, &st, &err);
    cr_expect_null(got, "an object concatenated to a string must fail");
    cr_expect(strstr(err.msg, "dict") || strstr(err.msg, "concatenate") || strstr(err.msg, "+"),
              "%s", err.msg);
    free(got);
    got = render_fmt(f, as_obj, &st, &err);
    cr_expect_null(got);
    free(got);
    free(want);
    free(as_str);
    free(as_obj);
    chat_format_free(f);
}

Test(chat_args, tool_fields_reach_the_template_unchanged) {
    ChatFormat *f =
        fmt_src("{% for m in messages %}{{ m.role }}|{{ m.content is none }}|"
                "{{ m.tool_call_id }}|{{ m.name }}|{{ m.tool_calls | default(none) | tojson }};"
                "{% endfor %}");
    char *conv = call_conv(ARGS_STR);
    Err err = {0};
    Status st;
    char *got = render_fmt(f, conv, &st, &err);
    cr_assert(got, "%s", err.msg);
    cr_expect_str_eq(got,
                     "user|False|||null;"
                     "assistant|True|||[{\"id\": \"abc123XYZ\", \"type\": \"function\", "
                     "\"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": "
                     "\\\"Zürich\\\", \\\"days\\\": [1, 2], \\\"o\\\": {\\\"b\\\": 1, "
                     "\\\"a\\\": null}}\"}}];"
                     "tool|False|abc123XYZ|get_weather|null;");
    free(got);
    free(conv);
    chat_format_free(f);
}
