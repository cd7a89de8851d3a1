// coinstream dashboard: polls /api/status every refresh_seconds (the stream worker's trigger
// interval) and redraws the open view in place when the warehouse has a newer row, the range
// or the picked coins change. Charts are Chart.js, served by the dashboard itself. The price
// and supply charts draw backfilled history (dashed) where the snapshots do not reach, with a
// line where live data begins.
"use strict";

const TOP_N = 10;
const MAX_PICKED = 20; // the API's limit of ids per series request
const SERIES_POINTS = 500; // an hour at 7 s resolution, 15 minutes at 2 s
const HISTORY_REFRESH_MS = 60 * 1000; // history changes only when a backfill runs
const HISTORY_DASH = [5, 4];
const PALETTE = [
  "#2457c5", "#e8710a", "#12804a", "#c0362c", "#7b3fc4", "#8c564b", "#d6338a", "#5f6b7a",
  "#a3a010", "#1497a6", "#4c7ef0", "#f2a541", "#52b788", "#f07167", "#a27ee0", "#b08968",
  "#f4a6c8", "#98a2b3", "#d4d150", "#63c6d1",
];

const state = {
  view: "assets",
  rangeSeconds: 3600,
  status: null,
  picked: { assets: null, exchanges: null }, // null until the first load picks the top 10
  latest: { assets: [], exchanges: [] },
  drawnNewest: { assets: null, exchanges: null }, // newest_processed each view was drawn at
  drawnKey: { assets: null, exchanges: null }, // range + picks each view was drawn with
  sort: { assets: { key: "rank", dir: 1 }, exchanges: { key: "rank", dir: 1 } },
  loads: 0,
  colors: new Map(),
  timer: null,
  loading: null, // the load in progress, if any
  queued: null, // a refresh asked for while loading
  history: { key: null, fetchedAt: 0, byId: new Map() }, // backfilled history of the picks
  liveStart: null, // epoch ms where the drawn history ends and live snapshots begin
};
const charts = {};
// For tests and curious users: the dashboard's state and charts, read-only by convention.
window.coinstreamDashboard = { state, charts };

// --- formatting --------------------------------------------------------------------------

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });
const grouped = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function formatUsd(value) {
  if (value === null || value === undefined) return "–";
  if (Math.abs(value) >= 1e6) return "$" + compact.format(value);
  if (Math.abs(value) >= 1) {
    return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  return "$" + value.toPrecision(4);
}
function formatNumber(value) {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) >= 1e6 ? compact.format(value) : grouped.format(value);
}
function formatPercent(value, signed) {
  if (value === null || value === undefined) return "–";
  const text = value.toFixed(2) + "%";
  return signed && value > 0 ? "+" + text : text;
}
function formatClock(date) {
  return date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
// Chart.js calls a tick callback with the scale as `this`: the visible span picks the format.
function formatAxisTime(ms) {
  const date = new Date(ms);
  const span = this.max - this.min;
  if (span <= 20 * 60 * 1000) return formatClock(date);
  if (span <= 86400 * 1000) {
    return date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  }
  return date.toLocaleString("en-GB", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
function ago(seconds) {
  if (seconds < 90) return Math.max(0, Math.round(seconds)) + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " days ago";
}
function colorFor(id) {
  if (!state.colors.has(id)) state.colors.set(id, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(id);
}

// Draws a vertical line where live data begins, on charts whose options set
// plugins.liveStart.at (epoch ms; null: no line).
const liveStartPlugin = {
  id: "liveStart",
  afterDatasetsDraw(chart, args, options) {
    const at = options.at;
    const x = chart.scales.x;
    if (at === null || at === undefined || at < x.min || at > x.max) return;
    const pixel = x.getPixelForValue(at);
    const { top, bottom } = chart.chartArea;
    const context = chart.ctx;
    context.save();
    context.strokeStyle = "#5d6878";
    context.setLineDash([3, 3]);
    context.lineWidth = 1;
    context.beginPath();
    context.moveTo(pixel, top);
    context.lineTo(pixel, bottom);
    context.stroke();
    context.setLineDash([]);
    context.fillStyle = "#5d6878";
    context.font = "11px system-ui, sans-serif";
    context.textAlign = pixel > (chart.chartArea.left + chart.chartArea.right) / 2 ? "right" : "left";
    context.fillText("live data begins", pixel + (context.textAlign === "left" ? 4 : -4), top + 10);
    context.restore();
  },
};

// --- talking to the API --------------------------------------------------------------------

class ApiError extends Error {}

async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store" });
  } catch (error) {
    throw new ApiError(
      `the dashboard service at ${location.origin} does not answer; is it running? ` +
        "(`make run` starts it, or `python -m services.dashboard`)"
    );
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError((body && body.detail) || `${path} answered HTTP ${response.status}`);
  }
  return body;
}

function currentRange() {
  const until = new Date();
  const since = new Date(until.getTime() - state.rangeSeconds * 1000);
  return { since: since.toISOString(), until: until.toISOString() };
}

// --- banners --------------------------------------------------------------------------------

function show(id, visible) {
  document.getElementById(id).hidden = !visible;
}
function showProblem(message) {
  const box = document.getElementById("problem");
  box.textContent = "Cannot show data: " + message;
  show("problem", true);
  show("empty", false);
  show("content", false);
  document.getElementById("freshness").textContent = "not updating: see the message below";
}
function showEmpty(message) {
  const box = document.getElementById("empty");
  box.textContent = message.charAt(0).toUpperCase() + message.slice(1);
  show("empty", true);
  show("problem", false);
  show("content", false);
}
function showSource(status) {
  document.getElementById("simulated-text").textContent =
    "Every number here is made up by the bundled CoinCap simulator; none is market data. " +
    "Set COINSTREAM_COINCAP_API_KEY to poll the real CoinCap API.";
  show("simulated-banner", status.simulated);
  document.getElementById("source").textContent =
    `Data: ${status.simulated ? "SIMULATED, " : ""}${status.data_source}. ` +
    `Warehouse: ${status.warehouse}, dataset ${status.dataset}.`;
}
function showFreshness() {
  const status = state.status;
  const box = document.getElementById("freshness");
  if (!status) return;
  const table = status[state.view];
  if (!table.newest_processed) {
    box.textContent = `no ${state.view} rows yet · checks every ${status.refresh_seconds} s`;
    return;
  }
  const processed = new Date(table.newest_processed);
  const age = (Date.now() - processed.getTime()) / 1000;
  box.textContent =
    `data last updated ${formatClock(processed)} (${ago(age)}) · ` +
    `checks every ${status.refresh_seconds} s`;
  box.dataset.newest = table.newest_processed;
}

// --- charts ---------------------------------------------------------------------------------

function timeChart(canvasId, { logarithmic = false, reverse = false, stacked = false, percent = false } = {}) {
  if (charts[canvasId]) return charts[canvasId];
  const yTicks = {
    maxTicksLimit: 6,
    callback: (value) => {
      if (percent) return value + "%";
      if (reverse) return Number.isInteger(value) && value >= 1 ? "#" + value : "";
      return compact.format(value);
    },
  };
  if (reverse) yTicks.precision = 0;
  // Ranks: half a rank of room around the lines, so #1 is not drawn on the chart's edge.
  const padRanks = (scale) => {
    scale.min = Math.max(0.5, scale.min - 0.5);
    scale.max += 0.5;
  };
  const chart = new Chart(document.getElementById(canvasId), {
    type: "line",
    plugins: [liveStartPlugin],
    data: { datasets: [] },
    options: {
      animation: false,
      // Pre-parsed {x, y} points draw faster; Chart.js stacks only data it parses itself.
      parsing: stacked,
      normalized: true,
      maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      elements: { point: { radius: 0, hitRadius: 6 }, line: { borderWidth: 1.6, tension: 0 } },
      scales: {
        x: { type: "linear", ticks: { maxTicksLimit: 7, callback: formatAxisTime } },
        y: {
          type: logarithmic ? "logarithmic" : "linear",
          reverse,
          stacked,
          min: stacked ? 0 : undefined,
          afterDataLimits: reverse ? padRanks : undefined,
          ticks: yTicks,
        },
      },
      plugins: {
        liveStart: { at: null },
        legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10, font: { size: 11 } } },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? new Date(items[0].parsed.x).toLocaleString("en-GB") : ""),
          },
        },
      },
    },
  });
  charts[canvasId] = chart;
  return chart;
}

// historyOf(one), when given, answers the {x, y, history: true} points drawn before one's
// snapshots; liveStart places the line where they end.
function drawLines(chart, series, labelOf, valuesOf, range, { fill = false, historyOf = null, liveStart = null } = {}) {
  chart.data.datasets = series.map((one, index) => {
    const values = valuesOf(one);
    const points = historyOf ? historyOf(one) : [];
    one.t.forEach((t, i) => {
      if (values[i] !== null && values[i] !== undefined) points.push({ x: t, y: values[i] });
    });
    const color = colorFor(one.id || one.exchange_id);
    return {
      label: labelOf(one),
      data: points,
      borderColor: color,
      backgroundColor: fill ? color + "b0" : color,
      // Stacked areas: the first fills down to zero, each next one down to the one below it.
      fill: fill ? (index === 0 ? "origin" : "-1") : false,
      // A lone point (a young pipeline in a long range's one bucket) is drawn as a dot.
      pointRadius: points.length === 1 ? 2.5 : 0,
      // History points carry history: true; the segments up to them are dashed.
      segment: { borderDash: (context) => (context.p1.raw && context.p1.raw.history ? HISTORY_DASH : undefined) },
    };
  });
  // The axis spans the data within the range, so a young pipeline's few minutes fill the
  // chart instead of a sliver at its edge (the header says how old the newest row is).
  const drawn = chart.data.datasets.filter((d) => d.data.length);
  const since = Date.parse(range.since);
  const until = Date.parse(range.until);
  const first = Math.min(...drawn.map((d) => d.data[0].x));
  const last = Math.max(...drawn.map((d) => d.data[d.data.length - 1].x));
  chart.options.scales.x.min = drawn.length ? Math.max(since, first) : since;
  chart.options.scales.x.max = drawn.length && last > first ? Math.min(until, last) : until;
  chart.options.plugins.liveStart.at = liveStart;
  chart.update("none");
}

function drawSplit(latest) {
  const canvasId = "chart-exchange-split";
  if (!charts[canvasId]) {
    charts[canvasId] = new Chart(document.getElementById(canvasId), {
      type: "doughnut",
      data: { labels: [], datasets: [{ data: [], backgroundColor: [] }] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: {
          legend: { position: "right", labels: { boxWidth: 10, boxHeight: 10, font: { size: 11 } } },
          tooltip: { callbacks: { label: (item) => `${item.label}: ${item.parsed.toFixed(2)}%` } },
        },
      },
    });
  }
  const chart = charts[canvasId];
  const byShare = latest
    .filter((row) => row.percent_total_volume !== null)
    .sort((a, b) => b.percent_total_volume - a.percent_total_volume);
  const top = byShare.slice(0, TOP_N);
  const others = byShare.slice(TOP_N).reduce((sum, row) => sum + row.percent_total_volume, 0);
  chart.data.labels = top.map((row) => row.name || row.exchange_id);
  chart.data.datasets[0].data = top.map((row) => row.percent_total_volume);
  chart.data.datasets[0].backgroundColor = top.map((row) => colorFor(row.exchange_id));
  if (others > 0) {
    chart.data.labels.push(`${byShare.length - top.length} others`);
    chart.data.datasets[0].data.push(others);
    chart.data.datasets[0].backgroundColor.push("#cfd5de");
  }
  chart.update("none");
}

// --- picker and tables ----------------------------------------------------------------------

function keyOf(view, row) {
  return view === "assets" ? row.id : row.exchange_id;
}
function labelOfRow(view, row) {
  if (view === "assets") return `${row.name || row.id}${row.symbol ? " (" + row.symbol + ")" : ""}`;
  return row.name || row.exchange_id;
}

function renderPicker(view) {
  const picker = document.getElementById(view === "assets" ? "asset-picker" : "exchange-picker");
  const options = picker.querySelector(".picker-options");
  const filter = picker.querySelector(".picker-filter").value.trim().toLowerCase();
  const picked = new Set(state.picked[view]);
  options.replaceChildren(
    ...state.latest[view]
      .filter((row) => !filter || labelOfRow(view, row).toLowerCase().includes(filter))
      .map((row) => {
        const id = keyOf(view, row);
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = id;
        box.checked = picked.has(id);
        box.disabled = !box.checked && picked.size >= MAX_PICKED;
        box.addEventListener("change", () => {
          const now = new Set(state.picked[view]);
          if (box.checked) now.add(id);
          else now.delete(id);
          state.picked[view] = state.latest[view].map((r) => keyOf(view, r)).filter((k) => now.has(k));
          renderPicker(view);
          refreshView(true);
        });
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = picked.has(id) ? colorFor(id) : "transparent";
        label.append(box, swatch, `#${row.rank ?? "?"} ${labelOfRow(view, row)}`);
        label.title = labelOfRow(view, row);
        return label;
      })
  );
  picker.querySelector(".picked-count").textContent = String(picked.size);
}

function setupPicker(view) {
  const picker = document.getElementById(view === "assets" ? "asset-picker" : "exchange-picker");
  picker.querySelector(".picker-filter").addEventListener("input", () => renderPicker(view));
  picker.querySelector('[data-action="top"]').addEventListener("click", () => {
    state.picked[view] = state.latest[view].slice(0, TOP_N).map((row) => keyOf(view, row));
    renderPicker(view);
    refreshView(true);
  });
  picker.querySelector('[data-action="none"]').addEventListener("click", () => {
    state.picked[view] = [];
    renderPicker(view);
    refreshView(true);
  });
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function sortedRows(view) {
  const { key, dir } = state.sort[view];
  const rows = [...state.latest[view]];
  rows.sort((a, b) => {
    const x = key === "name" ? labelOfRow(view, a) : a[key];
    const y = key === "name" ? labelOfRow(view, b) : b[key];
    if (x === null || x === undefined) return 1; // blanks last, whichever way
    if (y === null || y === undefined) return -1;
    return (typeof x === "string" ? x.localeCompare(y) : x - y) * dir;
  });
  return rows;
}

function renderTable(view) {
  const table = document.getElementById(view === "assets" ? "asset-table" : "exchange-table");
  const { key, dir } = state.sort[view];
  table.querySelectorAll("th").forEach((th) => {
    if (th.dataset.key === key) th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  });
  const rows = sortedRows(view).map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.id = keyOf(view, row);
    if (view === "assets") {
      const name = cell(row.name || row.id);
      const symbol = document.createElement("span");
      symbol.className = "symbol";
      symbol.textContent = row.symbol || "";
      name.append(symbol);
      const change = row.change_percent_24hr;
      tr.append(
        cell(row.rank ?? "–"),
        name,
        cell(formatUsd(row.price_usd)),
        cell(formatPercent(change, true), change > 0 ? "up" : change < 0 ? "down" : ""),
        cell(formatUsd(row.market_cap_usd)),
        cell(formatNumber(row.supply)),
        cell(formatNumber(row.max_supply)),
        cell(formatPercent(row.supply_percent_of_max))
      );
    } else {
      tr.append(
        cell(row.rank ?? "–"),
        cell(row.name || row.exchange_id),
        cell(formatPercent(row.percent_total_volume)),
        cell(formatUsd(row.volume_usd)),
        cell(formatNumber(row.trading_pairs)),
        cell(formatClock(new Date(row.snapshot_at)))
      );
    }
    return tr;
  });
  table.querySelector("tbody").replaceChildren(...rows);
}

function setupTable(view) {
  const table = document.getElementById(view === "assets" ? "asset-table" : "exchange-table");
  table.querySelectorAll("th").forEach((th) =>
    th.addEventListener("click", () => {
      const sort = state.sort[view];
      if (sort.key === th.dataset.key) sort.dir = -sort.dir;
      else Object.assign(sort, { key: th.dataset.key, dir: th.dataset.type === "number" && th.dataset.key !== "rank" ? -1 : 1 });
      renderTable(view);
    })
  );
}

// --- loading a view --------------------------------------------------------------------------

function rangeNote(view, latestRows) {
  const note = document.getElementById(view === "assets" ? "asset-range-note" : "exchange-range-note");
  const table = state.status && state.status[view];
  if (latestRows.length === 0 && table && table.newest_snapshot) {
    note.textContent =
      `No ${view} in this range: the newest snapshot is from ` +
      `${new Date(table.newest_snapshot).toLocaleString("en-GB")}; pick a longer range.`;
    note.hidden = false;
  } else {
    note.hidden = true;
  }
}

// The backfilled history of the picked assets, one request per asset; kept while the range
// and the picks stay the same, for at most HISTORY_REFRESH_MS.
async function loadHistory(ids, range, query) {
  const key = `${state.rangeSeconds}|${ids.join(",")}`;
  const cached = state.history;
  if (cached.key === key && Date.now() - cached.fetchedAt < HISTORY_REFRESH_MS) return cached.byId;
  const answers = await Promise.all(
    ids.map((id) => getJson(`/api/assets/${encodeURIComponent(id)}/history?${query}&points=${SERIES_POINTS}`))
  );
  state.history = { key, fetchedAt: Date.now(), byId: new Map(answers.map((answer) => [answer.id, answer])) };
  return state.history.byId;
}

function historyPoints(history, valueAt) {
  if (!history) return [];
  const points = [];
  history.t.forEach((t, i) => {
    const value = valueAt(history, i);
    if (value !== null && value !== undefined) points.push({ x: t, y: value, history: true });
  });
  return points;
}

// Where live data begins on the charts: the earliest first snapshot of the assets that have
// history drawn before it (null when none has).
function historyLiveStart(history) {
  const starts = [...history.values()]
    .filter((one) => one.t.length && one.live_since)
    .map((one) => Date.parse(one.live_since));
  state.liveStart = starts.length ? Math.min(...starts) : null;
  return state.liveStart;
}

// Says what the dashed lines are; or, when the range reaches before the snapshots and no
// picked asset has history there, which command fills it.
function historyNote(ids, series, history, liveStart, range) {
  const legend = document.getElementById("history-legend");
  const note = document.getElementById("history-note");
  const simulated = state.status && state.status.simulated ? ", simulated" : "";
  if (liveStart !== null) {
    legend.querySelector(".history-source").textContent =
      `history (backfilled${simulated})`;
    legend.querySelector(".history-start").textContent =
      `live data begins ${new Date(liveStart).toLocaleString("en-GB")}`;
    legend.hidden = false;
    note.hidden = true;
    return;
  }
  legend.hidden = true;
  const firsts = series.filter((one) => one.t.length).map((one) => one.t[0]);
  const since = Date.parse(range.since);
  const gap = firsts.length && Math.min(...firsts) - since > 0.1 * (Date.parse(range.until) - since);
  if (ids.length && gap && state.status) {
    note.textContent =
      `No history before ${new Date(Math.min(...firsts)).toLocaleString("en-GB")}, when live ` +
      `data begins: \`${state.status.backfill_command}\` fills it.`;
    note.hidden = false;
  } else {
    note.hidden = true;
  }
}

async function loadAssets(range) {
  const query = `since=${encodeURIComponent(range.since)}&until=${encodeURIComponent(range.until)}`;
  const latest = await getJson(`/api/assets/latest?${query}&limit=500`);
  state.latest.assets = latest.assets;
  if (state.picked.assets === null && latest.assets.length) {
    state.picked.assets = latest.assets.slice(0, TOP_N).map((row) => row.id);
  }
  const ids = state.picked.assets || [];
  const series = ids.length
    ? (await getJson(`/api/assets/series?ids=${encodeURIComponent(ids.join(","))}&${query}&points=${SERIES_POINTS}`)).series
    : [];
  const history = await loadHistory(ids, range, query);
  const liveStart = historyLiveStart(history);
  const maxSupply = new Map(latest.assets.map((row) => [row.id, row.max_supply]));
  const label = (one) => one.symbol || one.id;
  drawLines(timeChart("chart-asset-price", { logarithmic: true }), series, label, (one) => one.price_usd, range, {
    historyOf: (one) => historyPoints(history.get(one.id), (h, i) => h.price_usd[i]),
    liveStart,
  });
  drawLines(timeChart("chart-asset-market-cap", { logarithmic: true }), series, label, (one) => one.market_cap_usd, range, {
    // Market cap is price times circulating supply, as CoinCap computes it.
    historyOf: (one) =>
      historyPoints(history.get(one.id), (h, i) =>
        h.price_usd[i] === null || h.circulating_supply[i] === null ? null : h.price_usd[i] * h.circulating_supply[i]
      ),
    liveStart,
  });
  drawLines(
    timeChart("chart-asset-supply", { percent: true }),
    series.filter((one) => one.supply_percent_of_max.some((value) => value !== null)),
    label,
    (one) => one.supply_percent_of_max,
    range,
    {
      // Supply as % of max supply: the history's circulating supply over today's max supply.
      historyOf: (one) =>
        historyPoints(history.get(one.id), (h, i) =>
          h.circulating_supply[i] === null || !maxSupply.get(one.id)
            ? null
            : (h.circulating_supply[i] / maxSupply.get(one.id)) * 100
        ),
      liveStart,
    }
  );
  drawLines(timeChart("chart-asset-rank", { reverse: true }), series, label, (one) => one.rank, range);
  renderPicker("assets");
  renderTable("assets");
  rangeNote("assets", latest.assets);
  historyNote(ids, series, history, liveStart, range);
  document.getElementById("asset-table-note").textContent =
    `(${latest.assets.length} assets, newest snapshot of each in the range)`;
}

async function loadExchanges(range) {
  const query = `since=${encodeURIComponent(range.since)}&until=${encodeURIComponent(range.until)}`;
  const latest = await getJson(`/api/exchanges/latest?${query}&limit=500`);
  state.latest.exchanges = latest.exchanges;
  if (state.picked.exchanges === null && latest.exchanges.length) {
    state.picked.exchanges = latest.exchanges.slice(0, TOP_N).map((row) => row.exchange_id);
  }
  const ids = state.picked.exchanges || [];
  const series = ids.length
    ? (await getJson(`/api/exchanges/series?ids=${encodeURIComponent(ids.join(","))}&${query}&points=${SERIES_POINTS}`)).series
    : [];
  const label = (one) => one.name || one.exchange_id;
  drawLines(
    timeChart("chart-exchange-share", { stacked: true, percent: true }),
    series,
    label,
    (one) => one.percent_total_volume,
    range,
    { fill: true }
  );
  drawLines(timeChart("chart-exchange-volume", { logarithmic: true }), series, label, (one) => one.volume_usd, range);
  drawLines(timeChart("chart-exchange-rank", { reverse: true }), series, label, (one) => one.rank, range);
  drawSplit(latest.exchanges);
  renderPicker("exchanges");
  renderTable("exchanges");
  rangeNote("exchanges", latest.exchanges);
  document.getElementById("exchange-table-note").textContent =
    `(${latest.exchanges.length} exchanges, newest snapshot of each in the range)`;
}

// Redraws the open view when forced (a new pick or range) or when its newest row changed.
// One load at a time: a request made meanwhile runs once the current load ends, so an older
// answer never overwrites a newer one.
async function refreshView(force) {
  if (state.loading) {
    state.queued = { force: force || (state.queued && state.queued.force) };
    return;
  }
  const view = state.view;
  const status = state.status;
  if (!status || !status.has_data) return;
  const newest = status[view].newest_processed;
  const key = () => `${state.rangeSeconds}|${(state.picked[view] || []).join(",")}`;
  if (!force && newest === state.drawnNewest[view] && key() === state.drawnKey[view]) return;
  state.loading = (async () => {
    const range = currentRange();
    if (view === "assets") await loadAssets(range);
    else await loadExchanges(range);
    state.drawnNewest[view] = newest;
    state.drawnKey[view] = key();
    state.loads += 1;
    document.body.dataset.loads = String(state.loads);
  })();
  try {
    await state.loading;
  } catch (error) {
    showProblem(error.message);
  } finally {
    state.loading = null;
  }
  if (state.queued) {
    const { force: queuedForce } = state.queued;
    state.queued = null;
    await refreshView(queuedForce);
  }
}

async function tick() {
  clearTimeout(state.timer);
  let delaySeconds = 5;
  try {
    const status = await getJson("/api/status");
    state.status = status;
    delaySeconds = Math.max(1, status.refresh_seconds);
    showSource(status);
    show("problem", false);
    if (!status.has_data) {
      showEmpty(status.message);
    } else {
      show("empty", false);
      show("content", true);
      await refreshView(false);
    }
    showFreshness();
  } catch (error) {
    showProblem(error.message);
  }
  state.timer = setTimeout(tick, delaySeconds * 1000);
}

function openView(view) {
  state.view = view === "exchanges" ? "exchanges" : "assets";
  document.querySelectorAll(".tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === state.view));
  document.querySelectorAll("section.view").forEach((section) => (section.hidden = section.dataset.view !== state.view));
  showFreshness();
  refreshView(false);
}

function start() {
  setupPicker("assets");
  setupPicker("exchanges");
  setupTable("assets");
  setupTable("exchanges");
  const range = document.getElementById("range");
  state.rangeSeconds = Number(range.value);
  range.addEventListener("change", () => {
    state.rangeSeconds = Number(range.value);
    refreshView(true);
  });
  window.addEventListener("hashchange", () => openView(location.hash.slice(1)));
  setInterval(showFreshness, 1000);
  openView(location.hash.slice(1));
  tick();
}

document.addEventListener("DOMContentLoaded", start);
