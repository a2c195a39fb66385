// The uploader used by the upload page and the invitation page: a drop zone, a file picker and
// paste all feed one queue; each file is sent on its own request so it gets its own progress bar,
// its own result and its own error in words.

import {
  api,
  ApiError,
  readAnswer,
  h,
  showError,
  copyButton,
  copyField,
  local,
  sleep,
  deleteFlow,
  deleteWithToken,
} from "/assets/app.js";

/** Files above this go through a presigned form: the API takes at most 5 MiB per request, and
 * the multipart wrapping needs some room of its own. */
export const LARGE_FILE = 5 * 1024 * 1024 - 8192;
/** How many files are sent at once; more would only split the same bandwidth. */
const PARALLEL = 3;
/** How long a large upload may take to be processed after its file arrived. */
const PROCESSING_LIMIT_MS = 5 * 60 * 1000;

let fieldCounter = 0;

/**
 * Renders the uploader into `root` and returns `{list, close(message)}`.
 * `directUrl` takes multipart `file` uploads; `largeUrl` hands out presigned forms.
 * `onUploaded(image)` runs after each success, `onFailed(error, file)` after each failure.
 * `headers` are sent with every request to this site (never to a bucket).
 */
export function mountUploader({ root, directUrl, largeUrl, onUploaded, onFailed, headers = {} }) {
  const input = h("input", { type: "file", id: "file-input", multiple: true, accept: "image/*" });
  const zone = h(
    "label",
    { class: "dropzone", id: "dropzone", for: "file-input" },
    h("strong", {}, "Drop images here, choose files, or paste"),
    h("br"),
    h("span", { class: "muted" }, "JPEG, PNG, GIF or WebP, up to 50 MiB each"),
    input,
  );
  const list = h("ul", { id: "uploads", class: "uploads", "aria-live": "polite" });
  root.replaceChildren(zone, list);

  const queue = [];
  let running = 0;
  let closed = false;

  function add(files) {
    if (closed) return;
    for (const file of files) {
      const item = renderItem(file);
      list.append(item.li);
      queue.push(item);
    }
    pump();
  }

  function pump() {
    while (!closed && running < PARALLEL && queue.length > 0) {
      const item = queue.shift();
      running += 1;
      upload(item)
        .then((image) => {
          if (onUploaded) onUploaded(image);
        })
        .catch((err) => {
          if (onFailed) onFailed(err, item.file);
        })
        .finally(() => {
          running -= 1;
          pump();
        });
    }
  }

  async function upload(item) {
    try {
      const result =
        item.file.size > LARGE_FILE ? await sendLarge(item, largeUrl, headers) : await sendDirect(item, directUrl, headers);
      showDone(item, result);
      return result.image;
    } catch (err) {
      showFailed(item, err);
      throw err;
    }
  }

  input.addEventListener("change", () => {
    add(Array.from(input.files || []));
    // Cleared so that choosing the same file again still counts as a change.
    input.value = "";
  });

  // Dragging over the zone highlights it; a counter is not needed because `over` is only a hint.
  zone.addEventListener("dragenter", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove("over");
  });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    add(Array.from((e.dataTransfer && e.dataTransfer.files) || []));
  });

  // A file dropped just beside the zone would otherwise replace the page with the image.
  const stray = (e) => {
    if (e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files")) e.preventDefault();
  };
  document.addEventListener("dragover", stray);
  document.addEventListener("drop", stray);

  // Pasting a screenshot anywhere on the page uploads it; pasting text into a field is untouched.
  const onPaste = (e) => {
    const files = Array.from((e.clipboardData && e.clipboardData.files) || []).filter((f) =>
      f.type.startsWith("image/"),
    );
    if (files.length === 0 || closed) return;
    e.preventDefault();
    add(files);
  };
  document.addEventListener("paste", onPaste);

  return {
    list,
    /** Stops taking files; those still waiting their turn are marked as not sent. */
    close(message = "Not sent: uploads are closed.") {
      closed = true;
      input.disabled = true;
      document.removeEventListener("paste", onPaste);
      for (const item of queue.splice(0)) showFailed(item, new Error(message));
    },
  };
}

/** The list entry of one file, with the elements that change as it goes. */
function renderItem(file) {
  const name = file.name || "pasted image";
  const progress = h("progress", { max: 100, value: 0, "aria-label": `Upload progress of ${name}` });
  const state = h("p", { class: "state" }, "Waiting…");
  const slot = h("div", { class: "thumb-slot" });
  const body = h("div", { class: "body" }, h("div", { class: "name" }, name), progress, state);
  const li = h("li", { class: "upload card" }, slot, body);
  return { file, name, li, slot, body, progress, state };
}

function setProgress(item, fraction) {
  const percent = Math.min(100, Math.round(fraction * 100));
  item.progress.value = percent;
  item.state.textContent = `Uploading ${percent}%`;
}

function setProcessing(item) {
  item.progress.value = 100;
  item.state.textContent = "Processing…";
}

/** One request through the API: the answer is the image (or `{images:[...]}` through a link). */
async function sendDirect(item, url, headers) {
  const form = new FormData();
  form.append("file", item.file, item.name);
  setProgress(item, 0);
  const { data } = await post(url, form, headers, item);
  const view = data && Array.isArray(data.images) ? data.images[0] : data;
  if (!view || !view.id) throw new ApiError(0, "bad_answer", "The server's answer did not contain the image.");
  return { image: view, duplicate: Boolean(view.duplicate), token: view.delete_token };
}

/** A presigned form: ask for it, post the file to where it says, then wait for the image. */
async function sendLarge(item, url, headers) {
  item.state.textContent = "Preparing upload…";
  const request = { bytes: item.file.size, filename: item.name };
  if (item.file.type) request.content_type = item.file.type;
  const { data: created } = await api("POST", url, { json: request, headers });
  const form = new FormData();
  for (const [field, value] of Object.entries(created.form.fields || {})) form.append(field, String(value));
  // The file goes last: S3 ignores every field after it.
  form.append(created.form.file_field || "file", item.file, item.name);
  setProgress(item, 0);
  // The form may point at a bucket on another origin, which must not receive this site's headers;
  // local() keeps such a URL as it is and only maps this API under another host name to this origin.
  await post(local(created.form.url), form, {}, item);
  setProcessing(item);
  const deadline = Date.now() + PROCESSING_LIMIT_MS;
  let wait = 500;
  let hiccups = 0;
  while (Date.now() < deadline) {
    await sleep(wait);
    wait = Math.min(wait * 1.5, 3000);
    let status;
    try {
      // The status URL carries the configured public address, which may name another host.
      status = (await api("GET", local(created.status_url), { headers })).data;
    } catch (err) {
      // A dropped connection or a busy server is worth a few more tries; anything else is final.
      if ((err.status === 0 || err.status >= 500) && hiccups < 3) {
        hiccups += 1;
        continue;
      }
      throw err;
    }
    if (status.status === "done") {
      if (!status.image) throw new ApiError(0, "gone", "The image was stored but has been deleted since.");
      return { image: status.image, duplicate: Boolean(status.duplicate), token: created.delete_token };
    }
    if (status.status === "failed") {
      const message = status.error && status.error.message;
      throw new ApiError(0, (status.error && status.error.code) || "failed", message || "The file could not be processed.");
    }
    if (status.status === "expired") {
      throw new ApiError(0, "expired", "The upload form expired before the file arrived. Please try again.");
    }
  }
  throw new ApiError(0, "timeout", "The file was sent but is taking too long to process. Try again later.");
}

/** Posts a form by XMLHttpRequest, which (unlike fetch) reports upload progress. */
function post(url, form, headers, item) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && e.total > 0) setProgress(item, e.loaded / e.total);
    });
    // Once every byte is out, the server is reading the image, which can take a moment.
    xhr.upload.addEventListener("load", () => setProcessing(item));
    xhr.addEventListener("load", () => {
      try {
        resolve(readAnswer(xhr.status, null, xhr.responseText));
      } catch (err) {
        reject(bucketError(err, xhr));
      }
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, "network", "The upload could not reach the server. Check your connection and try again.")),
    );
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "The upload was interrupted.")));
    xhr.send(form);
  });
}

/** S3 explains a refused form in XML rather than JSON; its <Message> is still worth showing. */
function bucketError(err, xhr) {
  const text = xhr.responseText || "";
  if (err.code && err.code.startsWith("http_") && text.trimStart().startsWith("<")) {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    const message = doc.querySelector("Message");
    if (message && message.textContent) {
      return new ApiError(xhr.status, "storage", `The storage refused the file: ${message.textContent}`);
    }
  }
  return err;
}

/** Replaces the progress with the image, its links and its delete token. */
function showDone(item, { image, duplicate, token }) {
  const { li, slot, body, progress, state } = item;
  li.dataset.id = image.id;
  li.classList.add("done");
  progress.value = 100;
  progress.hidden = true;
  state.textContent = "Done";
  const small = image.variants && image.variants.small;
  const src = small && small.status === "ready" ? small.url : image.link;
  // The item's alert says when something goes wrong after the upload: the thumbnail failing to
  // load (which otherwise shows only its alt text) or a refused deletion.
  const alert = h("p", { class: "error", role: "alert", hidden: true });
  const thumb = h("img", { class: "thumb", src, alt: item.name });
  thumb.addEventListener("error", () => showError(alert, "The image could not be loaded."));
  slot.replaceChildren(thumb);

  const details = h(
    "div",
    { class: "details" },
    duplicate ? h("p", { class: "muted duplicate" }, "Already uploaded before") : null,
    h("p", {}, h("a", { class: "page-link", href: `/v/${encodeURIComponent(image.id)}` }, "Open image page")),
    copyField(image.link, "Image link"),
  );
  if (token) {
    fieldCounter += 1;
    const id = `delete-token-${fieldCounter}`;
    const tokenInput = h("input", { type: "text", id, class: "delete-token", readonly: true, value: token });
    tokenInput.addEventListener("focus", () => tokenInput.select());
    const button = h("button", { type: "button", class: "danger delete" }, "Delete image");
    button.addEventListener("click", () => remove(item, image, token, button, details, alert));
    details.append(
      h("label", { for: id }, "Delete token"),
      h("p", { class: "muted" }, "Keep this token: it is shown only now, and it is the only way to delete the image."),
      h("div", { class: "copy-row" }, tokenInput, copyButton(() => tokenInput.value, "delete token")),
      h("p", {}, button),
    );
  }
  details.append(alert);
  body.append(details);
}

function remove(item, image, token, button, details, alert) {
  return deleteFlow(button, {
    question: `Delete ${item.name}? Its links stop working at once.`,
    clear: [alert],
    call: () => deleteWithToken(image.id, token),
    fail: (err) => showError(alert, err),
    done: () => {
      item.li.classList.remove("done");
      item.li.classList.add("deleted");
      item.state.textContent = "Deleted";
      item.slot.replaceChildren();
      details.replaceChildren();
      // The Delete button had the focus and is gone with the details; the item's state, which
      // now says "Deleted", takes it so a keyboard user stays at this item.
      item.state.tabIndex = -1;
      item.state.focus();
    },
  });
}

function showFailed(item, err) {
  item.li.classList.add("failed");
  item.progress.hidden = true;
  item.state.textContent = "Failed";
  const message = err && err.message ? err.message : String(err);
  item.body.append(h("p", { class: "error", role: "alert" }, message));
}
