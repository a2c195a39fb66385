// The page an invitation link opens: how long the link still works and how many uploads it has
// left, and the uploader while it works. The token is in the path, and it is the only key.

import { api, h, showError, clearMessage, fmtDuration, fmtDate, pathAfter } from "/assets/app.js";
import { mountUploader } from "/assets/uploader.js";

const token = pathAfter("/u/");
const linkUrl = `/v1/links/${encodeURIComponent(token ?? "")}`;

const errorBox = document.getElementById("error");
const closedBox = document.getElementById("link-closed");
const statusSection = document.getElementById("link-status");
const labelBox = document.getElementById("link-label");
const timeLeft = document.getElementById("time-left");
const uploadsLeft = document.getElementById("uploads-left");
const root = document.getElementById("uploader");

const CLOSED_MESSAGES = {
  expired: "This upload link has expired, so it no longer accepts images. Ask the person who sent it for a new one.",
  revoked: "This upload link has been revoked, so it no longer accepts images. Ask the person who sent it for a new one.",
  used_up: "This upload link is used up: every upload it allowed has been made. Ask the person who sent it for a new one.",
  missing: "This upload link does not exist. Check that you copied the whole address.",
};

let link = null;
let uploader = null;
let closed = false;
let clock = null;

/** Seconds until the link expires, by this computer's clock. */
function secondsLeft() {
  return (Date.parse(link.expires_at) - Date.now()) / 1000;
}

function tick() {
  if (!link) return;
  const left = secondsLeft();
  timeLeft.textContent = fmtDuration(left);
  if (left <= 0) {
    clearInterval(clock);
    // The server's status wins: a revoked link stays "revoked" after its expiry passes.
    if (link.status === "active") close("expired");
  }
}

function showStatus() {
  const remaining = link.remaining ?? Math.max(0, link.max_uploads - (link.uploads || 0));
  uploadsLeft.textContent = `${remaining} of ${link.max_uploads} uploads left`;
  timeLeft.title = `Until ${fmtDate(link.expires_at)}`;
  if (link.label) {
    labelBox.replaceChildren("Invitation: ", h("strong", {}, link.label));
    labelBox.hidden = false;
  } else {
    labelBox.hidden = true;
  }
  statusSection.hidden = false;
  if (clock === null) clock = setInterval(tick, 1000);
  tick();
}

/** Stops uploads for good and says why, keeping the results of earlier uploads in view. */
function close(reason) {
  if (closed) return;
  closed = true;
  // Hiding the uploader (or moving its list out) drops a focus that was inside it; the message
  // saying why takes it then, so a keyboard user is not sent back to the top of the page.
  const hadFocus = root.contains(document.activeElement);
  if (uploader) {
    uploader.close("Not sent: this upload link no longer accepts images.");
    // The finished uploads hold their links and delete tokens; they must stay visible.
    root.after(uploader.list);
  }
  root.hidden = true;
  if (reason === "missing") statusSection.hidden = true;
  // A closed link has no time left, whatever its expiry says, and a revoked or expired one no
  // uploads left either: the figures must not contradict the message below them.
  clearInterval(clock);
  timeLeft.textContent = "None";
  if (link && reason !== "used_up") uploadsLeft.textContent = `${link.uploads || 0} of ${link.max_uploads} uploads made`;
  closedBox.textContent = CLOSED_MESSAGES[reason] || CLOSED_MESSAGES.expired;
  closedBox.hidden = false;
  closedBox.classList.add("error");
  if (hadFocus) closedBox.focus();
}

/** Reads the link's status and opens or closes the uploader to match. */
async function refresh() {
  try {
    link = (await api("GET", linkUrl)).data;
  } catch (err) {
    if (err.status === 404) close("missing");
    else showError(errorBox, err);
    return;
  }
  clearMessage(errorBox);
  showStatus();
  if (link.status !== "active") {
    close(link.status);
    return;
  }
  if (!uploader && !closed) {
    uploader = mountUploader({
      root,
      directUrl: `${linkUrl}/images`,
      largeUrl: `${linkUrl}/uploads`,
      onUploaded: refresh,
      // A failure may mean the link itself refused (gone, used up, unknown), and a large file
      // that failed processing gives its use back: the status says which, and closes if so.
      onFailed: refresh,
    });
    root.hidden = false;
  }
}

if (token === null) {
  showError(errorBox, "This address is not valid: part of it is garbled. Check that you copied the whole link.");
} else if (token) {
  refresh();
} else {
  close("missing");
}
