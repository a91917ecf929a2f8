// test_wordpiece.mjs - our WordPiece (tokenizer.ggml.model "bert") against
// transformers.js's BertTokenizer (@lenml/tokenizers, pinned in
// tests/js/package.json).
//
//   node tests/tokenizer/test_wordpiece.mjs          (run by test_wordpiece.sh)
//   env: CGPT_BUILD=DIR  the build to test (tools/genmodel, tools/tokbatch); build/ by default
//        WP_SHOW=N       mismatches printed per vocabulary (default 10)
//
// For an uncased and a cased vocabulary: build/tools/genmodel writes a random
// bert model with its WordPiece vocabulary (as llama.cpp's converter writes
// BERT's: "\u2581" marks word-initial pieces, continuations have no "##");
// the vocabulary is read back (tests/ref/gguf_np.py) and turned into a
// Hugging Face tokenizer.json (pieces with "##", BertNormalizer with
// lowercase = uncased, BertPreTokenizer, WordPiece with [UNK] and 100
// characters per word, [CLS] $A [SEP]). A corpus of accents, CJK,
// punctuation, mixed case, long words, emoji, control and odd whitespace
// characters, plus random strings drawn from those pieces, is encoded with
// [CLS] ... [SEP] by build/tools/tokbatch --bos --eos --special (bracketed
// specials in the text are their tokens, as Hugging Face matches added tokens) and by the npm
// tokenizer: the ids must be identical string by string.
//
// Left out of the corpus on purpose (known differences, wordpiece.c):
// astral CJK ideographs (transformers.js tests CJK per UTF-16 unit),
// unassigned code points (Unicode versions differ: ICU here, node's ICU there).
//
// Exits non-zero on any mismatch; the last line is "N passed, N failed".

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD = process.env.CGPT_BUILD || path.join(root, 'build');
const GENMODEL = path.join(BUILD, 'tools', 'genmodel');
const TOKBATCH = path.join(BUILD, 'tools', 'tokbatch');
const SHOW = Number(process.env.WP_SHOW || 10);
const { TokenizerLoader } = await import(
    path.join(root, 'tests', 'js', 'node_modules', '@lenml', 'tokenizers', 'dist', 'main.mjs'));

function run(cmd, args, input) {
    const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 28, encoding: 'utf8' });
    if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
    return r.stdout;
}

// The GGUF's tokens, through the independent NumPy reader.
function ggufTokens(file) {
    const py = `import sys, json; sys.path.insert(0, ${JSON.stringify(path.join(root, 'tests', 'ref'))})
import gguf_np
g = gguf_np.load(${JSON.stringify(file)})
print(json.dumps(list(g.metadata["tokenizer.ggml.tokens"])))`;
    return JSON.parse(run('/usr/bin/python3', ['-c', py]));
}

function hfTokenizer(tokens, lowercase) {
    const vocab = {};
    tokens.forEach((t, id) => {
        let hf;
        if (t.startsWith('[') && t.endsWith(']')) hf = t;
        else if (t.startsWith('\u2581')) hf = t.slice(1);
        else hf = '##' + t;
        vocab[hf] = id;
    });
    const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
    const st = (id) => ({ SpecialToken: { id, type_id: 0 } });
    const tokenizerJSON = {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: special.map((s) => ({
            id: vocab[s], content: s, single_word: false, lstrip: false, rstrip: false,
            normalized: false, special: true,
        })),
        normalizer: {
            type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
            strip_accents: null, lowercase,
        },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        post_processor: {
            type: 'TemplateProcessing',
            single: [st('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, st('[SEP]')],
            pair: [st('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, st('[SEP]'),
                { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
            special_tokens: Object.fromEntries(['[CLS]', '[SEP]'].map((s) =>
                [s, { id: s, ids: [vocab[s]], tokens: [s] }])),
        },
        decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
        model: {
            type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
            max_input_chars_per_word: 100, vocab,
        },
    };
    const tokenizerConfig = {
        tokenizer_class: 'BertTokenizer', do_lower_case: lowercase, model_max_length: 512,
        cls_token: '[CLS]', sep_token: '[SEP]', unk_token: '[UNK]', pad_token: '[PAD]',
        mask_token: '[MASK]',
    };
    return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
}

const FIXED = [
    '', ' ', 'hello', 'Hello World', 'HELLO, WORLD!!!', 'hello,world', 'The cafe',
    'Café naïve façade résumé Ångström', 'ÉCOLE élève', 'Ça va? Où es-tu?', 'İstanbul ıi',
    'Straße groß ÆØÅ æøå Łódź', 'ΟΔΟΣ οδος Σίσυφος αβγ', 'Привет мир, ПРИВЕТ', '中国人的日本',
    '我是中国人。你好！', 'あいうえお ひらがな カタカナ', '한국어 텍스트 가나다', 'e\u0301 a\u0300 n\u0303',
    'playing played player plays unplayable', 'tokenization tokenizer tokenized',
    'embedding models embed', 'xyzzy qwrtp', 'supercalifragilisticexpialidocious',
    'a'.repeat(99), 'a'.repeat(100), 'a'.repeat(101), 'ab'.repeat(60) + ' ok',
    'emoji 😀 🎉👍🏽 family 👨‍👩‍👧 flags 🇫🇷', 'tabs\tand\nnewlines\r\nmixed',
    'nbsp\u00a0here\u2003em\u3000ideographic', 'line\u2028sep\u2029para',
    'zero\u200bwidth\u200cjoiner\u200d', 'bom\ufeffin text', 'soft\u00adhyphen',
    'ctrl\u0001\u0007\u001fchars\u007f\u0085', 'private\ue000use', 'nul\u0000byte',
    'replacement\ufffdchar', '"quotes" and \'single\' `back`', '(parens) [brackets] {braces} <angles>',
    'a+b=c; x*y/z; 100% $5 #1 @user ^caret ~tilde |pipe \\back', '...---...',
    '¿Qué? ¡Sí! «guillemets» „Anführung“ “curly” ‘single’', '— en–dash … ellipsis · middot',
    '§ ¶ † ‡ • ※ © ® ™ ° ± × ÷', '3.14159 2,718 1e10 0x1F', 'don\'t won\'t it\'s',
    'MiXeD CaSe WoRdS', 'ﬁ ﬂ ligatures', 'ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３', 'Ⅻ ⅻ ① ②',
    'Ǆ ǅ ǆ title', 'ΐ ΰ', 'ẞ ß', 'K Å Ω signs', 'Hello [CLS] world [SEP]', '[UNK] [MASK]',
    '##ing ##', '\u2581hello \u2581', 'a\u0301\u0302\u0303b', 'ąęįų', 'ŉ ǰ', 'ǈ Ǉ',
    'Dz dz DZ', 'Ⱥ ⱥ', 'Ω ω', 'İi̇', 'ΣΑΣ ΣΑΣ.', 'ΌΣΟΣ', 'x\u0345y', 'Ǳ',
];

// random strings from pieces of the vocabulary and the characters above
function randomCorpus(tokens, n, seed) {
    let s = seed >>> 0;
    const rnd = (k) => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s % k; };
    const pieces = tokens.filter((t) => !t.startsWith('[')).map((t) => t.replace('\u2581', ''));
    const extra = [' ', ' ', ' ', ',', '.', '!', 'É', 'é', 'Ä', 'ñ', 'ç', 'Σ', 'Ж', '中', '的',
        '😀', '\t', '\u00a0', '-', "'", 'A', 'Z', 'Q', '\u0301', 'ǅ', '日本', '한'];
    const out = [];
    for (let i = 0; i < n; i++) {
        const k = 1 + rnd(12);
        let str = '';
        for (let j = 0; j < k; j++) {
            let p = rnd(3) ? pieces[rnd(pieces.length)] : extra[rnd(extra.length)];
            if (rnd(4) === 0) p = p.toUpperCase();
            str += p + (rnd(3) ? '' : ' ');
        }
        out.push(str);
    }
    return out;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cgpt-wordpiece-'));
let passed = 0, failed = 0;
try {
    for (const [label, cased] of [['uncased', false], ['cased', true]]) {
        const file = path.join(tmp, `${label}.gguf`);
        run(GENMODEL, ['--arch', 'bert', '--vocab', '320', '--embd', '32', '--layers', '1',
            '--heads', '2', '--ff', '32', '--ctx', '16', '-o', file, ...(cased ? ['--cased'] : [])]);
        const tokens = ggufTokens(file);
        const hf = hfTokenizer(tokens, !cased);
        const corpus = FIXED.concat(randomCorpus(tokens, 2000, cased ? 7 : 3));
        const ours = run(TOKBATCH, ['-m', file, '--bos', '--eos', '--special'],
            corpus.map((s) => JSON.stringify(s)).join('\n') + '\n')
            .trim().split('\n').map((l) => JSON.parse(l));
        let bad = 0;
        corpus.forEach((s, i) => {
            const want = hf.encode(s);
            const got = ours[i];
            if (JSON.stringify(got) === JSON.stringify(want)) {
                passed++;
                return;
            }
            failed++;
            if (bad++ < SHOW)
                console.log(`MISMATCH ${label} ${JSON.stringify(s)}\n  got  ${JSON.stringify(got)}` +
                    `\n  want ${JSON.stringify(want)}`);
        });
        console.log(`${label}: ${corpus.length - bad}/${corpus.length} strings equal ` +
            `(${FIXED.length} fixed, ${corpus.length - FIXED.length} random)`);
    }
} finally {
    fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
