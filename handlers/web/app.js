// Corral's dashboard: the public API and the operator API, called with the key entered
// once and kept in this tab's session storage. No framework, no build step; every value
// from the API reaches the page as text (textContent), never as HTML.
"use strict";

const PUBLIC = "/api/public/clusters/v1";
const ADMIN = "/api/v1";
const REFRESH_MS = 2000;
const HISTORY = 30; // health samples kept per container for the sparkline
const STORE = window.sessionStorage;

// resizing: container id -> its open resize form (kept across refreshes, with what was typed)
const state = { key: null, role: null, timer: null, history: new Map(), logs: null, resizing: new Map() };
const $ = (id) => document.getElementById(id);

// -- HTTP ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${state.key}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) {
    const error = (data && data.error) || { code: "http_" + resp.status, message: resp.statusText };
    throw new ApiError(resp.status, error.code, error.message);
  }
  return data;
}

function showError(error) {
  const box = $("message");
  box.textContent = error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
  box.hidden = false;
}

function clearError() { $("message").hidden = true; }

// -- DOM helpers --------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? "-"));
  return node;
}

function badge(status) { return el("span", { class: `status ${status}`, "data-testid": "status" }, status); }

function bar(label, used, total, unit = "") {
  const share = total > 0 ? Math.min(1, used / total) : 0;
  const fill = el("div", { class: share > 0.9 ? "fill high" : "fill" });
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  return el("div", { class: "bar", title: `${label}: ${used} of ${total}${unit}` },
    el("div", { class: "label" }, `${label} ${round(used)} / ${round(total)}${unit}`),
    el("div", { class: "track" }, fill));
}

function round(value) { return typeof value === "number" ? Math.round(value * 100) / 100 : value; }

function when(stamp) { return stamp ? new Date(stamp).toLocaleTimeString() : "-"; }

function replaceRows(tbody, rows) { tbody.replaceChildren(...rows); }

// -- signing in ---------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  try {
    const cluster = await api("GET", `${PUBLIC}/cluster`);
    return start("tenant", `cluster ${cluster.name}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
  }
  await api("GET", `${ADMIN}/status`); // a 401 here: neither kind of key
  return start("operator", "operator");
}

function start(role, who) {
  state.role = role;
  STORE.setItem("corral.key", state.key);
  $("who").textContent = `Signed in: ${who}`;
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $(role).hidden = false;
  clearError();
  if (role === "tenant") loadEggs().catch(showError);
  refresh();
}

function signOut() {
  STORE.removeItem("corral.key");
  stopLogs();
  clearTimeout(state.timer);
  Object.assign(state, { key: null, role: null });
  for (const id of ["tenant", "operator", "sign-out"]) $(id).hidden = true;
  $("sign-in").hidden = false;
  $("who").textContent = "";
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    await (state.role === "tenant" ? refreshTenant() : refreshOperator());
  } catch (error) {
    showError(error);
  }
  if (state.role) state.timer = setTimeout(refresh, REFRESH_MS);
}

// -- the tenant view ----------------------------------------------------------------

async function loadEggs() {
  const eggs = await api("GET", `${PUBLIC}/eggs`);
  $("create-form").elements.egg_id.replaceChildren(
    ...eggs.map((egg) => el("option", { value: egg.id }, `${egg.name} (${egg.engine})`)));
}

async function refreshTenant() {
  const [cluster, containers, operations] = await Promise.all([
    api("GET", `${PUBLIC}/cluster`),
    api("GET", `${PUBLIC}/containers`),
    api("GET", `${PUBLIC}/operations?limit=10`),
  ]);
  $("cluster-name").textContent = `Cluster ${cluster.name}`;
  $("cluster-usage").replaceChildren(
    bar("CPU cores", cluster.used.cpu_cores, cluster.totals.cpu_cores),
    bar("Memory", cluster.used.ram_mb, cluster.totals.ram_mb, " MB"),
    bar("Storage", cluster.used.storage_mb, cluster.totals.storage_mb, " MB"),
    bar("Containers", cluster.used.containers, cluster.totals.containers));
  // Not while someone types in a resize form: a new row would reset what they typed.
  const typing = $("containers").contains(document.activeElement) && document.activeElement.tagName === "INPUT";
  if (!typing) replaceRows($("containers"), containers.map(containerRow));
  replaceRows($("tenant-operations"), operations.map((op) => el("tr", {},
    el("td", {}, when(op.created_at)), el("td", {}, op.kind), el("td", {}, badge(op.status)),
    el("td", {}, op.container_id), el("td", {}, op.error ?? ""))));
}

function remember(container) {
  const samples = state.history.get(container.id) ?? [];
  const health = container.health;
  if (health && health.last_heartbeat && samples.at(-1)?.at !== health.last_heartbeat) {
    samples.push({ at: health.last_heartbeat, cpu: health.cpu_percent ?? 0, mem: health.memory_mb ?? 0 });
    if (samples.length > HISTORY) samples.shift();
  }
  state.history.set(container.id, samples);
  return samples;
}

function sparkline(samples) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 100 28");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = (values, cls) => {
    const top = Math.max(...values, 1);
    const step = values.length > 1 ? 100 / (values.length - 1) : 0;
    const poly = document.createElementNS(ns, "polyline");
    poly.setAttribute("class", cls);
    poly.setAttribute("points", values.map((v, i) => `${i * step},${27 - (v / top) * 26}`).join(" "));
    svg.append(poly);
  };
  if (samples.length) {
    line(samples.map((s) => s.cpu), "cpu");
    line(samples.map((s) => s.mem), "mem");
    const last = samples.at(-1);
    const title = document.createElementNS(ns, "title");
    title.textContent = `CPU ${last.cpu}% · memory ${last.mem} MB (last ${samples.length} samples)`;
    svg.append(title);
  }
  return svg;
}

function allocationLinks(container) {
  const allocations = container.allocations ?? [];
  if (!allocations.length) return "-";
  const links = allocations.map((a) => el("a",
    { href: `http://${a.ip}:${a.port}/`, target: "_blank", rel: "noopener noreferrer",
      title: `container port ${a.container_port ?? a.port}${a.primary ? " (primary)" : ""}` },
    `${a.ip}:${a.port}`));
  const span = el("span", { "data-testid": "allocations" });
  links.forEach((link, i) => span.append(...(i ? [", ", link] : [link])));
  return span;
}

function containerRow(c) {
  const busy = Boolean(c.pending_operation);
  const act = (label, handler) => el("button",
    { type: "button", "data-action": label, onclick: handler, ...(busy ? { disabled: "" } : {}) }, label);
  const power = (signal) => act(signal, () => change("POST", `/containers/${c.id}/power`, { signal }));
  const actions = el("div", { class: "actions" });
  if (c.status === "stopped") actions.append(power("start"));
  if (c.status === "running") actions.append(power("stop"), power("restart"));
  if (c.status === "paused") actions.append(power("resume"));
  actions.append(
    el("button", { type: "button", "data-action": "logs", onclick: () => followLogs(c) }, "logs"),
    act("resize", () => { state.resizing.set(c.id, resizeForm(c)); refresh(); }),
    act("delete", () => { if (confirm(`Delete ${c.name} and its data?`)) change("DELETE", `/containers/${c.id}`); }));
  const cell = el("td", {}, actions);
  if (state.resizing.has(c.id)) cell.append(state.resizing.get(c.id));
  const health = c.health ?? {};
  const shown = health.state === "measured" ? `${health.cpu_percent}% · ${health.memory_mb} MB` : health.state;
  return el("tr", { "data-container": c.name, "data-id": c.id },
    el("td", {}, el("strong", {}, c.name), el("div", { class: "muted" }, c.id)),
    el("td", {}, badge(c.status), c.error ? el("div", { class: "muted" }, c.error) : ""),
    el("td", { "data-testid": "resources" }, `${c.resources.cpu_cores} cores · ${c.resources.ram_mb} MB`),
    el("td", {}, shown ?? "-"),
    el("td", {}, sparkline(remember(c))),
    el("td", {}, allocationLinks(c)),
    cell);
}

function resizeForm(c) {
  const form = el("form", { class: "resize", "data-testid": "resize-form" },
    el("input", { name: "cpu_cores", type: "number", step: "any", min: "0", value: c.resources.cpu_cores }),
    el("input", { name: "ram_mb", type: "number", min: "0", value: c.resources.ram_mb }),
    el("button", { type: "submit" }, "apply"),
    el("button", { type: "button", onclick: () => { state.resizing.delete(c.id); refresh(); } }, "cancel"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.resizing.delete(c.id);
    change("PATCH", `/containers/${c.id}`, { resources: numbers(form) });
  });
  return form;
}

function numbers(form) {
  const values = {};
  for (const input of form.querySelectorAll("input[type=number]")) {
    if (input.value !== "") values[input.name] = Number(input.value);
  }
  return values;
}

async function change(method, path, body) {
  try {
    clearError();
    await api(method, PUBLIC + path, body);
  } catch (error) {
    showError(error);
  }
  refresh();
}

async function create(event) {
  event.preventDefault();
  const form = event.target;
  const body = { name: form.elements.name.value, egg_id: form.elements.egg_id.value, ...numbers(form) };
  try {
    clearError();
    await api("POST", `${PUBLIC}/containers`, body);
    form.elements.name.value = "";
  } catch (error) {
    showError(error);
  }
  refresh();
}

// -- logs that follow live: server-sent events read from fetch (EventSource cannot
// send the Authorization header) ------------------------------------------------------

function stopLogs() {
  if (state.logs) state.logs.abort();
  state.logs = null;
}

async function followLogs(c, since) {
  stopLogs();
  const control = new AbortController();
  state.logs = control;
  $("logs-section").hidden = false;
  $("logs-of").textContent = c.name;
  if (since === undefined) $("logs").replaceChildren();
  $("logs-state").textContent = "(following)";
  const query = since ? `since=${since}` : "tail=200";
  let last = since;
  try {
    const resp = await fetch(`${PUBLIC}/containers/${c.id}/logs?follow=1&${query}`,
      { headers: { Authorization: `Bearer ${state.key}` }, signal: control.signal });
    if (!resp.ok) {
      const error = (await resp.json()).error;
      throw new ApiError(resp.status, error.code, error.message);
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event.kind === "message" && event.data) {
          appendLog(event.data);
          if (event.id) last = secondsOf(event.id);
        } else if (event.kind === "error") {
          throw new ApiError(503, event.data.error.code, event.data.error.message);
        }
      }
    }
    // The server ends a follow after its cap: go on from the last line seen.
    if (state.logs === control) followLogs(c, last ?? String(Date.now() / 1000));
  } catch (error) {
    if (control.signal.aborted) return;
    $("logs-state").textContent = "(stopped)";
    showError(error);
  }
}

function parseEvent(block) {
  const event = { kind: "message", data: null, id: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event.kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
    else if (line.startsWith("id:")) event.id = line.slice(3).trim();
  }
  if (data.length) event.data = JSON.parse(data.join("\n"));
  return event;
}

// A log line's id is its time in nanoseconds: as `since`, seconds with nine decimals,
// just past it (the string keeps the precision a Number would lose).
function secondsOf(ns) {
  const next = (BigInt(ns) + 1n).toString().padStart(10, "0");
  return `${next.slice(0, -9)}.${next.slice(-9)}`;
}

function appendLog(line) {
  const pre = $("logs");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(el("span", { class: line.stream }, `${line.time ?? ""} ${line.line}\n`));
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

// -- the operator view --------------------------------------------------------------

async function refreshOperator() {
  const [status, clusters, operations] = await Promise.all([
    api("GET", `${ADMIN}/status`),
    api("GET", `${ADMIN}/clusters`),
    api("GET", `${ADMIN}/operations?limit=15`),
  ]);
  const totals = status.totals;
  $("fleet-totals").textContent = `${totals.hosts} hosts · ${totals.used.cpu_cores} of ` +
    `${totals.capacity.cpu_cores} cores and ${totals.used.ram_mb} of ${totals.capacity.ram_mb} MB reserved`;
  replaceRows($("hosts"), status.hosts.map(hostRow));
  replaceRows($("clusters"), clusters.map((c) => el("tr", { "data-cluster": c.name },
    el("td", {}, el("strong", {}, c.name), el("div", { class: "muted" }, c.id)),
    el("td", {}, badge(c.status)),
    el("td", {}, bar("cores", c.used.cpu_cores, c.totals.cpu_cores)),
    el("td", {}, bar("MB", c.used.ram_mb, c.totals.ram_mb)),
    el("td", {}, bar("MB", c.used.storage_mb, c.totals.storage_mb)),
    el("td", {}, bar("", c.used.containers, c.totals.containers)))));
  replaceRows($("operator-operations"), operations.map((op) => el("tr", {},
    el("td", {}, when(op.created_at)), el("td", {}, op.kind), el("td", {}, badge(op.status)),
    el("td", {}, op.cluster_id), el("td", {}, op.container_id), el("td", {}, op.error ?? ""))));
}

function hostRow(h) {
  const load = h.load;
  const measured = load && !load.stale
    ? bar("CPU %", load.cpu_percent, h.capacity.cpu_cores * 100)
    : el("span", { class: "muted" }, "not measured");
  const counts = Object.entries(h.workloads ?? {}).map(([s, n]) => `${n} ${s}`).join(", ") || "none";
  const drain = h.draining ? "undrain" : "drain";
  return el("tr", { "data-host": h.name },
    el("td", {}, el("strong", {}, h.name), el("div", { class: "muted" }, h.address)),
    el("td", {}, badge(h.draining ? "draining" : h.status)),
    el("td", {}, bar("cores", h.used.cpu_cores, h.capacity.cpu_cores)),
    el("td", {}, bar("MB", h.used.ram_mb, h.capacity.ram_mb)),
    el("td", {}, measured),
    el("td", {}, counts),
    el("td", {}, el("button", { type: "button", "data-action": drain, onclick: async () => {
      try { await api("POST", `${ADMIN}/hosts/${h.id}/${drain}`); } catch (error) { showError(error); }
      refresh();
    } }, drain)));
}

// -- wiring -------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("key").value.trim()).catch((error) => { state.key = null; showError(error); });
  });
  $("sign-out").addEventListener("click", signOut);
  $("create-form").addEventListener("submit", create);
  $("logs-close").addEventListener("click", () => { stopLogs(); $("logs-section").hidden = true; });
  const kept = STORE.getItem("corral.key");
  if (kept) signIn(kept).catch((error) => { STORE.removeItem("corral.key"); showError(error); });
});
