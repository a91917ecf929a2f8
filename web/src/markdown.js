// markdown.js - model output to safe DOM. The text is untrusted: it is
// rendered by marked (GitHub-flavoured: tables, fenced code), then cleaned
// by DOMPurify, and only then touches the document:
//   - no raw HTML survives beyond the tags Markdown itself makes;
//   - links keep only http:, https: and mailto: (no javascript:, data:,
//     vbscript:), open in a new tab without referrer or opener;
//   - images are never loaded: each becomes a link with its alt text, so a
//     reply cannot make the browser fetch a URL (the CSP would block it
//     too), and raw <img> is not among the tags kept;
//   - no style attributes, forms, frames, SVG or MathML.
// Code blocks are highlighted (highlight.js, on text only) and get a Copy
// button.
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdownLang from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { marked } from "marked";

for (const [name, lang] of Object.entries({
  bash, c, cpp, css, diff, go, java, javascript, json, markdown: markdownLang, python, rust, sql,
  typescript, xml, yaml,
}))
  hljs.registerLanguage(name, lang);
hljs.registerAliases(["sh", "shell", "console"], { languageName: "bash" });
hljs.registerAliases(["js", "mjs"], { languageName: "javascript" });
hljs.registerAliases(["py"], { languageName: "python" });
hljs.registerAliases(["html", "svg"], { languageName: "xml" });
hljs.registerAliases(["ts"], { languageName: "typescript" });
hljs.registerAliases(["yml"], { languageName: "yaml" });

marked.setOptions({ gfm: true, breaks: false });

const escapeHtml = (t) =>
  String(t ?? "").replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);

// An image is never loaded: it becomes a link to where it would have come
// from, labelled with its alt text (an image element, even detached, makes
// the browser fetch its URL).
//
// Raw HTML in the text is shown as the text it is (as ChatGPT shows it): it
// never reaches an HTML parser, not even DOMPurify's inert one.
marked.use({
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      const label = `[image${text ? ": " + escapeHtml(text) : ""}]`;
      return href ? `<a href="${escapeHtml(href)}">${label}</a>` : label;
    },
  },
});

const SAFE_URL = /^(?:https?:|mailto:|#)/i;

const PURIFY = {
  ALLOWED_TAGS: [
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul", "span", "input",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "align", "start", "type", "checked", "disabled"],
  ALLOWED_URI_REGEXP: SAFE_URL,
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    const href = node.getAttribute("href") || "";
    if (!SAFE_URL.test(href)) node.removeAttribute("href");
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
  if (node.nodeName === "INPUT" && node.getAttribute("type") !== "checkbox") node.remove();
  if (node.nodeName === "INPUT") node.setAttribute("disabled", "");
  if (node.nodeName === "CODE" || node.nodeName === "SPAN") {
    const cls = (node.getAttribute("class") || "").split(/\s+/).filter((k) => /^(language-[\w+-]+|hljs[\w-]*)$/.test(k));
    if (cls.length) node.setAttribute("class", cls.join(" "));
    else node.removeAttribute("class");
  } else {
    node.removeAttribute("class");
  }
});

function decorateCode(frag, copyText) {
  for (const code of frag.querySelectorAll("pre > code")) {
    const lang = (/language-([\w+-]+)/.exec(code.className) || [])[1];
    const text = code.textContent;
    if (lang && hljs.getLanguage(lang)) {
      // highlight.js escapes the text it is given; the result is sanitized again
      const html = hljs.highlight(text, { language: lang, ignoreIllegals: true }).value;
      code.replaceChildren(DOMPurify.sanitize(html, PURIFY));
    }
    const pre = code.parentElement;
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const name = document.createElement("span");
    name.textContent = lang || "text";
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "code-copy";
    btn.textContent = "Copy code";
    btn.addEventListener("click", () => copyText(text, btn));
    bar.append(name, btn);
    pre.before(bar);
    const wrap = document.createElement("div");
    wrap.className = "code-block";
    bar.before(wrap);
    wrap.append(bar, pre);
  }
}

// Markdown text -> a DocumentFragment that is safe to insert.
export function renderMarkdown(text, copyText) {
  const html = marked.parse(text || "", { async: false });
  const frag = DOMPurify.sanitize(html, PURIFY);
  decorateCode(frag, copyText);
  return frag;
}
