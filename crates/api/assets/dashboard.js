// The dashboard: one render function per panel, fed by one refresh that
// fetches everything in parallel and never overlaps itself. Every string
// from the agent is escaped before it reaches the page; colours and sizes
// live in dashboard.css.
"use strict";

/** The charts: series, title, and how a value is written (with its unit). */
const CHARTS = [
  { series: "host_cpu_usage_ratio", title: "CPU", unit: "%", scale: 100, digits: 1 },
  { series: "host_memory_used_ratio", title: "Memory", unit: "%", scale: 100, digits: 1 },
  { series: "host_load1", title: "Load (1 min)", unit: "", scale: 1, digits: 2 },
  { series: "host_anomaly_score", title: "Host anomaly score (forest)", unit: "", scale: 1, digits: 3 },
];
const CHART_WINDOW = "30m";
const REFRESH_MS = 2000;

const $ = id => document.getElementById(id);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c]));
const ago = ms => {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 90 ? s.toFixed(0) + "s ago" : s < 5400 ? (s / 60).toFixed(0) + "m ago" : (s / 3600).toFixed(1) + "h ago";
};
const bytes = b => {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return b.toFixed(i ? 1 : 0) + " " + u[i];
};
const pct = v => (v * 100).toFixed(1) + "%";
const two = n => String(n).padStart(2, "0");
/** A clock time for an axis tick: HH:MM, with seconds when ticks are closer than a minute. */
const clock = (ms, seconds) => {
  const d = new Date(ms);
  return two(d.getHours()) + ":" + two(d.getMinutes()) + (seconds ? ":" + two(d.getSeconds()) : "");
};
const stateClass = s => ({ ok: "ok", passing: "ok", healed: "ok", closed: "ok", degraded: "warn", open: "warn", unknown: "dim", blocked: "warn" }[s] || "bad");

// ---- talking to the agent ------------------------------------------------

$("token").value = localStorage.getItem("aegis-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("aegis-token", $("token").value));

function headers() {
  const t = $("token").value;
  return t ? { "Authorization": "Bearer " + t } : {};
}

async function get(path) {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

/** Like `get`, but a failure (a disabled part of the agent) gives `fallback`. */
async function maybe(path, fallback) {
  try { return await get(path); } catch (e) { return fallback; }
}

// ---- charts --------------------------------------------------------------

/** Round steps for an axis: 1, 2 or 5 times a power of ten. */
function niceStep(span, ticks) {
  const raw = span / Math.max(1, ticks);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

/**
 * One chart as SVG: the series' values over time, a value axis with its
 * unit on the left, a time axis (HH:MM) below, the anomaly score dashed
 * (scaled 0..1 to the plot's height) and anomalies shaded.
 */
function chart(spec, points, scores, anomalies) {
  const W = 600, H = 120, L = 44, R = 6, T = 6, B = 18;
  const pw = W - L - R, ph = H - T - B;
  const vals = points.filter(p => p.v !== null).map(p => ({ t: p.t, v: p.v * spec.scale }));
  if (vals.length < 2) {
    return `<svg viewBox="0 0 ${W} ${H}"><text class="empty" x="${L + 8}" y="${H / 2}">collecting...</text></svg>`;
  }
  const t0 = vals[0].t, t1 = Math.max(vals[vals.length - 1].t, t0 + 1);
  let lo = Math.min(...vals.map(p => p.v)), hi = Math.max(...vals.map(p => p.v));
  if (hi === lo) { hi += spec.scale === 100 ? 1 : 0.5; lo -= spec.scale === 100 ? 1 : 0.5; }
  const step = niceStep(hi - lo, 3);
  lo = Math.floor(lo / step) * step; hi = Math.ceil(hi / step) * step;
  const x = t => L + ((t - t0) / (t1 - t0)) * pw;
  const y = v => T + ph - ((v - lo) / (hi - lo)) * ph;

  let axes = `<g class="axis axis-y"><line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}"></line>`;
  for (let v = lo; v <= hi + step / 2; v += step) {
    const label = v.toFixed(step < 1 ? Math.min(3, Math.ceil(-Math.log10(step))) : 0) + spec.unit;
    axes += `<line class="grid" x1="${L}" y1="${y(v).toFixed(1)}" x2="${W - R}" y2="${y(v).toFixed(1)}"></line>`
      + `<text class="tick" x="${L - 4}" y="${(y(v) + 3).toFixed(1)}" text-anchor="end">${esc(label)}</text>`;
  }
  axes += `</g><g class="axis axis-x"><line x1="${L}" y1="${T + ph}" x2="${W - R}" y2="${T + ph}"></line>`;
  const second = 1000, span = t1 - t0;
  const tStep = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
    .map(n => n * second).find(s => span / s <= 6) || 3600 * second;
  for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
    axes += `<line x1="${x(t).toFixed(1)}" y1="${T + ph}" x2="${x(t).toFixed(1)}" y2="${T + ph + 3}"></line>`
      + `<text class="tick" x="${x(t).toFixed(1)}" y="${H - 4}" text-anchor="middle">${clock(t, tStep < 60 * second)}</text>`;
  }
  axes += `</g>`;

  let marks = "";
  for (const a of anomalies) {
    const start = Math.max(a.opened_ms, t0), end = Math.min(a.closed_ms ?? t1, t1);
    if (end < t0) continue;
    marks += `<rect class="anomaly-mark" x="${x(start).toFixed(1)}" y="${T}" width="${Math.max(3, x(end) - x(start)).toFixed(1)}" height="${ph}"></rect>`;
  }
  const line = vals.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1)).join(" ");
  const inWindow = (scores || []).filter(s => s.t >= t0);
  const score = inWindow.length > 1
    ? `<path class="score" d="${inWindow.map((s, i) => (i ? "L" : "M") + x(s.t).toFixed(1) + " " + (T + ph - s.v * ph).toFixed(1)).join(" ")}"></path>`
    : "";
  return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${axes}${marks}<path class="line" d="${line}"></path>${score}</svg>`;
}

const scoreHistory = {};

// ---- panels: one function each, from the fetched data --------------------

function renderHeader(d) {
  const s = d.status;
  $("version").textContent = "v" + s.version;
  $("agent").textContent = `up ${(s.uptime_seconds / 60).toFixed(0)} min · every ${s.interval_seconds}s · ${s.observations_total} observations`;
}

function lastValue(series, name) {
  const s = series.find(s => s.name === name);
  return s && s.last ? s.last.v : null;
}

function renderHost(d) {
  const tiles = [
    ["CPU", lastValue(d.series, "host_cpu_usage_ratio"), pct, v => v > 0.9],
    ["Memory", lastValue(d.series, "host_memory_used_ratio"), pct, v => v > 0.9],
    ["Swap", lastValue(d.series, "host_swap_used_ratio"), pct, v => v > 0.5],
    ["Load", lastValue(d.series, "host_load1"), v => v.toFixed(2), () => false],
  ];
  for (const s of d.series.filter(s => s.family === "host_filesystem_used_ratio")) {
    tiles.push(["Disk " + s.instance, s.last && s.last.v, pct, v => v > 0.9]);
  }
  $("tiles").innerHTML = tiles.map(([n, v, f, bad]) => {
    const none = v === null || v === undefined;
    return `<div class="tile"><span class="dim">${esc(n)}</span><b class="${none ? "dim" : bad(v) ? "bad" : "ok"}">${none ? "-" : esc(f(v))}</b></div>`;
  }).join("");
}

function renderCharts(d) {
  $("charts").innerHTML = d.charts.map(({ spec, detail }) => {
    const sc = detail.score;
    const h = scoreHistory[spec.series] = (scoreHistory[spec.series] || []);
    const last = detail.last;
    if (sc && last && (!h.length || h[h.length - 1].t !== last.t)) {
      h.push({ t: last.t, v: sc.value });
      while (h.length > 900) h.shift();
    }
    const marks = d.anomalies.filter(a => a.series === spec.series);
    const state = sc ? (sc.state === "ready" ? `score ${sc.value.toFixed(4)}` : `warming up ${sc.warmup ? sc.warmup[0] + "/" + sc.warmup[1] : ""}`) : "";
    const now = last && last.v !== null ? (last.v * spec.scale).toFixed(spec.digits) + spec.unit : "-";
    return `<div class="chart" data-series="${esc(spec.series)}"><div class="title"><span>${esc(spec.title)}: ${esc(now)}</span><span>${esc(state)}</span></div>${chart(spec, detail.data, h, marks)}</div>`;
  }).join("");
}

function renderAnomalies(d) {
  const open = d.anomalies.filter(a => a.closed_ms === null);
  $("anomalies").querySelector("tbody").innerHTML = open.length
    ? open.map(a => `<tr class="anomaly-row"><td class="${a.severity === "critical" ? "bad" : "warn"}">${esc(a.severity)}</td><td>${esc(a.series)}</td><td>${esc(a.explanation)}<div class="dim">${ago(a.opened_ms)} · ${esc(a.kind)}</div></td></tr>`).join("")
    : `<tr><td class="dim">none</td></tr>`;
}

function renderChecks(d) {
  const checks = d.checks || [];
  $("checks").querySelector("tbody").innerHTML = checks.length
    ? `<tr><th>check</th><th>state</th><th>last result</th></tr>` + checks.map(c => {
      const r = c.last || {};
      const detail = r.outcome === "failed" ? (r.class || "failed") + (r.message ? ": " + r.message : "")
        : r.outcome === "passed" ? "ok" : r.outcome === "no_data" ? "no data: " + (r.message || "") : "";
      return `<tr class="check-row" data-check="${esc(c.name)}"><td>${esc(c.name)} <span class="dim">${esc(c.kind)}</span></td><td class="${stateClass(c.state)}">${esc(c.state)}</td><td class="dim">${esc(detail)}${r.latency_ms !== undefined && r.latency_ms !== null ? " · " + r.latency_ms.toFixed(0) + " ms" : ""}</td></tr>`;
    }).join("")
    : `<tr><td class="dim">none configured ([[checks]], [[probes]], [[processes]])</td></tr>`;
}

function renderContainers(d) {
  const byName = {};
  for (const s of d.series.filter(s => s.family.startsWith("container_"))) {
    (byName[s.instance] = byName[s.instance] || {})[s.family] = s.last ? s.last.v : null;
  }
  const names = Object.keys(byName).sort();
  $("containers").querySelector("tbody").innerHTML = names.length
    ? `<tr><th>container</th><th>state</th><th>health</th><th>memory</th></tr>` + names.map(n => {
      const c = byName[n];
      const health = c.container_healthy === undefined ? "-" : c.container_healthy ? "healthy" : "unhealthy";
      return `<tr><td>${esc(n)}</td><td class="${c.container_up ? "ok" : "dim"}">${c.container_up ? "running" : "stopped"}</td><td class="${health === "unhealthy" ? "bad" : health === "healthy" ? "ok" : "dim"}">${health}</td><td>${c.container_memory_bytes ? bytes(c.container_memory_bytes) : "-"}</td></tr>`;
    }).join("")
    : `<tr><td class="dim">no containers (or no container engine)</td></tr>`;
}

function renderIncidents(d) {
  $("incidents").innerHTML = d.incidents.length
    ? d.incidents.map(i => {
      const evidence = i.evidence && i.evidence.length ? `<div class="dim">evidence: ${i.evidence.map(e => esc(e.series)).join(", ")}</div>` : "";
      const steps = i.actions.length ? `<div class="steps">${i.actions.map(a => esc(a.action + " " + a.outcome)).join(" → ")}</div>` : "";
      return `<li class="incident-row"><span class="${stateClass(i.status)}">${esc(i.status)}</span> ${esc(i.target)} <span class="dim">${ago(i.started_ms)}</span><div class="dim">${esc(i.summary)}</div>${evidence}${steps}</li>`;
    }).join("")
    : `<li class="dim">none in the last 24 h</li>`;
}

function renderGuard(d) {
  const g = d.guard;
  if (!g) {
    $("heal-state").textContent = "healing: off";
    $("guard").textContent = "healing is not running";
    $("breakers").querySelector("tbody").innerHTML = "";
    return;
  }
  $("heal-state").textContent = "healing: " + (g.paused ? "paused" : g.dry_run ? "dry-run" : "active");
  $("heal-state").className = "pill " + (g.paused ? "warn" : "ok");
  $("guard").textContent = `${g.in_flight} running · ${g.open_incidents} incidents open · ${g.counters.allowed} allowed, ${g.counters.succeeded} succeeded, ${g.counters.failed} failed`;
  $("breakers").querySelector("tbody").innerHTML = g.targets.length
    ? `<tr><th>target</th><th>breaker</th><th>recent</th></tr>` + g.targets.map(t =>
      `<tr><td>${esc(t.target)}</td><td class="${t.breaker.state === "closed" ? "ok" : t.breaker.state === "open" ? "bad" : "warn"}">${esc(t.breaker.state)}${t.breaker_retry_in_s ? " (" + t.breaker_retry_in_s + "s)" : ""}</td><td>${t.recent_actions}</td></tr>`).join("")
    : `<tr><td class="dim">no target acted on yet</td></tr>`;
}

function renderSources(d) {
  const s = d.status;
  $("sources").querySelector("tbody").innerHTML = s.sources.map(src =>
    `<tr><td>${esc(src.name)}</td><td class="${stateClass(src.state)}">${esc(src.state)}</td><td class="dim">${src.last_collection_ms ? ago(src.last_collection_ms) : "never"}${src.last_error ? " · " + esc(src.last_error) : ""}</td></tr>`).join("")
    + `<tr><td>channel</td><td>${s.channel.len}/${s.channel.capacity}</td><td class="dim">${s.channel.dropped} dropped</td></tr>`
    + `<tr><td>history</td><td>${s.history.series.len} series</td><td class="dim">${s.history.points.len} points</td></tr>`
    + `<tr><td>store</td><td class="${s.store.disk_full ? "bad" : ""}">${bytes(s.store.size_bytes)}${s.store.disk_full ? " · disk full" : ""}</td><td class="dim">${s.store.last_flush_ms ? "commit " + ago(s.store.last_flush_ms) : ""}</td></tr>`;
}

const PANELS = [renderHeader, renderHost, renderCharts, renderAnomalies, renderChecks, renderContainers, renderIncidents, renderGuard, renderSources];

// ---- the refresh: everything at once, never two at a time -----------------

async function fetchAll() {
  const [status, series, anomalies, incidents, guard, checks] = await Promise.all([
    get("/api/v1/status"),
    get("/api/v1/series"),
    get("/api/v1/anomalies?status=all&since=1h&limit=200"),
    maybe("/api/v1/incidents?since=24h&limit=20", []),
    maybe("/api/v1/breakers", null),
    maybe("/api/v1/checks", []),
  ]);
  const shown = CHARTS.filter(spec => series.some(s => s.name === spec.series));
  const details = await Promise.all(shown.map(spec => get("/api/v1/series/" + spec.series + "?since=" + CHART_WINDOW)));
  return {
    status, series, anomalies, incidents, guard, checks,
    charts: shown.map((spec, i) => ({ spec, detail: { ...details[i], last: details[i].last } })),
  };
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const d = await fetchAll();
    for (const panel of PANELS) {
      try { panel(d); } catch (e) { console.warn(panel.name + ": " + e.message); }
    }
  } catch (e) {
    $("agent").innerHTML = `<span class="bad">agent unreachable: ${esc(e.message)}</span>`;
  } finally {
    refreshing = false;
  }
}

async function control(path) {
  try {
    const r = await fetch(path, { method: "POST", headers: headers() });
    const body = await r.json().catch(() => ({}));
    $("message").textContent = r.ok ? "done" : (body.error || r.status);
    $("message").className = r.ok ? "ok" : "bad";
  } catch (e) {
    $("message").textContent = e.message;
  }
  refresh();
}

$("pause").addEventListener("click", () => control("/api/v1/heal/pause"));
$("resume").addEventListener("click", () => control("/api/v1/heal/resume"));
refresh();
setInterval(refresh, REFRESH_MS);
