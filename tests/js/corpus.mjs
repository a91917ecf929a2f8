// corpus.mjs - deterministic test strings for the tokenizer oracle test.
//
//   import { corpus, specialCorpus } from './corpus.mjs'
//   corpus(seed = 1, scale = 1) -> [{cat, s} | {cat, hex}]   several thousand items
//                              (scale multiplies the random parts)
//   specialCorpus(family)   -> [{cat, s}]   strings with special-token markup
//   node tests/js/corpus.mjs [N]   prints the first N items as JSON lines
//
// {s} items are valid UTF-16 strings without lone surrogates (so valid UTF-8
// once encoded); {hex} items are raw bytes, mostly invalid UTF-8, that only
// our tokenizer sees (the npm tokenizers take JS strings). Everything comes
// from fixed tables and a seeded PRNG (mulberry32): the same seed gives the
// same corpus on every machine and node version.

export function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

const PROSE = [
    'The quick brown fox jumps over the lazy dog.',
    "It's a truth universally acknowledged that a single man in possession of a good fortune must be in want of a wife.",
    "I'm sure they're right, but we'll see; you've been told he'd come and she'd stay.",
    "IT'S LOUD. WE'RE HERE. YOU'LL SEE. THEY'VE GONE. I'M OUT. HE'D KNOW. DON'T.",
    "It'S mIxEd: we'Re, you'Ll, they'VE, I'M, she'D, can'T.",
    "Don't stop. Won't stop. Can't stop. Shouldn't've. Y'all'd've.",
    'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse...',
    'Hello, world! How are you today? Fine, thanks -- and you?',
    'Mr. Smith paid $1,234.56 on 2024-03-15 at 10:45am (UTC+2) for 3.5kg of apples @ 12% off.',
    '"Quoted," she said. \'Single quotes\' and `backticks` and «guillemets» and “curly” ‘quotes’.',
    'e.g. i.e. etc. vs. a.m. p.m. U.S.A. Ph.D.',
    'HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 42\r\n\r\n',
    'https://example.com/path/to/page?query=1&b=two#frag and mailto:someone@example.org',
    'ALL CAPS SENTENCE WITH NUMBERS 123 AND SYMBOLS !@#$%^&*()_+-=[]{}|;:,.<>/?~',
    'Ünïcödé façade naïve café résumé Ångström Øre Straße Œuvre',
    'Здравствуйте, мир! Как дела? Всё хорошо.',
    'Γειά σου Κόσμε! Ελληνικά γράμματα.',
    'שלום עולם, זה טקסט בעברית.',
    'नमस्ते दुनिया, यह हिंदी में पाठ है।',
    'สวัสดีชาวโลก นี่คือข้อความภาษาไทย',
    'Xin chào thế giới, đây là tiếng Việt.',
    'Merhaba dünya! Türkçe metin: ığüşöç İĞÜŞÖÇ',
    'კარგი დღე, ქართული ტექსტი',
    'ကမ္ဘာကြီး မင်္ဂလာပါ',
    'ជំរាបសួរ ពិភពលោក កាន់តែពិសេសអាច',
];

const CJK = [
    '我想在apple工作1314151天～',
    '今天天气很好，我们去公园散步吧。人工智能正在改变世界。',
    '中华人民共和国成立于1949年10月1日。',
    '日本語のテキストです。ひらがな、カタカナ、漢字が混ざっています。',
    '東京は日本の首都で、人口は約1400万人です。「こんにちは」と言った。',
    'ｶﾀｶﾅ　全角スペース　ＡＢＣ１２３',
    '한국어 텍스트입니다. 안녕하세요, 세계!',
    '서울특별시는 대한민국의 수도이다. 한글 자모: ㄱㄴㄷㄹ ᄀᄂ',
    'مرحبا بالعالم! هذا نص باللغة العربية مع أرقام ١٢٣٤٥٦٧٨٩٠.',
    'السلام عليكم ورحمة الله وبركاته، كيف حالك؟',
    'فارسی: سلام دنیا! این یک متن است.',
];

const EMOJI = [
    '🚀', '😀😃😄', '👍🏽', '👋🏻👋🏼👋🏽👋🏾👋🏿', '👨‍👩‍👧‍👦', '👩‍💻', '🏳️‍🌈', '🏴‍☠️', '❤️', '❤️‍🔥',
    '😶‍🌫️', '🇯🇵🇺🇸🇫🇷', '🦙🦙', '✅ ✔️ ☑️', '🧑🏾‍🤝‍🧑🏻', '1️⃣2️⃣#️⃣', '🫠🫡🫶', '👁️‍🗨️', '🐈‍⬛',
];

const COMBINING = [
    'e\u0301', 'cafe\u0301', 'n\u0303o', 'a\u0300\u0301\u0302\u0303', 'Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319',
    '\u1100\u1161\u11a8', 'A\u030a', 'o\u0308\u0304', '\u0915\u094d\u0937', 'i\u0307', 'ﬁ ﬂ ﬀ', 'Å vs \u212b vs A\u030a',
    '\u00e9 vs e\u0301', '\u1e9b\u0323', '한\u1112\u1161\u11ab',
];

const CODE = [
    '#include <stdio.h>\n\nint main(void) {\n\tprintf("hello, %s\\n", "world");\n\treturn 0;\n}\n',
    'static int add(int a, int b) { return a + b; }  // sum\n/* block\n * comment */\n',
    'for (size_t i = 0; i < n; i++) {\n    if (x[i] != y[i]) { ++bad; }\n}\n',
    'def fib(n):\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
    'class Foo(Bar):\n    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n        self.x: dict[str, int] = {}\n',
    'if __name__ == "__main__":\n\tmain()\n',
    '{"name": "cgpt", "version": "1.0.0", "list": [1, 2.5, -3e10, true, false, null], "nested": {"a": {"b": []}}}',
    '{\n  "key": "value",\n  "arr": [\n    1,\n    2\n  ]\n}\n',
    'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\' ORDER BY id DESC;',
    'const f = async (x) => { await g(x?.y ?? 0); return `${x}!`; };',
    '<html><body><div class="a">Text &amp; more</div></body></html>',
    '$ ls -la | grep "\\.c$" > out.txt 2>&1 && echo done',
    'fn main() -> Result<(), Box<dyn Error>> {\n    let v: Vec<u8> = vec![0; 16];\n    Ok(())\n}\n',
    '    indented by four\n        by eight\n\t\ttwo tabs\n \t mixed\n',
    'x=1;y=2;z=x+y*3-4/5%6**7//8',
    '#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l "$f"\ndone\n',
    '|||| ---- ==== ____ .... ,,,, ;;;; :::: !!!! ???? #### ```` """ \'\'\'',
    'a\tb\tc\n1\t2\t3\n',
    '0x1F 0b1010 0o777 1_000_000 3.14159e-10 -0.0 +inf NaN',
];

const NUMBERS = [
    '0', '7', '12', '123', '1234', '12345', '123456', '1234567', '12345678', '123456789',
    '3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3',
    '3.14159265358979323846264338327950288419716939937510',
    '2024-01-01T00:00:00Z', '+1 (555) 123-4567', '1,000,000.00', '١٢٣٤٥٦٧٨٩٠', '一二三四五六七八九十', '①②③ ⅠⅡⅢ ¹²³ ½ ¾',
];

// Special-token strings of the families tested (user text may contain them).
export const SPECIAL_STRINGS = [
    '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|eot_id|>', '<|begin_of_text|>', '<|end_of_text|>',
    '<|start_header_id|>', '<|end_header_id|>', '<|python_tag|>', '<|reserved_special_token_5|>',
    '<s>', '</s>', '<unk>', '<bos>', '<eos>', '<pad>', '<start_of_turn>', '<end_of_turn>', '<mask>',
    '<think>', '</think>', '<tool_call>', '</tool_call>', '<|fim_prefix|>', '[multimodal]', '<unused7>',
    '<table>', '</td>', '<h1>', '[INST]', '[/INST]', '<<SYS>>',
];

const WHITESPACE_CHARS = [' ', '\n', '\t', '\r\n', '\r', '\u00a0', '\u3000', '\u2009', '\u000b', '\u000c'];

function pick(rng, arr) {
    return arr[Math.floor(rng() * arr.length)];
}

function int(rng, lo, hi) {
    return lo + Math.floor(rng() * (hi - lo + 1));
}

function randomDigits(rng, n) {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(48 + int(rng, 0, 9));
    return s;
}

// Random code points from assorted blocks (no surrogates, no noncharacters).
const BLOCKS = [
    [0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff],
    [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2190, 0x23ff], [0x3040, 0x30ff],
    [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xff00, 0xffef], [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0x0, 0x1f],
];

function randomChars(rng, n) {
    let s = '';
    for (let i = 0; i < n; i++) {
        const [lo, hi] = pick(rng, BLOCKS);
        s += String.fromCodePoint(int(rng, lo, hi));
    }
    return s;
}

function randomWords(rng, n) {
    const words = PROSE.join(' ').split(/\s+/);
    const out = [];
    for (let i = 0; i < n; i++) {
        let w = pick(rng, words);
        const r = rng();
        if (r < 0.1) w = w.toUpperCase();
        else if (r < 0.2) w = w[0].toUpperCase() + w.slice(1);
        out.push(w);
    }
    return out.join(' ');
}

const PIECES = [...PROSE, ...CJK, ...EMOJI, ...COMBINING, ...CODE, ...NUMBERS];

function randomMix(rng) {
    const n = int(rng, 1, 6);
    let s = '';
    for (let i = 0; i < n; i++) {
        const r = rng();
        if (r < 0.35) {
            const p = pick(rng, PIECES);
            const a = int(rng, 0, p.length), b = int(rng, a, p.length);
            s += Array.from(p).slice(a, b + 1).join('') || p;
        } else if (r < 0.5) s += randomWords(rng, int(rng, 1, 12));
        else if (r < 0.6) s += randomDigits(rng, int(rng, 1, 30));
        else if (r < 0.75) s += pick(rng, WHITESPACE_CHARS).repeat(int(rng, 1, 12));
        else if (r < 0.85) s += randomChars(rng, int(rng, 1, 10));
        else if (r < 0.9) s += pick(rng, EMOJI);
        else if (r < 0.95) s += pick(rng, ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'LL", "n't"]);
        else s += pick(rng, SPECIAL_STRINGS);
    }
    return s;
}

export function corpus(seed = 1, scale = 1) {
    const rng = mulberry32(seed);
    const out = [];
    const add = (cat, s) => out.push({ cat, s });
    for (const s of PROSE) add('prose', s);
    for (const s of CJK) add('cjk-arabic', s);
    for (const s of EMOJI) add('emoji', s);
    for (const s of COMBINING) add('combining', s);
    for (const s of CODE) add('code', s);
    for (const s of NUMBERS) add('numbers', s);
    for (const s of SPECIAL_STRINGS) {
        add('special-as-text', s);
        add('special-as-text', `Hello ${s} world`);
        add('special-as-text', `x${s}y${s}${s}\n`);
    }
    // The llama.cpp pre-tokenizer check string (convert_hf_to_gguf.py chktxt).
    add('chktxt', '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL');
    // Edge cases.
    for (const s of ['', ' ', '  ', '\n', '\t', '\r\n', '\r', '\0', 'a\0b', '\0\0\0', ' a', 'a ', ' a ', '  a  ',
        '\u00a0', '\ufeffBOM', '\u200b\u200c\u200d', '\u2028\u2029', '\u0085', '\u180e', '\u{10ffff}', '\ufffd',
        '▁', '▁▁hello', 'Ġ', 'Ċ', 'âĢĻ', '<0x0A>', '<0xFF>', 'a'.repeat(1000), 'ab'.repeat(300), '.'.repeat(200),
        '😀'.repeat(50), '中'.repeat(300), '1'.repeat(101), ' '.repeat(100) + 'x', '\n'.repeat(70)])
        add('edge', s);
    // Whitespace runs: 1..40 of each kind, alone, leading, trailing, between words.
    for (const w of [' ', '\n', '\t', '\r\n', '\u3000', ' \n', '\n ', ' \t']) {
        for (let k = 1; k <= 40; k++) {
            const r = w.repeat(k);
            add('whitespace', r);
            add('whitespace', `${r}word`);
            add('whitespace', `word${r}`);
            add('whitespace', `word${r}word`);
            add('whitespace', `${r}x${r}`);
        }
    }
    // Long digit runs and numbers inside text.
    for (let k = 1; k <= 40; k++) {
        add('numbers', randomDigits(rng, k));
        add('numbers', `abc${randomDigits(rng, k)}def ${randomDigits(rng, k)}.${randomDigits(rng, 3)}`);
    }
    // Contractions in every casing, after words, letters, digits and spaces.
    for (const c of ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]) {
        for (const v of [c, c.toUpperCase(), c[0] + c[1].toUpperCase() + c.slice(2)]) {
            for (const pre of ['it', 'IT', 'x', '9', ' ', '', "'", 'é', '中']) {
                add('contractions', `${pre}${v}`);
                add('contractions', `${pre}${v} ok${v}${v}`);
            }
        }
    }
    // Random word salads and random code points.
    for (let i = 0; i < 400 * scale; i++) add('words', randomWords(rng, int(rng, 1, 40)));
    for (let i = 0; i < 300 * scale; i++) add('random-chars', randomChars(rng, int(rng, 1, 40)));
    // Seeded mixes of every kind of piece.
    for (let i = 0; i < 1500 * scale; i++) add('mix', randomMix(rng));
    // Invalid UTF-8 (and a few valid byte strings given as hex).
    const hex = (bytes) => Buffer.from(bytes).toString('hex');
    const invalid = [
        [0xff], [0xc0, 0x80], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80],
        [0x80, 0x80, 0x80], [0x61, 0xff, 0x62], [0x68, 0x69, 0x20, 0xc3, 0x28], [0xfe, 0xfe, 0xff, 0xff],
        [0x20, 0x20, 0xe4, 0xb8], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x00, 0xff, 0x00],
    ];
    for (const b of invalid) out.push({ cat: 'invalid-utf8', hex: hex(b) });
    for (let i = 0; i < 40 * scale; i++) {
        const n = int(rng, 1, 24);
        const b = [];
        for (let j = 0; j < n; j++) b.push(rng() < 0.5 ? int(rng, 0x20, 0x7e) : int(rng, 0x80, 0xff));
        out.push({ cat: 'invalid-utf8', hex: hex(b) });
    }
    return out;
}

// Strings with chat markup for the parse-special run; 'specials' is the list
// of control/user-defined token strings of the family being tested.
export function specialCorpus(specials, seed = 2) {
    const rng = mulberry32(seed);
    const out = [];
    const add = (s) => out.push({ cat: 'special-on', s });
    for (const t of specials) {
        add(t);
        add(`${t}hello`);
        add(`hello${t}`);
        add(` ${t} x `);
        add(`${t}\n${t}`);
    }
    for (let i = 0; i < 300; i++) {
        let s = '';
        const n = int(rng, 1, 5);
        for (let j = 0; j < n; j++) {
            s += rng() < 0.5 ? pick(rng, specials) : pick(rng, SPECIAL_STRINGS);
            s += rng() < 0.5 ? randomMix(rng) : randomWords(rng, int(rng, 0, 6));
            if (rng() < 0.3) s += '\n';
        }
        add(s);
    }
    return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const n = +(process.argv[2] || Infinity);
    const c = corpus();
    c.slice(0, n).forEach((x) => console.log(JSON.stringify(x)));
    console.error(`corpus: ${c.length} items`);
}
