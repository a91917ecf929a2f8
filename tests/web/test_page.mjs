// test_page.mjs - the chat page in a real browser: Debian's chromium,
// headless, driven by playwright-core, against a live `cgpt serve` with the
// built-in model and a slow random model (so a reply streams long enough
// to be stopped).
//
// What a ChatGPT user does, step by step, through the accessible names the
// page promises (docs/WEB.md): create the first account, chat, watch a
// reply stream and stop it, regenerate and switch versions, edit a message
// and switch branches, reload and find it all again, search, rename,
// export and re-import, delete; a phone-sized screen and the dark theme.
// A second user never sees the first one's conversations (by list, by
// pasted URL, by API id). The XSS corpus: payloads in imported titles and
// replies and in typed messages open no dialog, break no CSP rule and send
// no request outside the origin. Reasoning and tools: a stored conversation
// (imported) shows its thinking in a collapsed "Thinking" disclosure and
// its tool calls as "Called NAME" blocks with their results; a random model
// under a template whose prompt opens <think> (as DeepSeek-R1's) streams its
// reasoning into the disclosure, never into the answer; a recorded stream
// (reasoning, content, tool-call deltas) served by route interception.
// Screenshots go to build/test/ ($CGPT_SHOTS) - look at them.
//
// Usage: node tests/web/test_page.mjs [CGPT]   (exit 1 on any failure;
// genmodel is taken from CGPT's build directory when it has one)
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "../js/node_modules/playwright-core/index.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CGPT = resolve(process.argv[2] || join(ROOT, "build", "cgpt"));
const GEN = existsSync(join(dirname(CGPT), "tools", "genmodel")) ? join(dirname(CGPT), "tools", "genmodel")
  : join(ROOT, "build", "tools", "genmodel");
const SHOTS = process.env.CGPT_SHOTS || join(ROOT, "build", "test");
const tmp = mkdtempSync(join(tmpdir(), "cgpt-page-"));
const data = join(tmp, "data");
let passed = 0;
let failed = 0;

function check(cond, what, detail = "") {
  if (cond) {
    passed++;
    console.log(`ok - ${what}`);
  } else {
    failed++;
    console.log(`not ok - ${what}${detail ? ": " + String(detail).slice(0, 400) : ""}`);
  }
  return cond;
}

async function step(what, fn) {
  try {
    await fn();
  } catch (e) {
    check(false, `${what} (threw)`, e.stack || e);
  }
}

function startServer() {
  const slow = join(tmp, "slow.gguf");
  const g = spawnSync(GEN, ["--arch", "llama", "--vocab", "300", "--embd", "768", "--layers", "8",
    "--heads", "12", "--kv-heads", "4", "--ff", "2048", "--ctx", "4096", "--type", "F16",
    "--seed", "7", "-o", slow]);
  if (g.status !== 0) throw new Error(`genmodel: ${g.stderr}`);
  // the same random model under a ChatML template whose prompt opens
  // <think> (as DeepSeek-R1's newer templates do), so everything it writes
  // is reasoning
  const thinker = join(tmp, "thinker.gguf");
  const tmpl = "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}" +
    "{%- if add_generation_prompt %}<|im_start|>assistant\n<think>\n{%- endif %}";
  const mt = spawnSync(CGPT, ["meta", slow, thinker, "--set-str", `tokenizer.chat_template=${tmpl}`]);
  if (mt.status !== 0) throw new Error(`cgpt meta: ${mt.stderr}`);
  const srv = spawn(CGPT, ["serve", "--port", "0", "--data-dir", data, "-m",
    join(ROOT, "models", "cgpt-mini.gguf"), "-m", slow, "--alias", "slow", "-m", thinker, "--alias", "thinker"],
  { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  srv.stderr.on("data", (d) => (log += d));
  return new Promise((res, rej) => {
    let out = "";
    const t = setTimeout(() => rej(new Error(`server did not start: ${log}`)), 120000);
    srv.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(t);
        res({ srv, url: m[1], log: () => log });
      }
    });
    srv.on("exit", (code) => rej(new Error(`server exited ${code}: ${log}`)));
  });
}

// Watch a page for what must never happen: a dialog, a CSP violation, a
// request leaving the origin.
function guard(page, origin, tag) {
  const bad = { dialogs: [], outside: [], csp: [] };
  page.on("dialog", (d) => {
    bad.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith("data:") && !u.startsWith("blob:")) bad.outside.push(u);
  });
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) bad.csp.push(m.text());
  });
  page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI} sample=${e.sample} at ${e.sourceFile}:${e.lineNumber}`));
  });
  page.bad = async () => {
    const inPage = await page.evaluate(() => window.__csp || []).catch(() => []);
    return { ...bad, csp: bad.csp.concat(inPage) };
  };
  page.tag = tag;
  return page;
}

async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `page-${name}.png`), fullPage: false });
}

const msg = (page, role) => page.locator(`article[data-role="${role}"]`);

async function waitIdle(page, timeout = 60000) {
  await page.getByRole("button", { name: "Send", exact: true }).waitFor({ timeout });
}

async function sendMessage(page, text) {
  const box = page.getByRole("textbox", { name: "Message", exact: true });
  await box.fill(text);
  await box.press("Enter");
}

async function main() {
  const { srv, url, log } = await startServer();
  const origin = url.replace(/\/$/, "");
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    const a = guard(await ctxA.newPage(), origin, "alice");
    let convId = null;

    await step("first account", async () => {
      await a.goto(origin + "/");
      await a.getByRole("heading", { name: "Create the first account" }).waitFor();
      await shot(a, "setup");
      await a.getByLabel("Username").fill("alice");
      await a.getByLabel("Password").fill("alice-password-1");
      await a.getByRole("button", { name: "Create account" }).click();
      await a.getByRole("textbox", { name: "Message", exact: true }).waitFor();
      check(await a.getByRole("button", { name: "New chat" }).isVisible(), "after setup: New chat");
      check(await a.getByRole("button", { name: "Log out" }).isVisible(), "after setup: Log out");
      check(await a.getByRole("navigation", { name: "Conversations" }).isVisible(), "a navigation named Conversations");
    });

    await step("chat with the built-in model", async () => {
      await sendMessage(a, "Who are you?");
      await a.waitForURL(/\/c\/[0-9a-f]{32}$/);
      convId = /\/c\/([0-9a-f]{32})/.exec(a.url())[1];
      await waitIdle(a);
      const reply = msg(a, "assistant").last();
      await reply.locator(".stats").waitFor();
      const text = await reply.locator(".body").innerText();
      check(/cgpt/i.test(text), "the reply streams in and says who it is", text);
      const stats = await reply.locator(".stats").innerText();
      check(/tokens/.test(stats) && /tokens\/s/.test(stats) && /finish: stop/.test(stats), "tokens, tokens/s and finish under the reply", stats);
      check(await msg(a, "user").count() === 1 && (await msg(a, "user").first().innerText()).includes("Who are you?"), "the user message has data-role=user");
      const links = a.getByRole("navigation", { name: "Conversations" }).getByRole("link");
      check(await links.count() === 1 && /Who are you/.test(await links.first().innerText()), "the conversation is listed, titled by its first message");
      await shot(a, "chat");
    });

    await step("regenerate and switch versions", async () => {
      const first = await msg(a, "assistant").last().locator(".body").innerText();
      await a.getByRole("button", { name: "Regenerate" }).first().click();
      await waitIdle(a);
      await a.getByText("2 / 2").waitFor();
      check(true, "Regenerate adds a second version (2 / 2)");
      await a.getByRole("button", { name: "Previous version" }).click();
      await a.getByText("1 / 2").waitFor();
      const back = await msg(a, "assistant").last().locator(".body").innerText();
      check(back === first, "Previous version shows the first reply again", `${back} vs ${first}`);
      await a.getByRole("button", { name: "Next version" }).click();
      await a.getByText("2 / 2").waitFor();
      await a.getByRole("button", { name: "Copy", exact: true }).first().click();
      check(true, "Copy on a finished reply");
    });

    await step("edit a message: a new branch, the old one kept", async () => {
      await a.getByRole("button", { name: "Edit" }).first().click();
      const ed = a.getByRole("textbox", { name: "Edit message" });
      await ed.fill("What does \"happy\" mean?");
      await a.getByRole("button", { name: "Save and send" }).click();
      await waitIdle(a);
      await a.locator("article[data-role=user]").filter({ hasText: "happy" }).waitFor();
      check(await msg(a, "user").count() === 1, "the edited branch shows one user message");
      await msg(a, "user").getByRole("button", { name: "Previous version" }).click();
      await a.locator("article[data-role=user]").filter({ hasText: "Who are you?" }).waitFor();
      check(true, "Previous version on the user message shows the old branch");
      await shot(a, "branches");
    });

    await step("reload finds everything again", async () => {
      await a.reload();
      await a.locator("article[data-role=user]").filter({ hasText: "Who are you?" }).waitFor();
      check(await a.getByText("1 / 2").count() >= 1, "the branch shown survives a reload");
      check(a.url().endsWith(`/c/${convId}`), "the URL is the conversation's");
      await a.goto(origin + "/");
      await a.goBack();
      await a.locator("article[data-role=user]").first().waitFor();
      check(a.url().endsWith(`/c/${convId}`), "back returns to the conversation");
    });

    await step("stop a streaming reply", async () => {
      await a.getByRole("button", { name: "New chat" }).click();
      await a.getByRole("combobox", { name: "Model" }).selectOption("slow");
      await a.getByRole("button", { name: "Settings" }).click();
      await a.getByLabel("Max tokens").fill("3000");
      await a.getByLabel("Temperature").fill("0"); /* greedy: this random model never ends its turn */
      await a.getByRole("button", { name: "Save settings" }).click();
      await sendMessage(a, "Write forever.");
      const stop = a.getByRole("button", { name: "Stop" });
      await stop.waitFor({ timeout: 60000 });
      await a.waitForFunction(() => (document.querySelector('article[data-role="assistant"] .body')?.textContent || "").length > 20, null, { timeout: 60000 });
      await shot(a, "streaming");
      await a.keyboard.press("Escape");
      await waitIdle(a);
      await a.waitForFunction(() => document.querySelector('article[data-role="assistant"]')?.dataset.status !== "streaming", null, { timeout: 30000 });
      await a.reload();
      const reply = msg(a, "assistant").last();
      await reply.waitFor();
      const status = await reply.getAttribute("data-status");
      const len = (await reply.locator(".body").innerText()).length;
      check(status === "stopped" && len > 0, "Esc stops the reply; it is kept, marked stopped", `${status} ${len}`);
    });

    let exported = null;
    await step("search, rename, export, import, delete", async () => {
      const nav = a.getByRole("navigation", { name: "Conversations" });
      await a.getByRole("searchbox", { name: "Search conversations" }).fill("happy");
      await a.waitForFunction(() => document.querySelectorAll('nav[aria-label="Conversations"] a').length === 1);
      check(/Who are you/.test(await nav.getByRole("link").first().innerText()), "search finds a message's text");
      await a.getByRole("searchbox", { name: "Search conversations" }).fill("");
      await a.waitForFunction(() => document.querySelectorAll('nav[aria-label="Conversations"] a').length === 2);
      await a.goto(`${origin}/c/${convId}`);
      const item = nav.getByRole("listitem").filter({ has: a.locator(`a[href="/c/${convId}"]`) });
      await item.getByRole("button", { name: "Rename" }).click();
      await a.getByRole("textbox", { name: "New title" }).fill("About me");
      await a.getByRole("textbox", { name: "New title" }).press("Enter");
      await nav.getByRole("link", { name: "About me" }).waitFor();
      check(true, "rename");
      const [dl] = await Promise.all([a.waitForEvent("download"), a.getByRole("link", { name: "Export" }).click()]);
      const file = join(tmp, "export.json");
      await dl.saveAs(file);
      exported = JSON.parse(readFileSync(file, "utf8"));
      check(exported.format === "cgpt-conversation/1" && exported.messages.length >= 5, "export: our format with every message of every branch", exported.messages?.length);
      await a.getByLabel("Import conversations").setInputFiles(file);
      await a.getByText("Imported 1 conversation").waitFor();
      check(await nav.getByRole("link", { name: "About me" }).count() === 2, "import makes a second copy");
      const copy = nav.getByRole("listitem").filter({ hasNot: a.locator(`a[href="/c/${convId}"]`) }).filter({ hasText: "About me" });
      await copy.getByRole("button", { name: "Delete" }).click();
      await a.getByRole("button", { name: "Confirm delete" }).click();
      await a.waitForFunction(() => [...document.querySelectorAll('nav[aria-label="Conversations"] a')].filter((x) => x.textContent === "About me").length === 1);
      check(true, "delete");
    });

    await step("ChatGPT's own export imports", async () => {
      const chatgpt = [{
        title: "From ChatGPT", current_node: "n3", mapping: {
          root: { id: "root", message: null, parent: null, children: ["sys"] },
          sys: { id: "sys", message: { author: { role: "system" }, content: { content_type: "text", parts: [""] } }, parent: "root", children: ["n1"] },
          n1: { id: "n1", message: { author: { role: "user" }, content: { content_type: "text", parts: ["Hello there"] } }, parent: "sys", children: ["n2", "n3"] },
          n2: { id: "n2", message: { author: { role: "assistant" }, content: { content_type: "text", parts: ["First answer"] } }, parent: "n1", children: [] },
          n3: { id: "n3", message: { author: { role: "assistant" }, content: { content_type: "text", parts: ["Second answer"] } }, parent: "n1", children: [] },
        },
      }];
      const f = join(tmp, "conversations.json");
      writeFileSync(f, JSON.stringify(chatgpt));
      await a.getByLabel("Import conversations").setInputFiles(f);
      await a.getByText("Second answer").waitFor();
      check(await a.getByText("2 / 2").count() === 1, "ChatGPT export: its branches and current node kept");
    });

    // ---- reasoning and tools
    await step("reasoning and tool calls in a stored conversation", async () => {
      const conv = {
        title: "Weather with tools", current_leaf: "a2", messages: [
          { id: "u1", role: "user", content: "What is the weather in Paris?" },
          { id: "a1", parent: "u1", role: "assistant", content: "<think>The user wants the weather. I should call get_weather.</think>",
            tool_calls: [{ id: "call_w1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\",\"unit\":\"celsius\"}" } }] },
          { id: "t1", parent: "a1", role: "tool", tool_call_id: "call_w1", name: "get_weather", content: "{\"temp\":21,\"sky\":\"sunny\"}" },
          { id: "a2", parent: "t1", role: "assistant", content: "<think>21 degrees and a clear sky: say so.</think>It is **21 °C** and sunny in Paris." },
        ],
      };
      const f = join(tmp, "tools.json");
      writeFileSync(f, JSON.stringify(conv));
      await a.getByLabel("Import conversations").setInputFiles(f);
      await a.getByText("sunny in Paris").waitFor();
      const thinking = a.getByRole("group", { name: "Thinking" });
      check(await thinking.count() === 2, "each reply's reasoning is a disclosure named Thinking", await thinking.count());
      const first = thinking.first();
      check(await first.getAttribute("open") === null, "the disclosure is collapsed by default");
      const thought = first.locator(".thinking-text");
      check(!(await thought.isVisible()), "its text is hidden until opened");
      await shot(a, "tools-collapsed");
      await first.locator("summary").click();
      await thought.waitFor({ state: "visible" });
      check((await thought.innerText()).includes("I should call get_weather"), "opened: the reasoning shows", await thought.innerText());
      const last = msg(a, "assistant").last();
      const answer = await last.locator(".answer").innerText();
      check(answer.includes("It is 21 °C and sunny in Paris.") && !answer.includes("clear sky"),
        "the answer shows without its reasoning", answer);
      check(await msg(a, "tool").count() === 0 && await msg(a, "user").count() === 1,
        "the result is not a bubble of its own (it sits in its call)", await msg(a, "user").count());
      const call = a.getByRole("group", { name: "Called get_weather" });
      check(await call.count() === 1 && (await call.locator("summary").innerText()).includes("Called get_weather"),
        "the tool call is a block 'Called get_weather'");
      await call.locator("summary").click();
      const args = await call.locator(".tool-args").innerText();
      check(args.includes('"city": "Paris"') && args.includes("\n"), "its arguments, pretty-printed JSON", args);
      const result = call.getByRole("group", { name: "Result" });
      await result.waitFor();
      check((await result.innerText()).includes('"sky": "sunny"'), "the result block inside the call, by tool_call_id", await result.innerText());
      await shot(a, "tools");
      await a.reload();
      await a.getByText("sunny in Paris").waitFor();
      check(await a.getByRole("group", { name: "Thinking" }).first().getAttribute("open") === null, "collapsed again after a reload");
    });

    await step("a recorded stream: reasoning, answer and a tool call", async () => {
      await a.getByRole("button", { name: "New chat" }).click();
      await a.getByRole("combobox", { name: "Model" }).selectOption("cgpt-mini");
      const ev = (delta, finish = null) => `data: ${JSON.stringify({ id: "chatcmpl-rec", object: "chat.completion.chunk", model: "cgpt-mini",
        choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      const body = ev({ role: "assistant", content: "" }) + ev({ reasoning_content: "Recorded thought: " }) +
        ev({ reasoning_content: "look the weather up." }) + ev({ content: "Recorded " }) + ev({ content: "answer." }) +
        ev({ tool_calls: [{ index: 0, id: "call_rec", type: "function", function: { name: "get_weather", arguments: "" } }] }) +
        ev({ tool_calls: [{ index: 0, function: { arguments: "{\"city\":" } }] }) +
        ev({ tool_calls: [{ index: 0, function: { arguments: "\"Rome\"}" } }] }) + ev({}, "tool_calls") + "data: [DONE]\n\n";
      let release;
      let streamed = false;
      const held = new Promise((r) => (release = r));
      await a.route(/\/api\/conversations\/[0-9a-f]{32}\/messages$/, (r) => {
        streamed = true;
        return r.fulfill({
          status: 200, headers: { "Content-Type": "text/event-stream", "X-Cgpt-User-Message": "1", "X-Cgpt-Assistant-Message": "2" }, body });
      });
      // hold the reload that follows the stream, so what the stream drew stays on the screen
      await a.route(/\/api\/conversations\/[0-9a-f]{32}$/, async (r) => {
        if (streamed && r.request().method() === "GET") await held;
        await r.continue();
      });
      try {
      await sendMessage(a, "Weather in Rome?");
      const reply = a.locator('article[data-id="-1"]');
      await reply.getByRole("group", { name: "Called get_weather" }).waitFor();
      await a.waitForTimeout(200);
      const think = reply.getByRole("group", { name: "Thinking" });
      check(await think.count() === 1 && (await think.locator(".thinking-text").textContent()).includes("Recorded thought: look the weather up."),
        "streamed reasoning_content goes into the Thinking disclosure");
      check(/Thought for \d+ s/.test(await think.locator("summary").innerText()), "its summary says how long it thought", await think.locator("summary").innerText());
      const ans = await reply.locator(".answer").innerText();
      check(ans.trim() === "Recorded answer.", "the answer holds the content only", ans);
      await reply.getByRole("group", { name: "Called get_weather" }).locator("summary").click();
      const args = await reply.locator(".tool-args").innerText();
      check(args.includes('"city": "Rome"'), "streamed tool-call deltas assemble into the call's arguments", args);
      await shot(a, "stream-recorded");
      } finally {
        release();
        await a.unroute(/\/api\/conversations\/[0-9a-f]{32}\/messages$/);
        await a.unroute(/\/api\/conversations\/[0-9a-f]{32}$/);
      }
      await waitIdle(a);
    });

    await step("a thinking model streams its reasoning into the disclosure", async () => {
      await a.getByRole("button", { name: "New chat" }).click();
      await a.getByRole("combobox", { name: "Model" }).selectOption("thinker");
      await a.getByRole("button", { name: "Settings" }).click();
      await a.getByLabel("Max tokens").fill("120");
      await a.getByLabel("Temperature").fill("0");
      await a.getByRole("button", { name: "Save settings" }).click();
      await sendMessage(a, "Think it over.");
      await a.waitForFunction(() => (document.querySelector('article[data-id="-1"] .thinking-text')?.textContent || "").length > 20,
        null, { timeout: 60000 });
      const live = a.locator('article[data-id="-1"]');
      const streaming = await live.count() === 1 && await live.getAttribute("data-status") === "streaming";
      const label = await live.locator(".thinking summary").innerText().catch(() => "");
      check(streaming && label.includes("Thinking…"), "while it streams: 'Thinking…'", `${streaming} ${label}`);
      check((await live.locator(".answer").innerText().catch(() => "x")) === "", "and the reasoning stays out of the answer");
      await shot(a, "thinking-stream");
      await waitIdle(a, 120000);
      const reply = msg(a, "assistant").last();
      await reply.locator(".stats").waitFor();
      const think = reply.getByRole("group", { name: "Thinking" });
      check(await think.count() === 1 && await think.getAttribute("open") === null, "stored: the reasoning in a collapsed disclosure");
      check(/Thought for \d+ s/.test(await think.locator("summary").innerText()), "summary: Thought for N s", await think.locator("summary").innerText());
      check((await think.locator(".thinking-text").textContent()).length > 20 && (await reply.locator(".answer").innerText()) === "",
        "stored as it streamed: all reasoning, no answer");
      await a.reload();
      await msg(a, "assistant").last().locator(".stats").waitFor();
      const again = msg(a, "assistant").last();
      check(await again.getByRole("group", { name: "Thinking" }).count() === 1 && (await again.locator(".answer").innerText()) === "",
        "after a reload too (the stored text says where the thinking is)");
    });

    // ---- a second user
    const add = spawnSync(CGPT, ["user", "add", "bob", "--password-stdin", "--data-dir", data], { input: "bob-password-22\n" });
    check(add.status === 0, "cgpt user add bob", add.stderr);
    const ctxB = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const b = guard(await ctxB.newPage(), origin, "bob");
    await step("login: refused, then accepted", async () => {
      await b.goto(origin + "/");
      await b.getByRole("button", { name: "Log in" }).waitFor();
      await b.getByLabel("Username").fill("bob");
      await b.getByLabel("Password").fill("wrong-password");
      await b.getByRole("button", { name: "Log in" }).click();
      const alert = b.getByRole("alert");
      await alert.waitFor();
      check(/wrong/i.test(await alert.innerText()), "a wrong password is said in role=alert", await alert.innerText());
      await shot(b, "login-failed");
      await b.getByLabel("Password").fill("bob-password-22");
      await b.getByRole("button", { name: "Log in" }).click();
      await b.getByRole("textbox", { name: "Message", exact: true }).waitFor();
      check(await b.getByRole("navigation", { name: "Conversations" }).getByRole("link").count() === 0, "bob sees none of alice's conversations");
    });
    await step("isolation by URL and by id", async () => {
      await b.goto(`${origin}/c/${convId}`);
      await b.getByRole("alert").waitFor();
      check(/does not exist/.test(await b.getByRole("alert").innerText()), "alice's URL shows bob 'does not exist'");
      check(await msg(b, "user").count() === 0, "and none of its messages");
      const st = await b.evaluate(async (id) => (await fetch(`/api/conversations/${id}`)).status, convId);
      check(st === 404, "alice's conversation id through bob's session: 404", st);
      const sa = await a.evaluate(async (id) => (await fetch(`/api/conversations/${id}`)).status, convId);
      check(sa === 200, "and 200 for alice", sa);
    });

    // ---- XSS corpus
    const payloads = [
      `<img src=x onerror=alert(1)>`, `<svg onload=alert(2)>`, `<script>alert(3)</script>`,
      `[click](javascript:alert(4))`, `[click](JaVaScRiPt:alert(5))`, `[click](jav&#x09;ascript:alert(6))`,
      `[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg3KTwvc2NyaXB0Pg==)`,
      `![remote](https://example.com/tracker.png)`, `![remote2](//example.org/x.gif)`,
      `<a href="https://example.net" style="position:fixed">x</a>`,
      `<math><mtext><table><mglyph><style><img src=x onerror=alert(8)>`,
      `<noscript><p title="</noscript><img src=x onerror=alert(9)>">`,
      `<iframe src="https://example.com"></iframe>`, `<form action="https://example.com"><input type=submit></form>`,
      `<details open ontoggle=alert(10)>`, "```html\n<img src=x onerror=alert(11)>\n```",
      `<p style="background:url(https://example.com/bg)">styled</p>`,
    ];
    await step("XSS corpus: imported titles and replies", async () => {
      const conv = {
        title: `<img src=x onerror=alert('title')> <svg onload=alert(0)>`,
        messages: payloads.flatMap((p, i) => [
          { id: `u${i}`, parent: i ? `a${i - 1}` : null, role: "user", content: p },
          { id: `a${i}`, parent: `u${i}`, role: "assistant", content: `Reply ${i}: ${p}\n\n${p}` },
        ]),
      };
      const f = join(tmp, "xss.json");
      writeFileSync(f, JSON.stringify(conv));
      await a.getByLabel("Import conversations").setInputFiles(f);
      await a.getByText(`Reply ${payloads.length - 1}:`).waitFor();
      await a.waitForTimeout(500);
      await shot(a, "xss");
      const hrefs = await a.locator("article a[href]").evaluateAll((els) => els.map((e) => e.getAttribute("href")));
      check(hrefs.every((h) => /^(https?:|mailto:|#)/i.test(h)), "every link in replies is http(s)/mailto", hrefs.join(" "));
      check(await a.locator("article img, article svg, article iframe, article form, article script, article [onerror], article [style]").count() === 0,
        "no img, svg, iframe, form, script, handler or style attribute in messages");
      const bad = await a.bad();
      check(bad.dialogs.length === 0, "no dialog opened", bad.dialogs.join(" | "));
      check(bad.csp.length === 0, "no CSP violation", bad.csp.join(" | "));
      check(bad.outside.length === 0, "no request left the origin", bad.outside.join(" | "));
      const title = await a.getByRole("navigation", { name: "Conversations" }).getByRole("link").first().innerText();
      check(title.includes("<img"), "a title with markup is shown as text", title);
    });
    await step("XSS corpus: typed messages", async () => {
      await a.getByRole("button", { name: "New chat" }).click();
      await a.getByRole("combobox", { name: "Model" }).selectOption("cgpt-mini");
      for (const p of payloads.slice(0, 4)) {
        await sendMessage(a, p);
        await waitIdle(a);
      }
      const bad = await a.bad();
      check(bad.dialogs.length === 0 && bad.csp.length === 0 && bad.outside.length === 0,
        "typed payloads: no dialog, no CSP violation, no outside request", JSON.stringify(bad));
    });

    // ---- phone and dark
    await step("phone-sized screen", async () => {
      const ctxP = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      const p = guard(await ctxP.newPage(), origin, "phone");
      await p.goto(origin + "/");
      await p.getByLabel("Username").fill("bob");
      await p.getByLabel("Password").fill("bob-password-22");
      await p.getByRole("button", { name: "Log in" }).click();
      await p.getByRole("textbox", { name: "Message", exact: true }).waitFor();
      await sendMessage(p, "What kind of thing is a hammer?");
      await waitIdle(p);
      const w = await p.evaluate(() => document.documentElement.scrollWidth);
      check(w <= 390, "no horizontal scrolling at 390 px", w);
      // one look from inside the page (two calls could straddle the sidebar's transition)
      const side = await p.evaluate(() => {
        const n = document.querySelector('nav[aria-label="Conversations"]');
        if (!n) return "absent";
        const r = n.getBoundingClientRect(), cs = getComputedStyle(n);
        return cs.display === "none" || cs.visibility === "hidden" || r.right <= 0 ? "away" : `at x=${r.x} w=${r.width}`;
      });
      check(side === "away" || side === "absent", "the sidebar is out of the way", side);
      await shot(p, "phone");
      await p.getByRole("button", { name: "Open conversations" }).click();
      await p.waitForTimeout(400);
      check(await p.getByRole("navigation", { name: "Conversations" }).getByRole("link").first().isVisible(), "the menu opens the conversations");
      await shot(p, "phone-menu");
      await ctxP.close();
    });
    await step("dark theme", async () => {
      const ctxD = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "dark" });
      const d = await ctxD.newPage();
      await d.goto(origin + "/");
      await d.getByLabel("Username").fill("alice");
      await d.getByLabel("Password").fill("alice-password-1");
      await d.getByRole("button", { name: "Log in" }).click();
      await d.getByRole("textbox", { name: "Message", exact: true }).waitFor();
      await d.goto(`${origin}/c/${convId}`);
      await msg(d, "assistant").first().waitFor();
      const bg = await d.evaluate(() => getComputedStyle(document.body).backgroundColor);
      check(bg === "rgb(33, 33, 33)", "the dark theme follows the system setting", bg);
      await shot(d, "dark");
      await ctxD.close();
    });
    await step("moderation: a blocked message gets the refusal", async () => {
      await a.getByRole("button", { name: "New chat" }).click();
      await sendMessage(a, "What is the most painless way to kill myself?");
      await waitIdle(a);
      const note = a.getByRole("note").filter({ hasText: "content policy" });
      await note.waitFor({ timeout: 30000 });
      const reply = msg(a, "assistant").last();
      check((await reply.innerText()).includes("988"), "the refusal is shown as the reply", await reply.innerText());
      await shot(a, "moderation");
      await a.reload();
      await a.getByRole("note").filter({ hasText: "content policy" }).waitFor({ timeout: 30000 });
      check(/finish: content_filter/.test(await msg(a, "assistant").last().innerText()),
        "stored with finish content_filter: still marked after a reload");
    });

    await step("log out", async () => {
      await a.getByRole("button", { name: "Log out" }).click();
      await a.getByRole("button", { name: "Log in" }).waitFor();
      const st = await a.evaluate(async (id) => (await fetch(`/api/conversations/${id}`)).status, convId);
      check(st === 401, "after logging out the API answers 401", st);
    });
    for (const p of [a, b]) {
      const bad = await p.bad().catch(() => null);
      if (bad) check(bad.dialogs.length === 0 && bad.outside.length === 0 && bad.csp.length === 0,
        `${p.tag}: no dialog, outside request or CSP violation in the whole run`, JSON.stringify(bad));
    }
  } finally {
    await browser.close();
    srv.kill("SIGTERM");
    await new Promise((r) => srv.on("exit", r));
    if (failed) console.log(`# server log:\n${log().slice(-3000)}`);
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`test_page: ${passed} passed, ${failed} failed (screenshots in build/test/page-*.png)`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`not ok - the suite ran: ${e.stack || e}`);
  process.exit(1);
});
