// The admin page's invitation links: making one (its URL, which holds its secret, is shown
// once), the paged list of links and revoking one. Set up by admin.js, which gives it the
// signed-in session.
import {
  h,
  showError,
  showOk,
  clearMessage,
  copyField,
  deleteFlow,
  fmtDate,
  fmtDuration,
  whileBusy,
} from "/assets/app.js";
import { pagedList } from "/assets/paged.js";

const STATUS_WORDS = { active: "active", expired: "expired", revoked: "revoked", used_up: "used up" };

const linksError = document.getElementById("links-error");
const linksStatus = document.getElementById("links-status");
const newLink = document.getElementById("new-link");
const labelInput = document.getElementById("link-label");
const maxInput = document.getElementById("link-max");

/** The signed-in session (`call`, `report`), given by `setUpLinks`. */
let session = null;
/** The paged list of links, made by `setUpLinks`. */
let list = null;

/**
 * Sets up the section with the session's `call` (the API as the admin) and `report` (shows an
 * error in a section's alert box). Returns `{load(reset), clear}`.
 */
export function setUpLinks(given) {
  session = given;
  list = pagedList({
    list: document.getElementById("link-list").tBodies[0],
    more: document.getElementById("more-links"),
    path: "/v1/links",
    field: "links",
    row: linkRow,
    get: (path) => session.call("GET", path),
    fail: (err) => session.report(linksError, err),
    placeholder: () => h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No invitation links yet.")),
  });
  document.getElementById("link-form").addEventListener("submit", create);
  return { load: list.load, clear };
}

/** Forgets everything shown (signing out), the link shown once included. */
function clear() {
  clearMessage(linksError);
  clearMessage(linksStatus);
  hideNewLink();
  list.clear();
}

function hideNewLink() {
  newLink.hidden = true;
  newLink.replaceChildren();
}

function linkRow(link) {
  const name = link.label ? link.label : h("span", { class: "muted" }, "(no label)");
  const left = (new Date(link.expires_at).getTime() - Date.now()) / 1000;
  const expires = [fmtDate(link.expires_at)];
  if (link.status === "active" && left > 0) expires.push(h("br"), h("span", { class: "muted" }, `in ${fmtDuration(left)}`));
  const action =
    link.status === "active"
      ? h(
          "button",
          {
            type: "button",
            class: "danger revoke",
            "aria-label": `Revoke ${link.label ? `the link “${link.label}”` : "this unlabelled link"}`,
            onclick: (event) => revoke(link, event.currentTarget),
          },
          "Revoke",
        )
      : null;
  return h(
    "tr",
    { "data-id": link.id },
    h("td", {}, name),
    h("td", {}, h("span", { class: `status ${link.status}` }, STATUS_WORDS[link.status] || link.status)),
    h("td", { class: "num" }, `${link.uploads} / ${link.max_uploads}`),
    h("td", {}, expires),
    h("td", {}, action),
  );
}

function revoke(link, button) {
  const what = link.label ? `the link “${link.label}”` : "this link";
  return deleteFlow(button, {
    question: `Revoke ${what}? Nobody can upload through it any more.`,
    clear: [linksError, linksStatus],
    call: () => session.call("DELETE", `/v1/links/${encodeURIComponent(link.id)}`),
    fail: (err) => session.report(linksError, err),
    done: () => {
      // The row is redrawn in place, so the pages already loaded below it stay where they are.
      button.closest("tr").replaceWith(linkRow({ ...link, status: "revoked" }));
      // A freshly created link that was just revoked no longer works: stop offering it for copying.
      if (newLink.dataset.id === link.id) hideNewLink();
      showOk(linksStatus, `Revoked ${what}.`);
      document.getElementById("links-title").focus();
    },
  });
}

async function create(event) {
  event.preventDefault();
  clearMessage(linksError);
  clearMessage(linksStatus);
  const label = labelInput.value.trim();
  const request = {
    expires_in: Number(document.getElementById("link-expires").value),
    // An empty field is sent as 0 so the server's own rule explains the allowed range.
    max_uploads: Number(maxInput.value || 0),
  };
  if (label) request.label = label;
  if (!Number.isInteger(request.max_uploads)) {
    showError(linksError, "Uploads allowed must be a whole number from 1 to 10000.");
    maxInput.focus();
    return;
  }
  let created;
  try {
    const button = document.getElementById("create-link");
    created = (await whileBusy(button, () => session.call("POST", "/v1/links", { json: request }))).data;
  } catch (err) {
    session.report(linksError, err);
    return;
  }
  // The server answers with an absolute URL under its public address; resolving against this
  // page's origin also copes with a relative one.
  const url = new URL(created.url, location.origin).href;
  newLink.replaceChildren(
    h("h3", {}, created.label ? `Invitation link “${created.label}”` : "Invitation link"),
    copyField(url, "Invitation link"),
    h(
      "p",
      { class: "muted" },
      `Up to ${created.max_uploads} uploads until ${fmtDate(created.expires_at)}. ` +
        "The link holds its secret token and is shown only once: copy it now.",
    ),
  );
  newLink.dataset.id = created.id;
  newLink.hidden = false;
  labelInput.value = "";
  newLink.querySelector("input").focus();
  list.load(true);
}
