// The admin page's statistics: the totals, the uploads per day as a bar chart, and the stored
// images by format and by camera. Set up by admin.js, which gives it the signed-in session.
import { h, clearMessage, fmtBytes, whileBusy } from "/assets/app.js";

const SVG = "http://www.w3.org/2000/svg";

const statsError = document.getElementById("stats-error");
const totalsBox = document.getElementById("totals");
const chartBox = document.getElementById("uploads-chart-box");
const formats = document.getElementById("formats").tBodies[0];
const cameras = document.getElementById("cameras").tBodies[0];

/** The signed-in session (`call`, `report`), given by `setUpStats`. */
let session = null;

/**
 * Sets up the section with the session's `call` (the API as the admin) and `report` (shows an
 * error in a section's alert box). Returns `{load, render(stats), clear}`.
 */
export function setUpStats(given) {
  session = given;
  document.getElementById("refresh-stats").addEventListener("click", (event) => whileBusy(event.currentTarget, load));
  return { load, render, clear };
}

async function load() {
  try {
    const { data } = await session.call("GET", "/v1/stats");
    clearMessage(statsError);
    render(data);
  } catch (err) {
    session.report(statsError, err);
  }
}

/** Forgets everything shown (signing out). */
function clear() {
  clearMessage(statsError);
  totalsBox.replaceChildren();
  chartBox.replaceChildren();
  formats.replaceChildren();
  cameras.replaceChildren();
}

function render(stats) {
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
  if (totalsBox.textContent !== figures.map((f) => f.textContent).join("")) totalsBox.replaceChildren(...figures);
  chartBox.replaceChildren(uploadsChart(days));

  const countRows = (rows, empty) =>
    rows.length
      ? rows.map(([name, count]) => h("tr", {}, h("td", {}, name), h("td", { class: "num" }, count.toLocaleString())))
      : [h("tr", {}, h("td", { colspan: 2, class: "muted" }, empty))];
  formats.replaceChildren(
    ...countRows((stats.formats || []).map((f) => [f.format, f.count]), "No images are stored yet."),
  );
  const models = (stats.top_cameras || []).map((c) => [c.model, c.count]);
  if (stats.cameras_unknown > 0) models.push([h("span", { class: "muted" }, "Unknown camera"), stats.cameras_unknown]);
  cameras.replaceChildren(...countRows(models, "No camera models are known yet."));
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
