// Swerve's dashboard: one page, no build step, no dependencies. It follows /api/stream
// (server-sent events): `state` carries the whole cluster snapshot whenever it changes,
// `events` the events as the leader appends them. Everything shown is built with text nodes
// (never innerHTML), and only the visible page of each list is in the DOM, so a cluster of
// thousands of replicas costs what one page of rows costs.
"use strict";

const PAGE = 50;
const EVENTS_KEPT = 500;
let snapshot = null;
let receivedAt = 0;
let events = [];
const view = {
  backends: { page: 0, filter: "" },
  replicas: { page: 0, filter: "", group: "backend" },
  nodes: { page: 0 },
  selected: "",
};

const $ = (id) => document.getElementById(id);

// el("td", {class: "x", dataset: {backend: "api"}}, "text", child…)
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "fill") node.style.setProperty("--fill", value);
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function serverNow() { return snapshot ? snapshot.at + (Date.now() - receivedAt) : Date.now(); }

function duration(ms) {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + Math.floor(s / 3600) % 24 + "h";
}

function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

function ago(ms) { return duration(serverNow() - ms) + " ago"; }

function bytes(n) {
  if (!n) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)) + " " + units[i];
}

function number(n) { return Math.round(n * 100) / 100; }

// "node-2" before "node-10", as people count.
const collator = new Intl.Collator(undefined, { numeric: true });
function natural(a, b) { return collator.compare(a, b); }

function replaceRows(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
}

function pager(nav, state, total, rerender) {
  const pages = Math.max(1, Math.ceil(total / PAGE));
  if (state.page >= pages) state.page = pages - 1;
  if (total <= PAGE) { nav.replaceChildren(); return; }
  const go = (page) => () => { state.page = page; rerender(); };
  nav.replaceChildren(
    el("button", { onclick: go(state.page - 1), ...(state.page === 0 ? { disabled: "" } : {}) }, "‹ previous"),
    el("span", {}, `${state.page * PAGE + 1}–${Math.min(total, (state.page + 1) * PAGE)} of ${total}`),
    el("button", { onclick: go(state.page + 1), ...(state.page >= pages - 1 ? { disabled: "" } : {}) }, "next ›"));
}

function visible(list, state) { return list.slice(state.page * PAGE, (state.page + 1) * PAGE); }

// MARK: Leadership

function renderLeadership() {
  const leader = snapshot.leader;
  const box = $("leader");
  if (leader) {
    box.replaceChildren(
      "Leader ", el("strong", { id: "leader-id", dataset: { epoch: leader.epoch } }, leader.id),
      " · epoch ", el("span", { id: "leader-epoch" }, leader.epoch),
      el("br"),
      el("span", { class: "muted" }, `${leader.host} pid ${leader.pid} · leading since ${clock(leader.since)} (${ago(leader.since)})`));
  } else {
    box.replaceChildren(el("strong", { id: "leader-id", class: "status-unhealthy" }, "no controller leads"),
                        el("br"), el("span", { class: "muted" }, "routers keep serving from their last view; requests queue until one leads"));
  }
  replaceRows($("controllers"), snapshot.controllers.map((c) => el("tr", { dataset: { controller: c.id } },
    el("td", { class: "mono" }, c.id),
    el("td", { class: c.leading ? "status-healthy" : "muted" }, c.leading ? "leader" : "standby or gone"),
    el("td", {}, c.lastEpoch), el("td", {}, c.terms), el("td", {}, `${clock(c.lastElected)} (${ago(c.lastElected)})`))));
  const elections = snapshot.elections.slice().reverse();
  $("elections").replaceChildren(...elections.map((e, i) => {
    const next = i > 0 ? elections[i - 1] : null;
    const lasted = next ? "led " + duration(next.at - e.at) : (snapshot.leader && snapshot.leader.epoch === e.epoch ? "leading" : "");
    return el("li", { dataset: { epoch: e.epoch } },
      el("span", { class: "muted" }, clock(e.at)), el("strong", { class: "mono" }, e.controller),
      el("span", {}, "epoch " + e.epoch), el("span", { class: "muted" }, lasted));
  }));
  if (elections.length === 0) $("elections").replaceChildren(el("li", { class: "muted" }, "no election recorded yet"));
}

// MARK: Backends

function renderBackends() {
  const filter = view.backends.filter.toLowerCase();
  const list = snapshot.backends.filter((b) => !filter || b.tag.toLowerCase().includes(filter) || (b.route || "").toLowerCase().includes(filter));
  $("backend-count").textContent = `${snapshot.backends.length}`;
  pager($("backends-pager"), view.backends, list.length, renderBackends);
  replaceRows($("backends"), visible(list, view.backends).map((b) => {
    const auto = b.autoscaling ? ` (auto ${b.autoscaling.min}…${b.autoscaling.max})` : "";
    const rollout = b.target > 0 ? Math.min(100, Math.round(100 * b.current / b.target)) : 100;
    const traffic = b.traffic;
    return el("tr", { dataset: { backend: b.tag }, class: view.selected === b.tag ? "selected" : null,
                      onclick: () => select(view.selected === b.tag ? "" : b.tag) },
      el("td", { class: "mono" }, b.tag),
      el("td", { class: "status-" + b.status, dataset: { field: "status" } }, b.status),
      el("td", { dataset: { field: "replicas" } }, `${b.running}/${b.target}${auto}`),
      el("td", { class: "bar", fill: rollout + "%" }, el("span", {}, `${b.current}/${b.target} current`)),
      el("td", { class: "mono" }, b.route || "—"),
      el("td", { class: "mono" }, b.version.slice(0, 8)),
      el("td", {}, traffic ? number(traffic.requestsPerSecond) + (traffic.errorsPerSecond > 0 ? ` (${number(traffic.errorsPerSecond)} 5xx)` : "") : "—"),
      el("td", {}, traffic && traffic.p50Ms !== undefined ? `${traffic.p50Ms} / ${traffic.p99Ms} ms` : "—"),
      el("td", { class: "why" }, b.status === "healthy" ? "" : b.reason));
  }));
  // The events filter lists the backends; rebuilt only when they change (not under the
  // hand of someone choosing in it).
  const tags = snapshot.backends.map((b) => b.tag).join("\n");
  const choice = $("event-backend");
  if (choice.dataset.tags !== tags) {
    const chosen = choice.value;
    choice.dataset.tags = tags;
    choice.replaceChildren(el("option", { value: "" }, "all backends"),
      ...snapshot.backends.map((b) => el("option", { value: b.tag, ...(b.tag === chosen ? { selected: "" } : {}) }, b.tag)));
  }
}

function select(tag) {
  view.selected = tag;
  view.replicas.filter = tag;
  view.replicas.page = 0;
  $("replica-filter").value = tag;
  $("event-backend").value = tag;
  renderBackends();
  renderReplicas();
  renderEvents();
}

// MARK: Replicas

function renderReplicas() {
  const words = view.replicas.filter.toLowerCase().split(/\s+/).filter(Boolean);
  const by = view.replicas.group;
  const list = snapshot.replicas.filter((r) => words.every((w) =>
    r.tag.toLowerCase().includes(w) || r.backend.toLowerCase() === w || (r.node || "").toLowerCase() === w || r.state.toLowerCase() === w));
  if (by === "node") list.sort((a, b) => natural(a.node || "~", b.node || "~") || a.tag.localeCompare(b.tag));
  $("replica-count").textContent = `${snapshot.replicas.length}` + (list.length !== snapshot.replicas.length ? ` (${list.length} shown)` : "");
  pager($("replicas-pager"), view.replicas, list.length, renderReplicas);
  const rows = [];
  let group = null;
  const now = serverNow();
  for (const r of visible(list, view.replicas)) {
    const key = by === "node" ? (r.node || "not placed") : r.backend;
    if (key !== group) {
      group = key;
      rows.push(el("tr", { class: "group" }, el("td", { colspan: 8 }, (by === "node" ? "node " : "backend ") + key)));
    }
    rows.push(el("tr", { dataset: { replica: r.tag } },
      el("td", { class: "mono" }, r.tag),
      el("td", { class: "state-" + r.state }, r.state),
      el("td", { class: "mono" }, r.backend),
      el("td", { class: "mono" }, r.node || "—"),
      el("td", {}, r.placedAt ? duration(now - r.placedAt) : "—"),
      el("td", { class: "mono" }, r.address || "—"),
      el("td", {}, r.pid || "—"),
      el("td", { class: "why" }, r.note || "")));
  }
  replaceRows($("replicas"), rows);
}

// MARK: Nodes

function renderNodes() {
  $("node-count").textContent = `${snapshot.nodes.length}`;
  const nodes = snapshot.nodes.slice().sort((a, b) => natural(a.id, b.id));
  pager($("nodes-pager"), view.nodes, nodes.length, renderNodes);
  replaceRows($("nodes"), visible(nodes, view.nodes).map((n) => {
    const cpuTotal = n.total ? n.total.cpu : 0;
    const memTotal = n.total ? n.total.memoryBytes : 0;
    const share = (used, total) => (total > 0 ? Math.min(100, Math.round(100 * used / total)) : 0) + "%";
    return el("tr", { dataset: { node: n.id } },
      el("td", { class: "mono" }, n.id),
      el("td", { class: "state-" + n.state.split(",")[0] }, n.state),
      el("td", {}, n.replicas),
      el("td", { class: "bar", fill: share(n.assigned.cpu, cpuTotal) }, el("span", {}, `${number(n.assigned.cpu)} / ${n.total ? number(cpuTotal) : "?"}`)),
      el("td", { class: "bar", fill: share(n.assigned.memoryBytes, memTotal) },
         el("span", {}, memTotal ? `${bytes(n.assigned.memoryBytes)} / ${bytes(memTotal)}` : bytes(n.assigned.memoryBytes))),
      el("td", { class: "mono" }, n.address || "—"));
  }));
}

// MARK: Events

function renderEvents() {
  const backend = $("event-backend").value;
  const shown = events.filter((e) => !backend || e.backend === backend).slice(-200).reverse();
  $("events").replaceChildren(...shown.map((e) => el("li", { class: "kind-" + e.kind, dataset: { id: e.id } },
    el("span", { class: "muted" }, clock(e.at)),
    el("span", { class: "kind" }, e.kind),
    el("span", { class: "backend mono" }, e.backend || "—"),
    el("span", { class: "message" }, e.message))));
  if (shown.length === 0) $("events").replaceChildren(el("li", { class: "muted" }, backend ? `no events for ${backend} yet` : "no events yet"));
  if ($("event-follow").checked) $("events").scrollTop = 0;
}

// MARK: Wiring

function render() {
  if (!snapshot) return;
  $("cluster").textContent = snapshot.cluster;
  document.title = `Swerve · ${snapshot.cluster}` + (snapshot.leader ? "" : " · no leader");
  renderLeadership();
  renderBackends();
  renderReplicas();
  renderNodes();
}

function connection(state, text) {
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = text;
}

function follow() {
  const stream = new EventSource("/api/stream");
  stream.addEventListener("open", () => connection("live", "live"));
  stream.addEventListener("error", () => connection("reconnecting", "reconnecting…"));
  stream.addEventListener("state", (message) => {
    snapshot = JSON.parse(message.data);
    receivedAt = Date.now();
    render();
  });
  stream.addEventListener("events", (message) => {
    const fresh = JSON.parse(message.data);
    const known = new Set(events.map((e) => e.id));
    events = events.concat(fresh.filter((e) => !known.has(e.id))).slice(-EVENTS_KEPT);
    renderEvents();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("backend-filter").addEventListener("input", (e) => { view.backends.filter = e.target.value; view.backends.page = 0; if (snapshot) renderBackends(); });
  $("replica-filter").addEventListener("input", (e) => { view.replicas.filter = e.target.value; view.replicas.page = 0; if (snapshot) renderReplicas(); });
  $("replica-group").addEventListener("change", (e) => { view.replicas.group = e.target.value; view.replicas.page = 0; if (snapshot) renderReplicas(); });
  $("event-backend").addEventListener("change", renderEvents);
  // Ages and "ago" move with the clock: one page of rows, once a second.
  setInterval(() => { if (snapshot) { renderLeadership(); renderReplicas(); } }, 1000);
  follow();
});
