// llamacpp_check.mjs - does a GGUF that cgpt wrote load and run the same in
// the real llama.cpp?
//
//   node tests/js/llamacpp_check.mjs CGPT MODEL [LOGITS_TOOL]
//
// The oracle is llama.cpp itself, as node-llama-cpp ships it prebuilt on npm
// (@node-llama-cpp/linux-x64: libllama + libggml built by its maintainers from
// a pinned llama.cpp release; nothing is built or downloaded here: build
// "never", skipDownload). It is compared with our own code:
//   - load: llama.cpp loads MODEL with no error-level log line;
//   - tokenizer: llama_tokenize of each string, plain and with special
//     parsing, gives the ids of `cgpt tokenize [--special]`, and
//     llama_detokenize gives the string back;
//   - forward: llama.cpp's next-token distribution (node-llama-cpp 3.21's
//     public API gives probabilities, not raw logits: temperature 1, no
//     top-k/top-p/min-p, so they are the softmax of llama.cpp's logits) at
//     every position of a few prompts: log(p) matches the log-softmax of
//     build/tools/logits (our model_forward) to LOGITS_RTOL relative to the
//     row's largest |logit|, for all n_vocab tokens, and the most likely token
//     is the same (KV cache in F32, flash attention off, one thread, so
//     llama.cpp's own rounding stays small). Log-softmax is the logits less
//     one constant per row: everything but that constant is compared;
//   - generation: llama.cpp's greedy sampler (temperature 0, top-k 1, no
//     repetition penalty) continues each prompt with the ids of
//     `cgpt run --tokens ... --ids --temp 0 --ignore-eos`, and `cgpt run -p`
//     (which parses special tokens too) prints the prompt followed by
//     llama.cpp's detokenized continuation (control tokens print as nothing).
//     A divergence only passes where our logits of the two candidates are
//     within TIE_RTOL of each other (a tie either side may break).
// LOGITS_TOOL defaults to tools/logits beside CGPT. With LLAMACPP_QUANTIZED=1
// (a model with quantized weights) a prompt's log-probs pass when its first
// position agrees within QUANT_TIGHT_RTOL (every matrix of every type is
// used there: a weight layout or dequantisation that differed would break
// it), the count of agreeing positions is reported, and generation is not
// compared: llama.cpp's AVX2 activation quantizer takes the block scale as
// 127 / max where ggml's reference (and cgpt) use 1 / (max / 127), so an
// occasional activation rounds the other way and the positions after it
// drift. Ends
// with the plain line "N passed, N failed"; exits 1 if any check failed.
import {execFileSync} from "node:child_process";
import {mkdtempSync, readFileSync, rmSync} from "node:fs";
import {tmpdir} from "node:os";
import path from "node:path";

const LOGITS_RTOL = 1e-3; // measured: ~2e-7 on the 6.5M-parameter F32 model
const TIE_RTOL = 1e-4;    // candidates closer than this may swap under rounding
const GEN_TOKENS = 16;
const CTX = 256;          // llama.cpp context; prompts + GEN_TOKENS stay below it
const UNDERFLOW_LOGP = -80; // a log-prob above this must not come back as probability 0
const QUANTIZED = process.env.LLAMACPP_QUANTIZED === "1";
const QUANT_TIGHT_RTOL = 1e-5; // a position that agrees (measured: ~5e-7 before any flip)
// Sampling options under which llama.cpp's "probabilities" are the plain
// softmax of the logits (no temperature, no truncation).
const FULL = {temperature: 1, topK: 0, topP: 1, minP: 0};

const [CGPT, MODEL, LOGITS_ARG] = process.argv.slice(2);
if (!CGPT || !MODEL) {
    console.error("usage: node llamacpp_check.mjs CGPT MODEL [LOGITS_TOOL]");
    process.exit(2);
}
const LOGITS = LOGITS_ARG ?? path.join(path.dirname(CGPT), "tools", "logits");

let passed = 0, failed = 0;
function check(ok, what, detail = "") {
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ": " + detail : ""}`);
    return ok;
}
function finish() {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
}
// Runs one of our tools; a failure throws an Error whose message has its stderr.
function run(file, args) {
    try {
        return execFileSync(file, args, {maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "pipe"]});
    } catch (e) {
        const why = e.stderr?.toString().trim() || e.message;
        throw new Error(`${path.basename(file)} ${args[0]} failed: ${why}`);
    }
}
// Runs one check body; an exception in it is that check's failure.
async function guarded(what, body) {
    try {
        await body();
    } catch (e) {
        check(false, what, e.message);
    }
}
const ids = (s) => s.toString().trim().split(/\s+/).filter(Boolean).map(Number);
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const show = (a) => `[${a.join(" ")}]`;

// Our logits for one sequence of ids: rows x n_vocab float32.
const work = mkdtempSync(path.join(tmpdir(), "llamacpp-check-"));
process.on("exit", () => rmSync(work, {recursive: true, force: true}));
function ourLogits(tokens) {
    const out = path.join(work, "logits.bin");
    run(LOGITS, ["-m", MODEL, "--seq", tokens.join(" "), "--threads", "1", "-o", out]);
    const b = readFileSync(out);
    const f = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    const V = f.length / tokens.length;
    return {V, row: (i) => f.subarray(i * V, (i + 1) * V)};
}

// --- load ---------------------------------------------------------------
let llamaApi;
try {
    llamaApi = await import("node-llama-cpp");
} catch (e) {
    check(false, "import node-llama-cpp", `${e.message} (run scripts/install-node-deps.sh)`);
    finish();
}
const {getLlama, LlamaLogLevel} = llamaApi;
const errors = [];
const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
    maxThreads: 1, logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
            errors.push(message.trim());
    },
});
let model;
try {
    model = await llama.loadModel({modelPath: MODEL, gpuLayers: 0});
} catch (e) {
    check(false, "llama.cpp loads the model", `${e.message}; ${errors.join(" | ")}`);
    finish();
}
check(errors.length === 0, "llama.cpp loads the model", errors.join(" | "));
const ctx = await model.createContext({
    contextSize: CTX, threads: 1, sequences: 1, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
});
const seq = ctx.getSequence();

// --- tokenizer ----------------------------------------------------------
const TEXTS = [
    "Once upon a time, there was a little girl.",
    "Hello world",
    "  leading spaces,   runs   of spaces, trailing  ",
    "line one\nline two\n\n\ttabbed\r\nend",
    "numbers 12345 and 3.14159 and 1,000,000",
    "don't I'll we've they're it's WE'LL",
    "caf\u00e9 na\u00efve \u00fcber \u65e5\u672c\u8a9e \ud83d\ude42 \u0645\u0631\u062d\u0628\u0627",
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more<|pad|>x",
];
for (const text of TEXTS) {
    for (const special of [false, true]) await guarded(`tokenize ${JSON.stringify(text).slice(0, 60)}`, async () => {
        const want = ids(run(CGPT, ["tokenize", "-m", MODEL, "-p", text, ...(special ? ["--special"] : [])]));
        const got = model.tokenize(text, special);
        const label = `tokenize${special ? " --special" : ""} ${JSON.stringify(text).slice(0, 60)}`;
        check(same(got, want), label, same(got, want) ? `${got.length} ids` : `llama.cpp ${show(got)} cgpt ${show(want)}`);
        const back = model.detokenize(got, special);
        check(back === text, `${label} detokenizes back`, back === text ? "" : JSON.stringify(back));
    });
}

// --- forward: logits at every position ----------------------------------
const PROMPTS = [
    "Once upon a time, there was a little",
    "<|im_start|>user\nWhat is the sun?<|im_end|>\n<|im_start|>assistant\n",
];
for (const text of PROMPTS) await guarded(`log-probs ${JSON.stringify(text).slice(0, 40)}`, async () => {
    const prompt = model.tokenize(text, true);
    const ours = ourLogits(prompt);
    await seq.clearHistory();
    const out = await seq.controlledEvaluate(prompt.map((t) => [t, {generateNext: {probabilities: true, options: FULL}}]));
    let worst = 0, worstAt = -1, argmaxOk = true, sizeOk = true, nTight = 0, firstTight = false;
    for (let i = 0; i < prompt.length && sizeOk; i++) {
        let rowWorst = 0;
        const probs = out[i]?.next?.probabilities;
        if (!probs || probs.size !== ours.V) {
            sizeOk = false;
            break;
        }
        const row = ours.row(i);
        let max = -Infinity, scale = 0, b = 0;
        for (let v = 0; v < ours.V; v++) {
            max = Math.max(max, row[v]);
            scale = Math.max(scale, Math.abs(row[v]));
            if (row[v] > row[b]) b = v;
        }
        let sum = 0;
        for (let v = 0; v < ours.V; v++) sum += Math.exp(row[v] - max);
        const lse = max + Math.log(sum);
        for (const [t, q] of probs) {
            const want = row[t] - lse; // our log-softmax
            // float32 probabilities underflow near e^-103: no log to compare there
            const d = q > 0 ? Math.abs(Math.log(q) - want) / scale : (want > UNDERFLOW_LOGP ? Infinity : 0);
            if (d > worst) [worst, worstAt] = [d, i];
            rowWorst = Math.max(rowWorst, d);
        }
        if (rowWorst <= QUANT_TIGHT_RTOL) {
            nTight++;
            if (i === 0) firstTight = true;
        }
        if (probs.keys().next().value !== b) argmaxOk = false; // the map is sorted, most likely first
    }
    const label = `log-probs of ${prompt.length} positions, ${JSON.stringify(text).slice(0, 40)}`;
    if (check(sizeOk, `${label}: llama.cpp gives ${ours.V} probabilities a row`) && QUANTIZED)
        check(firstTight, label,
              `${nTight} of ${prompt.length} positions within ${QUANT_TIGHT_RTOL} (the first needed), ` +
              `max |diff|/max|logit| ${worst.toExponential(2)} at ${worstAt}`);
    else if (sizeOk)
        check(worst <= LOGITS_RTOL && argmaxOk, label,
              `max |diff|/max|logit| ${worst.toExponential(2)} at ${worstAt} (tol ${LOGITS_RTOL})` +
              (argmaxOk ? "" : ", argmax differs"));
});

// --- greedy generation --------------------------------------------------
const GEN_PROMPTS = [
    "Once upon a time",
    "The cat sat on the",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
];
for (const text of QUANTIZED ? [] : GEN_PROMPTS) await guarded(`greedy ${JSON.stringify(text).slice(0, 40)}`, async () => {
    const prompt = model.tokenize(text, true);
    await seq.clearHistory();
    const got = [];
    for await (const t of seq.evaluate(prompt, {temperature: 0, topK: 1, repeatPenalty: false, yieldEogToken: true})) {
        got.push(t);
        if (got.length >= GEN_TOKENS) break;
    }
    const want = ids(run(CGPT, ["run", "-m", MODEL, "--tokens", prompt.join(" "), "--ids", "-n", String(GEN_TOKENS),
                                "--temp", "0", "--ignore-eos", "-t", "1"]));
    const label = `greedy ${GEN_TOKENS} tokens after ${JSON.stringify(text).slice(0, 40)}`;
    if (same(got, want)) {
        check(true, label, show(got));
    } else {
        // First divergence: a pass only if our logits call it a tie.
        let k = 0;
        while (k < got.length && k < want.length && got[k] === want[k]) k++;
        let detail = `llama.cpp ${show(got)} cgpt ${show(want)}, differ at ${k}`;
        let tie = false;
        if (k < got.length && k < want.length) {
            const ctxIds = [...prompt, ...want.slice(0, k)];
            const ours = ourLogits(ctxIds);
            const row = ours.row(ctxIds.length - 1);
            const scale = row.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
            const gap = Math.abs(row[got[k]] - row[want[k]]) / scale;
            tie = gap <= TIE_RTOL;
            detail += `, relative logit gap ${gap.toExponential(2)} (tie below ${TIE_RTOL})`;
        }
        check(tie, label, detail);
    }
    const printed = run(CGPT, ["run", "-m", MODEL, "-p", text, "-n", String(GEN_TOKENS), "--temp", "0",
                               "--ignore-eos", "-t", "1"]).toString();
    const expect = text + model.detokenize(got, false) + "\n";
    check(printed === expect, `cgpt run -p ${JSON.stringify(text)} prints llama.cpp's text`,
          printed === expect ? "" : `cgpt ${JSON.stringify(printed)} llama.cpp ${JSON.stringify(expect)}`);
});

await ctx.dispose();
await model.dispose();
await llama.dispose();
finish();
