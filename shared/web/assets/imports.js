// The import page: sends a list of URLs to POST /v1/imports and watches the job until every URL
// has been fetched or has failed. The job id lives in the address (#job=<id>), so a reload or a
// shared link resumes watching the same job.
import { api, ApiError, h, showError, clearMessage, copyButton, local, sleep, whileBusy } from "/assets/app.js";

const form = document.getElementById("import-form");
const textarea = document.getElementById("urls");
const startButton = document.getElementById("start");
const errorBox = document.getElementById("error");
const jobSection = document.getElementById("job");
const jobStatus = document.getElementById("job-status");
const tbody = document.querySelector("#items tbody");

/** Job statuses after which nothing changes any more. */
const FINAL = new Set(["done", "partial", "failed"]);
const LABELS = { queued: "Queued", running: "Running", done: "Done", partial: "Partly done", failed: "Failed" };
const POLL_MS = 1000;

// Each watch gets a number; a loop stops as soon as a newer watch has started, so starting a
// second import (or following another #job link) never leaves two loops writing the table.
let watchNumber = 0;
// The rows of the job on screen, by index, with the cells that change while polling.
let rows = [];

/** Delete tokens are answered once, so this tab keeps them for a reload of the same job. */
function tokenKey(jobId) {
  return `imghost.import.${jobId}`;
}
function saveTokens(jobId, tokens) {
  try {
    sessionStorage.setItem(tokenKey(jobId), JSON.stringify(tokens));
  } catch (e) {
    // Storage may be full or disabled; the tokens are still on screen for this visit.
  }
}
function loadTokens(jobId) {
  try {
    const tokens = JSON.parse(sessionStorage.getItem(tokenKey(jobId)) || "[]");
    return Array.isArray(tokens) ? tokens : [];
  } catch (e) {
    return [];
  }
}

/** The non-blank lines of the text box, trimmed. */
function readUrls() {
  return textarea.value
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

/** The job id in `#job=<id>`, or null. */
function jobFromHash() {
  const match = /^#job=([A-Za-z0-9_-]+)$/.exec(location.hash);
  return match ? match[1] : null;
}

/** Builds one table row; the cells that change later are kept in `rows`. */
function buildRow(index, url, token) {
  const status = h("span", { class: "status queued" }, "queued");
  const detail = h("td", { class: "detail" });
  const image = h("td", { class: "image" });
  let tokenCell;
  if (token) {
    const field = h("input", {
      type: "text",
      readonly: true,
      value: token,
      class: "delete-token",
      "aria-label": `Delete token for image ${index + 1}`,
    });
    field.addEventListener("focus", () => field.select());
    tokenCell = h("td", {}, h("div", { class: "copy-row" }, field, copyButton(() => field.value, `delete token for image ${index + 1}`)));
  } else {
    tokenCell = h("td", { class: "muted" }, "Not available here: it was shown once, when the import started");
  }
  const urlCell = h("td", { class: "url" }, url || "");
  const tr = h("tr", { dataset: { index: String(index) } }, urlCell, h("td", {}, status), detail, image, tokenCell);
  tbody.append(tr);
  rows[index] = { tr, urlCell, status, detail, image, imageId: null };
}

/** Shows a new job: one row per URL, with the tokens from the 202 answer. */
function showJob(urls, tokens) {
  tbody.replaceChildren();
  rows = [];
  urls.forEach((url, i) => buildRow(i, url, tokens[i]));
  jobSection.hidden = false;
}

/** Writes one URL's state into its row, touching only what changed (a focused token field stays focused). */
function updateRow(index, item, token) {
  if (!rows[index]) buildRow(index, item.url, token);
  const row = rows[index];
  if (item.url && row.urlCell.textContent !== item.url) row.urlCell.textContent = item.url;
  const word = item.status || "queued";
  if (row.status.textContent !== word) {
    row.status.className = `status ${word}`;
    row.status.textContent = word;
  }
  // A failed URL says why; a URL being retried shows the last failure so a slow job explains itself.
  let detail = "";
  if (item.error && item.error.message) {
    detail = word === "failed" ? item.error.message : `Retrying after: ${item.error.message}`;
  } else if (word === "running") {
    detail = "Fetching…";
  }
  if (row.detail.textContent !== detail) row.detail.textContent = detail;
  if (item.image && item.image.id && row.imageId !== item.image.id) {
    row.imageId = item.image.id;
    const id = encodeURIComponent(item.image.id);
    // The small variant may still be in the making; the server then answers the original.
    const thumb = h("img", { src: `/i/${id}?size=small`, alt: "", class: "import-thumb", width: 48, height: 48, loading: "lazy" });
    row.image.replaceChildren(
      h("a", { href: `/v/${id}`, class: "image-link" }, thumb, h("span", {}, "View image")),
    );
  }
}

/** Writes the job's status line, e.g. "Running: 2 of 5 done" with the status word. */
function updateStatus(view) {
  const total = view.items ? view.items.length : 0;
  const counts = view.counts || {};
  const settled = (counts.done || 0) + (counts.failed || 0);
  let text = `${LABELS[view.status] || view.status}: ${settled} of ${total} done`;
  if (counts.failed) text += ` (${counts.failed} failed)`;
  text += FINAL.has(view.status) ? "." : "…";
  // #job-status is a live region: writing the same words every second would read them out again
  // and again, so it is only written when they change.
  if (jobStatus.textContent === `${text} ${view.status}`) return;
  const word = h("span", { class: `status ${view.status}` }, view.status);
  jobStatus.replaceChildren(text, " ", word);
}

/**
 * Polls the job every second until its status is final. Storage or network hiccups are shown
 * and retried; an answer that the job does not exist (or never will) ends the watch.
 */
async function watch(jobId, statusUrl) {
  const mine = ++watchNumber;
  const tokens = loadTokens(jobId);
  // The status_url carries the configured public address, which may name another host than
  // the one this page came from; local() turns it into a path on this page's origin.
  const url = statusUrl ? local(statusUrl) : `/v1/imports/${encodeURIComponent(jobId)}`;
  jobSection.hidden = false;
  while (mine === watchNumber) {
    try {
      const { data } = await api("GET", url);
      if (mine !== watchNumber) return;
      clearMessage(errorBox);
      data.items.forEach((item, i) => updateRow(i, item, tokens[i]));
      updateStatus(data);
      if (FINAL.has(data.status)) return;
    } catch (err) {
      if (mine !== watchNumber) return;
      showError(errorBox, err);
      const retryable = !(err instanceof ApiError) || err.status === 0 || err.status === 429 || err.status >= 500;
      if (!retryable) {
        jobStatus.textContent = "This import job cannot be shown.";
        return;
      }
    }
    await sleep(POLL_MS);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessage(errorBox);
  const urls = readUrls();
  if (urls.length === 0) {
    showError(errorBox, "Enter at least one image URL, one per line.");
    textarea.focus();
    return;
  }
  // The server checks the list (count, schemes, lengths) and names the first bad entry, so
  // its answer is the one place those rules live.
  try {
    const { data } = await whileBusy(startButton, () => api("POST", "/v1/imports", { json: { urls } }));
    const tokens = data.delete_tokens || [];
    saveTokens(data.job_id, tokens);
    showJob(urls, tokens);
    jobStatus.textContent = `Queued: 0 of ${urls.length} done…`;
    // Replacing the hash (not pushing) keeps Back going to where the person came from, and
    // replaceState fires no hashchange, so the watch started below is the only one for this job.
    history.replaceState(null, "", `#job=${data.job_id}`);
    watch(data.job_id, data.status_url);
  } catch (err) {
    showError(errorBox, err);
  }
});

// Ctrl+Enter (or Cmd+Enter) starts the import from the text box, where Enter makes a new line.
textarea.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

/** Resumes watching the job named in the address, if any. */
function resumeFromHash() {
  const jobId = jobFromHash();
  if (!jobId) return;
  clearMessage(errorBox);
  tbody.replaceChildren();
  rows = [];
  jobStatus.textContent = "Loading the import job…";
  watch(jobId, null);
}

window.addEventListener("hashchange", resumeFromHash);
resumeFromHash();
