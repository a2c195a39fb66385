// The admin page: sign in with the admin token, then statistics, invitation links, images and
// accounts. Each section is a module of its own (admin-stats.js, admin-links.js,
// admin-images.js, admin-accounts.js); this entry keeps the token, signs in and out, and wires
// the sections together. Every call sends the token as a bearer; a 401 anywhere signs out,
// because it means the token is wrong or was rotated and nothing else on the page can work
// without it.
import { api, ApiError, showError, clearMessage, whileBusy } from "/assets/app.js";
import { setUpStats } from "/assets/admin-stats.js";
import { setUpLinks } from "/assets/admin-links.js";
import { setUpImages } from "/assets/admin-images.js";
import { setUpAccounts } from "/assets/admin-accounts.js";

const STORAGE_KEY = "imghost.adminToken";

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

// ---------------------------------------------------------------------------------------------
// The sections, each given the session's calls
// ---------------------------------------------------------------------------------------------

const session = { call: adminApi, report };
const stats = setUpStats(session);
const links = setUpLinks(session);
// The totals count stored images, so a deletion refreshes them.
const images = setUpImages(session, { onDeleted: stats.load });
const accounts = setUpAccounts(session);

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
  for (const section of [stats, links, images, accounts]) section.clear();
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
  stats.render(answer.data);
  links.load(true);
  images.load(true);
  accounts.load(true);
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
// Start
// ---------------------------------------------------------------------------------------------

const saved = storedToken();
if (saved) {
  signIn(saved);
} else {
  showSignedIn(false);
}
