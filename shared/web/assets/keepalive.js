// The keep-alive page: adds Imgur URLs to POST /v1/keepalive and shows the entries this browser
// added. The server answers an entry's manage token only once, so the entries (with their
// tokens) are remembered in localStorage; without the token an entry cannot be stopped here.
import {
  api,
  ApiError,
  h,
  showError,
  showOk,
  clearMessage,
  deleteFlow,
  fmtDate,
  fmtDuration,
  removeRow,
  sleep,
  whileBusy,
} from "/assets/app.js";

const STORAGE_KEY = "imghost.keepalive";

const form = document.getElementById("keepalive-form");
const urlInput = document.getElementById("url");
const addButton = document.getElementById("add");
const errorBox = document.getElementById("error");
const notice = document.getElementById("notice");
const list = document.getElementById("entries");
const empty = document.getElementById("empty");

/** What each entry status means, in words. */
const STATUS_TEXT = {
  waiting: "Scheduled for its next view.",
  queued: "A view is under way.",
  gone: "Imgur says the image is gone; it is not viewed any more.",
  stopped: "Imgur refused a view; it is not asked again.",
  error: "Views failed three times in a row; it is not viewed any more.",
};

/** What a load's outcome means, in words (the labels come from the loader). */
const OUTCOME_TEXT = {
  ok: "viewed",
  dry_run: "recorded without a request (dry run)",
  gone: "gone from Imgur",
  timeout: "timed out",
  connect_failed: "could not connect",
  server_error: "Imgur had a server error",
  rejected: "refused by Imgur",
  redirect_off_imgur: "redirected away from Imgur",
  too_many_redirects: "too many redirects",
  unexpected_status: "unexpected answer",
  not_imgur: "not an Imgur URL",
};

// ---------------------------------------------------------------------------------------------
// What this browser remembers
// ---------------------------------------------------------------------------------------------

/** The remembered entries, `[{id, url, manage_token}]`; anything unreadable is dropped. */
function readStore() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((e) => e && typeof e.id === "string") : [];
  } catch (e) {
    return [];
  }
}

function writeStore(entries) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(entries));
    return true;
  } catch (e) {
    return false;
  }
}

/** Adds or updates an entry, newest first; a token already known is never replaced by none. */
function remember(id, url, token) {
  const entries = readStore();
  const known = entries.find((e) => e.id === id);
  if (known) {
    known.url = url || known.url;
    if (token) known.manage_token = token;
  } else {
    entries.unshift({ id, url, manage_token: token || null });
  }
  return writeStore(entries);
}

function forget(id) {
  writeStore(readStore().filter((e) => e.id !== id));
}

// ---------------------------------------------------------------------------------------------
// One entry on screen
// ---------------------------------------------------------------------------------------------

/** The parts of an entry's list item that change, by entry id. */
const shown = new Map();

/** Shows an error inside an entry, keeping the box's `error` class for the page's tests and styles. */
function entryError(parts, err) {
  parts.note.hidden = true;
  showError(parts.error, err);
}

function entryNote(parts, text) {
  parts.error.hidden = true;
  parts.error.textContent = "";
  parts.note.hidden = false;
  parts.note.textContent = text;
}

function clearEntryMessages(parts) {
  parts.error.hidden = true;
  parts.error.textContent = "";
  parts.note.hidden = true;
  parts.note.textContent = "";
}

/** "in 29 d 23 h" or "5 min ago" for a timestamp, next to the local date. */
function when(iso) {
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return fmtDate(iso);
  const seconds = (t - Date.now()) / 1000;
  const relative = seconds >= 0 ? `in ${fmtDuration(seconds)}` : `${fmtDuration(-seconds)} ago`;
  return `${fmtDate(iso)} (${relative})`;
}

/** Builds the list item of a remembered entry; its details are filled in by `fill`. */
function buildEntry(saved) {
  const status = h("span", { class: "status" }, "checking…");
  const statusText = h("span", { class: "muted status-text" });
  const lastLoad = h("dd", { class: "last-load" }, "…");
  const nextLoad = h("dd", { class: "next-load" }, "…");
  const loads = h("dd", { class: "loads" }, "…");
  const history = h("ol", { class: "history" });
  const noHistory = h("p", { class: "muted no-history" }, "No views yet.");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const note = h("p", { class: "ok note", role: "status", hidden: true });
  const link = h("a", { href: saved.url, rel: "noopener noreferrer", class: "entry-url" }, saved.url);
  const load = h("button", { type: "button", class: "load" }, "Load now");
  const remove = saved.manage_token
    ? h("button", { type: "button", class: "remove danger" }, "Stop keeping alive")
    : null;
  const forgetButton = h("button", { type: "button", class: "forget secondary" }, "Forget here");
  const li = h(
    "li",
    { class: "entry card", dataset: { id: saved.id } },
    h("p", {}, link, " ", status, " ", statusText),
    h(
      "dl",
      { class: "meta" },
      h("dt", {}, "Last view"),
      lastLoad,
      h("dt", {}, "Next view"),
      nextLoad,
      h("dt", {}, "Views so far"),
      loads,
    ),
    h("h3", {}, "Recent views"),
    noHistory,
    history,
    h(
      "div",
      { class: "actions" },
      load,
      " ",
      remove,
      " ",
      forgetButton,
    ),
    saved.manage_token
      ? null
      : h("p", { class: "muted" }, "This browser has no manage token for this entry, so it cannot be stopped from here."),
    error,
    note,
  );
  const parts = { li, saved, status, statusText, lastLoad, nextLoad, loads, history, noHistory, error, note, link, load, remove };
  load.addEventListener("click", () => loadNow(parts));
  if (remove) remove.addEventListener("click", () => stop(parts));
  forgetButton.addEventListener("click", () => forgetHere(parts));
  shown.set(saved.id, parts);
  return parts;
}

/** Writes the server's view of an entry into its list item. */
function fill(parts, view) {
  const word = view.status || "unknown";
  parts.status.className = `status ${word}`;
  parts.status.textContent = word;
  parts.statusText.textContent = STATUS_TEXT[word] || "";
  if (view.url && view.url !== parts.link.textContent) {
    parts.link.textContent = view.url;
    parts.link.href = view.url;
  }
  parts.lastLoad.textContent = view.last_loaded_at ? when(view.last_loaded_at) : "never";
  parts.nextLoad.textContent = view.next_load_at ? when(view.next_load_at) : "none: this entry is finished";
  parts.loads.textContent = String(view.loads ?? 0);
  const history = Array.isArray(view.history) ? view.history : [];
  parts.history.replaceChildren(
    ...history.map((result) => {
      const outcome = OUTCOME_TEXT[result.outcome] || String(result.outcome || "unknown").replace(/_/g, " ");
      const code = result.http_status ? `, HTTP ${result.http_status}` : "";
      return h(
        "li",
        { class: `result ${result.outcome === "ok" || result.outcome === "dry_run" ? "good" : "bad"}` },
        h("time", { datetime: result.at }, fmtDate(result.at)),
        ` — ${outcome}${code}`,
      );
    }),
  );
  parts.history.hidden = history.length === 0;
  parts.noHistory.hidden = history.length > 0;
  // Finished entries are never loaded again, so the button would only produce an error.
  parts.load.disabled = !["waiting", "queued"].includes(word);
}

/** Asks the server for an entry's state and shows it; a missing entry is said in words. */
async function refresh(parts) {
  try {
    const { data } = await api("GET", `/v1/keepalive/${encodeURIComponent(parts.saved.id)}`);
    fill(parts, data);
    return data;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      parts.status.className = "status gone";
      parts.status.textContent = "missing";
      parts.statusText.textContent = "";
      parts.load.disabled = true;
      entryError(parts, `This entry no longer exists on the server; it was stopped or removed (${err.message}).`);
    } else {
      entryError(parts, err);
    }
    return null;
  }
}

function updateEmpty() {
  empty.hidden = list.children.length > 0;
}

/** Shows every remembered entry and fetches their state. */
function renderAll() {
  list.replaceChildren();
  shown.clear();
  for (const saved of readStore()) {
    const parts = buildEntry(saved);
    list.append(parts.li);
    refresh(parts);
  }
  updateEmpty();
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

async function loadNow(parts) {
  clearEntryMessages(parts);
  try {
    // The button is enabled again when the answer arrives; `fill` then disables it if the
    // entry is finished, as it does for every answer.
    const { data } = await whileBusy(parts.load, () =>
      api("POST", `/v1/keepalive/${encodeURIComponent(parts.saved.id)}/load`),
    );
    fill(parts, data);
    entryNote(parts, "A view was queued; its result appears below in a moment.");
    // The loader works in the background: look again a few times until the view is recorded.
    for (let i = 0; i < 10; i += 1) {
      await sleep(1500);
      if (!parts.li.isConnected) return;
      const view = await refresh(parts);
      // Without a view, refresh has shown why in the entry's alert; a note now would hide it.
      if (!view) return;
      if (view.status !== "queued") break;
    }
    if (parts.li.isConnected && parts.status.textContent !== "queued") {
      entryNote(parts, "The view is done; its result is listed under Recent views.");
    }
  } catch (err) {
    if (err instanceof ApiError && err.code === "not_due") {
      // The server counts in seconds; a person reads "29 d 23 h" more easily.
      const secs = Number((/(\d+)\s*s\b/.exec(err.message) || [])[1]);
      const friendly = Number.isFinite(secs) ? `Not due yet: the next view can happen in ${fmtDuration(secs)}. ` : "";
      entryError(parts, `${friendly}The server said: ${err.message}.`);
    } else {
      entryError(parts, err);
    }
    // refresh shows its own failures and never rejects, so it needs no catch here.
    await refresh(parts);
  }
}

function stop(parts) {
  clearEntryMessages(parts);
  return deleteFlow(parts.remove, {
    call: () =>
      api("DELETE", `/v1/keepalive/${encodeURIComponent(parts.saved.id)}`, {
        headers: { "X-Manage-Token": parts.saved.manage_token },
      }),
    fail: (err) => entryError(parts, err),
    done: () => {
      forget(parts.saved.id);
      removeFromPage(parts);
      showOk(notice, `Stopped keeping ${parts.link.textContent} alive.`);
    },
  });
}

function forgetHere(parts) {
  forget(parts.saved.id);
  removeFromPage(parts);
  const lost = parts.saved.manage_token ? " Its manage token is no longer stored here, so it cannot be stopped from this browser." : "";
  showOk(notice, `Forgot ${parts.link.textContent} in this browser; the server still keeps it alive.${lost}`);
}

/** Removes an entry's item and puts the keyboard focus somewhere sensible. */
function removeFromPage(parts) {
  const target = removeRow(parts.li, "button:not([disabled])");
  shown.delete(parts.saved.id);
  updateEmpty();
  (target || urlInput).focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessage(errorBox);
  clearMessage(notice);
  const url = urlInput.value.trim();
  if (!url) {
    showError(errorBox, "Enter the address of an Imgur image, album or gallery.");
    urlInput.focus();
    return;
  }
  try {
    const { status, data } = await whileBusy(addButton, () => api("POST", "/v1/keepalive", { json: { url } }));
    const known = shown.get(data.id);
    const stored = remember(data.id, data.url || url, data.manage_token);
    if (status === 201) {
      showOk(notice, "Added. The first view happens right away; later views follow about every 30 days.");
    } else if (known) {
      showOk(notice, "This URL is already kept alive; it is listed below.");
    } else {
      showOk(
        notice,
        "This URL was already being kept alive, so it is listed below without a manage token: it cannot be stopped from this browser.",
      );
    }
    if (!stored) {
      showError(errorBox, "This browser could not store the entry (storage is full or disabled); note the manage token now: " +
        (data.manage_token || "none"));
    }
    // The entry's item is rebuilt so that a newly learnt manage token shows its Stop button.
    if (known) known.li.remove();
    const saved = readStore().find((e) => e.id === data.id) || { id: data.id, url: data.url || url, manage_token: data.manage_token || null };
    const parts = buildEntry(saved);
    list.prepend(parts.li);
    fill(parts, data);
    updateEmpty();
    urlInput.value = "";
  } catch (err) {
    showError(errorBox, err);
  }
});

renderAll();
