// main.js - the cgpt page: accounts, the sidebar of conversations, the chat
// with streamed replies, branches, settings, export/import and API keys.
//
// Everything from the server (model output, titles, names, imported files)
// is untrusted: text goes into the DOM as text (textContent), and Markdown
// only through renderMarkdown (marked + DOMPurify). No innerHTML of strings.
//
// Accessible names are part of the contract (tests and screen readers use
// them; docs/WEB.md lists them).
import * as api from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { branch, index, newestLeaf, versions } from "./tree.js";

// ------------------------------------------------------------------ DOM

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);

// replaceChildren without the false / null of conditional children
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h("textarea", { class: "offscreen", "aria-hidden": "true" }, text);
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  if (button) {
    const was = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = was), 1200);
  }
}

// ------------------------------------------------------------------ state

const state = {
  user: null,
  models: [],
  setup: false,
  registration: false,
  convs: [],
  query: "",
  conv: null, // the open conversation (with its messages), or null for a new chat
  tree: null,
  draft: null, // settings for a chat not created yet
  streaming: null, // {controller, convId, text, replyId, parent}
  error: null, // {message, retry}
  editing: null, // id of the user message being edited
  thought: new Map(), // reply id -> seconds it was seen thinking while it streamed
};

const app = () => $("#app");

function showError(message, retry) {
  state.error = { message, retry, kind: "alert" };
  renderBanner();
}

function showNotice(message) {
  state.error = { message, kind: "status" };
  renderBanner();
}

function clearError() {
  state.error = null;
  renderBanner();
}

// ------------------------------------------------------------------ routing

function currentId() {
  const m = /^\/c\/([0-9a-f]{32})$/.exec(location.pathname);
  return m ? m[1] : null;
}

function go(path) {
  if (location.pathname !== path) history.pushState({}, "", path);
  route();
}

window.addEventListener("popstate", () => route());

async function route() {
  if (!state.user) return;
  const id = currentId();
  state.editing = null;
  if (!id) {
    state.conv = null;
    state.tree = null;
    renderChat();
    renderSidebar();
    return;
  }
  if (state.conv?.id !== id || !state.streaming) await loadConversation(id);
  renderSidebar();
}

async function loadConversation(id) {
  try {
    const conv = await api.get(`/api/conversations/${id}`);
    state.conv = conv;
    state.tree = index(conv.messages);
    document.title = `${conv.title || "New chat"} - cgpt`;
  } catch (e) {
    state.conv = null;
    state.tree = null;
    showError(e.status === 404 ? "That conversation does not exist (or is not yours)." : e.message);
  }
  renderChat();
}

async function loadList() {
  try {
    const q = state.query ? `?q=${encodeURIComponent(state.query)}` : "";
    state.convs = (await api.get(`/api/conversations${q}`)).conversations;
  } catch (e) {
    showError(e.message);
  }
  renderSidebar();
}

// ------------------------------------------------------------------ accounts

async function start() {
  let s;
  try {
    s = await api.get("/api/session");
  } catch (e) {
    app().replaceChildren(h("div", { class: "fatal", role: "alert" }, e.message));
    return;
  }
  state.models = s.models;
  state.setup = s.setup;
  state.registration = s.registration;
  if (s.user) {
    state.user = s.user;
    api.setCsrf(s.csrf);
    renderShell();
    await loadList();
    await route();
  } else {
    renderLogin(s.setup ? "setup" : "login");
  }
}

function renderLogin(mode) {
  const titles = {
    setup: ["Create the first account", "Create account", "This cgpt has no accounts yet. The first one is an admin."],
    register: ["Create an account", "Create account", ""],
    login: ["Log in to cgpt", "Log in", ""],
  };
  const [title, action, note] = titles[mode];
  const alert = h("div", { class: "alert", role: "alert", hidden: true });
  const name = h("input", { id: "login-name", name: "username", autocomplete: "username", required: true });
  const pw = h("input", {
    id: "login-password", name: "password", type: "password", required: true,
    autocomplete: mode === "login" ? "current-password" : "new-password",
  });
  const form = h(
    "form", { class: "login-card", "aria-labelledby": "login-title" },
    h("div", { class: "brand" }, h("img", { src: "/assets/icon.svg", alt: "", width: 40, height: 40 }), h("span", { text: "cgpt" })),
    h("h1", { id: "login-title", text: title }),
    note && h("p", { class: "note", text: note }),
    h("label", { for: "login-name", text: "Username" }), name,
    h("label", { for: "login-password", text: "Password" }), pw,
    alert,
    h("button", { type: "submit", class: "primary", text: action }),
    mode === "login" && state.registration &&
      h("button", { type: "button", class: "link", text: "Create an account", onclick: () => renderLogin("register") }),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alert.hidden = true;
    try {
      const r = await api.post(`/api/${mode === "setup" ? "setup" : mode === "register" ? "register" : "login"}`,
        { name: name.value, password: pw.value });
      state.user = r.user;
      api.setCsrf(r.csrf);
      renderShell();
      await loadList();
      await route();
    } catch (e) {
      alert.textContent = e.status === 401 ? "Wrong username or password." : e.message;
      alert.hidden = false;
      pw.value = "";
      pw.focus();
    }
  });
  app().className = "login-page";
  app().replaceChildren(h("main", {}, form));
  name.focus();
}

async function logout() {
  stopStream();
  try {
    await api.post("/api/logout");
  } catch {
    /* the cookie is cleared either way */
  }
  state.user = null;
  state.conv = null;
  state.convs = [];
  api.setCsrf(null);
  history.pushState({}, "", "/");
  renderLogin("login");
}

// ------------------------------------------------------------------ shell

function renderShell() {
  app().className = "shell";
  const sidebar = h("aside", { class: "sidebar", id: "sidebar" });
  const main = h("main", { class: "main", id: "main" },
    h("header", { class: "topbar", id: "topbar" }),
    h("div", { class: "banner-slot", id: "banner" }),
    h("div", { class: "messages", id: "messages", "aria-live": "polite" }),
    h("div", { class: "composer-slot", id: "composer" }),
  );
  app().replaceChildren(sidebar, main, h("div", { class: "scrim", id: "scrim", onclick: () => toggleSidebar(false) }));
  renderSidebar();
  renderChat();
}

function toggleSidebar(open) {
  app().classList.toggle("sidebar-open", open);
}

function renderSidebar() {
  const side = $("#sidebar");
  if (!side) return;
  const search = h("input", {
    type: "search", class: "search", placeholder: "Search", "aria-label": "Search conversations",
    value: state.query,
  });
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      state.query = search.value.trim();
      loadList().then(() => $("#sidebar .search")?.focus());
    }, 250);
  });
  const current = currentId();
  const items = state.convs.map((c) => {
    const link = h("a", {
      href: `/c/${c.id}`, class: "conv-link", "aria-current": c.id === current ? "page" : null,
      onclick: (ev) => {
        ev.preventDefault();
        toggleSidebar(false);
        go(`/c/${c.id}`);
      },
    }, c.title || "New chat");
    const rename = h("button", {
      type: "button", class: "icon-btn", "aria-label": "Rename", title: "Rename",
      onclick: () => startRename(li, c),
    }, "✎");
    const remove = h("button", {
      type: "button", class: "icon-btn", "aria-label": "Delete", title: "Delete",
      onclick: () => confirmDelete(li, c),
    }, "✕");
    const li = h("li", { class: c.id === current ? "active" : null }, link, h("span", { class: "conv-actions" }, rename, remove));
    return li;
  });
  side.replaceChildren(
    h("div", { class: "side-top" },
      h("button", { type: "button", class: "new-chat", onclick: () => { toggleSidebar(false); go("/"); } }, "+ New chat"),
      search),
    h("nav", { "aria-label": "Conversations", class: "conv-nav" },
      items.length ? h("ul", { class: "conv-list" }, items)
        : h("p", { class: "empty", text: state.query ? "Nothing matches." : "No conversations yet." })),
    h("div", { class: "side-bottom" },
      h("label", { class: "import" }, "Import",
        h("input", { type: "file", accept: "application/json,.json", "aria-label": "Import conversations", onchange: importFile })),
      h("button", { type: "button", class: "plain", onclick: showKeys }, "API keys"),
      h("div", { class: "who" }, h("span", { class: "avatar", "aria-hidden": "true", text: (state.user?.name || "?")[0].toUpperCase() }),
        h("span", { class: "who-name", text: state.user?.name || "" }),
        h("button", { type: "button", class: "plain", onclick: logout }, "Log out"))),
  );
}

function startRename(li, c) {
  const input = h("input", { class: "rename", value: c.title || "", "aria-label": "New title", maxlength: 200 });
  const done = async (save) => {
    if (save && input.value.trim() !== c.title) {
      try {
        await api.patch(`/api/conversations/${c.id}`, { title: input.value.trim() });
        if (state.conv?.id === c.id) state.conv.title = input.value.trim();
      } catch (e) {
        showError(e.message);
      }
    }
    await loadList();
    if (state.conv?.id === c.id) renderTopbar();
  };
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") done(true);
    if (ev.key === "Escape") done(false);
  });
  input.addEventListener("blur", () => done(true), { once: true });
  li.replaceChildren(input);
  input.focus();
  input.select();
}

function confirmDelete(li, c) {
  const yes = h("button", {
    type: "button", class: "danger", onclick: async () => {
      try {
        await api.del(`/api/conversations/${c.id}`);
      } catch (e) {
        showError(e.message);
      }
      if (currentId() === c.id) go("/");
      await loadList();
    },
  }, "Confirm delete");
  const no = h("button", { type: "button", class: "plain", onclick: () => renderSidebar() }, "Cancel");
  li.replaceChildren(h("span", { class: "confirm", text: `Delete “${c.title || "New chat"}”?` }), yes, no);
  yes.focus();
}

// ------------------------------------------------------------------ chat view

function settingsOf() {
  return state.conv ? state.conv.settings || {} : state.draft?.settings || {};
}

function renderTopbar() {
  const bar = $("#topbar");
  if (!bar) return;
  const conv = state.conv;
  const model = conv?.model || state.draft?.model || state.models[0]?.id || "";
  const select = h("select", { "aria-label": "Model", class: "model" },
    state.models.map((m) => h("option", { value: m.id, selected: m.id === model }, m.id)));
  select.addEventListener("change", () => saveSettings({ model: select.value }));
  fill(bar,
    h("button", { type: "button", class: "icon-btn menu", "aria-label": "Open conversations", onclick: () => toggleSidebar(true) }, "☰"),
    h("h2", { class: "title", text: conv?.title || "New chat" }),
    select,
    h("button", { type: "button", class: "plain", "aria-expanded": "false", onclick: toggleSettings }, "Settings"),
    conv && h("a", { class: "plain button", href: `/api/conversations/${conv.id}/export`, download: `conversation-${conv.id}.json` }, "Export"),
  );
}

async function saveSettings(changes) {
  if (!state.conv) {
    state.draft = { ...(state.draft || {}), ...changes, settings: { ...(state.draft?.settings || {}), ...(changes.settings || {}) } };
    return;
  }
  try {
    await api.patch(`/api/conversations/${state.conv.id}`, changes);
    Object.assign(state.conv, changes);
  } catch (e) {
    showError(e.message);
  }
}

function toggleSettings(ev) {
  const existing = $("#settings");
  const btn = ev?.currentTarget;
  if (existing) {
    existing.remove();
    btn?.setAttribute("aria-expanded", "false");
    return;
  }
  btn?.setAttribute("aria-expanded", "true");
  const set = settingsOf();
  const sys = h("textarea", { id: "set-system", rows: 4, placeholder: "For example: You answer briefly." }, state.conv?.system ?? state.draft?.system ?? "");
  const num = (id, label, v, attrs) => [
    h("label", { for: id, text: label }),
    h("input", { id, type: "number", value: v ?? "", placeholder: "model default", ...attrs }),
  ];
  const panel = h("section", { id: "settings", class: "settings", "aria-label": "Conversation settings" },
    h("label", { for: "set-system", text: "System prompt" }), sys,
    h("div", { class: "grid" },
      ...num("set-temperature", "Temperature", set.temperature, { min: 0, max: 2, step: 0.1 }),
      ...num("set-top-p", "Top p", set.top_p, { min: 0, max: 1, step: 0.05 }),
      ...num("set-top-k", "Top k", set.top_k, { min: 0, step: 1 }),
      ...num("set-max-tokens", "Max tokens", set.max_tokens, { min: 1, step: 1 })),
    h("div", { class: "row" },
      h("button", {
        type: "button", class: "primary", onclick: async () => {
          const pick = (id, parse) => {
            const v = $(id).value.trim();
            return v === "" ? undefined : parse(v);
          };
          const settings = {
            temperature: pick("#set-temperature", Number), top_p: pick("#set-top-p", Number),
            top_k: pick("#set-top-k", (v) => parseInt(v, 10)), max_tokens: pick("#set-max-tokens", (v) => parseInt(v, 10)),
          };
          for (const k of Object.keys(settings)) if (settings[k] === undefined || Number.isNaN(settings[k])) delete settings[k];
          await saveSettings({ system: sys.value, settings });
          panel.remove();
        },
      }, "Save settings"),
      h("button", { type: "button", class: "plain", onclick: () => panel.remove() }, "Close")),
  );
  $("#banner").after(panel);
  sys.focus();
}

function renderBanner() {
  const slot = $("#banner");
  if (!slot) return;
  if (!state.error) {
    slot.replaceChildren();
    return;
  }
  const notice = state.error.kind === "status";
  slot.replaceChildren(h("div", { class: `${notice ? "notice" : "alert"} banner`, role: notice ? "status" : "alert" },
    h("span", { text: state.error.message }),
    state.error.retry && h("button", { type: "button", class: "plain", onclick: () => { const r = state.error.retry; clearError(); r(); } }, "Retry"),
    h("button", { type: "button", class: "icon-btn", "aria-label": "Dismiss", onclick: clearError }, "×")));
}

function stats(m) {
  if (m.role !== "assistant" || m.status === "streaming") return null;
  const parts = [];
  if (m.completion_tokens) parts.push(`${m.completion_tokens} tokens`);
  if (m.completion_tokens && m.seconds > 0) parts.push(`${(m.completion_tokens / m.seconds).toFixed(1)} tokens/s`);
  if (m.finish) parts.push(`finish: ${m.finish}`);
  if (m.status === "stopped") parts.push("stopped");
  if (m.status === "error") parts.push(`error${m.error ? ": " + m.error : ""}`);
  return parts.length ? h("div", { class: "stats", text: parts.join(" · ") }) : null;
}

function versionSwitcher(m) {
  const all = versions(state.tree, m);
  if (all.length < 2) return null;
  const at = all.findIndex((x) => x.id === m.id);
  const pick = async (k) => {
    if (state.streaming) return;
    const leaf = newestLeaf(state.tree, all[k]);
    state.conv.current_leaf = leaf.id;
    renderMessages();
    try {
      await api.patch(`/api/conversations/${state.conv.id}`, { current_leaf: leaf.id });
    } catch (e) {
      showError(e.message);
    }
  };
  return h("span", { class: "versions" },
    h("button", { type: "button", class: "icon-btn", "aria-label": "Previous version", disabled: at === 0, onclick: () => pick(at - 1) }, "‹"),
    h("span", { class: "count", text: `${at + 1} / ${all.length}` }),
    h("button", { type: "button", class: "icon-btn", "aria-label": "Next version", disabled: at === all.length - 1, onclick: () => pick(at + 1) }, "›"));
}

// ------------------------------------------------------------------ reasoning and tools

// A model's thinking: a disclosure above the answer, collapsed until opened.
// Its group is named "Thinking"; the summary says where it stands.
function thinkingEl(text, label) {
  return h("details", { class: "thinking", "aria-label": "Thinking" },
    h("summary", {}, h("span", { class: "thinking-label", text: label })),
    h("div", { class: "thinking-text" }, renderMarkdown(text, copyText)));
}

function thoughtLabel(m) {
  if (m.status === "streaming") return "Thinking…";
  const secs = state.thought.get(m.id);
  return secs !== undefined ? `Thought for ${secs} s` : "Thoughts";
}

// JSON text pretty-printed; other text as it is.
function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

// A tool's result (a message with role "tool"): a group named "Result".
function resultEl(t) {
  return h("div", { class: "tool-result", role: "group", "aria-label": "Result" },
    h("div", { class: "tool-label", text: t.name ? `Result · ${t.name}` : "Result" }),
    h("pre", {}, h("code", { text: pretty(t.content || "") })));
}

// One tool call of an assistant message, with the result that answered it
// (by tool_call_id) inside: collapsed to "Called NAME" until opened.
function toolCallEl(call, result) {
  const name = call.function?.name || "?";
  return h("details", { class: "toolcall", "aria-label": `Called ${name}`, dataset: { callId: call.id || "" } },
    h("summary", {}, "Called ", h("code", { class: "tool-name", text: name })),
    h("div", { class: "tool-label", text: "Arguments" }),
    h("pre", { class: "tool-args" }, h("code", { text: pretty(call.function?.arguments || "") })),
    result && resultEl(result));
}

// The tool results of a branch that answer a call shown above them:
// tool_call_id -> the first such result (shown inside its call's block).
function attachedResults(path) {
  const calls = new Set();
  const out = new Map();
  for (const m of path) {
    if (m.role === "assistant") for (const c of m.tool_calls || []) calls.add(c.id);
    else if (m.role === "tool" && calls.has(m.tool_call_id) && !out.has(m.tool_call_id)) out.set(m.tool_call_id, m);
  }
  return out;
}

function messageEl(m, isLast, results) {
  const body = h("div", { class: "body" });
  if (m.role === "assistant") {
    if (m.reasoning) body.append(thinkingEl(m.reasoning, thoughtLabel(m)));
    body.append(h("div", { class: "answer" }, renderMarkdown(m.content, copyText)));
    if (m.tool_calls?.length)
      body.append(h("div", { class: "calls" }, m.tool_calls.map((c) => toolCallEl(c, results?.get(c.id)))));
    if (m.status === "streaming") body.append(h("span", { class: "cursor", "aria-hidden": "true" }));
    if (m.finish === "content_filter")
      body.append(h("p", { class: "filtered", role: "note", text: "Stopped by this server's content policy." }));
  } else if (m.role === "tool") {
    body.append(resultEl(m));
  } else if (state.editing === m.id) {
    const ta = h("textarea", { class: "edit", "aria-label": "Edit message", rows: 3 }, m.content);
    body.append(ta, h("div", { class: "row" },
      h("button", { type: "button", class: "primary", onclick: () => { state.editing = null; send(ta.value, m.parent || 0); } }, "Save and send"),
      h("button", { type: "button", class: "plain", onclick: () => { state.editing = null; renderMessages(); } }, "Cancel")));
    setTimeout(() => ta.focus(), 0);
  } else {
    body.append(h("p", { class: "user-text", text: m.content }));
  }
  const busy = !!state.streaming;
  const tools = h("div", { class: "tools" },
    versionSwitcher(m),
    m.role === "assistant" && m.status !== "streaming" && (m.content || !m.tool_calls?.length) &&
      h("button", { type: "button", class: "plain", onclick: (ev) => copyText(m.content, ev.currentTarget) }, "Copy"),
    m.role === "assistant" && m.status !== "streaming" &&
      h("button", { type: "button", class: "plain", disabled: busy, onclick: () => regenerate(m.id) }, "Regenerate"),
    m.role === "user" && state.editing !== m.id &&
      h("button", { type: "button", class: "plain", disabled: busy, onclick: () => { state.editing = m.id; renderMessages(); } }, "Edit"),
    (m.role === "user" || m.role === "tool") && isLast && !busy &&
      h("button", { type: "button", class: "plain", onclick: () => regenerate(m.id) }, "Regenerate"),
  );
  const tag = m.role === "user" ? (state.user?.name || "You")[0].toUpperCase() : m.role === "tool" ? "⚙" : "c";
  return h("article", { class: `message ${m.role}`, dataset: { role: m.role, id: String(m.id), status: m.status } },
    h("div", { class: "who-tag", "aria-hidden": "true", text: tag }),
    h("div", { class: "content" }, body, stats(m), tools));
}

function renderMessages() {
  const box = $("#messages");
  if (!box) return;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  if (!state.conv || !state.conv.messages.length) {
    box.replaceChildren(h("div", { class: "welcome" },
      h("img", { src: "/assets/icon.svg", alt: "", width: 56, height: 56 }),
      h("h1", { text: "How can I help you today?" }),
      h("p", { class: "note", text: `Model: ${state.conv?.model || state.draft?.model || state.models[0]?.id || "?"}. Everything stays on this machine.` })));
    return;
  }
  const path = branch(state.tree, state.conv.current_leaf);
  // a result that answers a call shown above goes inside that call's block
  const results = attachedResults(path);
  const shown = path.filter((m) => !(m.role === "tool" && results.get(m.tool_call_id) === m));
  box.replaceChildren(...shown.map((m, i) => messageEl(m, i === shown.length - 1, results)));
  if (atBottom || state.streaming) box.scrollTop = box.scrollHeight;
}

function renderComposer() {
  const slot = $("#composer");
  if (!slot) return;
  const ta = h("textarea", { id: "message", rows: 1, placeholder: "Message cgpt", "aria-label": "Message", autocomplete: "off" });
  ta.addEventListener("input", () => {
    ta.style.height = "auto";
    ta.style.height = Math.min(ta.scrollHeight, 240) + "px";
  });
  ta.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (!state.streaming && ta.value.trim()) send(ta.value);
    }
  });
  const button = state.streaming
    ? h("button", { type: "button", class: "send stop", onclick: stopStream }, "Stop")
    : h("button", { type: "button", class: "send", onclick: () => ta.value.trim() && send(ta.value) }, "Send");
  slot.replaceChildren(h("div", { class: "composer" }, ta, button),
    h("p", { class: "hint", text: "Enter sends, Shift+Enter adds a line, Esc stops a reply." }));
  if (!state.streaming) ta.focus();
}

function renderChat() {
  renderTopbar();
  renderBanner();
  renderMessages();
  renderComposer();
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && state.streaming) stopStream();
});

// ------------------------------------------------------------------ sending

function stopStream() {
  state.streaming?.controller.abort();
}

async function ensureConversation() {
  if (state.conv) return state.conv.id;
  const d = state.draft || {};
  const r = await api.post("/api/conversations", { model: d.model, system: d.system, settings: d.settings || {} });
  state.draft = null;
  history.pushState({}, "", `/c/${r.id}`);
  const conv = await api.get(`/api/conversations/${r.id}`);
  state.conv = conv;
  state.tree = index(conv.messages);
  return r.id;
}

// Stream into a placeholder reply; then reload the conversation as stored.
async function streamReply(path, body, userText, parent) {
  const convId = state.conv.id;
  const controller = new AbortController();
  const temp = { id: -1, parent: -2, role: "assistant", content: "", reasoning: "", tool_calls: [], status: "streaming" };
  const tempUser = userText !== null ? { id: -2, parent, role: "user", content: userText, status: "complete" } : null;
  state.streaming = { controller, convId };
  clearError();
  // show the user's message and an empty reply at once
  const shown = branch(state.tree, state.conv.current_leaf);
  const base = tempUser ? shown.filter((m) => m.id !== -2) : shown;
  const anchor = tempUser ? parent : body.message;
  const keep = [];
  for (const m of base) {
    keep.push(m);
    if (m.id === anchor) break;
  }
  if (tempUser) keep.push(tempUser);
  else if (keep.length && keep[keep.length - 1].role === "assistant") keep.pop();
  temp.parent = keep.length ? keep[keep.length - 1].id : 0;
  keep.push(temp);
  const box = $("#messages");
  const results = attachedResults(keep);
  const shownKeep = keep.filter((m) => !(m.role === "tool" && results.get(m.tool_call_id) === m));
  box.replaceChildren(...shownKeep.map((m, i) => messageEl(m, i === shownKeep.length - 1, results)));
  box.scrollTop = box.scrollHeight;
  renderComposer();
  let pending = false;
  let replyId = null;
  // the thinking's time: from its first piece to the first piece of anything else
  let thinkStart = 0;
  let thinkSecs = null;
  const thinkEnd = () => {
    if (thinkStart && thinkSecs === null) thinkSecs = Math.max(1, Math.round((performance.now() - thinkStart) / 1000));
  };
  // the reply's parts are made once, so an opened disclosure stays open as text arrives
  const parts = {
    think: null, answer: h("div", { class: "answer" }), calls: h("div", { class: "calls" }),
    cursor: h("span", { class: "cursor", "aria-hidden": "true" }),
  };
  const bodyEl = () => box.querySelector('article[data-id="-1"] .body');
  const repaint = () => {
    pending = false;
    const el = bodyEl();
    if (!el) return;
    if (temp.reasoning && !parts.think) parts.think = thinkingEl("", "Thinking…");
    if (parts.think) {
      parts.think.querySelector(".thinking-label").textContent = thinkSecs === null ? "Thinking…" : `Thought for ${thinkSecs} s`;
      parts.think.querySelector(".thinking-text").replaceChildren(renderMarkdown(temp.reasoning, copyText));
    }
    parts.answer.replaceChildren(renderMarkdown(temp.content, copyText));
    parts.calls.replaceChildren(...temp.tool_calls.filter(Boolean).map((c) => toolCallEl(c)));
    el.replaceChildren(...[parts.think, parts.answer, parts.calls, parts.cursor].filter(Boolean));
    box.scrollTop = box.scrollHeight;
  };
  const later = () => {
    if (!pending) {
      pending = true;
      requestAnimationFrame(repaint);
    }
  };
  let failure = null;
  try {
    await api.stream(path, body, {
      signal: controller.signal,
      onStart: (ids) => {
        replyId = ids.replyId;
        loadList();
        if (!state.conv.title && userText) {
          state.conv.title = userText.split("\n")[0].slice(0, 60);
          renderTopbar();
        }
      },
      onReasoning: (t) => {
        if (!thinkStart) thinkStart = performance.now();
        temp.reasoning += t;
        later();
      },
      onDelta: (t) => {
        thinkEnd();
        temp.content += t;
        later();
      },
      onToolCall: (d) => {
        thinkEnd();
        const i = Number.isInteger(d.index) ? d.index : temp.tool_calls.length;
        const c = (temp.tool_calls[i] ||= { id: "", type: "function", function: { name: "", arguments: "" } });
        if (d.id) c.id = d.id;
        if (d.function?.name) c.function.name = d.function.name;
        if (d.function?.arguments) c.function.arguments += d.function.arguments;
        later();
      },
    });
  } catch (e) {
    if (e.name !== "AbortError") failure = e;
  }
  thinkEnd();
  if (replyId !== null && thinkSecs !== null) state.thought.set(replyId, thinkSecs);
  state.streaming = null;
  // the server stored it all; show what it has (a stop is stored a moment later)
  if (controller.signal.aborted) await new Promise((r) => setTimeout(r, 250));
  if (currentId() === convId) await loadConversation(convId);
  await loadList();
  if (failure) {
    const retryMsg = state.conv && branch(state.tree, state.conv.current_leaf).at(-1);
    showError(describe(failure), retryMsg ? () => regenerate(retryMsg.id) : null);
  }
}

function describe(e) {
  if (e.code === "context_length_exceeded")
    return `The conversation no longer fits the model's context: ${e.message} Start a new chat, or edit an earlier message.`;
  return e.message;
}

async function send(text, parent) {
  if (state.streaming) return;
  let convId;
  try {
    convId = await ensureConversation();
  } catch (e) {
    showError(describe(e));
    return;
  }
  const body = parent === undefined ? { content: text } : { content: text, parent };
  const shownParent = parent === undefined ? (state.conv.current_leaf || 0) : parent;
  renderSidebar();
  await streamReply(`/api/conversations/${convId}/messages`, body, text, shownParent);
}

async function regenerate(messageId) {
  if (state.streaming || !state.conv) return;
  await streamReply(`/api/conversations/${state.conv.id}/regenerate`, { message: messageId }, null, null);
}

// ------------------------------------------------------------------ import, keys

async function importFile(ev) {
  const file = ev.target.files?.[0];
  ev.target.value = "";
  if (!file) return;
  try {
    const text = await file.text();
    const r = await api.request("POST", "/api/import", text);
    await loadList();
    if (r.imported.length) go(`/c/${r.imported[0]}`);
    showNotice(`Imported ${r.imported.length} conversation${r.imported.length === 1 ? "" : "s"}.`);
  } catch (e) {
    showError(`Import failed: ${e.message}`);
  }
}

async function showKeys() {
  const box = $("#messages");
  const list = h("ul", { class: "keys" });
  const shown = h("p", { class: "new-key", role: "status" });
  const refresh = async () => {
    try {
      const { keys } = await api.get("/api/keys");
      list.replaceChildren(...keys.map((k) => h("li", {},
        h("span", { class: "key-name", text: k.name }),
        h("span", { class: "note", text: k.active ? " active" : " revoked" }),
        k.active && h("button", {
          type: "button", class: "plain", "aria-label": `Revoke ${k.name}`,
          onclick: async () => { await api.del(`/api/keys/${encodeURIComponent(k.name)}`); refresh(); },
        }, "Revoke"))));
    } catch (e) {
      showError(e.message);
    }
  };
  const name = h("input", { id: "key-name", placeholder: "laptop", maxlength: 64 });
  box.replaceChildren(h("section", { class: "panel", "aria-label": "API keys" },
    h("h1", { text: "API keys" }),
    h("p", { class: "note", text: "Keys let OpenAI clients use this server as you (base URL: this address + /v1). A key is shown once." }),
    h("label", { for: "key-name", text: "Key name" }), name,
    h("button", {
      type: "button", class: "primary", onclick: async () => {
        try {
          const r = await api.post("/api/keys", { name: name.value.trim() });
          shown.textContent = `New key ${r.name}: ${r.key} (copy it now: it is not shown again)`;
          name.value = "";
          refresh();
        } catch (e) {
          showError(e.message);
        }
      },
    }, "Create key"),
    shown, list,
    h("button", { type: "button", class: "plain", onclick: () => renderMessages() }, "Back to the chat")));
  refresh();
}

start();
