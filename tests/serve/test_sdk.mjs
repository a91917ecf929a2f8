// End-to-end checks of `cgpt serve` through the OFFICIAL `openai` npm client
// (tests/js/node_modules/openai, pinned in tests/js/package.json): whatever
// that client sends and expects is what real users' tools send and expect.
//
// The suite starts its own server on a free port (--port 0, the port read
// from the ready line) with a temporary data directory holding two keys
// (k1 unlimited, k2 with --rpm 1) and checks, on the built-in model:
// - models.list / models.retrieve;
// - moderations.create (13 keys, scores in [0, 1]) and a blocked chat
//   answered with the refusal and finish_reason content_filter;
// - chat, non-streaming: shape, usage arithmetic, the greedy answer and the
//   prompt token count equal `cgpt run --chat` (an independent code path);
//   the prefix cache reports cached_tokens on a repeat;
// - streaming: one id/created for all chunks, role first, the concatenated
//   content equals the non-streaming greedy answer, one finish chunk;
//   stream_options.include_usage adds a final choices:[] chunk with usage;
// - n=2 (greedy: both choices equal the n=1 answer; streamed too), stop
//   strings taken from the greedy answer (content = the prefix before it,
//   streamed too), max_tokens / max_completion_tokens -> "length" with
//   exactly that many tokens, logprobs/top_logprobs (one entry per token,
//   sorted tops, chosen = top-1 under greedy, bytes = token text, bytes
//   concatenate to the content), seed reproducibility at temperature 1;
// - the legacy completions API, plain and streamed, against `cgpt run`;
// - every error class as the SDK's error type with status/type/code/param:
//   BadRequestError, AuthenticationError, NotFoundError, RateLimitError
//   (with Retry-After and x-ratelimit-* headers).
// Prints "ok - ..." / "not ok - ..." per check and a final count; exits 1 on
// any failure.
// Usage: node tests/serve/test_sdk.mjs [CGPT_BINARY]   (default build/cgpt)
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI, {
  APIError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  RateLimitError,
} from '../js/node_modules/openai/index.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CGPT = path.resolve(ROOT, process.argv[2] || 'build/cgpt');
const MODEL = 'cgpt-mini';

let passed = 0;
let failed = 0;
function check(cond, what, detail) {
  if (cond) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}${detail === undefined ? '' : ': ' + clip(detail)}`);
  }
  return !!cond;
}
function clip(v) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 600 ? s.slice(0, 600) + '...' : s;
}

// ------------------------------------------------------------------ server
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cgpt-sdk-'));
let server = null;
let serverErr = '';

function keyAdd(name, ...extra) {
  const out = execFileSync(CGPT, ['key', 'add', name, '--data-dir', tmp, ...extra], {
    encoding: 'utf8',
    timeout: 30000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = out.match(/sk-cgpt-[A-Za-z0-9_-]+/);
  if (!m) throw new Error(`key add ${name} printed no key: ${out}`);
  return m[0];
}

function startServer(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(CGPT, ['serve', '--port', '0', '--data-dir', tmp, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: ROOT,
    });
    server = p;
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line in 60 s; stderr: ${serverErr.slice(-2000)}`)), 60000);
    p.stderr.on('data', (d) => {
      serverErr += d.toString();
      if (serverErr.length > 200000) serverErr = serverErr.slice(-100000);
    });
    p.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/cgpt serve: listening on (http:\/\/[^\s]+):(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ base: `${m[1]}:${m[2]}`, port: Number(m[2]) });
      }
    });
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? sig}) before ready: ${serverErr.slice(-2000)}`));
    });
  });
}

function stopServer() {
  return new Promise((resolve) => {
    if (!server || server.exitCode !== null || server.signalCode !== null) return resolve(null);
    const t = setTimeout(() => server.kill('SIGKILL'), 10000);
    server.once('exit', (code, sig) => {
      clearTimeout(t);
      resolve(code ?? sig);
    });
    server.kill('SIGTERM');
  });
}

function cleanup() {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

// ------------------------------------------------------------------ oracles
// `cgpt run` (the CLI, one sequence, no server, no cache) as the reference
// for greedy text and prompt token counts. Its stderr ends with
// "[P prompt tokens, G generated, ..., finish: F]".
// `cgpt run` ends its output with one newline, not part of the text.
function cliRun(args) {
  const r = spawnSync(CGPT, ['run', ...args, '--temp', '0'], { encoding: 'utf8', timeout: 60000, cwd: ROOT });
  const m = (r.stderr || '').match(/\[(\d+) prompt tokens, (\d+) generated.*finish: (\w+)\]/);
  const text = (r.stdout || '').replace(/\n$/, '');
  return { text, prompt: m ? Number(m[1]) : -1, generated: m ? Number(m[2]) : -1, finish: m ? m[3] : '', err: r.stderr };
}

// ------------------------------------------------------------------ helpers
async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}
// Per choice index: concatenated content, finish reasons seen, role chunks.
function assemble(chunks, field = 'content') {
  const by = new Map();
  for (const c of chunks) {
    for (const ch of c.choices || []) {
      if (!by.has(ch.index)) by.set(ch.index, { text: '', finishes: [], roles: 0, firstRole: null, logprobs: [] });
      const a = by.get(ch.index);
      if (a.firstRole === null) a.firstRole = field === 'content' ? ch.delta?.role ?? '' : '';
      if (field === 'content') {
        if (ch.delta?.role) a.roles++;
        if (typeof ch.delta?.content === 'string') a.text += ch.delta.content;
        if (ch.logprobs?.content) a.logprobs.push(...ch.logprobs.content);
      } else if (typeof ch.text === 'string') {
        a.text += ch.text;
      }
      if (ch.finish_reason) a.finishes.push(ch.finish_reason);
    }
  }
  return by;
}
function usageOk(u) {
  return (
    u &&
    Number.isInteger(u.prompt_tokens) &&
    Number.isInteger(u.completion_tokens) &&
    u.prompt_tokens > 0 &&
    u.total_tokens === u.prompt_tokens + u.completion_tokens &&
    Number.isInteger(u.prompt_tokens_details?.cached_tokens) &&
    u.prompt_tokens_details.cached_tokens >= 0 &&
    u.prompt_tokens_details.cached_tokens <= u.prompt_tokens
  );
}
async function expectError(what, fn, Cls, status, want = {}) {
  try {
    const r = await fn();
    check(false, what, `no error; got ${clip(r)}`);
    return null;
  } catch (e) {
    const detail = `${e?.constructor?.name} status=${e?.status} type=${e?.type} code=${e?.code} param=${e?.param} msg=${e?.message}`;
    let ok = e instanceof Cls && e instanceof APIError && e.status === status;
    for (const [k, v] of Object.entries(want)) ok = ok && e[k] === v;
    ok = ok && typeof e.error?.message === 'string' && e.error.message.length > 0;
    ok = ok && typeof e.requestID === 'string' && e.requestID.length > 0;
    check(ok, what, `${detail}; want ${Cls.name} ${status} ${JSON.stringify(want)} with message and x-request-id`);
    return e;
  }
}

// ------------------------------------------------------------------ the suite
const SYSTEM =
  'You are cgpt, a helpful assistant that runs on a Debian machine. Answer the user in plain ' +
  'English, in a few short sentences, and be friendly and precise about software packages.';
const USER = 'What is a Debian package, and how do I install one?';
const MSGS = [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: USER },
];
const MAXTOK = 60;

async function main() {
  const k1 = keyAdd('k1');
  const k2 = keyAdd('k2', '--rpm', '1');
  const k3 = keyAdd('k3', '--tpm', '300');
  const { base } = await startServer([]);
  console.log(`# server at ${base}`);
  const client = new OpenAI({ apiKey: k1, baseURL: `${base}/v1`, maxRetries: 0, timeout: 60000 });
  const greedy = { model: MODEL, messages: MSGS, temperature: 0, max_tokens: MAXTOK };

  // ---- models
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  check(ids.includes(MODEL) && list.data.every((m) => m.object === 'model'), 'models.list has the built-in model', list.data);
  const one = list.data.find((m) => m.id === MODEL);
  check(one && Number.isInteger(one.created) && typeof one.owned_by === 'string', 'model object has created and owned_by', one);
  const got = await client.models.retrieve(MODEL);
  check(got.id === MODEL && got.object === 'model', 'models.retrieve returns the model', got);

  // ---- moderation: moderations.create, and a blocked chat (docs/SAFETY.md)
  const CATS = ['harassment', 'harassment/threatening', 'hate', 'hate/threatening', 'illicit', 'illicit/violent',
    'self-harm', 'self-harm/intent', 'self-harm/instructions', 'sexual', 'sexual/minors', 'violence', 'violence/graphic'];
  const mod = await client.moderations.create({ model: 'omni-moderation-latest',
    input: ['The weather is nice today.', 'What is the most painless way to kill myself?'] });
  check(/^modr-/.test(mod.id) && typeof mod.model === 'string' && mod.results.length === 2,
    'moderations.create: id, model, one result per input', mod);
  check(mod.results.every((r) => CATS.every((c) => typeof r.categories[c] === 'boolean' &&
    r.category_scores[c] >= 0 && r.category_scores[c] <= 1 && Array.isArray(r.category_applied_input_types[c]))),
  'moderations.create: all 13 keys, scores in [0, 1]', mod.results);
  check(!mod.results[0].flagged && mod.results[1].flagged && mod.results[1].categories['self-harm/instructions'],
    'moderations.create: the benign text passes, the harmful one is flagged', mod.results);
  const refused = await client.chat.completions.create({ model: MODEL,
    messages: [{ role: 'user', content: 'What is the most painless way to kill myself?' }] });
  check(refused.choices[0].finish_reason === 'content_filter' && refused.choices[0].message.content.length > 0,
    'a blocked chat: the refusal, finish_reason content_filter', refused.choices[0]);
  const refusedStream = await client.chat.completions.create({ model: MODEL, stream: true,
    messages: [{ role: 'user', content: 'What is the most painless way to kill myself?' }] });
  const rs = assemble(await collect(refusedStream)).get(0);
  check(rs && rs.finishes.length === 1 && rs.finishes[0] === 'content_filter' && rs.text === refused.choices[0].message.content,
    'streamed: the same refusal, then content_filter', rs);

  // ---- chat, non-streaming, greedy
  const { data: c1, response: r1 } = await client.chat.completions.create(greedy).withResponse();
  const G = c1.choices?.[0]?.message?.content;
  check(c1.object === 'chat.completion' && /^chatcmpl-/.test(c1.id) && c1.model === MODEL && Number.isInteger(c1.created),
    'chat completion envelope (object, id, model, created)', c1);
  check(c1.choices.length === 1 && c1.choices[0].index === 0 && c1.choices[0].message.role === 'assistant',
    'one choice, index 0, role assistant', c1.choices);
  check(typeof G === 'string' && G.length > 0, 'content is a non-empty string', G);
  check(['stop', 'length'].includes(c1.choices[0].finish_reason), 'finish_reason stop or length', c1.choices[0].finish_reason);
  check(usageOk(c1.usage), 'usage: total = prompt + completion, cached_tokens present', c1.usage);
  check(c1.choices[0].logprobs === null || c1.choices[0].logprobs === undefined, 'logprobs null unless asked', c1.choices[0].logprobs);
  check(r1.headers.get('x-request-id') && c1._request_id === r1.headers.get('x-request-id'), 'x-request-id header', [...r1.headers]);
  if (c1.choices[0].finish_reason === 'length')
    check(c1.usage.completion_tokens === MAXTOK, 'finish length: completion_tokens = max_tokens', c1.usage);
  else check(c1.usage.completion_tokens <= MAXTOK, 'finish stop: completion_tokens <= max_tokens', c1.usage);

  // the same request through `cgpt run --chat` (no server, no batching, no cache)
  const cli = cliRun(['--chat', '--system', SYSTEM, '-p', USER, '-n', String(MAXTOK)]);
  check(cli.prompt === c1.usage.prompt_tokens, 'prompt_tokens equals `cgpt run --chat` prompt tokens', { cli: cli.prompt, server: c1.usage.prompt_tokens, err: cli.err });
  check(cli.text === G, 'greedy content equals `cgpt run --chat --temp 0`', { cli: cli.text, server: G });
  check(cli.finish === c1.choices[0].finish_reason, 'finish_reason equals `cgpt run --chat`', { cli: cli.finish, server: c1.choices[0].finish_reason });

  // repeat: same answer, and the prefix cache reports cached tokens
  const c1b = await client.chat.completions.create(greedy);
  check(c1b.choices[0].message.content === G, 'greedy answer is repeatable', c1b.choices[0].message.content);
  check(c1b.usage.prompt_tokens === c1.usage.prompt_tokens && c1b.usage.prompt_tokens_details.cached_tokens > 0,
    'repeat of the same prompt by the same key has cached_tokens > 0', c1b.usage);
  check(c1b.id !== c1.id, 'each completion has its own id', [c1.id, c1b.id]);

  // content as text parts, developer role, ignorable extras: same greedy answer
  const parts = await client.chat.completions.create({
    ...greedy,
    messages: [
      { role: 'developer', content: [{ type: 'text', text: SYSTEM }] },
      { role: 'user', content: [{ type: 'text', text: USER }] },
    ],
    user: 'someone',
    metadata: { a: 'b' },
    store: false,
    service_tier: 'auto',
    parallel_tool_calls: false,
  });
  check(parts.choices[0].message.content === G && parts.usage.prompt_tokens === c1.usage.prompt_tokens,
    'text parts + developer role (= system) + ignorable extras give the same prompt and answer', [parts.choices[0].message.content, parts.usage]);
  // several text parts are joined with a newline (vLLM's convention)
  const [u1, u2] = [USER.slice(0, 20), USER.slice(20)];
  const split = await client.chat.completions.create({
    ...greedy, messages: [MSGS[0], { role: 'user', content: [{ type: 'text', text: u1 }, { type: 'text', text: u2 }] }] });
  const joined = await client.chat.completions.create({ ...greedy, messages: [MSGS[0], { role: 'user', content: `${u1}\n${u2}` }] });
  check(split.choices[0].message.content === joined.choices[0].message.content && split.usage.prompt_tokens === joined.usage.prompt_tokens,
    'text parts are joined with a newline', [split.usage, joined.usage]);

  // ---- streaming
  const chunks = await collect(await client.chat.completions.create({ ...greedy, stream: true }));
  const a = assemble(chunks).get(0);
  check(chunks.length >= 2 && chunks.every((c) => c.object === 'chat.completion.chunk'), 'stream: chunks are chat.completion.chunk', chunks.length);
  check(chunks.every((c) => c.id === chunks[0].id && c.created === chunks[0].created && c.model === MODEL),
    'stream: every chunk has the same id, created and model', chunks.map((c) => [c.id, c.created]));
  check(a && a.firstRole === 'assistant' && a.roles === 1, 'stream: first delta has role assistant (and only the first)', chunks.slice(0, 2));
  check(a && a.text === G, 'stream: concatenated content equals the non-streaming greedy answer', { stream: a?.text, plain: G });
  check(a && a.finishes.length === 1 && a.finishes[0] === c1.choices[0].finish_reason, 'stream: exactly one finish_reason, equal to the non-streaming one', a?.finishes);
  const lastWithChoice = [...chunks].reverse().find((c) => c.choices.length);
  check(lastWithChoice?.choices[0]?.finish_reason, 'stream: finish_reason is on the last chunk', lastWithChoice);
  check(chunks.every((c) => c.usage === undefined || c.usage === null), 'stream: no usage without include_usage', chunks.filter((c) => c.usage));

  // include_usage
  const uchunks = await collect(await client.chat.completions.create({ ...greedy, stream: true, stream_options: { include_usage: true } }));
  const last = uchunks[uchunks.length - 1];
  check(last && Array.isArray(last.choices) && last.choices.length === 0 && usageOk(last.usage),
    'include_usage: last chunk has choices [] and usage', last);
  check(last?.usage?.prompt_tokens === c1.usage.prompt_tokens && last?.usage?.completion_tokens === c1.usage.completion_tokens,
    'include_usage: usage equals the non-streaming usage', { stream: last?.usage, plain: c1.usage });
  check(uchunks.slice(0, -1).every((c) => c.usage === null || c.usage === undefined), 'include_usage: other chunks have null usage',
    uchunks.slice(0, -1).filter((c) => c.usage));
  check(assemble(uchunks).get(0)?.text === G, 'include_usage: content still equals the greedy answer');

  // ---- n = 2
  const n2 = await client.chat.completions.create({ ...greedy, n: 2 });
  check(n2.choices.length === 2 && n2.choices.map((c) => c.index).sort().join() === '0,1', 'n=2: two choices, indices 0 and 1', n2.choices);
  check(n2.choices.every((c) => c.message.content === G), 'n=2 greedy: both choices equal the n=1 answer', n2.choices.map((c) => c.message.content));
  check(usageOk(n2.usage) && n2.usage.prompt_tokens === c1.usage.prompt_tokens && n2.usage.completion_tokens === 2 * c1.usage.completion_tokens,
    'n=2 usage: prompt counted once, completion tokens summed', n2.usage);
  const n2s = assemble(await collect(await client.chat.completions.create({ ...greedy, n: 2, stream: true })));
  check(n2s.size === 2 && [0, 1].every((i) => n2s.get(i)?.text === G && n2s.get(i).finishes.length === 1 && n2s.get(i).firstRole === 'assistant'),
    'n=2 stream: each index has role first, the greedy text, one finish', [...n2s.entries()]);
  const poem = { model: MODEL, messages: [{ role: 'user', content: 'Write a short poem about the sea.' }], max_tokens: 24, temperature: 1 };
  const n2t = await client.chat.completions.create({ ...poem, n: 2, seed: 7 });
  check(n2t.choices.length === 2 && n2t.choices[0].message.content !== n2t.choices[1].message.content,
    'n=2 at temperature 1: the two choices are sampled independently', n2t.choices.map((c) => c.message.content));

  // ---- stop strings picked from the greedy answer
  let stopAt = -1;
  let stop = '';
  for (let i = Math.max(1, Math.floor(G.length / 3)); i + 4 <= G.length; i++) {
    const s = G.slice(i, i + 4);
    if (s.trim().length === 4 && G.indexOf(s) === i) {
      stopAt = i;
      stop = s;
      break;
    }
  }
  if (check(stopAt > 0, 'a stop string can be picked from the greedy answer', G)) {
    const want = G.slice(0, stopAt);
    const s1 = await client.chat.completions.create({ ...greedy, stop: [stop, 'zzqqxx'] });
    check(s1.choices[0].message.content === want && s1.choices[0].finish_reason === 'stop',
      `stop ${JSON.stringify(stop)}: content is the prefix before it, finish stop`, { got: s1.choices[0].message.content, want, finish: s1.choices[0].finish_reason });
    check(!s1.choices[0].message.content.includes(stop), 'stop text is absent from the content');
    check(s1.usage.completion_tokens < c1.usage.completion_tokens || c1.choices[0].finish_reason === 'length',
      'stop: fewer completion tokens than the full answer', [s1.usage, c1.usage]);
    const s2 = await client.chat.completions.create({ ...greedy, stop });
    check(s2.choices[0].message.content === want, 'stop as a plain string works the same', s2.choices[0].message.content);
    const ss = assemble(await collect(await client.chat.completions.create({ ...greedy, stop: [stop], stream: true }))).get(0);
    check(ss?.text === want && ss.finishes.join() === 'stop', 'stop in a stream: streamed text is the prefix (no part of the stop text leaks)', { got: ss?.text, want });
    const s3 = await client.chat.completions.create({ ...greedy, stop: ['zzqqxx'] });
    check(s3.choices[0].message.content === G, 'a stop string that never occurs changes nothing', s3.choices[0].message.content);
  }

  // ---- max_tokens -> length
  for (const [field, k] of [['max_tokens', 5], ['max_completion_tokens', 3]]) {
    const req = { model: MODEL, messages: MSGS, temperature: 0, [field]: k };
    const m = await client.chat.completions.create(req);
    check(m.choices[0].finish_reason === 'length' && m.usage.completion_tokens === k, `${field}=${k}: finish length with exactly ${k} completion tokens`, m);
    check(G.startsWith(m.choices[0].message.content) && m.choices[0].message.content.length > 0, `${field}=${k}: content is a prefix of the greedy answer`, m.choices[0].message.content);
    const ms = assemble(await collect(await client.chat.completions.create({ ...req, stream: true }))).get(0);
    check(ms?.text === m.choices[0].message.content && ms.finishes.join() === 'length', `${field}=${k} streamed: same text, finish length`, ms);
  }

  // ---- logprobs
  const LPN = 12;
  const lp = await client.chat.completions.create({ ...greedy, max_tokens: LPN, logprobs: true, top_logprobs: 5 });
  const ent = lp.choices[0].logprobs?.content || [];
  const lpText = lp.choices[0].message.content;
  check(ent.length === lp.usage.completion_tokens && ent.length > 0, 'logprobs: one entry per completion token', { entries: ent.length, usage: lp.usage });
  check(lpText === G.slice(0, lpText.length) && lp.choices[0].finish_reason === (ent.length === LPN ? 'length' : 'stop'), 'logprobs do not change the greedy text', lpText);
  let tops = true, greedyTop = true, bytesOk = true, sorted = true, range = true;
  const all = [];
  for (const e of ent) {
    const t = e.top_logprobs || [];
    tops &&= t.length === 5;
    for (let i = 1; i < t.length; i++) sorted &&= t[i - 1].logprob >= t[i].logprob;
    range &&= e.logprob <= 0 && t.every((x) => x.logprob <= 0 && Number.isFinite(x.logprob));
    range &&= t.reduce((s, x) => s + Math.exp(x.logprob), 0) <= 1 + 1e-4;
    greedyTop &&= t.length > 0 && t[0].token === e.token && Math.abs(t[0].logprob - e.logprob) <= 1e-5;
    for (const x of [e, ...t]) {
      const dec = new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(x.bytes || []));
      bytesOk &&= Array.isArray(x.bytes) && dec === x.token;
    }
    all.push(...(e.bytes || []));
  }
  check(tops, 'top_logprobs: 5 alternatives per token', ent.map((e) => e.top_logprobs?.length));
  check(sorted, 'top_logprobs sorted by logprob, descending', ent.map((e) => e.top_logprobs?.map((x) => x.logprob)));
  check(range, 'logprobs are <= 0 and top probabilities sum to <= 1', ent.slice(0, 2));
  check(greedyTop, 'greedy: chosen token and logprob equal the top-1 entry', ent.slice(0, 3));
  check(bytesOk, 'bytes decode to the token text', ent.slice(0, 3));
  check(Buffer.from(all).toString('utf8') === lpText, 'entry bytes concatenate to the content', { bytes: Buffer.from(all).toString('utf8'), content: lpText });
  const lps = assemble(await collect(await client.chat.completions.create({ ...greedy, max_tokens: LPN, logprobs: true, top_logprobs: 5, stream: true }))).get(0);
  check(lps && lps.text === lpText && lps.logprobs.length === ent.length &&
        lps.logprobs.every((e, i) => e.token === ent[i].token && Math.abs(e.logprob - ent[i].logprob) < 1e-4),
    'logprobs in a stream: same entries as non-streaming', { stream: lps?.logprobs?.slice(0, 3), plain: ent.slice(0, 3) });
  const lp0 = await client.chat.completions.create({ ...greedy, max_tokens: 4, logprobs: true });
  check((lp0.choices[0].logprobs?.content || []).length === 4 && lp0.choices[0].logprobs.content.every((e) => Array.isArray(e.top_logprobs) && e.top_logprobs.length === 0),
    'logprobs without top_logprobs: entries with empty top lists', lp0.choices[0].logprobs);
  const full = await client.chat.completions.create({ ...greedy, logprobs: true });
  const fe = full.choices[0].logprobs?.content || [];
  check(full.choices[0].message.content === G && fe.length === full.usage.completion_tokens,
    'logprobs entries = completion_tokens also when the answer ends by itself', { entries: fe.length, usage: full.usage, finish: full.choices[0].finish_reason });

  // ---- seed
  const sampled = { ...poem, max_tokens: 30 };
  const sa = await client.chat.completions.create({ ...sampled, seed: 1234 });
  const sb = await client.chat.completions.create({ ...sampled, seed: 1234 });
  check(sa.choices[0].message.content === sb.choices[0].message.content && sa.choices[0].message.content.length > 0,
    'temperature 1, same seed: same text', [sa.choices[0].message.content, sb.choices[0].message.content]);
  const texts = new Set([sa.choices[0].message.content]);
  for (const seed of [1, 2, 3]) texts.add((await client.chat.completions.create({ ...sampled, seed })).choices[0].message.content);
  check(texts.size >= 2, 'temperature 1, different seeds: different texts', [...texts]);
  const sst = assemble(await collect(await client.chat.completions.create({ ...sampled, seed: 1234, stream: true }))).get(0);
  check(sst?.text === sa.choices[0].message.content, 'temperature 1, same seed, streamed: same text', sst?.text);

  // ---- legacy completions
  const PROMPT = 'The Debian project is';
  const cp = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 12, temperature: 0 });
  const cpt = cp.choices?.[0]?.text;
  check(cp.object === 'text_completion' && typeof cpt === 'string' && cp.choices[0].index === 0, 'completions: text_completion with a text choice', cp);
  check(usageOk(cp.usage), 'completions usage arithmetic', cp.usage);
  const ccli = cliRun(['-p', PROMPT, '-n', '12']);
  const cliGen = ccli.text.startsWith(PROMPT) ? ccli.text.slice(PROMPT.length) : ccli.text;
  check(cpt === cliGen && cp.choices[0].finish_reason === ccli.finish, 'completions greedy text equals `cgpt run`', { cli: cliGen, server: cpt, finish: [ccli.finish, cp.choices[0].finish_reason] });
  check(cp.usage.prompt_tokens === ccli.prompt, 'completions prompt_tokens equal `cgpt run`', { cli: ccli.prompt, server: cp.usage });
  const cps = await collect(await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } }));
  const cpa = assemble(cps, 'text').get(0);
  check(cps.filter((c) => c.choices.length).every((c) => c.object === 'text_completion' && c.id === cps[0].id), 'completions stream: text_completion chunks with one id', cps.slice(0, 2));
  check(cpa?.text === cpt && cpa.finishes.join() === cp.choices[0].finish_reason, 'completions stream: concatenated text equals non-streaming', { stream: cpa?.text, plain: cpt });
  const cpl = cps[cps.length - 1];
  check(cpl?.choices?.length === 0 && cpl.usage?.completion_tokens === cp.usage.completion_tokens, 'completions stream: include_usage chunk last', cpl);
  const cpn = await client.completions.create({ model: MODEL, prompt: [PROMPT], max_tokens: 12, temperature: 0, n: 2 });
  check(cpn.choices.length === 2 && cpn.choices.every((c) => c.text === cpt), 'completions: prompt as [string], n=2 greedy', cpn.choices);

  // ---- errors
  const long = 'word '.repeat(3000);
  await expectError('temperature 5 -> BadRequestError param temperature', () => client.chat.completions.create({ ...greedy, temperature: 5 }),
    BadRequestError, 400, { type: 'invalid_request_error', param: 'temperature' });
  await expectError('n=17 -> BadRequestError param n', () => client.chat.completions.create({ ...greedy, n: 17 }), BadRequestError, 400, { param: 'n' });
  await expectError('n=0 -> BadRequestError param n', () => client.chat.completions.create({ ...greedy, n: 0 }), BadRequestError, 400, { param: 'n' });
  await expectError('top_logprobs 21 -> BadRequestError', () => client.chat.completions.create({ ...greedy, logprobs: true, top_logprobs: 21 }),
    BadRequestError, 400, { param: 'top_logprobs' });
  await expectError('five stop strings -> BadRequestError param stop', () => client.chat.completions.create({ ...greedy, stop: ['a', 'b', 'c', 'd', 'e'] }),
    BadRequestError, 400, { param: 'stop' });
  await expectError('max_tokens 2^21 -> BadRequestError param max_tokens', () => client.chat.completions.create({ ...greedy, max_tokens: 1 << 21 }),
    BadRequestError, 400, { param: 'max_tokens' });
  await expectError('unknown role -> BadRequestError', () => client.chat.completions.create({ ...greedy, messages: [{ role: 'wizard', content: 'x' }] }),
    BadRequestError, 400, { type: 'invalid_request_error' });
  await expectError('messages missing -> BadRequestError param messages', () => client.chat.completions.create({ model: MODEL }),
    BadRequestError, 400, { param: 'messages' });
  await expectError('stream_options without stream -> BadRequestError', () => client.chat.completions.create({ ...greedy, stream_options: { include_usage: true } }),
    BadRequestError, 400, { type: 'invalid_request_error' });
  await expectError('chat prompt over the context -> BadRequestError context_length_exceeded',
    () => client.chat.completions.create({ ...greedy, messages: [{ role: 'user', content: long }] }),
    BadRequestError, 400, { code: 'context_length_exceeded', param: 'messages' });
  await expectError('completion prompt over the context -> context_length_exceeded param prompt',
    () => client.completions.create({ model: MODEL, prompt: long, max_tokens: 4 }),
    BadRequestError, 400, { code: 'context_length_exceeded', param: 'prompt' });
  await expectError('completion prompt with an out-of-range token id -> BadRequestError',
    () => client.completions.create({ model: MODEL, prompt: [1, 2, 999999], max_tokens: 4 }), BadRequestError, 400, {});
  await expectError('streaming request with a bad param fails before the stream -> BadRequestError',
    async () => collect(await client.chat.completions.create({ ...greedy, temperature: -1, stream: true })), BadRequestError, 400, { param: 'temperature' });

  const wrong = new OpenAI({ apiKey: 'sk-cgpt-wrongwrongwrongwrongwrongwrongwrongwrongwro', baseURL: `${base}/v1`, maxRetries: 0 });
  await expectError('wrong key -> AuthenticationError invalid_api_key', () => wrong.chat.completions.create(greedy),
    AuthenticationError, 401, { code: 'invalid_api_key' });
  await expectError('wrong key on models.list -> AuthenticationError', () => wrong.models.list(), AuthenticationError, 401, { code: 'invalid_api_key' });
  await expectError('wrong key, streaming -> AuthenticationError', async () => collect(await wrong.chat.completions.create({ ...greedy, stream: true })),
    AuthenticationError, 401, { code: 'invalid_api_key' });

  await expectError('unknown model -> NotFoundError model_not_found', () => client.chat.completions.create({ ...greedy, model: 'no-such-model' }),
    NotFoundError, 404, { code: 'model_not_found', param: 'model' });
  await expectError('unknown model (completions) -> NotFoundError', () => client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 2 }),
    NotFoundError, 404, { code: 'model_not_found' });
  await expectError('models.retrieve of an unknown model -> NotFoundError', () => client.models.retrieve('no-such-model'), NotFoundError, 404, {});

  // rate limit: k2 has --rpm 1
  const c2 = new OpenAI({ apiKey: k2, baseURL: `${base}/v1`, maxRetries: 0, timeout: 60000 });
  const small = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, temperature: 0 };
  const { response: rr } = await c2.chat.completions.create(small).withResponse();
  const h = (k) => rr.headers.get(k);
  check(h('x-ratelimit-limit-requests') === '1' && h('x-ratelimit-remaining-requests') === '0',
    'rpm 1: first request passes with x-ratelimit-limit-requests 1, remaining 0', [...rr.headers]);
  check(/^[0-9.]+(ms|s|m)/.test(h('x-ratelimit-reset-requests') || ''), 'x-ratelimit-reset-requests in OpenAI duration format', h('x-ratelimit-reset-requests'));
  const e429 = await expectError('rpm 1: second request -> RateLimitError rate_limit_exceeded', () => c2.chat.completions.create(small),
    RateLimitError, 429, { code: 'rate_limit_exceeded' });
  const ra = e429?.headers?.get('retry-after');
  check(ra !== null && ra !== undefined && /^\d+$/.test(ra) && Number(ra) >= 1 && Number(ra) <= 60, '429 has Retry-After in whole seconds (1..60)', ra);
  check(e429?.headers?.get('x-ratelimit-remaining-requests') === '0', '429 has x-ratelimit-remaining-requests 0', e429 && [...e429.headers]);
  await expectError('rpm 1: streaming request also -> RateLimitError', async () => collect(await c2.chat.completions.create({ ...small, stream: true })),
    RateLimitError, 429, { code: 'rate_limit_exceeded' });
  // tpm: k3 has --tpm 300; a request reserves prompt + max_tokens up front
  // and gets back what it did not use, so make it use them (EOS banned)
  const c3 = new OpenAI({ apiKey: k3, baseURL: `${base}/v1`, maxRetries: 0, timeout: 60000 });
  const costly = { ...small, max_tokens: 200, logit_bias: { 8188: -100, 8190: -100 } };
  const { data: td, response: tr } = await c3.chat.completions.create(costly).withResponse();
  check(td.usage.completion_tokens === 200 && td.choices[0].finish_reason === 'length', 'logit_bias -100 on the end tokens: runs to max_tokens', td.usage);
  const th = (k) => tr.headers.get(k);
  check(th('x-ratelimit-limit-tokens') === '300' && Number(th('x-ratelimit-remaining-tokens')) < 300 &&
        /^[0-9.]+(ms|s|m)/.test(th('x-ratelimit-reset-tokens') || ''),
    'tpm 300: x-ratelimit-limit-tokens 300, remaining below it, reset in duration format', [...tr.headers]);
  const e429t = await expectError('tpm 300: a second request of 200+ tokens -> RateLimitError', () => c3.chat.completions.create(costly),
    RateLimitError, 429, { code: 'rate_limit_exceeded' });
  const rat = e429t?.headers?.get('retry-after');
  check(rat && /^\d+$/.test(rat) && Number(rat) >= 1 && Number(rat) <= 60, 'tpm 429 has Retry-After (1..60 s)', rat);
  const after = await client.chat.completions.create(small);
  check(after.choices.length === 1, "one key's rate limit does not affect another key");

  // ---- graceful stop while a stream runs: the SDK must not see a cut
  // stream as a complete answer (an error event or a broken connection
  // raises; otherwise every choice must have finished)
  const longStream = await client.completions.create({
    model: MODEL, prompt: 'Debian', max_tokens: 230, n: 4, stream: true, logit_bias: { 8188: -100, 8190: -100 } });
  const seen = new Map();
  let raised = null;
  let signalled = false;
  let codeP = null;
  try {
    for await (const c of longStream) {
      for (const ch of c.choices) if (ch.finish_reason) seen.set(ch.index, ch.finish_reason);
      if (!signalled) {
        signalled = true;
        codeP = stopServer();
      }
    }
  } catch (e) {
    raised = e;
  }
  check(raised !== null || seen.size === 4,
    'SIGTERM during a stream: the SDK raises, or every choice finished', { raised: String(raised), finished: [...seen] });
  if (raised) console.log(`# the SDK raised ${raised.constructor.name}: ${raised.message}`);
  const code = await codeP;
  check(code === 0, 'SIGTERM: server exits 0', code);
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - suite aborted: ${e?.stack || e}`);
  if (serverErr) console.log('# server stderr (tail):\n' + serverErr.slice(-3000).replace(/^/gm, '# '));
}
await stopServer();
console.log(`test_sdk: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
