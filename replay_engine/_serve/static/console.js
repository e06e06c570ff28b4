// The replay-engine console: plain DOM, no build step, nothing from the network
// but this server's API. Every string from the journal reaches the page through
// textContent (el() below), never through innerHTML.
"use strict";

const state = { token: sessionStorage.getItem("re-token") || "", stop: [] };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "on") {
      for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    } else if (value !== null && value !== undefined) {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function json(value) { return JSON.stringify(value, null, 2); }

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v || "");
  }
  return "";
}

function headers(write) {
  const h = {};
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  if (write) {
    h["Content-Type"] = "application/json";
    h["X-CSRF-Token"] = cookie("re_csrf");
  }
  return h;
}

async function api(path, body) {
  const write = body !== undefined;
  const response = await fetch(path, {
    method: write ? "POST" : "GET",
    headers: headers(write),
    body: write ? JSON.stringify(body) : undefined,
    credentials: "same-origin",
  });
  let doc = null;
  try { doc = await response.json(); } catch (e) { doc = null; }
  if (!response.ok) {
    const message = doc && doc.error ? doc.error.message : "HTTP " + response.status;
    throw new Error(message);
  }
  return doc;
}

function notice(text) { document.getElementById("notice").textContent = text || ""; }

function age(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return Math.round(s) + "s";
  if (s < 5400) return Math.round(s / 60) + "m";
  if (s < 129600) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}

function statusNode(status, id) {
  return el("span", { class: "status status-" + status, id: id }, status);
}

function runLink(runId) {
  return el("a", { href: "#/run/" + encodeURIComponent(runId), class: "run-link" }, runId);
}

function every(ms, fn) {
  fn();
  const timer = setInterval(fn, ms);
  state.stop.push(() => clearInterval(timer));
}

// -- runs -----------------------------------------------------------------------

const STATUSES = ["", "queued", "running", "waiting", "interrupted", "completed",
  "failed", "cancelled", "timed_out"];

function runsView(view) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const select = el("select", { id: "status-filter" },
    ...STATUSES.map((s) => el("option", { value: s }, s || "any status")));
  select.value = params.get("status") || "";
  const search = el("input", { id: "search", type: "search", placeholder: "run id or process" });
  search.value = params.get("q") || "";
  const body = el("tbody", { id: "runs-body" });
  view.append(el("h1", {}, "Runs"),
    el("div", { class: "filters" }, select, search),
    el("table", { id: "runs" },
      el("thead", {}, el("tr", {}, ...["run", "status", "process", "age", "events",
        "waiting on"].map((h) => el("th", {}, h)))), body));
  async function load() {
    const q = new URLSearchParams();
    if (select.value) q.set("status", select.value);
    if (search.value) q.set("q", search.value);
    try {
      const rows = await api("/api/runs?" + q.toString());
      body.replaceChildren(...rows.map((r) => el("tr", { "data-run": r.run_id },
        el("td", {}, runLink(r.run_id)), el("td", {}, statusNode(r.status)),
        el("td", {}, r.process), el("td", { title: r.created }, age(r.created)),
        el("td", {}, r.events),
        el("td", {}, [...r.pending, ...r.signals.map((s) => "event " + s)].join(", ")))));
      if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no runs")));
      notice("");
    } catch (e) { notice(e.message); }
  }
  select.addEventListener("change", load);
  search.addEventListener("input", load);
  every(3000, load);
}

// -- one run --------------------------------------------------------------------

function answerForm(runId, effect, onDone) {
  const response = el("textarea", { class: "response", "data-key": effect.key,
    placeholder: "response (JSON, or plain text)" });
  async function answer(approve) {
    let value = response.value.trim();
    if (value === "") value = null;
    else { try { value = JSON.parse(value); } catch (e) { /* plain text */ } }
    try {
      const body = approve ? { approve: true } : { reject: true };
      body.response = value;
      await api("/api/runs/" + encodeURIComponent(runId) + "/effects/" +
        encodeURIComponent(effect.key), body);
      notice((approve ? "approved " : "rejected ") + effect.key + " of " + runId);
      if (onDone) onDone();
    } catch (e) { notice(e.message); }
  }
  const args = effect.args || {};
  return el("div", { class: "card approval", "data-run": runId, "data-key": effect.key },
    el("div", {}, el("strong", { class: "bp-title" }, String(args.title ?? effect.task)),
      " ", el("span", { class: "muted" }, "run ", runLink(runId), " key " + effect.key +
        ", asked " + age(effect.requested_at) + " ago")),
    el("pre", { class: "bp-payload" }, json(args.payload ?? args)),
    response,
    el("div", {},
      el("button", { class: "approve", type: "button", on: { click: () => answer(true) } }, "Approve"),
      " ",
      el("button", { class: "reject", type: "button", on: { click: () => answer(false) } }, "Reject")));
}

async function readStream(path, onFrame) {
  // Server-sent events read with fetch, so the token can go in a header.
  const controller = new AbortController();
  state.stop.push(() => controller.abort());
  let from = 0;
  for (let attempt = 0; attempt < 1000 && !controller.signal.aborted; attempt++) {
    try {
      const response = await fetch(path + "?from=" + from,
        { headers: headers(false), signal: controller.signal });
      if (!response.ok) { notice("event stream: HTTP " + response.status); return; }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let kind = "message"; const data = [];
          for (const line of frame.split("\n")) {
            if (line.startsWith("event: ")) kind = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (!data.length) continue;
          const doc = JSON.parse(data.join("\n"));
          if (kind === "event") from = doc.seq + 1;
          if (kind === "end") return;
          onFrame(kind, doc);
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function runView(view, runId) {
  const statusBox = el("div", { id: "run-summary" });
  const outcome = el("div", { id: "run-outcome" });
  const pendingBox = el("div", { id: "run-pending" });
  const log = el("tbody", { id: "event-log" });
  const frame = el("iframe", { class: "timeline", sandbox: "allow-scripts", title: "timeline" });
  const cancel = el("button", { type: "button", id: "cancel", on: { click: async () => {
    try { await api("/api/runs/" + encodeURIComponent(runId) + "/cancel", { reason: "cancelled from the console" }); }
    catch (e) { notice(e.message); }
  } } }, "Cancel run");
  view.append(el("h1", {}, "Run ", el("code", { id: "run-id" }, runId)), statusBox, cancel,
    outcome, el("h2", {}, "Waiting for"), pendingBox,
    el("h2", {}, "Timeline"), frame,
    el("h2", {}, "Events"),
    el("table", { id: "events" }, el("thead", {}, el("tr", {},
      ...["seq", "type", "key", "task", "at", "fields"].map((h) => el("th", {}, h)))), log));
  const base = "/api/runs/" + encodeURIComponent(runId);
  let shown = "";
  async function refreshSide(doc) {
    statusBox.replaceChildren(el("p", {}, statusNode(doc.status, "run-status"),
      " ", el("span", { class: "muted" }, doc.process + " · " + doc.events + " events · started " +
        age(doc.created) + " ago")));
    outcome.replaceChildren();
    if (doc.status === "completed") outcome.append(el("h2", {}, "Result"), el("pre", { id: "result" }, json(doc.result)));
    if (doc.error) outcome.append(el("h2", {}, "Error"), el("pre", { id: "error" },
      doc.error.type + ": " + doc.error.message + "\n\n" + (doc.error.traceback || "")));
    if (doc.cancel_reason) outcome.append(el("p", {}, "cancelled: " + doc.cancel_reason));
    const key = doc.status + ":" + doc.events;
    if (key === shown) return;
    shown = key;
    try {
      const pending = await api(base + "/pending");
      const cards = pending.pending.filter((e) => !e.abandoned).map((e) => e.kind === "breakpoint"
        ? answerForm(runId, e)
        : el("div", { class: "card" }, el("strong", {}, e.task), " (" + e.kind + ", key " + e.key + ")",
          e.claimed_by ? " claimed by " + e.claimed_by : " unclaimed", el("pre", {}, json(e.args))));
      for (const s of pending.signals) cards.push(el("div", { class: "card" }, "event ", el("code", {}, s.name), " (key " + s.key + ")"));
      pendingBox.replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "nothing")]));
      // Its own sandboxed page (the token travels in the re_token cookie).
      frame.src = base + "/timeline?at=" + encodeURIComponent(key);
    } catch (e) { notice(e.message); }
  }
  readStream(base + "/stream", (kind, doc) => {
    if (kind === "status") refreshSide(doc);
    if (kind === "event") log.append(el("tr", { "data-seq": doc.seq }, el("td", {}, doc.seq),
      el("td", {}, doc.type), el("td", {}, doc.key ?? ""), el("td", {}, doc.task ?? ""),
      el("td", {}, doc.at), el("td", {}, el("code", {}, JSON.stringify(doc.fields)))));
  });
}

// -- approvals and claims -------------------------------------------------------

function approvalsView(view) {
  const list = el("div", { id: "approvals" });
  view.append(el("h1", {}, "Pending approvals"), list);
  let shown = "";
  async function load() {
    try {
      const rows = await api("/api/approvals");
      const key = rows.map((r) => r.run_id + "/" + r.key).join(",");
      if (key === shown) return; // keep what a person is typing
      shown = key;
      list.replaceChildren(...(rows.length ? rows.map((r) => answerForm(r.run_id, r, load))
        : [el("p", { class: "muted" }, "nothing waits for a person")]));
    } catch (e) { notice(e.message); }
  }
  every(3000, load);
}

function claimsView(view) {
  const body = el("tbody", { id: "claims-body" });
  view.append(el("h1", {}, "What agents have claimed"), el("table", { id: "claims" },
    el("thead", {}, el("tr", {}, ...["run", "key", "task", "kind", "claimed by", "lease left",
      "last heartbeat", "state"].map((h) => el("th", {}, h)))), body));
  async function load() {
    try {
      const rows = await api("/api/claims");
      body.replaceChildren(...rows.map((r) => el("tr", {},
        el("td", {}, runLink(r.run_id)), el("td", {}, r.key), el("td", {}, r.task), el("td", {}, r.kind),
        el("td", {}, r.claimed_by), el("td", {}, r.lease_left === null ? "" : Math.round(r.lease_left) + "s"),
        el("td", {}, r.heartbeat_age === null ? "" : Math.round(r.heartbeat_age) + "s ago"),
        el("td", {}, r.stale ? "stale (lease expired)" : "leased"))));
      if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no claims")));
    } catch (e) { notice(e.message); }
  }
  every(3000, load);
}

// -- routing --------------------------------------------------------------------

function route() {
  for (const stop of state.stop.splice(0)) stop();
  const view = document.getElementById("view");
  view.replaceChildren();
  notice("");
  const hash = location.hash.split("?")[0];
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", hash.startsWith(a.getAttribute("href")));
  if (hash.startsWith("#/run/")) runView(view, decodeURIComponent(hash.slice(6)));
  else if (hash === "#/approvals") approvalsView(view);
  else if (hash === "#/claims") claimsView(view);
  else runsView(view);
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = document.getElementById("token").value;
  sessionStorage.setItem("re-token", state.token);
  // For the pages the console frames (the timeline), which cannot send a header.
  document.cookie = "re_token=" + encodeURIComponent(state.token) + "; path=/; SameSite=Strict";
  route();
});
window.addEventListener("hashchange", route);
route();
