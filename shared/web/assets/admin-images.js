// The admin page's images: the paged list of every stored image, newest first, with a delete
// button on each. Set up by admin.js, which gives it the signed-in session.
import { h, showOk, clearMessage, deleteFlow, fmtBytes, fmtDate, removeRow } from "/assets/app.js";
import { pagedList } from "/assets/paged.js";

const imagesError = document.getElementById("images-error");
const imagesStatus = document.getElementById("images-status");
const imageList = document.getElementById("image-list");
const moreImages = document.getElementById("more-images");
const imagesEmpty = document.getElementById("images-empty");

/** The signed-in session (`call`, `report`), given by `setUpImages`. */
let session = null;
/** What else to do after a deletion (the statistics count stored images too). */
let deleted = () => {};
/** The paged list of images, made by `setUpImages`. */
let list = null;

/**
 * Sets up the section with the session's `call` (the API as the admin) and `report` (shows an
 * error in a section's alert box); `onDeleted()` runs after each deletion. Returns
 * `{load(reset), clear}`.
 */
export function setUpImages(given, { onDeleted } = {}) {
  session = given;
  if (onDeleted) deleted = onDeleted;
  list = pagedList({
    list: imageList,
    more: moreImages,
    path: "/v1/images",
    field: "images",
    row: imageItem,
    get: (path) => session.call("GET", path),
    fail: (err) => session.report(imagesError, err),
    emptyNote: imagesEmpty,
  });
  return { load: list.load, clear };
}

/** Forgets everything shown (signing out). */
function clear() {
  clearMessage(imagesError);
  clearMessage(imagesStatus);
  list.clear();
}

function imageItem(image) {
  const small = image.variants && image.variants.small;
  // Until the small variant is made, the original stands in (the browser scales it down).
  const thumb = small && small.status === "ready" ? small.url : image.link;
  const page = `/v/${encodeURIComponent(image.id)}`;
  const camera = [image.camera_make, image.camera_model].filter(Boolean).join(" ");
  return h(
    "li",
    { "data-id": image.id },
    // One link holds both the thumbnail and the id, so each image is a single tab stop; the
    // id names the link, so the thumbnail's own text would only repeat it.
    h(
      "a",
      { href: page, class: "image-page" },
      h("img", { src: thumb, alt: "", loading: "lazy", decoding: "async" }),
      h("span", {}, image.id),
    ),
    h(
      "p",
      { class: "muted" },
      `${fmtBytes(image.bytes)} · ${image.format} · ${image.width}×${image.height}`,
      h("br"),
      fmtDate(image.created_at),
      camera ? [h("br"), camera] : null,
    ),
    h(
      "button",
      {
        type: "button",
        class: "danger delete",
        "aria-label": `Delete image ${image.id}`,
        onclick: (event) => remove(image, event.currentTarget),
      },
      "Delete",
    ),
  );
}

function remove(image, button) {
  return deleteFlow(button, {
    question: `Delete image ${image.id}? Its links stop working for everyone.`,
    clear: [imagesError, imagesStatus],
    call: () => session.call("DELETE", `/v1/images/${encodeURIComponent(image.id)}`),
    fail: (err) => session.report(imagesError, err),
    done: () => {
      // Focus moves to a neighbour's delete button so a keyboard user keeps their place.
      const next = removeRow(button.closest("li"), "button.delete");
      showOk(imagesStatus, `Deleted image ${image.id}.`);
      imagesEmpty.hidden = imageList.children.length > 0 || !moreImages.hidden;
      (next || document.getElementById("images-title")).focus();
      // The totals count stored images, so they changed too.
      deleted();
    },
  });
}
