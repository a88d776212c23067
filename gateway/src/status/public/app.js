// edgemeter gateway status page: renders /api/status and keeps it live over server-sent
// events. Plain browser JavaScript, no build step and no CDN (the cabinet has no internet).

const page = document.body.dataset.page;
const meterId = document.body.dataset.meter;
const main = document.getElementById("main");
const live = document.getElementById("live");

const STATE_LABEL = {
  ok: ["ok", "✔", "OK"],
  errors: ["warn", "⚠", "Errors"],
  offline: ["bad", "✖", "Offline"],
  waiting: ["info", "…", "Waiting"],
  connected: ["ok", "✔", "Connected"],
  retrying: ["warn", "↻", "Retrying"],
  rejected: ["bad", "✖", "Rejected"],
  closed: ["bad", "■", "Closed"],
};

const UNITS = [
  ["voltageL1V", "V L1", "V", 1],
  ["voltageL2V", "V L2", "V", 1],
  ["voltageL3V", "V L3", "V", 1],
  ["currentL1A", "I L1", "A", 2],
  ["currentL2A", "I L2", "A", 2],
  ["currentL3A", "I L3", "A", 2],
  ["activePowerW", "Power", "W", 0],
  ["frequencyHz", "Frequency", "Hz", 2],
  ["powerFactor", "PF", "", 3],
  ["importEnergyKwh", "Import", "kWh", 2],
];

function esc(text) {
  return String(text).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}

function badge(state) {
  const [cls, icon, word] = STATE_LABEL[state] ?? ["info", "?", state];
  return `<span class="badge ${cls}" data-state="${esc(state)}"><span aria-hidden="true">${icon}</span> ${esc(word)}</span>`;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

// 1234567 -> "1 234 567" (narrow no-break spaces: SI digit grouping, the same in every locale).
function count(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
}

function fmt(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "—";
}

function time(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function card(title, level, big, detail, field) {
  return `<section class="card ${level}" data-field="${field}"><h2>${esc(title)}</h2><div class="big">${big}</div>${
    detail ? `<p class="detail">${detail}</p>` : ""
  }</section>`;
}

function renderOverview(s) {
  const up = s.uplink;
  const ob = s.outbox;
  const cert = s.certificate;
  const disk = s.disk;
  const meters = s.meters;
  const bad = meters.filter((m) => m.state !== "ok").length;
  const active = s.events.filter((e) => e.active).length;
  const cards = [
    card(
      "Uplink to the cloud",
      up.state === "connected" ? "ok" : up.state === "retrying" ? "warn" : "bad",
      badge(up.state),
      up.reason ? esc(up.reason) : `${up.publishedBatches} batches sent`,
      "uplink",
    ),
    card(
      "Buffered readings",
      (ob.oldestUnsentAgeS ?? 0) > 300 ? "warn" : "ok",
      `<span data-value="buffered">${ob.bufferedReadings}</span>`,
      [
        ob.oldestUnsentTs ? `oldest unsent ${age(ob.oldestUnsentAgeS)} old` : "nothing waiting",
        ob.pendingEvents > 0 ? `${ob.pendingEvents} fault events unsent` : "",
      ]
        .filter(Boolean)
        .join(" · "),
      "outbox",
    ),
    // Always shown (issue 4): what the disk cap removed unsent, since the outbox was created.
    card(
      "Disk cap",
      ob.droppedReadings > 0 ? "bad" : ob.thinnedReadings > 0 ? "warn" : "ok",
      `${ob.droppedReadings > 0 ? badge("offline").replace("Offline", "Lost") : ob.thinnedReadings > 0 ? badge("errors").replace("Errors", "Thinned") : badge("ok")} <span data-value="thinned">${count(ob.thinnedReadings)}</span> thinned, <span data-value="dropped">${count(ob.droppedReadings)}</span> dropped`,
      [
        ob.usedBytes !== null && ob.capBytes !== null ? `store ${bytes(ob.usedBytes)} of ${bytes(ob.capBytes)}` : "",
        "thinned: interval detail removed, 15-minute energy kept",
        "dropped: readings lost",
      ]
        .filter(Boolean)
        .join(" · "),
      "diskcap",
    ),
    card(
      "Meters",
      bad === 0 ? "ok" : meters.some((m) => m.state === "offline") ? "bad" : "warn",
      `${bad === 0 ? badge("ok") : ""} ${meters.length - bad} of ${meters.length} OK`,
      `${meters
        .filter((m) => m.state !== "ok")
        .slice(0, 5)
        .map((m) => `${esc(m.id)} ${badge(m.state)}`)
        .join(" ")} <a href="/meters">See the meters</a>`,
      "meters",
    ),
    card(
      "Faults",
      active === 0 ? "ok" : "bad",
      active === 0 ? `${badge("ok")} none active` : `${badge("offline").replace("Offline", `${active} active`)}`,
      `<a href="/events">See the events</a>`,
      "faults",
    ),
    cert === null
      ? card("Certificate", "warn", `${badge("errors")} none`, "uplink without TLS (demo/test only)", "certificate")
      : card(
          "Certificate",
          cert.warning ? (cert.expiresInDays !== null && cert.expiresInDays < 0 ? "bad" : "warn") : "ok",
          cert.expiresInDays === null
            ? `${badge("offline")} unreadable`
            : `${cert.warning ? badge("errors").replace("Errors", "Renew soon") : badge("ok")} ${cert.expiresInDays} ${Math.abs(cert.expiresInDays) === 1 ? "day" : "days"}`,
          cert.error ? esc(cert.error) : `expires ${time(cert.notAfter)}`,
          "certificate",
        ),
    card(
      "Clock",
      s.clock.synced ? "ok" : "warn",
      s.clock.synced
        ? badge("ok").replace("OK", "Synchronised")
        : badge("errors").replace("Errors", "Not synchronised"),
      time(s.now),
      "clock",
    ),
    disk === null
      ? card("Disk", "warn", "—", "unknown", "disk")
      : card(
          "Disk",
          disk.usedPercent >= 90 ? "bad" : disk.usedPercent >= 75 ? "warn" : "ok",
          `${disk.usedPercent.toFixed(1)} % used`,
          `${bytes(disk.usedBytes)} of ${bytes(disk.totalBytes)}`,
          "disk",
        ),
    card("Uptime", "ok", age(s.uptimeS), `version ${esc(s.version)}`, "uptime"),
  ];
  main.innerHTML = `<h1>Overview</h1><div class="cards">${cards.join("")}</div>`;
}

function meterRows(meters) {
  return meters
    .map((m) => {
      const v = m.values;
      return `<tr data-meter="${esc(m.id)}">
<td data-label="Meter"><a href="/meters/${encodeURIComponent(m.id)}">${esc(m.id)}</a></td>
<td data-label="State">${badge(m.state)}</td>
<td data-label="Last reading" class="num">${age(m.lastReadingAgeS)}</td>
<td data-label="V L1/L2/L3" class="num values" data-value="voltage">${fmt(v.voltageL1V, 1)} / ${fmt(v.voltageL2V, 1)} / ${fmt(v.voltageL3V, 1)}</td>
<td data-label="Power (W)" class="num values" data-value="power">${fmt(v.activePowerW, 0)}</td>
<td data-label="Freq. (Hz)" class="num values">${fmt(v.frequencyHz, 2)}</td>
<td data-label="Import (kWh)" class="num values">${fmt(v.importEnergyKwh, 2)}</td>
<td data-label="Errors" class="num">${m.errorCount}${m.failedPollsInARow > 0 ? ` · ${m.failedPollsInARow} failed polls` : ""}</td>
</tr>`;
    })
    .join("");
}

function renderMeters(s) {
  main.innerHTML = `<h1>Meters</h1>
<table class="stack"><caption class="empty">${s.meters.length} meters, live</caption>
<thead><tr><th scope="col">Meter</th><th scope="col">State</th><th scope="col" class="num">Last reading</th><th scope="col" class="num">V L1 / L2 / L3</th><th scope="col" class="num">Power (W)</th><th scope="col" class="num">Freq. (Hz)</th><th scope="col" class="num">Import (kWh)</th><th scope="col" class="num">Errors</th></tr></thead>
<tbody>${meterRows(s.meters)}</tbody></table>`;
}

// The fault detector's kinds (shared EventKind) in words; the unit of their extreme value.
const FAULT_KINDS = {
  voltageSag: ["Voltage sag", "V", 1],
  voltageSwell: ["Voltage swell", "V", 1],
  voltageInterruption: ["Interruption", "V", 1],
  frequencyDeviation: ["Frequency deviation", "Hz", 3],
  meterOffline: ["Meter offline", "", 0],
  meterBack: ["Meter offline", "", 0],
  energyRegisterBackwards: ["Energy register went backwards", "kWh", 2],
};

function faultName(kind) {
  return (FAULT_KINDS[kind] ?? [kind, ""])[0];
}

function faultValue(e) {
  if (e.extremeValue === null) return "—";
  const [, unit, digits] = FAULT_KINDS[e.kind] ?? ["", "", 3];
  const value = `${fmt(e.extremeValue, digits)}${unit ? ` ${unit}` : ""}`;
  return e.threshold === null ? value : `${value} (limit ${fmt(e.threshold, digits)}${unit ? ` ${unit}` : ""})`;
}

function renderEvents(s) {
  const rows = s.events
    .map(
      (e) => `<tr data-event="${esc(e.eventId)}">
<td data-label="State">${e.active ? badge("offline").replace("Offline", "Active") : badge("ok").replace("OK", "Ended")}</td>
<td data-label="Meter"><a href="/meters/${encodeURIComponent(e.meterId)}">${esc(e.meterId)}</a></td>
<td data-label="Fault">${esc(faultName(e.kind))}${e.phase ? ` (${esc(e.phase)})` : ""}</td>
<td data-label="Start">${time(e.startTs)}</td>
<td data-label="End">${e.endTs ? time(e.endTs) : "ongoing"}</td>
<td data-label="Extreme" class="num">${faultValue(e)}</td>
<td data-label="Duration" class="num">${age(Math.round(e.durationMs / 1000))}</td>
</tr>`,
    )
    .join("");
  main.innerHTML = `<h1>Events</h1>${
    s.events.length === 0
      ? `<p class="empty">No faults recorded since the gateway started.</p>`
      : `<table class="stack"><thead><tr><th scope="col">State</th><th scope="col">Meter</th><th scope="col">Fault</th><th scope="col">Start</th><th scope="col">End</th><th scope="col" class="num">Extreme value</th><th scope="col" class="num">Duration</th></tr></thead><tbody>${rows}</tbody></table>`
  }`;
}

// Meter detail: three uPlot charts of the last hour, extended live.
const CHARTS = [
  {
    id: "voltage",
    title: "Voltage per phase (V)",
    series: ["voltageL1V", "voltageL2V", "voltageL3V"],
    labels: ["L1", "L2", "L3"],
  },
  { id: "frequency", title: "Frequency (Hz)", series: ["frequencyHz"], labels: ["Hz"] },
  { id: "power", title: "Active power (W)", series: ["activePowerW"], labels: ["W"] },
];
// Distinct in grey too: solid, dashed, dotted lines.
const STROKES = [
  { stroke: "#0b3d91", dash: [] },
  { stroke: "#a0061a", dash: [8, 4] },
  { stroke: "#0a5c1f", dash: [2, 3] },
];
let charts = null;
let history = null;
let lastChartTs = null;

function chartWidth() {
  return Math.max(260, Math.min(main.clientWidth - 20, 1100));
}

async function setupCharts() {
  const response = await fetch(`/api/meters/${encodeURIComponent(meterId)}/history`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
  history = await response.json();
  const container = document.getElementById("charts");
  charts = CHARTS.map((c) => {
    const wrap = document.createElement("section");
    wrap.className = "chart";
    wrap.dataset.chart = c.id;
    wrap.innerHTML = `<h2>${esc(c.title)}</h2>`;
    container.appendChild(wrap);
    const opts = {
      width: chartWidth(),
      height: 220,
      series: [{}, ...c.labels.map((label, i) => ({ label, width: 2, ...STROKES[i] }))],
      axes: [{ stroke: "#0d0d0d" }, { stroke: "#0d0d0d", size: 60 }],
      scales: { x: { time: true } },
    };
    const plot = new uPlot(opts, chartData(c), wrap);
    return { spec: c, plot, wrap };
  });
  lastChartTs = history.tsMs.length > 0 ? history.tsMs[history.tsMs.length - 1] : null;
  markChartPoints();
  window.addEventListener("resize", () => {
    for (const c of charts) c.plot.setSize({ width: chartWidth(), height: 220 });
  });
}

function chartData(c) {
  return [history.tsMs.map((t) => t / 1000), ...c.series.map((name) => history.series[name])];
}

function markChartPoints() {
  for (const c of charts) c.wrap.dataset.points = String(history.tsMs.length);
}

function extendCharts(meter) {
  if (!charts || !meter.lastReadingTs) return;
  const ts = Date.parse(meter.lastReadingTs);
  if (lastChartTs !== null && ts - lastChartTs < 1000) return;
  lastChartTs = ts;
  history.tsMs.push(ts);
  for (const name of Object.keys(history.series)) history.series[name].push(meter.values[name] ?? null);
  const cutoff = ts - 3600_000;
  while (history.tsMs.length > 0 && history.tsMs[0] <= cutoff) {
    history.tsMs.shift();
    for (const name of Object.keys(history.series)) history.series[name].shift();
  }
  for (const c of charts) c.plot.setData(chartData(c.spec));
  markChartPoints();
}

function renderMeter(s) {
  const m = s.meters.find((x) => x.id === meterId);
  if (!m) {
    main.innerHTML = `<h1>Meter ${esc(meterId)}</h1><p class="alert">This gateway has no meter ${esc(meterId)}.</p>`;
    return;
  }
  let summary = document.getElementById("meter-summary");
  if (!summary) {
    main.innerHTML = `<h1>Meter ${esc(m.id)}</h1><div id="meter-summary"></div><div id="charts"></div>`;
    summary = document.getElementById("meter-summary");
    setupCharts().catch((error) => {
      document.getElementById("charts").innerHTML = `<p class="alert">Charts unavailable: ${esc(error.message)}</p>`;
    });
  }
  const values = UNITS.filter(([name]) => typeof m.values[name] === "number")
    .map(
      ([name, label, unit, digits]) =>
        `<section class="card" data-value="${name}"><h2>${esc(label)}</h2><div class="big">${fmt(m.values[name], digits)} ${unit}</div></section>`,
    )
    .join("");
  const errors =
    m.lastErrors.length === 0
      ? ""
      : `<h2>Errors of the last reading</h2><ul>${m.lastErrors.map((e) => `<li><code>${esc(e.code)}</code> ${esc(e.message)}</li>`).join("")}</ul>`;
  summary.innerHTML = `<p>${badge(m.state)} bus <strong>${esc(m.busId)}</strong>, last reading ${age(m.lastReadingAgeS)} ago, ${m.readings} readings, ${m.errorCount} errors.</p>
<div class="cards">${values}</div>${errors}`;
  extendCharts(m);
}

function renderPage(s) {
  switch (page) {
    case "overview":
      return renderOverview(s);
    case "meters":
      return renderMeters(s);
    case "meter":
      return renderMeter(s);
    case "events":
      return renderEvents(s);
  }
}

function render(s) {
  document.getElementById("gateway-id").textContent = `${s.gatewayId} · v${s.version}`;
  // Re-rendering replaces the links: keep a keyboard user's focus where it was.
  const focused = main.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
  renderPage(s);
  if (focused) main.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
}

let updates = 0;
function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("status", (event) => {
    updates++;
    render(JSON.parse(event.data));
    live.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
    live.dataset.updates = String(updates);
  });
  source.addEventListener("error", () => {
    live.textContent = "Connection lost: retrying…";
    // A logged-out (expired) session answers 401: EventSource then stops; go to the login page.
    fetch("/api/status", { credentials: "same-origin" }).then(
      (r) => {
        if (r.status === 401) window.location.assign("/login");
      },
      () => {}, // the gateway is away; EventSource retries by itself
    );
  });
}

connect();
