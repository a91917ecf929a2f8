// api.js - the page's calls to /api/ (docs/WEB.md): JSON in and out, the
// CSRF token on every call that changes something, errors as ApiError with
// the server's words.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let csrf = null;
export function setCsrf(token) {
  csrf = token;
}

// Turn a failed response into an ApiError whose message a person can read.
async function failure(res) {
  let code = null;
  let message = `The server answered ${res.status}.`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || null;
      message = body.error.message || message;
    }
  } catch {
    /* not JSON: keep the status */
  }
  const retry = Number(res.headers.get("Retry-After")) || 0;
  if (res.status === 429)
    message = `Too many requests: try again in ${retry || "a few"} seconds. (${message})`;
  return new ApiError(res.status, code, message, retry);
}

// fetch with the session cookie and, for writes, the CSRF token; a network
// failure becomes an ApiError with status 0.
export async function request(method, path, body, extra = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      credentials: "same-origin",
      signal: extra.signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server cannot be reached. Is cgpt serve running?");
  }
  if (!res.ok) throw await failure(res);
  return extra.raw ? res : res.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const patch = (path, body) => request("PATCH", path, body);
export const del = (path) => request("DELETE", path);

// Stream a reply: POST 'path' and call onDelta(text) for each piece of the
// OpenAI-style server-sent events' content, onReasoning(text) for each piece
// of delta.reasoning_content (a model's thinking), onToolCall(delta) for
// each of delta.tool_calls (OpenAI's deltas: index, id, type and
// function.name first, then function.arguments fragments), onUsage(usage)
// at the end. Resolves with
// {userId, replyId} from the response headers; rejects with ApiError (a
// refused request, or 'stream_dropped' when the stream ends before [DONE]).
export async function stream(path, body, { signal, onStart, onDelta, onReasoning, onToolCall, onUsage }) {
  const res = await request("POST", path, body, { signal, raw: true });
  const ids = {
    userId: Number(res.headers.get("X-Cgpt-User-Message")) || null,
    replyId: Number(res.headers.get("X-Cgpt-Assistant-Message")) || null,
  };
  onStart?.(ids);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let done = false;
  try {
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") {
            done = true;
            continue;
          }
          const obj = JSON.parse(data);
          if (obj.error) throw new ApiError(500, obj.error.code, obj.error.message);
          const d = obj.choices?.[0]?.delta;
          if (d?.reasoning_content) onReasoning?.(d.reasoning_content);
          if (d?.content) onDelta(d.content);
          if (Array.isArray(d?.tool_calls)) for (const tc of d.tool_calls) onToolCall?.(tc);
          if (obj.usage) onUsage?.(obj.usage);
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError" || e instanceof ApiError) throw e;
    throw new ApiError(0, "stream_dropped", "The reply was interrupted (the connection dropped).");
  }
  if (!done) throw new ApiError(0, "stream_dropped", "The reply was interrupted before it ended.");
  return ids;
}
