// Structured outputs and tool calling through the OFFICIAL `openai` npm
// client (tests/js/node_modules/openai), with independent oracles: ajv (+
// ajv-formats) validates every JSON reply and every call's arguments
// against the schema the request gave, zod (through the SDK's own
// zodResponseFormat / zodFunction helpers) parses them.
//
// One server serves the built-in model (its ChatML template knows no tools:
// the GENERIC format) and random models (build/tools/genmodel, byte-level
// vocabulary) carrying published chat templates (tests/chat/templates):
// Qwen 2.5 (Hermes <tool_call>), Llama 3.1 (JSON, <|python_tag|>), Mistral
// v3 ([TOOL_CALLS]), gpt-oss (harmony channels) and Qwen 3 (<think>).
// Checks:
// - chat.completions.parse with zodResponseFormat: parsed and valid, streamed
//   too; response_format json_object gives a JSON object; a schema keyword
//   outside the supported set is a 400 naming it; a bad grammar is a 400;
// - many random generations per schema (a random model at temperature 1.5,
//   n = 16 per request) all parse and validate (none may be cut off);
// - tool_choice required / named in every format: message.tool_calls with
//   ids, names and arguments valid against the tool's parameters,
//   finish_reason "tool_calls", content null; streamed: OpenAI's deltas
//   (index, id, type and name once, then argument fragments) assembling to
//   the non-streamed answer (greedy), the SDK's stream helper's events;
// - runTools (the SDK's loop) calling a zodFunction, then the tool result
//   sent back as a tool message and answered;
// - the grammar field: a reply forced to "<think>..</think>.." on the Qwen 3
//   template comes back split into reasoning_content and content, streamed
//   and not.
// Usage: node tests/serve/test_tools.mjs [CGPT_BINARY] [GENERATIONS]
//   (default build/cgpt, 1008 generations per schema; fewer under ASan)
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import OpenAI, { BadRequestError } from '../js/node_modules/openai/index.mjs';
import { zodResponseFormat, zodFunction } from '../js/node_modules/openai/helpers/zod.mjs';
import { z } from '../js/node_modules/zod/index.js';

const require = createRequire(import.meta.url);
const Ajv2020 = require('../js/node_modules/ajv/dist/2020.js').default;
const addFormats = require('../js/node_modules/ajv-formats/dist/index.js').default;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CGPT = path.resolve(ROOT, process.argv[2] || 'build/cgpt');
const GENERATIONS = Number(process.argv[3] || 1008);
const TOOLS = path.join(ROOT, 'build', 'tools');
const TEMPLATES = path.join(ROOT, 'tests', 'chat', 'templates');

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
  return s === undefined ? String(v) : s.length > 800 ? s.slice(0, 800) + '...' : s;
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
function validator(schema) {
  const { $schema, ...rest } = schema; // zod writes draft-07's URI; the keywords used mean the same in 2020-12
  return ajv.compile(rest);
}

// ------------------------------------------------------------------ models
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cgpt-tools-'));
function run(cmd, args) {
  return execFileSync(cmd, args, { encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'] });
}
// A random model with a published template: (alias, template file).
const RANDOM = [
  ['qwen25', 'qwen25.jinja', 'hermes'],
  ['llama31', 'llama31.jinja', 'llama3'],
  ['mistral', 'mistral-v3.jinja', 'mistral'],
  ['gptoss', 'gpt-oss.jinja', 'harmony'],
  ['qwen3', 'qwen3.jinja', 'hermes'],
];
const modelArgs = ['-m', path.join(ROOT, 'models', 'cgpt-mini.gguf')];
const raw = path.join(tmp, 'raw.gguf');
run(path.join(TOOLS, 'genmodel'), ['--arch', 'llama', '--vocab', '300', '--embd', '64', '--layers', '2',
  '--heads', '4', '--kv-heads', '2', '--ff', '128', '--ctx', '8192', '--seed', '5', '-o', raw]);
modelArgs.push('-m', raw, '--alias', 'random');
for (const [alias, file] of RANDOM) {
  const out = path.join(tmp, `${alias}.gguf`);
  const src = fs.readFileSync(path.join(TEMPLATES, file), 'utf8');
  run(CGPT, ['meta', raw, out, '--set-str', `tokenizer.chat_template=${src}`]);
  modelArgs.push('-m', out, '--alias', alias);
}

// ------------------------------------------------------------------ server
let server = null;
let serverErr = '';
function startServer(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(CGPT, ['serve', '--port', '0', '--data-dir', tmp, '--no-web', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: ROOT,
    });
    server = p;
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line in 120 s: ${serverErr.slice(-2000)}`)), 120000);
    p.stderr.on('data', (d) => {
      serverErr += d.toString();
      if (serverErr.length > 200000) serverErr = serverErr.slice(-100000);
    });
    p.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/cgpt serve: listening on (http:\/\/[^\s]+):(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(`${m[1]}:${m[2]}`);
      }
    });
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? sig}) before ready: ${serverErr.slice(-2000)}`));
    });
  });
}
function cleanup() {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

// ------------------------------------------------------------------ helpers
async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}
// The streamed tool-call deltas of choice 0, checked for OpenAI's shape
// (id, type and name on the first delta of an index only) and assembled.
function assembleCalls(chunks) {
  const calls = [];
  let shapeOk = true;
  let content = '';
  let reasoning = '';
  let finish = null;
  for (const c of chunks) {
    for (const ch of c.choices || []) {
      const d = ch.delta || {};
      if (typeof d.content === 'string') content += d.content;
      if (typeof d.reasoning_content === 'string') reasoning += d.reasoning_content;
      if (ch.finish_reason) finish = ch.finish_reason;
      for (const t of d.tool_calls || []) {
        if (!calls[t.index]) {
          shapeOk &&= typeof t.id === 'string' && t.type === 'function' && typeof t.function?.name === 'string';
          calls[t.index] = { id: t.id, name: t.function.name, arguments: t.function.arguments || '' };
        } else {
          shapeOk &&= t.id === undefined && t.type === undefined && t.function?.name === undefined;
          calls[t.index].arguments += t.function?.arguments || '';
        }
      }
    }
  }
  return { calls, shapeOk, content, reasoning, finish };
}

const WEATHER = {
  type: 'object',
  properties: {
    city: { type: 'string', maxLength: 12 },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    days: { type: 'integer', minimum: 1, maximum: 7 },
  },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const SEARCH = {
  type: 'object',
  properties: {
    query: { type: 'string', maxLength: 10 },
    tags: { type: 'array', items: { type: 'string', enum: ['news', 'web', 'code'] }, maxItems: 3 },
    exact: { type: 'boolean' },
  },
  required: ['query'],
  additionalProperties: false,
};
const TOOL_DEFS = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER } },
  { type: 'function', function: { name: 'search', description: 'Search "the web"', parameters: SEARCH } },
];
const PARAMS = { get_weather: validator(WEATHER), search: validator(SEARCH) };
// For the built-in model, whose 256-token context holds only a short tool.
const SMALL = { type: 'object', properties: { q: { type: 'string', maxLength: 8 } }, required: ['q'],
  additionalProperties: false };
const SMALL_DEFS = [{ type: 'function', function: { name: 'search', parameters: SMALL } }];
const SMALL_PARAMS = { search: validator(SMALL) };

// The built-in model's context is 256 tokens: its replies run to its end.
function mt(model, n) {
  return model === 'cgpt-mini' ? {} : { max_tokens: n };
}

function callsValid(calls, params = PARAMS) {
  return calls.every((c) => {
    let args;
    try {
      args = JSON.parse(c.function ? c.function.arguments : c.arguments);
    } catch {
      return false;
    }
    const name = c.function ? c.function.name : c.name;
    return params[name] && params[name](args);
  });
}

// ------------------------------------------------------------------ the suite
async function main() {
  const base = await startServer(modelArgs);
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 600000 });
  const USER = [{ role: 'user', content: 'What is the weather like in Paris today?' }];

  // ---- response_format: zod, through the SDK's parse helper
  const Answer = z.object({
    answer: z.enum(['yes', 'no', 'maybe']),
    confidence: z.number().int().min(0).max(100),
    reason: z.string().max(16),
    tags: z.array(z.enum(['a', 'b', 'c'])).max(2),
    note: z.string().max(8).nullable(),
  });
  const rf = zodResponseFormat(Answer, 'answer');
  const vAnswer = validator(rf.json_schema.schema);
  for (const model of ['cgpt-mini', 'random']) {
    const r = await client.chat.completions.parse({
      model, messages: USER, response_format: rf, ...mt(model, 400), seed: 3, temperature: 1,
    });
    const m = r.choices[0].message;
    check(r.choices[0].finish_reason === 'stop' && m.parsed && vAnswer(JSON.parse(m.content)),
      `${model}: chat.completions.parse(zodResponseFormat) gives a parsed, valid object`, r.choices[0]);
    const s = client.chat.completions.stream({
      model, messages: USER, response_format: rf, ...mt(model, 400), seed: 3, temperature: 1,
    });
    const fin = await s.finalChatCompletion();
    check(fin.choices[0].message.parsed && fin.choices[0].message.content === m.content,
      `${model}: the streamed parse equals the non-streamed one`, [fin.choices[0].message.content, m.content]);
  }
  {
    const r = await client.chat.completions.create({
      model: 'random', messages: USER, response_format: { type: 'json_object' }, max_tokens: 600, n: 8,
      seed: 11, temperature: 1, logit_bias: {},
    });
    let ok = 0;
    let cut = 0;
    for (const ch of r.choices) {
      if (ch.finish_reason === 'length') { cut++; continue; }
      try {
        const v = JSON.parse(ch.message.content);
        if (v && typeof v === 'object' && !Array.isArray(v)) ok++;
      } catch { /* counted as not ok */ }
    }
    check(ok + cut === 8 && ok > 0, `json_object: every finished reply is a JSON object (${ok} finished, ${cut} cut)`,
      r.choices.map((c) => c.message.content));
  }

  // ---- many random generations per schema (n = 16 per request)
  const SCHEMAS = {
    answer: rf.json_schema.schema,
    weather_call: WEATHER,
    nested: {
      type: 'object',
      $defs: { point: { type: 'object', properties: { x: { type: 'integer', minimum: -50, maximum: 50 },
        y: { type: 'number', minimum: 0, maximum: 1 } }, required: ['x', 'y'], additionalProperties: false } },
      properties: {
        id: { type: 'string', format: 'uuid' },
        when: { type: 'string', format: 'date' },
        at: { type: 'string', format: 'time' },
        kind: { anyOf: [{ const: 'line' }, { type: 'null' }, { type: 'integer', exclusiveMinimum: 0, maximum: 9 }] },
        points: { type: 'array', items: { $ref: '#/$defs/point' }, minItems: 1, maxItems: 3 },
        ok: { type: ['boolean', 'null'] },
        code: { type: 'string', pattern: '^[A-Z]{2}\\d{2}$' },
      },
      required: ['id', 'points', 'kind', 'code'],
      additionalProperties: false,
    },
  };
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    const v = validator(schema);
    let good = 0;
    let total = 0;
    let bad = null;
    for (let seed = 0; total < GENERATIONS; seed++) {
      const r = await client.chat.completions.create({
        model: 'random', messages: USER, n: 16, seed, temperature: 1.5, max_tokens: 1500,
        response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } },
      });
      for (const ch of r.choices) {
        total++;
        let okOne = ch.finish_reason === 'stop';
        try {
          okOne = okOne && v(JSON.parse(ch.message.content));
        } catch {
          okOne = false;
        }
        if (okOne) good++;
        else if (!bad) bad = { finish: ch.finish_reason, content: ch.message.content, errors: v.errors };
      }
    }
    check(good === total, `schema '${name}': ${good} of ${total} random generations parse and validate`, bad);
  }

  // ---- unsupported keywords, bad grammars: 400 naming them
  for (const [body, param, needle] of [
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^(?=a)a+$' } } } },
      'response_format.json_schema.schema', "lookahead '(?='"],
    [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', patternProperties: {} } } } },
      'response_format.json_schema.schema', 'patternProperties'],
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'number', multipleOf: 2 } } } } }],
      tool_choice: 'required' }, 'tools[0].function.parameters', 'multipleOf'],
    [{ grammar: 'root ::= "a" | undefined-rule' }, 'grammar', 'undefined-rule'],
    [{ grammar: 'root ::= "unterminated' }, 'grammar', '1:'],
  ]) {
    try {
      await client.chat.completions.create({ model: 'cgpt-mini', messages: USER, max_tokens: 5, ...body });
      check(false, `400 for ${clip(body)}`, 'accepted');
    } catch (e) {
      check(e instanceof BadRequestError && e.param === param && e.message.includes(needle),
        `400 naming '${needle}' in ${param}`, `${e.constructor.name} ${e.param} ${e.message}`);
    }
  }

  // ---- tool calls in every format
  const FORMATS = [['cgpt-mini', 'generic'], ['random', 'generic'], ...RANDOM.map(([alias, , fmt]) => [alias, fmt])];
  for (const [model, fmt] of FORMATS) {
    // the built-in model's 256-token context holds one tool's description
    const tools = model === 'cgpt-mini' ? SMALL_DEFS : TOOL_DEFS;
    const params = model === 'cgpt-mini' ? SMALL_PARAMS : PARAMS;
    // One call each: with parallel_tool_calls the grammar admits one or more,
    // and a random model may repeat calls until max_tokens (parallel calls
    // are the parser's and the grammar's unit tests, tests/chat/test_toolcall.c).
    for (const [choice, parallel] of [['required', false], [{ type: 'function', function: { name: 'search' } }, false]]) {
      const what = `${model} (${fmt}) tool_choice ${typeof choice === 'string' ? choice : 'search'}`;
      const req = {
        model, messages: USER, tools, tool_choice: choice, parallel_tool_calls: parallel,
        ...mt(model, 600), temperature: 0,
      };
      const r = await client.chat.completions.create(req);
      const ch = r.choices[0];
      const calls = ch.message.tool_calls || [];
      check(ch.finish_reason === 'tool_calls' && calls.length >= 1 && callsValid(calls, params) &&
        calls.every((c) => c.type === 'function' && /^call_[A-Za-z0-9]{24}$|^[A-Za-z0-9]{9}$/.test(c.id)) &&
        (typeof choice === 'string' || calls.every((c) => c.function.name === 'search')) &&
        (parallel || calls.length === 1),
      `${what}: tool_calls valid against their parameters, finish_reason tool_calls`, ch);
      const chunks = await collect(await client.chat.completions.create({ ...req, stream: true }));
      const a = assembleCalls(chunks);
      const same = a.calls.length === calls.length &&
        a.calls.every((c, i) => c.name === calls[i].function.name && c.arguments === calls[i].function.arguments);
      check(a.shapeOk && same && a.finish === 'tool_calls',
        `${what}: streamed deltas (id/type/name once, then argument fragments) assemble to the same calls`,
        { streamed: a, whole: calls });
    }
  }

  // ---- the SDK's stream helper and runTools
  {
    const s = client.chat.completions.stream({
      model: 'qwen25', messages: USER, tools: TOOL_DEFS, tool_choice: 'required', max_tokens: 600, temperature: 0,
    });
    let deltas = 0;
    const done = [];
    s.on('tool_calls.function.arguments.delta', () => deltas++);
    s.on('tool_calls.function.arguments.done', (e) => done.push(e));
    const fin = await s.finalChatCompletion();
    const calls = fin.choices[0].message.tool_calls || [];
    check(deltas > 1 && done.length === calls.length && done.every((e, i) => e.arguments === calls[i].function.arguments),
      `stream helper: ${deltas} argument deltas, a done event per call with its arguments`, { done, calls });
  }
  for (const model of ['random', 'qwen25', 'llama31', 'mistral']) {
    const seen = [];
    const small = false;
    const result = { temperature: 21, sky: 'clear' };
    const runner = client.chat.completions.runTools({
      model, messages: USER, ...mt(model, 300), temperature: 0,
      tools: [zodFunction({
        name: 'get_weather',
        description: small ? undefined : 'The weather in a city',
        // (no string lengths: zod counts UTF-16 units where JSON Schema counts code points)
        parameters: small ? z.object({ unit: z.enum(['celsius', 'fahrenheit']) })
          : z.object({ city: z.enum(['Paris', 'Rome']), days: z.number().int().min(1).max(7),
            unit: z.enum(['celsius', 'fahrenheit']) }),
        function: (args) => { seen.push(args); return result; },
      })],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    await runner.done();
    const msgs = runner.messages;
    const tool = msgs.find((m) => m.role === 'tool');
    check(seen.length === 1 && ['celsius', 'fahrenheit'].includes(seen[0].unit) && tool &&
      tool.content === JSON.stringify(result),
    `${model}: runTools called the zodFunction with parsed arguments and added the tool result`, { seen, msgs });
    // the tool result goes back; the model answers (no tools this turn)
    const r = await client.chat.completions.create({
      model, messages: msgs, tool_choice: 'none', ...mt(model, 20), temperature: 0,
    });
    check(typeof r.choices[0].message.content === 'string' && !r.choices[0].message.tool_calls,
      `${model}: the conversation with the tool call and its result is answered`, r.choices[0]);
  }

  // ---- reasoning: <think> split off (the grammar field forces the text)
  {
    const grammar = 'root ::= "<think>" [a-z ]{3,12} "</think>" [A-Za-z]{2,10}';
    const req = { model: 'qwen3', messages: USER, grammar, max_tokens: 100, temperature: 1, seed: 4 };
    const r = await client.chat.completions.create(req);
    const m = r.choices[0].message;
    check(/^[a-z ]{3,12}$/.test(m.reasoning_content || '') && /^[A-Za-z]{2,10}$/.test(m.content || '') &&
      r.choices[0].finish_reason === 'stop',
    'qwen3: <think> goes to reasoning_content, the rest to content', m);
    const a = assembleCalls(await collect(await client.chat.completions.create({ ...req, stream: true })));
    check(a.reasoning === m.reasoning_content && a.content === m.content,
      'qwen3: streamed reasoning_content and content deltas equal the whole reply', a);
  }
}

main()
  .catch((e) => {
    failed++;
    console.log(`not ok - the suite threw: ${e?.stack || e}`);
    console.log(serverErr.slice(-3000));
  })
  .finally(() => {
    if (server) server.kill('SIGTERM');
    console.log(`test_tools: ${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
  });
