// omnipresence admin console: a live board of agents across systems, system health, writes that
// have not landed (with retry and resync), the loaded policy, and per agent a status history and
// the explained decisions. Everything is read through the public API, with the same
// authentication as any other client. Rows are keyed by agent and updated in place, so a click
// during an update lands where it was aimed.
"use strict";

const TOKEN_KEY = "omnipresence-token";
const STATES = ["failed", "deferred", "drifting", "not_covered", "unknown", "in_sync"];
const STATE_WORDS = {
  in_sync: "in sync", drifting: "drifting", deferred: "deferred", failed: "failed",
  not_covered: "not covered", unknown: "not seen yet",
};
const STATE_HELP = {
  in_sync: "every system shows what the policy wants",
  drifting: "a system does not show what the policy wants yet",
  deferred: "a write waits for the system (on a call, or the agent's console is closed)",
  failed: "a write used up its retries",
  not_covered: "the policy says nothing about the status shown",
  unknown: "no status seen yet",
};

const board = { systems: [], teams: [], policies: [], rows: new Map(), trs: new Map(), loaded: false };
const ui = { view: "board", agent: null, stream: null };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c != null && c !== false) e.append(c);
  return e;
}

// setText changes a node's text only when it differs, so unchanged cells are left alone.
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
function setClass(node, cls) { if (node.className !== cls) node.className = cls; }

// ---- API -------------------------------------------------------------------------------------

function takeTokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search + "#/board");
  }
}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { Authorization: "Bearer " + t } : {};
}

async function api(path, method) {
  const res = await fetch(path, { method: method || "GET", headers: authHeaders() });
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    if (body && body.error) msg = body.error + (body.detail ? ": " + (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : "");
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return body;
}

function showNotice(text, askToken) {
  $("notice-text").textContent = text || "";
  $("notice").hidden = !text;
  $("token-form").hidden = !askToken;
}

function apiFailed(err) {
  if (err.status === 401) showNotice("This service needs its admin token: " + err.message, true);
  else showNotice("The service did not answer: " + err.message, false);
}

// ---- time -----------------------------------------------------------------------------------

function ago(t, now) {
  if (!t) return "";
  const s = Math.max(0, Math.round(((now || Date.now()) - new Date(t).getTime()) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
  return Math.floor(s / 86400) + " d ago";
}

function duration(t) {
  if (!t) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d";
}

function local(t) {
  if (!t) return "";
  return new Date(t).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function localTime(t) {
  return new Date(t).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// ---- board ----------------------------------------------------------------------------------

function systemTitle(name) {
  const s = board.systems.find((x) => x.name === name);
  return s ? s.title : name;
}

function chip(name, category) {
  return el("span", { class: "chip " + (name ? category || "" : "unknown"), title: category ? "category: " + category.replace("_", " ") : null }, name || "not seen");
}

function stateBadge(state) {
  return el("span", { class: "state " + state, title: STATE_HELP[state] || "" }, STATE_WORDS[state] || state);
}

function buildHead() {
  const head = $("board-head");
  const cells = [el("th", { scope: "col" }, "Agent")];
  for (const s of board.systems) {
    cells.push(el("th", { scope: "col" }, s.title, el("span", { class: "vendor" }, "system " + s.name)));
  }
  cells.push(el("th", { scope: "col" }, "State"), el("th", { scope: "col" }, "Why"));
  head.replaceChildren(...cells);
}

function fillSelect(id, values, words) {
  const sel = $(id);
  const keep = sel.value;
  const opts = [el("option", { value: "" }, "any")];
  for (const v of values) opts.push(el("option", { value: v }, words ? words[v] || v : v));
  sel.replaceChildren(...opts);
  sel.value = values.includes(keep) ? keep : "";
}

// makeRow builds the row of one agent once; updateRow changes its cells in place later.
function makeRow(email) {
  const link = el("a", { href: "#/agent/" + encodeURIComponent(email) }, email);
  const agentTd = el("td", { class: "agent" }, link, el("span", { class: "teams" }));
  const tr = el("tr", { "data-agent": email }, agentTd);
  const refs = { tr, teams: agentTd.lastChild, cells: {} };
  for (const s of board.systems) {
    const td = el("td", { class: "sys", "data-system": s.name });
    const obs = el("span", { class: "chip" });
    const since = el("span", { class: "since" });
    const want = el("span", { class: "want" });
    td.append(obs, since, want);
    tr.append(td);
    refs.cells[s.name] = { td, obs, since, want };
  }
  refs.state = el("span", { class: "state" });
  refs.note = el("td", { class: "note" });
  tr.append(el("td", {}, refs.state), refs.note);
  return refs;
}

function updateRow(refs, row) {
  setText(refs.teams, [(row.teams || []).join(", "), row.policy ? "policy " + row.policy : "no policy"].filter(Boolean).join(" · "));
  for (const s of board.systems) {
    const c = refs.cells[s.name];
    const sv = (row.systems || {})[s.name];
    setClass(c.td, "sys " + (sv ? sv.state : "unknown"));
    if (!sv) {
      setClass(c.obs, "chip unknown"); setText(c.obs, "no account"); setText(c.since, ""); setText(c.want, "");
      continue;
    }
    setClass(c.obs, "chip " + (sv.observed ? sv.category || "" : "unknown"));
    setText(c.obs, sv.observed || "not seen");
    c.obs.title = sv.category ? "category: " + sv.category.replace("_", " ") : "";
    setText(c.since, sv.observed_since ? duration(sv.observed_since) : "");
    c.since.title = sv.observed_since ? "since " + local(sv.observed_since) : "";
    let want = "";
    if (sv.state === "failed") want = "→ " + sv.desired + " failed";
    else if (sv.state === "deferred") want = "→ " + sv.desired + " waiting";
    else if (sv.pending) want = "→ writing " + sv.pending;
    else if (sv.state === "drifting" && sv.desired && sv.desired !== sv.observed) want = "→ should show " + sv.desired;
    else if (sv.state === "drifting") want = "disagrees";
    else if (sv.state === "not_covered") want = "not covered";
    setText(c.want, want);
    c.want.title = sv.note || "";
  }
  setClass(refs.state, "state " + row.state);
  setText(refs.state, STATE_WORDS[row.state] || row.state);
  refs.state.title = STATE_HELP[row.state] || "";
  setText(refs.note, row.note || "");
}

function filters() {
  return {
    text: $("filter").value.trim().toLowerCase(),
    state: $("f-state").value, team: $("f-team").value, policy: $("f-policy").value, system: $("f-system").value,
    group: $("group").value, sort: $("sort").value,
  };
}

function matches(row, f) {
  if (f.state) {
    if (f.system) { const sv = row.systems[f.system]; if (!sv || sv.state !== f.state) return false; }
    else if (row.state !== f.state) return false;
  } else if (f.system && !row.systems[f.system]) return false;
  if (f.team && !(row.teams || []).includes(f.team)) return false;
  if (f.policy && row.policy !== f.policy) return false;
  if (f.text) {
    const hay = [row.email, row.policy, ...(row.teams || []), ...Object.values(row.systems || {}).map((s) => s.observed)].join(" ").toLowerCase();
    if (!hay.includes(f.text)) return false;
  }
  return true;
}

function oldestSince(row) {
  let t = Infinity;
  for (const sv of Object.values(row.systems || {})) if (sv.observed_since) t = Math.min(t, new Date(sv.observed_since).getTime());
  return t;
}

function groupKeys(row, f) {
  switch (f.group) {
    case "team": return (row.teams && row.teams.length) ? row.teams : ["no team"];
    case "policy": return [row.policy || "no policy"];
    case "state": return [STATE_WORDS[row.state]];
    case "system": {
      const sys = f.system || (board.systems[0] && board.systems[0].name);
      const sv = row.systems[sys];
      return [systemTitle(sys) + ": " + (sv && sv.observed ? sv.observed : "not seen")];
    }
  }
  return [""];
}

// layout places the existing rows in order (and group headers between them) without rebuilding
// them; it moves only the rows whose position changed.
function layout() {
  const f = filters();
  const rows = [...board.rows.values()].filter((r) => matches(r, f));
  const bySort = {
    agent: (a, b) => a.email.localeCompare(b.email),
    state: (a, b) => STATES.indexOf(a.state) - STATES.indexOf(b.state) || a.email.localeCompare(b.email),
    since: (a, b) => oldestSince(a) - oldestSince(b) || a.email.localeCompare(b.email),
  }[f.sort] || ((a, b) => a.email.localeCompare(b.email));
  rows.sort(bySort);
  const order = [];
  if (f.group) {
    const groups = new Map();
    for (const r of rows) for (const k of groupKeys(r, f)) { if (!groups.has(k)) groups.set(k, []); groups.get(k).push(r); }
    const keys = [...groups.keys()].sort((a, b) => f.group === "state"
      ? STATES.indexOf(Object.keys(STATE_WORDS).find((s) => STATE_WORDS[s] === a)) - STATES.indexOf(Object.keys(STATE_WORDS).find((s) => STATE_WORDS[s] === b))
      : a.localeCompare(b));
    for (const k of keys) {
      order.push(groupRow(k, groups.get(k).length));
      for (const r of groups.get(k)) order.push(f.group === "team" && (r.teams || []).length > 1 ? cloneRow(r, k) : board.trs.get(r.email).tr);
    }
  } else {
    for (const r of rows) order.push(board.trs.get(r.email).tr);
  }
  const body = $("board-body");
  let cur = body.firstChild;
  for (const node of order) {
    if (node === cur) { cur = cur.nextSibling; continue; }
    body.insertBefore(node, cur);
  }
  while (cur) { const next = cur.nextSibling; cur.remove(); cur = next; }
  $("board-empty").hidden = rows.length > 0 || !board.loaded;
  renderSummary();
}

const groupRows = new Map();
function groupRow(key, n) {
  let tr = groupRows.get(key);
  if (!tr) {
    tr = el("tr", { class: "group" }, el("td", { colspan: String(board.systems.length + 3) }));
    groupRows.set(key, tr);
  }
  setText(tr.firstChild, key + " (" + n + ")");
  return tr;
}

// cloneRow shows an agent of several teams under each extra team; clones are rebuilt per layout.
const clones = new Map();
function cloneRow(row, key) {
  const id = row.email + "\u0000" + key;
  let refs = clones.get(id);
  if (!refs) { refs = makeRow(row.email); clones.set(id, refs); }
  updateRow(refs, row);
  return refs.tr;
}

function setRow(row, flash) {
  let refs = board.trs.get(row.email);
  if (!refs) { refs = makeRow(row.email); board.trs.set(row.email, refs); }
  const before = board.rows.get(row.email);
  board.rows.set(row.email, row);
  updateRow(refs, row);
  for (const [id, c] of clones) if (id.startsWith(row.email + "\u0000")) updateRow(c, row);
  if (flash && before && JSON.stringify(before.systems) !== JSON.stringify(row.systems)) {
    refs.tr.classList.remove("flash");
    void refs.tr.offsetWidth;
    refs.tr.classList.add("flash");
  }
}

function tally(rows, pick) {
  const n = Object.fromEntries(STATES.map((s) => [s, 0]));
  let total = 0;
  for (const r of rows) { const s = pick(r); if (s) { n[s] = (n[s] || 0) + 1; total++; } }
  return { n, total };
}

function renderSummary() {
  const rows = [...board.rows.values()];
  const box = $("summary");
  const cards = [];
  const f = filters();
  const card = (title, sub, t, system) => {
    const buttons = STATES.filter((s) => s !== "unknown" || t.n.unknown).map((s) => {
      const pressed = f.state === s && (f.system || "") === (system || "");
      return el("button", {
        type: "button", class: "state " + s, "aria-pressed": String(pressed), "data-state": s, "data-system": system || "",
        title: (system ? systemTitle(system) + ": " : "") + STATE_HELP[s] + " — click to filter",
        onclick: () => {
          const on = !pressed;
          $("f-state").value = on ? s : "";
          $("f-system").value = on ? system || "" : "";
          layout();
        },
      }, el("span", { class: "n" }, String(t.n[s] || 0)), STATE_WORDS[s]);
    });
    return el("div", { class: "sum", "data-summary": system || "all" },
      el("h3", {}, title, " ", el("span", { class: "sub" }, sub)), el("div", { class: "tally" }, buttons));
  };
  const all = tally(rows, (r) => r.state);
  cards.push(card("All agents", all.total + " agents", all, ""));
  for (const s of board.systems) {
    const t = tally(rows, (r) => r.systems[s.name] && r.systems[s.name].state);
    cards.push(card(s.title, "system " + s.name + " · " + t.total + " accounts", t, s.name));
  }
  box.replaceChildren(...cards);
}

async function loadBoard() {
  const b = await api("/api/v1/board");
  showNotice("");
  const systemsChanged = JSON.stringify(b.systems) !== JSON.stringify(board.systems);
  board.systems = b.systems;
  board.teams = b.teams;
  board.policies = b.policies;
  if (systemsChanged) {
    buildHead();
    board.trs.clear();
    clones.clear();
    groupRows.clear();
    $("board-body").replaceChildren();
  }
  fillSelect("f-state", STATES, STATE_WORDS);
  fillSelect("f-team", b.teams);
  fillSelect("f-policy", b.policies);
  fillSelect("f-system", b.systems.map((s) => s.name), Object.fromEntries(b.systems.map((s) => [s.name, s.title + " (" + s.name + ")"])));
  const seen = new Set();
  for (const r of b.agents) { setRow(r, false); seen.add(r.email); }
  for (const email of [...board.rows.keys()]) if (!seen.has(email)) { board.rows.delete(email); board.trs.delete(email); }
  board.loaded = true;
  layout();
}

// Live updates: decisions name an agent; its row is fetched again (at most once per 300 ms per
// agent) and patched in place.
const dirty = new Set();
let flushTimer = null;
function agentChanged(email) {
  dirty.add(email);
  if (!flushTimer) flushTimer = setTimeout(flushDirty, 300);
}
async function flushDirty() {
  flushTimer = null;
  const emails = [...dirty];
  dirty.clear();
  let changed = false;
  await Promise.all(emails.map(async (email) => {
    try {
      const row = await api("/api/v1/agents/" + encodeURIComponent(email));
      const isNew = !board.rows.has(email);
      setRow(row, true);
      changed = changed || isNew;
      if (ui.view === "agent" && ui.agent === email) renderAgentHead(row);
    } catch (_) { /* the next decision or reload retries */ }
  }));
  if (changed || filters().sort !== "agent" || filters().group || filters().state) layout(); else renderSummary();
  if (ui.view === "writes") scheduleWrites();
}

// ---- health ---------------------------------------------------------------------------------

async function loadHealth() {
  let h;
  try { h = await api("/api/v1/systems"); } catch (err) { apiFailed(err); return; }
  $("health-ready").textContent = h.ready ? "The service is ready: it has loaded its state and the systems' accounts."
    : "The service is not ready yet: " + h.reason + ".";
  const dot = $("nav-health");
  const bad = h.systems.filter((s) => s.state === "disconnected").length;
  dot.className = "dot " + (bad ? "bad" : h.systems.every((s) => s.state === "connected") ? "ok" : "warn");
  dot.title = bad ? bad + " system(s) disconnected" : "";
  if (ui.view !== "health") return;
  const cards = h.systems.map((s) => {
    const rows = [
      ["Connection", s.state === "connected" ? "connected" : s.state === "disconnected" ? "disconnected" : "not known"],
      ["Why", s.reason || "—"],
      ["Last event", s.last_event ? ago(s.last_event) + " (" + local(s.last_event) + ")" : "none since the service started"],
      ["Watch errors", s.watch_errors ? s.watch_errors + " — last " + ago(s.last_error_at) + ": " + s.last_error : "none"],
    ];
    if (s.rate_limit) rows.push(["Write budget", s.rate_limit.per_second + " writes/s, bursts of " + s.rate_limit.burst +
      (s.rate_limit.available != null ? " (" + Math.floor(s.rate_limit.available) + " available now)" : "")]);
    if (s.token_expiry) rows.push(["Access token", "expires " + local(s.token_expiry)]);
    if (s.bridges) rows.push(["Agent consoles", s.bridges.connected + " of " + s.bridges.agents + " connected through the bridge"]);
    return el("article", { class: "card " + s.state, "data-system": s.name },
      el("h3", {}, s.title), el("div", { class: "kind" }, "system " + s.name + " · kind " + s.kind),
      el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  });
  $("health-cards").replaceChildren(...cards);
}

// ---- writes ---------------------------------------------------------------------------------

let writesTimer = null;
function scheduleWrites() { if (!writesTimer) writesTimer = setTimeout(() => { writesTimer = null; loadWrites(); }, 800); }

async function loadWrites() {
  let w;
  try { w = await api("/api/v1/writes"); } catch (err) { apiFailed(err); return; }
  const badge = $("nav-writes");
  const n = w.counts.failed + w.counts.deferred;
  badge.hidden = n === 0;
  badge.textContent = String(n);
  badge.title = w.counts.failed + " failed, " + w.counts.deferred + " deferred";
  if (ui.view !== "writes") return;
  const rows = w.writes.map((x) => {
    const actions = el("td", {});
    if (x.state !== "drifting") actions.append(el("button", { type: "button", "data-action": "retry", onclick: (ev) => act(ev.target, "retry", x.agent, x.system) }, "Retry"), " ");
    actions.append(el("button", { type: "button", "data-action": "resync", onclick: (ev) => act(ev.target, "resync", x.agent) }, "Resync"));
    return el("tr", { "data-agent": x.agent, "data-system": x.system },
      el("td", { class: "agent" }, el("a", { href: "#/agent/" + encodeURIComponent(x.agent) }, x.agent)),
      el("td", {}, systemTitle(x.system) + " (" + x.system + ")"),
      el("td", {}, x.status), el("td", {}, x.observed || "—"), el("td", {}, stateBadge(x.state)),
      el("td", { class: "note" }, x.reason), el("td", { title: local(x.updated_at) }, ago(x.updated_at)), actions);
  });
  $("writes-body").replaceChildren(...rows);
  $("writes-empty").hidden = rows.length > 0;
}

async function act(button, what, email, system) {
  button.disabled = true;
  const status = ui.view === "agent" ? $("agent-meta") : $("writes-status");
  try {
    if (what === "retry") {
      const r = await api("/api/v1/agents/" + encodeURIComponent(email) + "/systems/" + encodeURIComponent(system) + "/retry", "POST");
      status.textContent = r.retried ? "Writing " + email + "'s " + system + " status again." : "Nothing to retry for " + email + " on " + system + ".";
    } else {
      const r = await api("/api/v1/agents/" + encodeURIComponent(email) + "/resync", "POST");
      status.textContent = "Read " + email + "'s status from " + (r.read.length ? r.read.join(", ") : "no system (none can be read)") + ".";
    }
  } catch (err) {
    status.textContent = (what === "retry" ? "Retry" : "Resync") + " failed: " + err.message;
  } finally {
    button.disabled = false;
    agentChanged(email);
  }
}

// ---- policy ---------------------------------------------------------------------------------

function ruleId(name) { return "rule-" + String(name).replace(/ restore$/, "").replace(/[^A-Za-z0-9]+/g, "-"); }

async function loadPolicy() {
  let p;
  try { p = await api("/api/v1/policy"); } catch (err) { apiFailed(err); return; }
  const out = [];
  if (!p.loaded) { $("policy-body").replaceChildren(el("p", { class: "muted" }, "This service has no policy to show.")); return; }
  out.push(el("div", { class: "policy-meta" },
    el("span", { class: "valid" }, "✓ valid"), el("span", {}, p.summary),
    el("span", { class: "muted" }, "from " + p.files.join(", "))));
  if (p.warnings.length) {
    out.push(el("h3", {}, "Worth knowing"), el("ul", { class: "warnings" }, p.warnings.map((w) => el("li", {}, w))));
  }
  out.push(el("h3", {}, "Systems"));
  out.push(el("div", { class: "cards" }, p.systems.map((s) => el("article", { class: "card", id: "system-" + s.name },
    el("h3", {}, s.title), el("div", { class: "kind" }, "system " + s.name + " · kind " + s.kind + (s.accounts ? " · " + s.accounts + " inline accounts" : "")),
    el("p", {}, s.statuses.length ? s.statuses.map((st) => [chip(st.name, st.category), " "]) : el("span", { class: "muted" }, "catalog pulled from the vendor at start")),
  ))));
  for (const pol of p.policies) {
    const sec = el("section", { class: "pol", id: "policy-" + pol.name.replace(/[^A-Za-z0-9]+/g, "-") },
      el("h3", {}, "Policy " + pol.name),
      el("p", { class: "hint" }, "Applies to " + pol.applies_to + "." + (pol.master ? " " + pol.master + " wins a tie." : "") +
        (pol.debounce ? " Changes settle for " + pol.debounce + " before they are written." : "") +
        (pol.extension ? " Asks " + pol.extension + " for each change." : "")));
    if (pol.maps.length) {
      sec.append(el("h4", {}, "Maps: a status on one side means a status on the other"));
      sec.append(el("div", { class: "maps" }, pol.maps.map((m) => el("div", { id: ruleId(m.name) },
        el("table", {}, el("caption", { class: "muted" }, systemTitle(m.from) + " → " + systemTitle(m.to)),
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "when " + m.from + " shows"), el("th", { scope: "col" }, m.to + " shows"))),
          el("tbody", {}, m.entries.map((e) => el("tr", {}, el("td", {}, chip(e.from, e.from_category)), el("td", {}, chip(e.to, e.to_category)))),
            m.unmapped.length ? el("tr", {}, el("td", { class: "muted", colspan: "2" }, "no change for: " + m.unmapped.join(", "))) : null))))));
    }
    if (pol.rules.length) {
      sec.append(el("h4", {}, "Rules, in order"));
      sec.append(el("ol", {}, pol.rules.map((r) => el("li", { id: ruleId(r.name) },
        el("b", {}, r.name.split("/rule ").pop()), " — on ", el("code", {}, r.on), r.when ? [" when ", el("code", {}, r.when)] : " always",
        ", set ", Object.entries(r.set).map(([k, v]) => k + " to " + v).join(", ")))));
    }
    if (pol.activities.length) {
      sec.append(el("h4", {}, "Activities: a status while something lasts, then back"));
      sec.append(el("ul", {}, pol.activities.map((a) => el("li", { id: ruleId(a.name) },
        el("b", {}, a.name.split("/activity ").pop()), " — from ", el("code", {}, a.start), " to ", el("code", {}, a.end),
        a.match.length ? ", when " + a.match.join(" and ") : "",
        ": show ", Object.entries(a.set).map(([k, v]) => k + " " + v).join(", "), ", then restore what was there."))));
    }
    out.push(sec);
  }
  $("policy-body").replaceChildren(...out);
  highlightTarget();
}

function highlightTarget() {
  const m = location.hash.match(/^#\/policy\/(.+)$/);
  document.querySelectorAll(".pol .target").forEach((n) => n.classList.remove("target"));
  if (!m) return;
  const node = document.getElementById(decodeURIComponent(m[1]));
  if (node) { node.classList.add("target"); node.scrollIntoView({ block: "center" }); }
}

// ---- agent ----------------------------------------------------------------------------------

const KIND_WORDS = {
  event: "Change seen", unmapped: "No rule for it", intent: "Decided", write: "Writing", write_ok: "Written",
  echo: "Confirmed", deferred: "Waiting", retry: "Will retry", failed: "Write failed",
  unchanged: "Same status again", late: "Late news", superseded: "Overtaken", held: "Held by an activity",
  reclassified: "A person's change after all", correction: "Written back", future_dated: "Dated in the future",
  missed: "Changed while unobserved",
  activity: "Activity", activity_start: "Activity started", activity_end: "Activity ended",
  activity_released: "Changed by hand during an activity", restore: "Back to before", unknown_agent: "Unknown person",
  unknown_status: "Unknown status", unknown_system: "Unknown system", no_account: "No account", state_ended: "System state ended",
  retry_requested: "Retry asked for", extension: "Extension answered", extension_failed: "Extension did not answer",
};

// plain turns engine detail lines into words ("queueId not_exists is false" → "queueId is present").
function plain(text) {
  return String(text)
    .replace(/^match: (\S+) not_exists is true$/, "$1 is absent")
    .replace(/^match: (\S+) not_exists is false \(\S+ is (.*)\)$/, "$1 is present ($2), so it does not apply")
    .replace(/^match: (\S+) exists is true$/, "$1 is present")
    .replace(/^match: (\S+) exists is false$/, "$1 is absent, so it does not apply")
    .replace(/^match: (\S+) (eq|ne|in) (.*) is (true|false)(.*)$/, (_, p, op, v, ok, rest) =>
      p + ({ eq: " is ", ne: " is not ", in: " is one of " })[op] + v + (ok === "true" ? "" : ": no") + rest)
    .replace(/^start (\S+)\.(\S+): every match test holds$/, (_, s, t) => s + " " + t.replace(/_/g, " ") + ": every condition holds")
    .replace(/^end (\S+)\.(\S+): every match test holds$/, (_, s, t) => s + " " + t.replace(/_/g, " ") + ": every condition holds")
    .replace(/^(start|end) (\S+)\.(\S+): no match tests$/, (_, w, s, t) => s + " " + t.replace(/_/g, " "))
    .replace(/^on (\S+): the event is another type$/, "listens for $1, not this event")
    .replace(/^no mapping for (.*)$/, "the map has no line for $1")
    .replace(/ -> /g, " → ")
    .replace(/\b(\w+)_(\w+)\b/g, (m) => (/^(status|conversation|work|new|old|previous)_/.test(m) ? m.replace(/_/g, " ") : m));
}

function ruleLink(rule) {
  if (!rule || rule === "manual change") return rule ? el("span", { class: "muted" }, "a person's change") : null;
  const short = rule.replace(/^[^/]+\//, "").replace(/ -> /g, " → ");
  return el("a", { href: "#/policy/" + ruleId(rule), title: "see " + rule + " in the policy" }, short);
}

function stepItem(st, isNew) {
  const what = KIND_WORDS[st.kind] || st.kind.replace(/_/g, " ");
  const li = el("li", { class: "k-" + st.kind + (isNew ? " new" : ""), "data-kind": st.kind, "data-seq": String(st.seq || "") },
    el("span", { class: "what" }, what), plain(st.summary),
    el("span", { class: "when", title: local(st.at), "data-at": st.at }, localTime(st.at) + " · " + ago(st.at)));
  const link = ruleLink(st.rule);
  if (link) li.append(el("div", { class: "rule" }, "by ", link));
  const details = (st.details || []).slice().sort((a, b) => (b.startsWith("✓") ? 1 : 0) - (a.startsWith("✓") ? 1 : 0));
  if (details.length) {
    li.append(el("ul", {}, details.map((d) => {
      const m = d.match(/^([✓·]) ([^:]+): (.*)$/);
      if (!m) return el("li", {}, plain(d));
      return el("li", {}, m[1] === "✓" ? "applies: " : "does not apply: ", ruleLink(m[2]), " — ", plain(m[3]));
    })));
  }
  return li;
}

function renderAgentHead(row) {
  $("agent-title").textContent = row.email;
  const badge = $("agent-state");
  badge.className = "state " + row.state;
  badge.textContent = STATE_WORDS[row.state] || row.state;
  badge.title = STATE_HELP[row.state] || "";
  $("agent-meta").textContent = [(row.teams || []).length ? "teams " + row.teams.join(", ") : "no team",
    row.policy ? "policy " + row.policy : "no policy applies", row.note || ""].filter(Boolean).join(" · ");
  const cards = board.systems.map((s) => {
    const sv = row.systems[s.name];
    if (!sv) return el("article", { class: "card unknown" }, el("h3", {}, s.title), el("p", { class: "muted" }, "no account in " + s.name));
    const rows = [["Shows", chip(sv.observed, sv.category)], ["Since", sv.observed_since ? duration(sv.observed_since) + " (" + local(sv.observed_since) + ")" : "—"],
      ["Should show", sv.desired || "—"], ["State", stateBadge(sv.state)]];
    if (sv.note) rows.push(["Why", sv.note]);
    if (sv.account) rows.push(["Account", sv.account]);
    const card = el("article", { class: "card", "data-system": s.name }, el("h3", {}, s.title),
      el("div", { class: "kind" }, "system " + s.name), el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
    if (sv.state === "failed" || sv.state === "deferred") {
      card.append(el("p", {}, el("button", { type: "button", "data-action": "retry", onclick: (ev) => act(ev.target, "retry", row.email, s.name) }, "Retry now")));
    }
    return card;
  });
  for (const a of row.activities || []) {
    cards.push(el("article", { class: "card" }, el("h3", {}, "Activity"), el("p", {}, ruleLink(a.name), " since " + ago(a.since) + " on " + a.systems.join(", "))));
  }
  $("agent-systems").replaceChildren(...cards);
}

const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) if (c != null) e.append(c);
  return e;
}

// Light fills keep the dark status names on them readable.
const CAT_FILL = {
  available: "#9fdcb7", on_queue: "#8fd3a9", busy: "#f5aaa4", away: "#f8d58a", break: "#f8d58a", meal: "#f1c66f",
  meeting: "#b7c1f5", training: "#cdbcf5", offline: "#d3d8de", system: "#d8c4f0",
};

async function loadHistory(email) {
  let h;
  try { h = await api("/api/v1/agents/" + encodeURIComponent(email) + "/history"); } catch (err) { $("agent-history").textContent = err.message; return; }
  if (ui.agent !== email) return;
  const box = $("agent-history");
  if (!h.segments.length) { box.replaceChildren(el("p", { class: "muted" }, "No status recorded yet.")); return; }
  const now = new Date(h.at).getTime();
  const start = Math.min(...h.segments.map((s) => new Date(s.from).getTime()));
  const span = Math.max(now - start, 60000);
  const W = Math.max(box.clientWidth - 20, 640), left = 180, right = 10, rowH = 28, top = 6;
  const x = (t) => left + ((t - start) / span) * (W - left - right);
  const systems = h.systems.filter((s) => h.segments.some((g) => g.system === s.name));
  const H = top + systems.length * rowH + 24;
  const chart = svg("svg", { width: W, height: H, role: "img", "aria-label": "Statuses over time per system" });
  systems.forEach((s, i) => {
    const y = top + i * rowH;
    chart.append(svg("text", { x: 4, y: y + 18 }, document.createTextNode(s.title)));
    for (const g of h.segments.filter((g) => g.system === s.name)) {
      const a = new Date(g.from).getTime(), b = g.to ? new Date(g.to).getTime() : now;
      const wpx = Math.max(x(b) - x(a), 1.5);
      const r = svg("rect", { class: "seg", x: x(a), y: y + 3, width: wpx, height: rowH - 8, rx: 2, fill: CAT_FILL[g.category] || "#b8c0c8" },
        svg("title", {}, document.createTextNode(`${s.title}: ${g.status} from ${localTime(g.from)}${g.to ? " to " + localTime(g.to) : " until now"}`)));
      chart.append(r);
      if (wpx > 60) chart.append(svg("text", { x: x(a) + 4, y: y + 18 }, document.createTextNode(g.status)));
    }
  });
  const axis = svg("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const t = start + (span * i) / 4;
    axis.append(svg("text", { x: Math.min(x(t), W - 60), y: H - 6 }, document.createTextNode(localTime(t))));
  }
  chart.append(axis);
  const cats = [...new Set(h.segments.map((g) => g.category).filter(Boolean))];
  box.replaceChildren(chart, el("div", { class: "legend" }, cats.map((c) => chip(c.replace("_", " "), c))));
}

let historyTimer = null;
async function openAgent(email) {
  ui.agent = email;
  $("agent-title").textContent = email;
  $("agent-steps").replaceChildren(el("li", { class: "muted" }, "Loading…"));
  const row = board.rows.get(email);
  if (row) renderAgentHead(row);
  try {
    const [fresh, body] = await Promise.all([
      api("/api/v1/agents/" + encodeURIComponent(email)),
      api("/api/v1/agents/" + encodeURIComponent(email) + "/explain?limit=300"),
    ]);
    if (ui.agent !== email) return;
    setRow(fresh, false);
    renderAgentHead(fresh);
    const steps = body.steps.slice().reverse().map((s) => stepItem(s, false));
    $("agent-steps").replaceChildren(...(steps.length ? steps : [el("li", { class: "muted" }, "No decisions yet.")]));
  } catch (err) {
    $("agent-steps").replaceChildren(el("li", {}, err.message));
  }
  loadHistory(email);
}

// ---- live stream ----------------------------------------------------------------------------

function onDecision(d) {
  agentChanged(d.agent);
  if (ui.view === "agent" && d.agent === ui.agent) {
    const list = $("agent-steps");
    const first = list.firstChild;
    if (first && first.classList.contains("muted")) list.replaceChildren();
    list.prepend(stepItem(d, true));
    clearTimeout(historyTimer);
    historyTimer = setTimeout(() => loadHistory(d.agent), 1000);
  }
}

function setLive(on) {
  $("live").textContent = on ? "live" : "reconnecting…";
  $("live").className = "live " + (on ? "on" : "off");
}

// stream reads the SSE endpoint with fetch, which, unlike EventSource, can send the token.
async function stream() {
  const ctl = new AbortController();
  ui.stream = ctl;
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
  if (ctl.signal.aborted) return;
  setTimeout(async () => { try { await loadBoard(); } catch (err) { apiFailed(err); } stream(); }, 3000);
}

// ---- routing and keys -----------------------------------------------------------------------

function route() {
  const h = location.hash;
  let view = "board", arg = null;
  let m;
  if ((m = h.match(/^#\/agent\/(.+)$/))) { view = "agent"; arg = decodeURIComponent(m[1]); }
  else if ((m = h.match(/^#\/(health|writes|policy)(?:\/(.*))?$/))) { view = m[1]; }
  else if ((m = h.match(/^#agent=(.+)$/))) { view = "agent"; arg = decodeURIComponent(m[1]); }
  ui.view = view;
  for (const v of ["board", "health", "writes", "policy", "agent"]) $("view-" + v).hidden = v !== view;
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.nav === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  document.title = (view === "agent" ? arg : view[0].toUpperCase() + view.slice(1)) + " · omnipresence";
  if (view === "health") loadHealth();
  if (view === "writes") loadWrites();
  if (view === "policy") { if ($("policy-body").childElementCount) highlightTarget(); else loadPolicy(); }
  if (view === "agent") openAgent(arg); else ui.agent = null;
}

let pendingG = false;
function onKey(ev) {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(ev.target.tagName);
  if (ev.key === "Escape") {
    if (typing) { ev.target.blur(); return; }
    if (ui.view === "agent") { history.length > 1 ? history.back() : (location.hash = "#/board"); }
    return;
  }
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === "/") { ev.preventDefault(); location.hash = "#/board"; $("filter").focus(); return; }
  if (pendingG) {
    pendingG = false;
    const to = { b: "board", s: "health", w: "writes", p: "policy" }[ev.key];
    if (to) { location.hash = "#/" + to; $("main").focus(); }
    return;
  }
  if (ev.key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1500); }
}

document.addEventListener("DOMContentLoaded", async () => {
  takeTokenFromFragment();
  for (const id of ["filter", "f-state", "f-team", "f-policy", "f-system", "group", "sort"]) {
    $(id).addEventListener(id === "filter" ? "input" : "change", layout);
  }
  $("agent-resync").addEventListener("click", (ev) => ui.agent && act(ev.target, "resync", ui.agent));
  $("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    if (ui.stream) ui.stream.abort();
    try { await loadBoard(); route(); stream(); } catch (err) { apiFailed(err); }
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", onKey);
  // Times shown as "for 5m" and "2 min ago" move on by themselves.
  setInterval(() => {
    for (const [email, refs] of board.trs) {
      const row = board.rows.get(email);
      for (const s of board.systems) {
        const sv = row && row.systems[s.name];
        if (sv && sv.observed_since) setText(refs.cells[s.name].since, duration(sv.observed_since));
      }
    }
    document.querySelectorAll(".timeline .when").forEach((n) => {
      if (n.dataset.at) setText(n, n.textContent.split(" · ")[0] + " · " + ago(n.dataset.at));
    });
  }, 15000);
  setInterval(() => { loadHealth(); if (ui.view !== "writes") loadWrites(); }, 5000);
  try {
    await loadBoard();
  } catch (err) {
    apiFailed(err);
    route();
    return;
  }
  route();
  loadHealth();
  loadWrites();
  stream();
});
