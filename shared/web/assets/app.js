// Helpers every page shares: calling the API, showing its errors in words, and building DOM.
// Plain ES modules, no build step: what the browser runs is what is in this folder.

/** An error answer from the API, or a request that never got one. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API and returns `{status, data, headers}`; throws ApiError for any answer that is
 * not 2xx and for network failures, always with a message a person can read.
 * `opts`: `json` (a body to send as JSON), `body` (sent as is), `token` (bearer), `headers`.
 */
export async function api(method, path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  let body = opts.body;
  if (opts.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(opts.json);
  }
  if (opts.token) headers.set("authorization", `Bearer ${opts.token}`);
  let response;
  let text;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
    // Reading the body is inside the try too: a connection dropped halfway through the answer
    // is a network failure, and the person should read that message rather than a bare TypeError.
    text = await response.text();
  } catch (e) {
    throw new ApiError(0, "network", "The server could not be reached. Check your connection and try again.");
  }
  return readAnswer(response.status, response.headers, text);
}

/**
 * A URL from an API answer, made usable from this page. The server writes absolute URLs with its
 * configured public address, which may name this same server under another host name; a URL on
 * another origin whose path is this API's ("/v1/...") is therefore turned into a path on this
 * origin, which the page's policy allows. Any other URL (a storage bucket's form, which is meant
 * to be on another origin) is returned unchanged.
 */
export function local(url) {
  if (!url) return url;
  try {
    const parsed = new URL(url, location.href);
    if (parsed.origin !== location.origin && parsed.pathname.startsWith("/v1/")) return parsed.pathname + parsed.search;
  } catch (e) {
    // Not a URL at all: the request made with it fails and says so in words.
  }
  return url;
}

/**
 * Disables `button` while `work` runs, so a slow request is not sent twice, and returns what
 * `work` returns. A disabled button drops the keyboard focus to the page itself; when the button
 * had the focus and nothing else has taken it since, it gets it back, so a keyboard user keeps
 * their place. Focus is not taken when it was elsewhere (a form sent with Enter from a field, or
 * a request started as the page loads).
 */
export async function whileBusy(button, work) {
  const hadFocus = document.activeElement === button;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    const active = document.activeElement;
    if (hadFocus && (!active || active === document.body) && button.isConnected) button.focus();
  }
}

/**
 * The flow of every button that deletes (or revokes) something: asks `question` with confirm()
 * (nothing is asked without one) and stops if the person declines; empties the message boxes in
 * `clear`; runs `call` with `button` busy; then hands a failure to `fail(err)`, which shows it
 * the way the page shows errors, or the answer to `done(answer)`, which updates the page.
 * Returns whether the deletion was done.
 */
export async function deleteFlow(button, { question = null, clear = [], call, fail, done }) {
  if (question && !window.confirm(question)) return false;
  for (const box of clear) clearMessage(box);
  let answer;
  try {
    answer = await whileBusy(button, call);
  } catch (err) {
    fail(err);
    return false;
  }
  done(answer);
  return true;
}

/**
 * Removes `row` from its list and returns where the keyboard focus goes next, so a keyboard
 * user keeps their place: the element matching `selector` in the row after it (or, for the last
 * row, the one before it); null when there is none, and the caller picks a place of its own.
 */
export function removeRow(row, selector) {
  const neighbour = row.nextElementSibling || row.previousElementSibling;
  row.remove();
  return (neighbour && neighbour.querySelector(selector)) || null;
}

/**
 * The part of this page's path after `prefix` (e.g. the token of "/u/<token>"), decoded; null
 * when it holds a malformed %-escape, as a mangled copy of a link can.
 */
export function pathAfter(prefix) {
  try {
    return decodeURIComponent(location.pathname.slice(prefix.length).replace(/\/+$/, ""));
  } catch (e) {
    return null;
  }
}

/** Deletes an upload of an image with the delete token it was given (one page or another). */
export function deleteWithToken(imageId, token) {
  return api("DELETE", `/v1/images/${encodeURIComponent(imageId)}`, { headers: { "X-Delete-Token": token } });
}

/** Turns a status and body text into `{status, data, headers}` or an ApiError. */
export function readAnswer(status, headers, text) {
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (status >= 200 && status < 300) return { status, data, headers };
  const err = data && data.error;
  if (err && err.message) throw new ApiError(status, err.code || "error", err.message);
  throw new ApiError(status, "http_" + status, `The server answered ${status} without an explanation.`);
}

/**
 * Builds an element: `h("a", {href: "/x", class: "btn"}, "text", child)`. Attributes starting
 * with "on" become listeners; `null`/`false` children are skipped. Text is never parsed as HTML.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Shows an error (ApiError or any Error or text) in `box`, an element with role="alert". */
export function showError(box, err) {
  const message = typeof err === "string" ? err : err && err.message ? err.message : String(err);
  box.hidden = false;
  box.textContent = message;
  box.classList.add("error");
}

/** Empties and hides a message box. */
export function clearMessage(box) {
  box.hidden = true;
  box.textContent = "";
  box.classList.remove("error", "ok");
}

/** Shows a success message in `box`. */
export function showOk(box, message) {
  box.hidden = false;
  box.textContent = message;
  box.classList.remove("error");
  box.classList.add("ok");
}

/**
 * A button that copies `text()` to the clipboard and says so. Every such button reads "Copy";
 * `name` (the copied field's label) goes into its accessible name, "Copy <name>", so a screen
 * reader's list of buttons tells them apart.
 */
export function copyButton(text, name) {
  const button = h("button", { type: "button", class: "copy" });
  // The accessible name follows the visible words, so "Copied" is what a screen reader reads too.
  const say = (words, spoken) => {
    button.textContent = words;
    if (name) button.setAttribute("aria-label", spoken);
  };
  say("Copy", `Copy ${name}`);
  button.addEventListener("click", async () => {
    const value = typeof text === "function" ? text() : text;
    try {
      await navigator.clipboard.writeText(value);
      say("Copied", `Copied ${name}`);
    } catch (e) {
      // Clipboard access needs a secure context; fall back to selecting the text.
      const field = button.parentElement && button.parentElement.querySelector("input");
      if (field) {
        field.select();
        say("Press Ctrl+C", `Press Ctrl+C to copy ${name}`);
      }
    }
    setTimeout(() => say("Copy", `Copy ${name}`), 2000);
  });
  return button;
}

/** A read-only text field with a copy button, for links and tokens; `label` names both. */
export function copyField(value, label) {
  const input = h("input", { type: "text", readonly: true, value, "aria-label": label, class: "copy-field" });
  input.addEventListener("focus", () => input.select());
  return h("div", { class: "copy-row" }, input, copyButton(() => input.value, label));
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** A timestamp in the reader's locale; `null` stays empty. */
export function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Seconds as "2 d 3 h", "5 h 10 min", "4 min 2 s" or "12 s". */
export function fmtDuration(seconds) {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d} d ${hh} h`;
  if (hh > 0) return `${hh} h ${m} min`;
  if (m > 0) return `${m} min ${s} s`;
  return `${s} s`;
}

/** A random idempotency key, so a retried request is not counted twice. */
export function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Waits `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
