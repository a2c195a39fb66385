// The admin page's accounts for the meme API: making one (its API key is shown once), the paged
// list of accounts and buying tokens for one. Set up by admin.js, which gives it the signed-in
// session.
import { h, showOk, clearMessage, copyField, fmtDate, newKey, whileBusy } from "/assets/app.js";
import { pagedList } from "/assets/paged.js";

const accountsError = document.getElementById("accounts-error");
const accountsStatus = document.getElementById("accounts-status");
const newAccount = document.getElementById("new-account");
const nameInput = document.getElementById("account-name");

/** The signed-in session (`call`, `report`), given by `setUpAccounts`. */
let session = null;
/** The paged list of accounts, made by `setUpAccounts`. */
let list = null;

/**
 * Sets up the section with the session's `call` (the API as the admin) and `report` (shows an
 * error in a section's alert box). Returns `{load(reset), clear}`.
 */
export function setUpAccounts(given) {
  session = given;
  list = pagedList({
    list: document.getElementById("account-list").tBodies[0],
    more: document.getElementById("more-accounts"),
    path: "/v1/accounts",
    field: "accounts",
    row: accountRow,
    get: (path) => session.call("GET", path),
    fail: (err) => session.report(accountsError, err),
    placeholder: () => h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No accounts yet.")),
  });
  document.getElementById("account-form").addEventListener("submit", create);
  return { load: list.load, clear };
}

/** Forgets everything shown (signing out), the API key shown once included. */
function clear() {
  clearMessage(accountsError);
  clearMessage(accountsStatus);
  newAccount.hidden = true;
  newAccount.replaceChildren();
  list.clear();
}

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
          session.call("POST", `/v1/accounts/${encodeURIComponent(account.account_id)}/tokens`, {
            json: { amount: value },
            headers: { "Idempotency-Key": pending.key },
          }),
        )
      ).data;
    } catch (err) {
      session.report(accountsError, err);
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

async function create(event) {
  event.preventDefault();
  clearMessage(accountsError);
  clearMessage(accountsStatus);
  const name = nameInput.value.trim();
  let created;
  try {
    const button = document.getElementById("create-account");
    created = (await whileBusy(button, () => session.call("POST", "/v1/accounts", { json: { name } }))).data;
  } catch (err) {
    session.report(accountsError, err);
    return;
  }
  newAccount.replaceChildren(
    h("h3", {}, `API key for ${name}`),
    copyField(created.api_key, "API key"),
    h(
      "p",
      { class: "muted" },
      "The API key is shown only once: copy it now and give it to the account holder. ",
      `Account id: ${created.account_id}.`,
    ),
  );
  newAccount.hidden = false;
  nameInput.value = "";
  newAccount.querySelector("input").focus();
  list.load(true);
}
