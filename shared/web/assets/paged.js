// Paged listings: a list endpoint read a page at a time, with a "Show more" button while the
// server says there is more (its `next_cursor`). Every paged list on the site is shown by
// `pagedList`, so they all load, append, offer more and report failures the same way.
import { whileBusy } from "/assets/app.js";

/** How many items one page asks for. */
const PAGE_SIZE = 50;

/** A listing's path with its query string: the page size and, after the first page, the cursor. */
function pagePath(path, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) query.set("cursor", cursor);
  return `${path}?${query}`;
}

/**
 * Shows the listing at `path` in the element `list`, one page at a time.
 *
 * - `get(path)` calls the API and resolves to its answer (`{data}`); the page passes its own
 *   call, e.g. one that sends its token.
 * - `field` names the answer's array of items, and `row(item)` builds the element of one.
 * - `more` is the button that loads the next page; it is shown while the answer has a
 *   `next_cursor`. After a click the focus moves to the first row it added, where a keyboard
 *   user's reading continues (the button may be hidden now that nothing more is left).
 * - `fail(err)` shows a failed load the way the page shows its errors; the rows already shown
 *   stay as they are.
 * - An empty list is said by `placeholder()`, an element put in the list while it has no rows
 *   (a table's "none yet" row), or by `emptyNote`, an element shown while the list is empty.
 *
 * Returns `{load(reset), clear()}`: `load(true)` starts again from the first page (whose rows
 * replace the ones shown once it arrives), `load(false)` appends the next page; `clear()`
 * empties the list and hides `more` and `emptyNote`.
 */
export function pagedList({ list, more, path, field, row, get, fail, placeholder = null, emptyNote = null }) {
  let cursor = null;

  async function load(reset) {
    if (reset) cursor = null;
    try {
      const { data } = await get(pagePath(path, cursor));
      if (reset) list.replaceChildren();
      for (const item of data[field] || []) list.append(row(item));
      if (placeholder && !list.children.length) list.append(placeholder());
      cursor = data.next_cursor || null;
      more.hidden = !cursor;
      if (emptyNote) emptyNote.hidden = list.children.length > 0;
    } catch (err) {
      fail(err);
    }
  }

  more.addEventListener("click", async () => {
    const before = list.children.length;
    await whileBusy(more, () => load(false));
    const first = list.children[before];
    if (first) {
      first.tabIndex = -1;
      first.focus();
    }
  });

  function clear() {
    cursor = null;
    list.replaceChildren();
    more.hidden = true;
    if (emptyNote) emptyNote.hidden = true;
  }

  return { load, clear };
}
