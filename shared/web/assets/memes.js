// The memes page: checks an account's API key with GET /v1/balance, then asks GET /v1/memes
// for one meme per submission. The key is a secret, so it is kept in sessionStorage (gone when
// the tab closes), never in localStorage.
import { api, ApiError, h, showError, clearMessage, newKey, whileBusy } from "/assets/app.js";

const KEY_STORAGE = "imghost.apiKey";

const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("api-key");
const useKeyButton = document.getElementById("use-key");
const balance = document.getElementById("balance");
const remaining = document.getElementById("remaining");
const memeForm = document.getElementById("meme-form");
const memeFields = document.getElementById("meme-fields");
const latInput = document.getElementById("lat");
const lonInput = document.getElementById("lon");
const queryInput = document.getElementById("query");
const imageInput = document.getElementById("image-id");
const makeButton = document.getElementById("make");
const errorBox = document.getElementById("error");
const result = document.getElementById("meme-result");

/** The key the server accepted; memes are asked for with this one, not the text box's. */
let acceptedKey = null;

/**
 * The last submission whose outcome is unknown (the network failed, or the server failed or
 * was still busy with it): `{fingerprint, key}`. Sending the same submission again reuses its
 * Idempotency-Key, so a meme that was in fact made is answered again instead of charged twice.
 */
let unsettled = null;

function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch (e) {
    // Without storage the key simply has to be entered again after a reload.
  }
}

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch (e) {
    return "";
  }
}

function setRemaining(n) {
  remaining.textContent = String(n);
  balance.hidden = false;
}

/** Shows or hides the meme form; it only makes sense with an accepted key. */
function enableMemes(on) {
  memeForm.hidden = !on;
  memeFields.disabled = !on;
}

/** Checks the key with GET /v1/balance and, when it is accepted, opens the meme form. */
async function useKey(key) {
  clearMessage(errorBox);
  try {
    const { data } = await whileBusy(useKeyButton, () => api("GET", "/v1/balance", { token: key }));
    acceptedKey = key;
    storeKey(key);
    setRemaining(data.remaining);
    enableMemes(true);
    return true;
  } catch (err) {
    acceptedKey = null;
    enableMemes(false);
    balance.hidden = true;
    if (err instanceof ApiError && err.status === 401) {
      // A rejected key is of no use in this tab any more.
      storeKey(null);
      showError(errorBox, `This API key was not accepted (${err.message}). Check it and try again.`);
    } else {
      showError(errorBox, err);
    }
    return false;
  }
}

keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  // The form is novalidate so that an empty key gets this page's message in #error rather than
  // the browser's bubble; the previous message goes first, so the new one is announced afresh.
  clearMessage(errorBox);
  const key = keyInput.value.trim();
  if (!key) {
    showError(errorBox, "Enter your API key.");
    keyInput.focus();
    return;
  }
  if (await useKey(key)) latInput.focus();
});

/** The id in an image id, a /v/<id> page address or an /i/<id>.<ext> link. */
function imageIdOf(text) {
  const value = text.trim();
  if (!value.includes("/")) return value;
  try {
    const path = new URL(value, location.href).pathname;
    const last = path.split("/").filter(Boolean).pop() || "";
    return last.split(".")[0];
  } catch (e) {
    return value;
  }
}

/** The page of a hosted image from its link `.../i/<id>.<ext>`, or null. */
function pageOf(link) {
  try {
    const url = new URL(link, location.href);
    const match = /\/i\/([A-Za-z0-9_-]+)(\.[a-z0-9]+)?$/.exec(url.pathname);
    return match ? `/v/${match[1]}` : null;
  } catch (e) {
    return null;
  }
}

/** Shows the meme answered by the server. */
function showMeme(data, query) {
  const parts = [h("h2", {}, "Your meme")];
  if (data.format === "image") {
    const page = pageOf(data.meme);
    parts.push(
      h(
        "figure",
        { class: "figure" },
        h("img", {
          src: data.meme,
          alt: `Meme: ${query}`,
          class: "meme-image",
          // A broken image shows only its alt text, which reads like success: say it failed.
          onerror: () => showError(errorBox, "The image could not be loaded."),
        }),
      ),
      h(
        "p",
        {},
        page ? h("a", { href: page, class: "meme-page" }, "Open the meme's page") : null,
        page ? " · " : null,
        h("a", { href: data.meme, class: "meme-link" }, "Direct link to the image"),
      ),
    );
  } else {
    parts.push(h("p", { class: "meme-text" }, data.meme));
  }
  result.replaceChildren(...parts);
  result.hidden = false;
}

memeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessage(errorBox);
  if (!acceptedKey) {
    showError(errorBox, "Enter and use your API key first.");
    keyInput.focus();
    return;
  }
  const lat = latInput.value.trim();
  const lon = lonInput.value.trim();
  const query = queryInput.value;
  const format = memeForm.querySelector("input[name=format]:checked")?.value || "text";
  const image = imageIdOf(imageInput.value);
  // Empty fields are named here; everything else (ranges, lengths, whether an image exists)
  // is checked by the server, which answers in words before it charges anything.
  const missing = [
    [latInput, lat, "a latitude (for example 52.52)"],
    [lonInput, lon, "a longitude (for example 13.405)"],
    [queryInput, query.trim(), "the text of the meme"],
  ].find(([, value]) => value === "");
  if (missing) {
    // A number box holds no value while its text is not a number, so say which it is.
    const typed = missing[0].validity && missing[0].validity.badInput;
    showError(errorBox, typed ? `That is not a number: enter ${missing[2]}.` : `Enter ${missing[2]}.`);
    missing[0].focus();
    return;
  }
  if (image && format !== "image") {
    showError(errorBox, "An image id is only used for image memes: choose Image, or empty the image id field.");
    imageInput.focus();
    return;
  }
  const params = new URLSearchParams({ lat, lon, query, format });
  if (image) params.set("image", image);
  const fingerprint = `${acceptedKey}\n${params}`;
  const key = unsettled && unsettled.fingerprint === fingerprint ? unsettled.key : newKey();
  unsettled = { fingerprint, key };
  try {
    const { data } = await whileBusy(makeButton, () =>
      api("GET", `/v1/memes?${params}`, {
        token: acceptedKey,
        headers: { "Idempotency-Key": key },
      }),
    );
    unsettled = null;
    showMeme(data, query);
    if (data.remaining !== undefined && data.remaining !== null) setRemaining(data.remaining);
  } catch (err) {
    // Only a definite refusal settles the submission; after a network failure, a server error
    // or "still being answered" the same submission must be retried with the same key.
    const unknown = !(err instanceof ApiError) || err.status === 0 || err.status === 409 || err.status >= 500;
    if (!unknown) unsettled = null;
    if (err instanceof ApiError && err.status === 402) {
      setRemaining(0);
      showError(errorBox, err);
    } else if (err instanceof ApiError && err.status === 401) {
      acceptedKey = null;
      storeKey(null);
      enableMemes(false);
      balance.hidden = true;
      showError(errorBox, `The API key is no longer accepted (${err.message}). Enter it again.`);
      keyInput.focus();
    } else if (unknown) {
      const end = /[.!?]$/.test(err.message) ? "" : ".";
      showError(errorBox, `${err.message}${end} Press "Make meme" again to retry; you will not be charged twice.`);
    } else {
      showError(errorBox, err);
    }
  }
});

// A key kept from earlier in this tab is filled in and checked at once.
const saved = storedKey();
if (saved) {
  keyInput.value = saved;
  useKey(saved);
}
