/* test_ref.c - hub/ref.h: references, quant tags, split names and the
 * file pick, against cases written from the conventions they follow
 * (Ollama's hf.co/OWNER/REPO:QUANT, llama.cpp's split names). */
#include <criterion/criterion.h>
#include <string.h>

#include "hub/ref.h"

Test(hub_ref, parses_the_three_forms) {
    HubRef r;
    Err err = {0};
    cr_assert_eq(hub_ref_parse("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:q4_k_m", &r, &err), 0);
    cr_expect_eq(r.kind, HUB_REF_HF);
    cr_expect_str_eq(r.owner, "bartowski");
    cr_expect_str_eq(r.repo, "Llama-3.2-1B-Instruct-GGUF");
    cr_expect_str_eq(r.quant, "Q4_K_M");
    cr_assert_eq(hub_ref_parse("Qwen/Qwen2.5-0.5B-Instruct-GGUF", &r, &err), 0);
    cr_expect_str_eq(r.quant, "");
    cr_assert_eq(hub_ref_parse("https://example.com/x/model.Q8_0.gguf", &r, &err), 0);
    cr_expect_eq(r.kind, HUB_REF_URL);
    static const char *bad[] = {"",
                                "noslash",
                                "a/b:",
                                "a/b:Q4 K",
                                "../x/y",
                                "a/b/c d",
                                "https://example.com/x/model.bin",
                                "https://host",
                                "a:b/c",
                                "hf.co/.hidden/x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err = (Err){0};
        cr_expect_neq(hub_ref_parse(bad[i], &r, &err), 0, "'%s' accepted", bad[i]);
        cr_expect(err.msg[0], "'%s': no message", bad[i]);
    }
}

Test(hub_ref, quant_tags_and_split_names) {
    char q[32];
    cr_expect(hub_quant_of("Llama-3.2-1B-Instruct-Q4_K_M.gguf", q, sizeof q));
    cr_expect_str_eq(q, "Q4_K_M");
    cr_expect(hub_quant_of("sub/qwen2-0_5b-instruct-q8_0.gguf", q, sizeof q));
    cr_expect_str_eq(q, "Q8_0");
    cr_expect(hub_quant_of("model.IQ4_XS.gguf", q, sizeof q));
    cr_expect_str_eq(q, "IQ4_XS");
    cr_expect(hub_quant_of("big-Q5_K_M-00002-of-00003.gguf", q, sizeof q));
    cr_expect_str_eq(q, "Q5_K_M");
    cr_expect(hub_quant_of("gemma-2b-f16.gguf", q, sizeof q));
    cr_expect_str_eq(q, "F16");
    cr_expect(!hub_quant_of("model.gguf", q, sizeof q));
    cr_expect(!hub_quant_of("Qwen2-7B.gguf", q, sizeof q), "Qwen2 is a name, 7B a size");
    int k, n;
    cr_expect(hub_split_of("x/big-Q5_K_M-00002-of-00003.gguf", &k, &n) && k == 2 && n == 3);
    cr_expect(!hub_split_of("big-00004-of-00003.gguf", &k, &n));
    cr_expect(!hub_split_of("big-0002-of-00003.gguf", &k, &n));
}

Test(hub_ref, picks_the_quant_asked_else_q4_k_m_else_the_smallest) {
    HubListed files[] = {
        {"README.md", 10},
        {"m-Q8_0.gguf", 800},
        {"m-Q4_K_M.gguf", 500},
        {"m-Q2_K.gguf", 300},
        {"mmproj-m-f16.gguf", 50},
        {"big/m-F16-00002-of-00002.gguf", 900},
        {"big/m-F16-00001-of-00002.gguf", 900},
        {"half/m-Q6_K-00001-of-00002.gguf", 100}, /* its part 2 is missing */
        {"m-Q4_K.gguf", 450},                     /* a tag that is a prefix of another */
    };
    int n = sizeof files / sizeof *files, idx[8], ni;
    char q[HUB_MAX_QUANT + 1];
    Err err = {0};
    cr_assert_eq(hub_pick(files, n, "", "o/r", idx, &ni, q, &err), 0, "%s", err.msg);
    cr_expect(ni == 1 && idx[0] == 2 && !strcmp(q, "Q4_K_M"));
    cr_assert_eq(hub_pick(files, n, "Q8_0", "o/r", idx, &ni, q, &err), 0);
    cr_expect(ni == 1 && idx[0] == 1);
    cr_assert_eq(hub_pick(files, n, "F16", "o/r", idx, &ni, q, &err), 0);
    cr_expect(ni == 2 && idx[0] == 6 && idx[1] == 5, "the parts, in order");
    err = (Err){0};
    cr_expect_eq(hub_pick(files, n, "Q5_K_M", "o/r", idx, &ni, q, &err), STATUS_NOT_FOUND);
    cr_expect(strstr(err.msg, "no Q5_K_M file") && strstr(err.msg, "Q4_K_M") &&
                  strstr(err.msg, "Q8_0") && strstr(err.msg, ", Q4_K)") && !strstr(err.msg, "Q6_K"),
              "%s", err.msg);
    /* without Q4_K_M: the smallest tagged one */
    cr_assert_eq(hub_pick(files + 1, 1, "", "o/r", idx, &ni, q, &err), 0);
    HubListed two[] = {{"a-Q8_0.gguf", 800}, {"a-Q3_K_S.gguf", 400}, {"plain.gguf", 100}};
    cr_assert_eq(hub_pick(two, 3, "", "o/r", idx, &ni, q, &err), 0);
    cr_expect(idx[0] == 1 && !strcmp(q, "Q3_K_S"), "%d %s", idx[0], q);
    HubListed none[] = {{"README.md", 1}, {"model.safetensors", 2}};
    err = (Err){0};
    cr_expect_eq(hub_pick(none, 2, "", "o/r", idx, &ni, q, &err), STATUS_NOT_FOUND);
    cr_expect(strstr(err.msg, "no GGUF"), "%s", err.msg);
}
