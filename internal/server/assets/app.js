// Admin board: loads agents from the API, keeps them current from the live decision stream and
// shows an agent's decision chain. Everything is read through the public API.
"use strict";

const TOKEN_KEY = "omnipresence-token";
const agents = new Map(); // email -> AgentView
let selected = null;      // email whose explain view is open
let streamAbort = null;

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function takeTokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path) {
  const res = await fetch(path, { headers: authHeaders() });
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try {
      const body = await res.json();
      msg = body.error + (body.detail ? ": " + (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : "");
    } catch (_) { /* not JSON */ }
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return res.json();
}

function showNotice(text) {
  $("notice-text").textContent = text;
  $("notice").hidden = !text;
}

function systemNames() {
  const names = new Set();
  for (const a of agents.values()) for (const s of Object.keys(a.systems || {})) names.add(s);
  return [...names].sort();
}

function systemCell(sv) {
  const td = el("td", { class: "sys" });
  if (!sv) return td;
  const observed = sv.observed || "?";
  td.append(el("span", { class: "obs" }, observed));
  if (sv.desired && sv.desired !== sv.observed) {
    td.classList.add("mismatch");
    td.append(el("span", { class: "des" }, " → " + sv.desired));
  }
  for (const kind of ["pending", "deferred", "failed"]) {
    if (sv[kind]) td.append(el("span", { class: "badge " + kind, title: kind + ": " + sv[kind] }, kind));
  }
  return td;
}

function render() {
  const systems = systemNames();
  const head = $("board-head");
  head.replaceChildren(el("th", {}, "Agent"), el("th", {}, "Policy"), ...systems.map(s => el("th", {}, s)));
  const filter = $("filter").value.trim().toLowerCase();
  const rows = [];
  for (const email of [...agents.keys()].sort()) {
    if (filter && !email.toLowerCase().includes(filter)) continue;
    const a = agents.get(email);
    const link = el("a", { href: "#agent=" + encodeURIComponent(email) }, email);
    link.addEventListener("click", ev => { ev.preventDefault(); openExplain(email); });
    const tr = el("tr", { class: email === selected ? "selected" : "" },
      el("td", { class: "agent" }, link),
      el("td", { class: "muted" }, a.policy || "—"),
      ...systems.map(s => systemCell((a.systems || {})[s])));
    rows.push(tr);
  }
  $("board-body").replaceChildren(...rows);
  $("empty").hidden = agents.size > 0;
}

async function loadAgents() {
  try {
    const body = await api("/api/v1/agents");
    agents.clear();
    for (const a of body.agents) agents.set(a.email, a);
    showNotice("");
    render();
    return true;
  } catch (err) {
    showNotice(err.message);
    return false;
  }
}

const refreshing = new Set();
async function refreshAgent(email) {
  if (refreshing.has(email)) return;
  refreshing.add(email);
  try {
    agents.set(email, await api("/api/v1/agents/" + encodeURIComponent(email)));
    render();
  } catch (_) { /* the next decision or reload retries */ }
  finally { refreshing.delete(email); }
}

function stepItem(st) {
  const meta = [new Date(st.at).toLocaleString(), st.system, st.status, st.rule && "rule " + st.rule]
    .filter(Boolean).join(" · ");
  const li = el("li", {}, el("span", { class: "kind" }, st.kind), st.summary, el("div", { class: "meta" }, meta));
  if (st.details && st.details.length) li.append(el("ul", { class: "details" }, ...st.details.map(d => el("li", {}, d))));
  return li;
}

async function openExplain(email) {
  selected = email;
  history.replaceState(null, "", "#agent=" + encodeURIComponent(email));
  $("explain").hidden = false;
  $("explain-title").textContent = email;
  $("explain-steps").replaceChildren(el("li", { class: "muted" }, "Loading…"));
  render();
  try {
    const body = await api("/api/v1/agents/" + encodeURIComponent(email) + "/explain");
    if (selected !== email) return;
    $("explain-steps").replaceChildren(...body.steps.map(stepItem));
    if (!body.steps.length) $("explain-steps").append(el("li", { class: "muted" }, "No decisions yet."));
  } catch (err) {
    $("explain-steps").replaceChildren(el("li", {}, err.message));
  }
}

function closeExplain() {
  selected = null;
  $("explain").hidden = true;
  history.replaceState(null, "", location.pathname + location.search);
  render();
}

function onDecision(d) {
  refreshAgent(d.agent);
  if (d.agent === selected) {
    const list = $("explain-steps");
    if (list.firstChild && list.firstChild.classList && list.firstChild.classList.contains("muted")) list.replaceChildren();
    list.append(stepItem(d));
  }
}

function setLive(on) {
  $("live").textContent = on ? "live" : "offline";
  $("live").className = "live " + (on ? "on" : "off");
}

// stream reads the SSE endpoint with fetch, which, unlike EventSource, can send the token.
async function stream() {
  const ctl = new AbortController();
  streamAbort = ctl;
  try {
    const res = await fetch("/api/v1/events", { headers: authHeaders(), signal: ctl.signal });
    if (!res.ok || !res.body) throw new Error("stream refused: " + res.status);
    setLive(true);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (event === "decision" && data) onDecision(JSON.parse(data));
      }
    }
  } catch (_) { /* reconnect below */ }
  setLive(false);
  if (ctl.signal.aborted) return; // replaced by a new stream
  setTimeout(async () => { if (await loadAgents()) stream(); else setTimeout(stream, 5000); }, 3000);
}

document.addEventListener("DOMContentLoaded", async () => {
  takeTokenFromFragment();
  $("filter").addEventListener("input", render);
  $("explain-close").addEventListener("click", closeExplain);
  $("token-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    if (streamAbort) streamAbort.abort();
    if (await loadAgents()) stream();
  });
  const m = location.hash.match(/^#agent=(.+)$/);
  if (await loadAgents()) {
    if (m) openExplain(decodeURIComponent(m[1]));
    stream();
  }
});
