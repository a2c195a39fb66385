// The page of one image: the image in the size the reader picks, its link, its public metadata,
// and a delete button when the page was opened with the delete token in its fragment.

import {
  api,
  h,
  showError,
  showOk,
  clearMessage,
  copyField,
  fmtBytes,
  fmtDate,
  sleep,
  pathAfter,
  deleteFlow,
  deleteWithToken,
} from "/assets/app.js";

const SIZES = ["small", "medium", "large", "original"];
/** Variants are usually made within seconds; after this long the page stops asking. */
const POLL_LIMIT = 60;

const errorBox = document.getElementById("error");
const view = document.getElementById("image-view");
const img = document.getElementById("image");
const dims = document.getElementById("size-dimensions");
const meta = document.getElementById("meta");
const buttons = new Map(SIZES.map((s) => [s, document.querySelector(`#sizes [data-size="${s}"]`)]));

/** What the page says when its address holds a malformed %-escape, e.g. from a mangled copy. */
const BAD_ADDRESS = "This address is not valid: part of it is garbled. Check that you copied the whole link.";

const id = pathAfter("/v/");
let image = null;
let chosen = null;
// Once the reader picks a size, a variant becoming ready no longer changes the choice.
let readerChose = false;
// After a deletion the image is gone on purpose: polling must not report it missing.
let deleted = false;

/** The URL and pixel size of one size of the image, or null while that variant is not made. */
function sizeOf(size) {
  if (size === "original") return { url: image.link, width: image.display_width, height: image.display_height };
  const v = image.variants && image.variants[size];
  if (!v || v.status !== "ready") return null;
  return { url: v.url, width: v.width, height: v.height };
}

function choose(size) {
  const s = sizeOf(size);
  if (!s) return;
  chosen = size;
  if (img.getAttribute("src") !== s.url) img.src = s.url;
  for (const [name, button] of buttons) button.setAttribute("aria-pressed", String(name === size));
  dims.textContent = s.width && s.height ? `${s.width} × ${s.height} pixels` : "";
}

/** Enables the sizes that are ready and says why the others are not. */
function updateButtons() {
  for (const [size, button] of buttons) {
    if (size === "original") continue;
    const v = image.variants && image.variants[size];
    const ready = Boolean(v && v.status === "ready");
    button.disabled = !ready;
    if (ready) button.removeAttribute("title");
    else button.title = v && v.status === "failed" ? "This size could not be made" : "This size is still being made";
  }
}

function pending() {
  return Object.values(image.variants || {}).some((v) => v.status === "pending");
}

function showMeta() {
  const camera = cameraName(image.camera_make, image.camera_model);
  const rows = [
    ["Dimensions", image.display_width && image.display_height ? `${image.display_width} × ${image.display_height}` : ""],
    ["Format", image.format ? `${image.format.toUpperCase()} (${image.mime})` : ""],
    ["File size", fmtBytes(image.bytes)],
    ["Camera", camera],
    ["Taken", fmtDate(image.taken_at)],
    ["Uploaded", fmtDate(image.created_at)],
  ];
  // Only the fields listed above are shown, so a location never reaches the page even if the
  // server were ever to send one.
  meta.replaceChildren(...rows.filter(([, value]) => value).flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

/** "Canon" and "Canon EOS 40D" read as "Canon EOS 40D", not "Canon Canon EOS 40D". */
function cameraName(make, model) {
  const m = (make || "").trim();
  const d = (model || "").trim();
  if (m && d.toLowerCase().startsWith(m.toLowerCase())) return d;
  return [m, d].filter(Boolean).join(" ");
}

function render() {
  img.alt = `Image ${image.id} (${image.format ? image.format.toUpperCase() : "image"})`;
  showMeta();
  updateButtons();
  if (!readerChose) {
    const best = sizeOf("large") ? "large" : "original";
    if (best !== chosen) choose(best);
  } else if (!sizeOf(chosen)) {
    choose("original");
  }
}

async function load() {
  clearMessage(errorBox);
  try {
    image = (await api("GET", `/v1/images/${encodeURIComponent(id)}`)).data;
  } catch (err) {
    showError(errorBox, err);
    return;
  }
  document.title = `Image ${image.id} · imghost`;
  view.querySelector("#image-link").replaceChildren(copyField(image.link, "Image link"));
  render();
  view.hidden = false;
  setUpDelete();
  // Variants are made after the upload answers; the page follows them for a minute.
  for (let i = 0; i < POLL_LIMIT && pending(); i++) {
    await sleep(1000);
    if (deleted) return;
    try {
      image = (await api("GET", `/v1/images/${encodeURIComponent(id)}`)).data;
    } catch (err) {
      if (deleted) return;
      // A deleted image or a lost connection ends the wait, and the reader is told why.
      showError(errorBox, err);
      return;
    }
    render();
  }
}

function setUpDelete() {
  const match = /^#delete=(.+)$/.exec(location.hash);
  if (!match) return;
  let token;
  try {
    token = decodeURIComponent(match[1]);
  } catch (e) {
    // The image itself is fine, so it stays shown; only deleting is not offered.
    showError(errorBox, `${BAD_ADDRESS} The delete token in it cannot be read, so the image cannot be deleted here.`);
    return;
  }
  const area = document.getElementById("delete-area");
  const button = document.getElementById("delete-button");
  area.hidden = false;
  button.addEventListener("click", () =>
    deleteFlow(button, {
      question: "Delete this image? Its links stop working at once.",
      clear: [errorBox],
      call: () => deleteWithToken(image.id, token),
      fail: (err) => showError(errorBox, err),
      done: () => {
        deleted = true;
        view.hidden = true;
        img.removeAttribute("src");
        // The token has done its work; it should not stay in the address bar or the history.
        history.replaceState(null, "", location.pathname);
        const done = document.getElementById("deleted");
        showOk(done, "Deleted. The image and its links are gone.");
        // The Delete button had the focus and is hidden with the image; the message takes it.
        done.focus();
      },
    }),
  );
}

// A broken image shows only its alt text, which reads like success: say in words that it failed.
// An image taken away on purpose (after a deletion, or with no source) is not a failure.
img.addEventListener("error", () => {
  if (deleted || !img.getAttribute("src")) return;
  showError(errorBox, "The image could not be loaded.");
});

for (const [size, button] of buttons) {
  button.addEventListener("click", () => {
    readerChose = true;
    choose(size);
  });
}

if (id === null) showError(errorBox, BAD_ADDRESS);
else load();
