// The admin page: sign in with the admin token, then statistics, invitation links, images and
// accounts. Every call sends the token as a bearer; a 401 anywhere signs out, because it means
// the token is wrong or was rotated and nothing else on the page can work without it.
import {
  api,
  ApiError,
  h,
  showError,
  showOk,
  clearMessage,
  copyField,
  fmtBytes,
  fmtDate,
  fmtDuration,
  newKey,
  whileBusy,
} from "/assets/app.js";

const STORAGE_KEY = "imghost.adminToken";
const PAGE_SIZE = 50;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

const errorBox = $("error");
const signInForm = $("sign-in-form");
const tokenInput = $("admin-token");
const signInButton = $("sign-in");
const adminBar = $("admin-bar");
const signOutButton = $("sign-out");
const sections = ["stats", "links", "images", "accounts"].map($);

/** The token of this tab's session, or null when signed out. */
let token = null;

// sessionStorage can throw (storage disabled, some private modes); the page then still works
// for as long as it stays open, it only forgets the token on reload.
function storedToken() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch (e) {
    return null;
  }
}

function storeToken(value) {
  try {
    if (value === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, value);
  } catch (e) {
    // Nothing to do: see storedToken.
  }
}

/** Marks an error whose message is already shown (the 401 that signed the page out). */
class SignedOut extends Error {}

/**
 * Calls the API as the admin. A 401 signs out and shows the server's message in the sign-in
 * error box; the caller then gets a SignedOut error, which `report` ignores so the message is
 * not shown twice.
 */
async function adminApi(method, path, opts = {}) {
  if (!token) throw new SignedOut("signed out");
  try {
    return await api(method, path, { ...opts, token });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut();
      showError(errorBox, err);
      // The section that had focus is gone; the token field is where the next step is.
      tokenInput.focus();
      throw new SignedOut(err.message);
    }
    throw err;
  }
}

/** Shows an error in a section's alert box, unless signing out already showed it. */
function report(box, err) {
  if (err instanceof SignedOut) return;
  showError(box, err);
}

/**
 * Runs "Show more": loads the next page with `load`, then moves the focus to the first row it
 * added, where the keyboard user's reading continues (the button may be hidden now that nothing
 * more is left). `rows` is the live list of rows or items.
 */
async function showMore(button, rows, load) {
  const before = rows.length;
  await whileBusy(button, load);
  const first = rows[before];
  if (first) {
    first.tabIndex = -1;
    first.focus();
  }
}

// ---------------------------------------------------------------------------------------------
// Signing in and out
// ---------------------------------------------------------------------------------------------

function showSignedIn(signedIn) {
  signInForm.hidden = signedIn;
  adminBar.hidden = !signedIn;
  signOutButton.hidden = !signedIn;
  for (const section of sections) section.hidden = !signedIn;
}

/** Forgets the token and everything shown with it, including secrets that were shown once. */
function signOut() {
  token = null;
  storeToken(null);
  showSignedIn(false);
  const boxes = [
    "stats-error",
    "links-error",
    "links-status",
    "images-error",
    "images-status",
    "accounts-error",
    "accounts-status",
  ];
  for (const id of boxes) clearMessage($(id));
  for (const id of ["new-link", "new-account"]) {
    $(id).hidden = true;
    $(id).replaceChildren();
  }
  $("totals").replaceChildren();
  $("uploads-chart-box").replaceChildren();
  for (const id of ["formats", "cameras", "link-list", "account-list"]) $(id).tBodies[0].replaceChildren();
  $("image-list").replaceChildren();
  for (const id of ["more-links", "more-images", "more-accounts", "images-empty"]) $(id).hidden = true;
  tokenInput.value = "";
}

/**
 * Checks `candidate` by reading the statistics (the cheapest admin call) and, when the server
 * accepts it, keeps it and loads every section. Returns whether it was accepted.
 */
async function signIn(candidate) {
  clearMessage(errorBox);
  let answer;
  try {
    answer = await api("GET", "/v1/stats", { token: candidate });
  } catch (err) {
    // A rejected token is forgotten; any other failure (the server is down) leaves a stored
    // token in place so a reload can try again.
    if (err instanceof ApiError && err.status === 401) storeToken(null);
    showError(errorBox, err);
    return false;
  }
  token = candidate;
  storeToken(candidate);
  showSignedIn(true);
  renderStats(answer.data);
  loadLinks(true);
  loadImages(true);
  loadAccounts(true);
  return true;
}

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const candidate = tokenInput.value.trim();
  const accepted = await whileBusy(signInButton, () => signIn(candidate));
  if (accepted) {
    tokenInput.value = "";
    $("stats-title").focus();
  } else {
    tokenInput.focus();
  }
});

signOutButton.addEventListener("click", () => {
  signOut();
  clearMessage(errorBox);
  tokenInput.focus();
});

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

const statsError = $("stats-error");

async function loadStats() {
  try {
    const { data } = await adminApi("GET", "/v1/stats");
    clearMessage(statsError);
    renderStats(data);
  } catch (err) {
    report(statsError, err);
  }
}

$("refresh-stats").addEventListener("click", (event) => whileBusy(event.currentTarget, loadStats));

function renderStats(stats) {
  const days = stats.uploads_per_day || [];
  const inRange = days.reduce((sum, d) => sum + d.count, 0);
  const totals = stats.totals || {};
  const figure = (label, value) => h("div", {}, h("strong", {}, value), h("span", { class: "muted" }, label));
  const figures = [
    figure("images stored", (totals.images ?? 0).toLocaleString()),
    figure("stored", fmtBytes(totals.bytes ?? 0)),
    figure(`uploads in the last ${days.length} days`, inRange.toLocaleString()),
    figure("uploads in all", (totals.uploads ?? 0).toLocaleString()),
    figure("of them duplicates", (totals.duplicates ?? 0).toLocaleString()),
    figure("most popular format", stats.most_popular_format || "none yet"),
  ];
  // #totals is a live region: rewriting it with the same figures (after a refresh or a delete
  // that changed nothing shown) would read them all out again for nothing.
  const totalsBox = $("totals");
  if (totalsBox.textContent !== figures.map((f) => f.textContent).join("")) totalsBox.replaceChildren(...figures);
  $("uploads-chart-box").replaceChildren(uploadsChart(days));

  const countRows = (rows, empty) =>
    rows.length
      ? rows.map(([name, count]) => h("tr", {}, h("td", {}, name), h("td", { class: "num" }, count.toLocaleString())))
      : [h("tr", {}, h("td", { colspan: 2, class: "muted" }, empty))];
  $("formats").tBodies[0].replaceChildren(
    ...countRows((stats.formats || []).map((f) => [f.format, f.count]), "No images are stored yet."),
  );
  const cameras = (stats.top_cameras || []).map((c) => [c.model, c.count]);
  if (stats.cameras_unknown > 0) cameras.push([h("span", { class: "muted" }, "Unknown camera"), stats.cameras_unknown]);
  $("cameras").tBodies[0].replaceChildren(...countRows(cameras, "No camera models are known yet."));
}

/** Creates an SVG element; attributes are set as they are, children appended. */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  el.append(...children);
  return el;
}

/**
 * The per-day uploads as a bar chart. The viewBox keeps its proportions at any width, so it
 * shrinks on a phone instead of scrolling. Every day gets a bar, zero days one of height 0, so
 * the bars keep their places and each carries its date and count for screen readers (title).
 */
function uploadsChart(days) {
  const width = 480;
  const height = 200;
  const left = 36;
  const right = 4;
  const top = 10;
  const bottom = 28;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const max = days.reduce((m, d) => Math.max(m, d.count), 0);
  const total = days.reduce((sum, d) => sum + d.count, 0);
  const slot = days.length ? plotWidth / days.length : plotWidth;
  const barWidth = Math.max(1, slot * 0.7);
  const baseline = top + plotHeight;

  let summary;
  if (!days.length) summary = "Uploads per day: no data.";
  else {
    const busiest = days.reduce((a, b) => (b.count > a.count ? b : a));
    summary =
      `Uploads per day from ${days[0].date} to ${days[days.length - 1].date}: ${total} in total` +
      (max > 0 ? `, most on ${busiest.date} with ${max}.` : ".");
  }

  const chart = svg("svg", {
    id: "uploads-chart",
    role: "img",
    "aria-label": summary,
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "xMidYMid meet",
  });

  // Axes: the baseline and the left edge, with the largest value at the top.
  chart.append(
    svg("line", { class: "axis", x1: left, y1: baseline, x2: width - right, y2: baseline }),
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: baseline }),
    svg("line", { class: "axis", x1: left - 4, y1: top, x2: left, y2: top }),
    svg("text", { x: left - 6, y: top + 5, "text-anchor": "end", class: "max" }, String(max)),
    svg("text", { x: left - 6, y: baseline + 5, "text-anchor": "end" }, "0"),
  );

  days.forEach((day, i) => {
    const barHeight = max > 0 ? (day.count / max) * plotHeight : 0;
    const x = left + i * slot + (slot - barWidth) / 2;
    const noun = day.count === 1 ? "upload" : "uploads";
    chart.append(
      svg(
        "rect",
        {
          class: "bar",
          x: x.toFixed(2),
          y: (baseline - barHeight).toFixed(2),
          width: barWidth.toFixed(2),
          height: barHeight.toFixed(2),
          "data-date": day.date,
          "data-count": day.count,
        },
        svg("title", {}, `${day.date}: ${day.count} ${noun}`),
      ),
    );
  });

  // A few date labels: the first day, the middle one and today, so they never overlap.
  const labelled = [...new Set([0, Math.floor((days.length - 1) / 2), days.length - 1])].filter((i) => i >= 0);
  for (const i of labelled) {
    const anchor = i === 0 ? "start" : i === days.length - 1 ? "end" : "middle";
    const x = i === 0 ? left : i === days.length - 1 ? width - right : left + (i + 0.5) * slot;
    chart.append(svg("text", { x: x.toFixed(2), y: height - 6, "text-anchor": anchor }, days[i].date));
  }
  return chart;
}

// ---------------------------------------------------------------------------------------------
// Invitation links
// ---------------------------------------------------------------------------------------------

const linksError = $("links-error");
const linksStatus = $("links-status");
const linkRows = $("link-list").tBodies[0];
const moreLinks = $("more-links");
let linksCursor = null;

const STATUS_WORDS = { active: "active", expired: "expired", revoked: "revoked", used_up: "used up" };

/** Appends the query string of a paged listing. */
function pagePath(path, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) query.set("cursor", cursor);
  return `${path}?${query}`;
}

async function loadLinks(reset) {
  if (reset) linksCursor = null;
  try {
    const { data } = await adminApi("GET", pagePath("/v1/links", linksCursor));
    if (reset) linkRows.replaceChildren();
    for (const link of data.links || []) linkRows.append(linkRow(link));
    if (!linkRows.rows.length) {
      linkRows.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No invitation links yet.")));
    }
    linksCursor = data.next_cursor || null;
    moreLinks.hidden = !linksCursor;
  } catch (err) {
    report(linksError, err);
  }
}

moreLinks.addEventListener("click", () => showMore(moreLinks, linkRows.rows, () => loadLinks(false)));

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
            onclick: (event) => revokeLink(link, event.currentTarget),
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

async function revokeLink(link, button) {
  const what = link.label ? `the link “${link.label}”` : "this link";
  if (!window.confirm(`Revoke ${what}? Nobody can upload through it any more.`)) return;
  clearMessage(linksError);
  clearMessage(linksStatus);
  try {
    await whileBusy(button, () => adminApi("DELETE", `/v1/links/${encodeURIComponent(link.id)}`));
  } catch (err) {
    report(linksError, err);
    return;
  }
  // The row is redrawn in place, so the pages already loaded below it stay where they are.
  const row = button.closest("tr");
  const revoked = linkRow({ ...link, status: "revoked" });
  row.replaceWith(revoked);
  // A freshly created link that was just revoked no longer works: stop offering it for copying.
  const fresh = $("new-link");
  if (fresh.dataset.id === link.id) {
    fresh.hidden = true;
    fresh.replaceChildren();
  }
  showOk(linksStatus, `Revoked ${what}.`);
  $("links-title").focus();
}

$("link-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessage(linksError);
  clearMessage(linksStatus);
  const label = $("link-label").value.trim();
  const request = {
    expires_in: Number($("link-expires").value),
    // An empty field is sent as 0 so the server's own rule explains the allowed range.
    max_uploads: Number($("link-max").value || 0),
  };
  if (label) request.label = label;
  if (!Number.isInteger(request.max_uploads)) {
    showError(linksError, "Uploads allowed must be a whole number from 1 to 10000.");
    $("link-max").focus();
    return;
  }
  let created;
  try {
    created = (await whileBusy($("create-link"), () => adminApi("POST", "/v1/links", { json: request }))).data;
  } catch (err) {
    report(linksError, err);
    return;
  }
  // The server answers with an absolute URL under its public address; resolving against this
  // page's origin also copes with a relative one.
  const url = new URL(created.url, location.origin).href;
  const box = $("new-link");
  box.replaceChildren(
    h("h3", {}, created.label ? `Invitation link “${created.label}”` : "Invitation link"),
    copyField(url, "Invitation link"),
    h(
      "p",
      { class: "muted" },
      `Up to ${created.max_uploads} uploads until ${fmtDate(created.expires_at)}. ` +
        "The link holds its secret token and is shown only once: copy it now.",
    ),
  );
  box.dataset.id = created.id;
  box.hidden = false;
  $("link-label").value = "";
  box.querySelector("input").focus();
  loadLinks(true);
});

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

const imagesError = $("images-error");
const imagesStatus = $("images-status");
const imageList = $("image-list");
const moreImages = $("more-images");
let imagesCursor = null;

async function loadImages(reset) {
  if (reset) imagesCursor = null;
  try {
    const { data } = await adminApi("GET", pagePath("/v1/images", imagesCursor));
    if (reset) imageList.replaceChildren();
    for (const image of data.images || []) imageList.append(imageItem(image));
    imagesCursor = data.next_cursor || null;
    moreImages.hidden = !imagesCursor;
    $("images-empty").hidden = imageList.children.length > 0;
  } catch (err) {
    report(imagesError, err);
  }
}

moreImages.addEventListener("click", () => showMore(moreImages, imageList.children, () => loadImages(false)));

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
        onclick: (event) => deleteImage(image, event.currentTarget),
      },
      "Delete",
    ),
  );
}

async function deleteImage(image, button) {
  if (!window.confirm(`Delete image ${image.id}? Its links stop working for everyone.`)) return;
  clearMessage(imagesError);
  clearMessage(imagesStatus);
  try {
    await whileBusy(button, () => adminApi("DELETE", `/v1/images/${encodeURIComponent(image.id)}`));
  } catch (err) {
    report(imagesError, err);
    return;
  }
  // Focus moves to a neighbour's delete button so a keyboard user keeps their place.
  const item = button.closest("li");
  const neighbour = item.nextElementSibling || item.previousElementSibling;
  item.remove();
  showOk(imagesStatus, `Deleted image ${image.id}.`);
  $("images-empty").hidden = imageList.children.length > 0 || !moreImages.hidden;
  if (neighbour) neighbour.querySelector("button.delete").focus();
  else $("images-title").focus();
  // The totals count stored images, so they changed too.
  loadStats();
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

const accountsError = $("accounts-error");
const accountsStatus = $("accounts-status");
const accountRows = $("account-list").tBodies[0];
const moreAccounts = $("more-accounts");
let accountsCursor = null;

async function loadAccounts(reset) {
  if (reset) accountsCursor = null;
  try {
    const { data } = await adminApi("GET", pagePath("/v1/accounts", accountsCursor));
    if (reset) accountRows.replaceChildren();
    for (const account of data.accounts || []) accountRows.append(accountRow(account));
    if (!accountRows.rows.length) {
      accountRows.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No accounts yet.")));
    }
    accountsCursor = data.next_cursor || null;
    moreAccounts.hidden = !accountsCursor;
  } catch (err) {
    report(accountsError, err);
  }
}

moreAccounts.addEventListener("click", () => showMore(moreAccounts, accountRows.rows, () => loadAccounts(false)));

function accountRow(account) {
  const amount = h("input", {
    type: "number",
    class: "amount",
    min: 1,
    max: 1000000,
    step: 1,
    inputmode: "numeric",
    required: true,
    "aria-label": `Tokens to buy for ${account.name}`,
  });
  const buy = h("button", { type: "submit", class: "buy" }, "Buy tokens");
  // A form per row, so Enter in the amount field buys. Its checks are left to the server,
  // whose message says what is allowed.
  const form = h("form", { class: "buy-form", novalidate: true }, amount, buy);
  // The idempotency key belongs to one intended purchase: a retry of the same amount after a
  // failure reuses it, so a request that did reach the server is not counted twice.
  let pending = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearMessage(accountsError);
    clearMessage(accountsStatus);
    const value = Number(amount.value || 0);
    if (!pending || pending.amount !== value) pending = { amount: value, key: newKey() };
    let balance;
    try {
      balance = (
        await whileBusy(buy, () =>
          adminApi("POST", `/v1/accounts/${encodeURIComponent(account.account_id)}/tokens`, {
            json: { amount: value },
            headers: { "Idempotency-Key": pending.key },
          }),
        )
      ).data;
    } catch (err) {
      report(accountsError, err);
      return;
    }
    pending = null;
    amount.value = "";
    const row = form.closest("tr");
    row.querySelector("td.purchased").textContent = balance.purchased.toLocaleString();
    row.querySelector("td.used").textContent = balance.used.toLocaleString();
    row.querySelector("td.remaining").textContent = balance.remaining.toLocaleString();
    showOk(
      accountsStatus,
      `Bought ${value.toLocaleString()} tokens for ${account.name}; ${balance.remaining.toLocaleString()} remaining.`,
    );
  });
  return h(
    "tr",
    { "data-id": account.account_id },
    h("td", {}, account.name),
    h("td", { class: "num purchased" }, account.purchased.toLocaleString()),
    h("td", { class: "num used" }, account.used.toLocaleString()),
    h("td", { class: "num remaining" }, account.remaining.toLocaleString()),
    h("td", {}, fmtDate(account.created_at)),
    h("td", {}, form),
  );
}

$("account-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearMessage(accountsError);
  clearMessage(accountsStatus);
  const name = $("account-name").value.trim();
  let created;
  try {
    created = (await whileBusy($("create-account"), () => adminApi("POST", "/v1/accounts", { json: { name } }))).data;
  } catch (err) {
    report(accountsError, err);
    return;
  }
  const box = $("new-account");
  box.replaceChildren(
    h("h3", {}, `API key for ${name}`),
    copyField(created.api_key, "API key"),
    h(
      "p",
      { class: "muted" },
      "The API key is shown only once: copy it now and give it to the account holder. ",
      `Account id: ${created.account_id}.`,
    ),
  );
  box.hidden = false;
  $("account-name").value = "";
  box.querySelector("input").focus();
  loadAccounts(true);
});

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

const saved = storedToken();
if (saved) {
  signIn(saved);
} else {
  showSignedIn(false);
}
