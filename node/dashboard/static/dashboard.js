// The owner's dashboard. Plain JS, no build step, no external code.
//
// Everything other characters wrote (names, descriptions, first lines, speech, summaries)
// is untrusted: it only ever enters the page as text (textContent / text nodes built by
// el() below), never as HTML. The access token comes from this page's own URL and goes
// out in a header (a query parameter for the live-log WebSocket, which cannot carry one).
"use strict";

(() => {
  const TOKEN = new URLSearchParams(location.search).get("token") || "";
  const STATUS_EVERY_MS = 5000;
  const DIRECTORY_EVERY_MS = 10000;
  const LIVE_MAX_LINES = 500;
  const LIVE_RETRY_MAX_MS = 15000;
  const MEMORY_REFRESH_DELAY_MS = 800;
  const APPROVALS_EVERY_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const names = new Map(); // PeerID → name, from the directory (for the live log)
  let selfId = "";
  let selfName = "me";
  let openVisit = null;

  // -- building DOM from untrusted text ---------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
    }
    return node;
  }

  function when(ms) {
    if (ms === null || ms === undefined) return "–";
    return new Date(ms).toLocaleString();
  }

  function ago(ms) {
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  function short(text, max) {
    const t = String(text);
    return t.length > max ? `${t.slice(0, max - 1)}…` : t;
  }

  function nameOf(peerId) {
    if (peerId === selfId) return selfName;
    return names.get(peerId) || `${String(peerId).slice(0, 12)}…`;
  }

  // -- talking to the node ------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { "X-Roomverse-Token": TOKEN }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = {};
    try {
      data = await response.json();
    } catch (_) {
      data = { error: response.statusText };
    }
    if (!response.ok) throw new ApiError(response.status, data.error || `HTTP ${response.status}`);
    return data;
  }

  function notice(text, isError) {
    const box = $("notice");
    box.textContent = text;
    box.classList.toggle("error", Boolean(isError));
  }

  function failed(err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      notice(`${err.message}`, true);
    } else {
      notice(`Could not reach the node: ${err.message}`, true);
    }
  }

  // -- tabs ---------------------------------------------------------------------------------

  const loaders = {
    status: () => refreshStatus(),
    visits: () => refreshVisits(),
    relations: () => refreshRelations(),
    directory: () => refreshDirectory(),
    souvenirs: () => refreshSouvenirs(),
    live: async () => {},
  };
  let currentTab = "status";

  function showTab(name) {
    currentTab = name;
    for (const button of document.querySelectorAll(".tabs button")) {
      if (button.dataset.tab === name) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    for (const section of document.querySelectorAll("main > section")) {
      section.hidden = section.id !== `tab-${name}`;
    }
    loaders[name]().catch(failed);
  }

  // -- status -------------------------------------------------------------------------------

  function fact(list, label, value) {
    const dd = el("dd", { text: value });
    list.append(el("dt", { text: label }), dd);
    return dd;
  }

  function showOwnStatus(status) {
    const pill = $("own-status");
    pill.textContent = status;
    pill.dataset.status = status;
    for (const button of document.querySelectorAll(".switch button")) {
      button.setAttribute("aria-pressed", String(button.dataset.status === status));
    }
  }

  async function refreshStatus() {
    const s = await api("GET", "/api/status");
    selfId = s.peer_id;
    selfName = s.name;
    $("char-name").textContent = s.name;
    document.title = `${s.name} · RoomVerse`;
    showOwnStatus(s.own_status);

    const agent = s.agent || {};
    const budget = (agent.engines && agent.engines.budget) || null;
    const list = $("status-list");
    list.replaceChildren();
    fact(list, "Status", s.own_status);
    fact(list, "PeerID", s.peer_id);
    fact(list, "Peers", String(s.peers.length));
    fact(list, "mDNS (LAN discovery)", s.mdns ? "on" : "off");
    fact(list, "Budget tier", agent.tier || "–");
    if (budget) fact(list, "Tokens today", `${budget.spent} of ${budget.daily_tokens}`);
    if (agent.engine_problem) fact(list, "Engine problem", agent.engine_problem);
    if (agent.autonomy) {
      fact(list, "Visits others", agent.autonomy.enabled
        ? `yes, about every ${Math.round(agent.autonomy.interval_s / 60)} min` : "only when asked");
    }
    fact(list, "Directory", `${s.directory.present} present of ${s.directory.held} known`);
    if (s.clock) {
      // "your clock is 92 s ahead of your peers": what the owner of a wrong clock must read.
      const row = fact(list, "Clock", s.clock.message);
      if (s.clock.state === "ahead" || s.clock.state === "behind") row.classList.add("warn");
    }
    fact(list, "Envelopes received", String(s.received));

    showVisiting(s.visiting || []);

    const engines = $("engines");
    engines.replaceChildren();
    for (const e of (agent.engines && agent.engines.engines) || []) {
      engines.append(el("li", { text: `${e.name} · ${e.model || "default model"} · ${e.base_url} · ${e.breaker}` }));
    }
    if (!engines.children.length) engines.append(el("li", { class: "hint", text: "no engine ready" }));

    const peers = $("peers");
    peers.replaceChildren();
    for (const p of s.peers) peers.append(el("li", { title: p, text: `${nameOf(p)} · ${p}` }));
    if (!s.peers.length) peers.append(el("li", { class: "hint", text: "nobody yet" }));

    const addrs = $("addrs");
    addrs.replaceChildren();
    for (const a of s.addrs) addrs.append(el("li", { text: a }));
  }

  function showVisiting(visits) {
    const list = $("visiting");
    list.replaceChildren();
    for (const v of visits) {
      const who = v.role === "host" ? `${v.partner_name} is visiting` : `visiting ${v.partner_name}`;
      const end = el("button", {
        type: "button",
        class: "danger end-visit",
        "data-visit": v.visit,
        disabled: v.ending,
        onclick: () => endVisit(v, end).catch(failed),
      }, v.ending ? "Saying goodbye…" : "End visit");
      list.append(el("li", { class: "visiting", "data-visit": v.visit },
        el("div", { class: "head" },
          el("span", { class: "name", text: who }),
          el("span", { class: "when", text: `since ${when(v.started_ms)}` })),
        el("div", { class: "row" }, end)));
    }
    if (!visits.length) list.append(el("li", { class: "hint", text: "none right now" }));
  }

  async function endVisit(v, button) {
    // Polite, not a cut: the farewell goes out on the character's next turn.
    button.disabled = true;
    button.textContent = "Saying goodbye…";
    await api("POST", `/api/visits/${encodeURIComponent(v.visit)}/end`, {});
    notice(`${selfName} is saying goodbye to ${v.partner_name}.`);
  }

  async function setStatus(status) {
    const buttons = document.querySelectorAll(".switch button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const reply = await api("POST", "/api/status", { status });
      showOwnStatus(reply.status);
      notice(`Your character is now ${reply.status}.`);
    } catch (err) {
      failed(err);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // -- footprints (visits) and conversations --------------------------------------------------

  function outcomeText(outcome) {
    if (outcome === "left_message") return "left a message";
    if (outcome.startsWith("declined:")) return `declined (${outcome.slice(9)})`;
    return outcome.replaceAll("_", " ");
  }

  async function refreshVisits() {
    const { visits } = await api("GET", "/api/visits?limit=200");
    const list = $("visits");
    list.replaceChildren();
    for (const v of visits) {
      const who = v.role === "host" ? `${v.partner_name} came by` : `visited ${v.partner_name}`;
      list.append(el("li", {
        class: "visit",
        tabindex: "0",
        "data-visit": v.visit_id,
        onclick: () => openConversation(v.visit_id).catch(failed),
        onkeydown: (e) => { if (e.key === "Enter") openConversation(v.visit_id).catch(failed); },
      },
      el("div", { class: "head" },
        el("span", { class: "name", text: who }),
        el("span", { class: "when", text: when(v.started_ms) })),
      v.first_line ? el("p", { class: "quote", text: `“${short(v.first_line, 300)}”` }) : null,
      el("p", { class: "meta", text: `${outcomeText(v.outcome)} · ${v.turns} lines${v.private ? " · private" : ""}` })));
    }
    $("visits-empty").hidden = visits.length > 0;
  }

  async function openConversation(visitId) {
    const c = await api("GET", `/api/visits/${encodeURIComponent(visitId)}`);
    openVisit = visitId;
    const v = c.visit;
    $("conv-title").textContent = `${v.role === "host" ? "Visit from" : "Visit to"} ${v.partner_name}`;
    $("conv-meta").textContent = `${when(v.started_ms)} → ${when(v.ended_ms)} · ${outcomeText(v.outcome)} · ${v.partner_id}`;
    $("conv-summary").textContent = c.summary ? `Summary: ${c.summary}` : "";
    const talk = $("conv-messages");
    talk.replaceChildren();
    for (const m of c.messages) {
      const mine = m.speaker === c.self_id;
      talk.append(el("li", { class: mine ? "mine" : "" },
        el("span", { class: "speaker", text: `${mine ? c.self_name : v.partner_name} · ${when(m.ts_ms)}` }),
        el("span", { class: "text", text: m.text })));
    }
    if (!c.messages.length) talk.append(el("li", { class: "hint", text: "Nothing was said." }));
    $("visits").hidden = true;
    $("conversation").hidden = false;
  }

  function closeConversation() {
    openVisit = null;
    $("conversation").hidden = true;
    $("visits").hidden = false;
  }

  async function deleteOpenVisit() {
    if (!openVisit || !confirm("Forget this visit and its conversation? This cannot be undone.")) return;
    await api("DELETE", `/api/visits/${encodeURIComponent(openVisit)}`);
    notice("The visit was forgotten.");
    closeConversation();
    await refreshVisits();
  }

  // -- relations ------------------------------------------------------------------------------

  async function refreshRelations() {
    const { relations } = await api("GET", "/api/relations");
    const list = $("relations");
    list.replaceChildren();
    for (const r of relations) {
      const item = el("li", { class: "relation", "data-peer": r.partner_id },
        el("div", { class: "head" },
          el("span", { class: "name", text: r.partner_name }),
          el("span", { class: "when", text: r.last_visit_ms ? `last visit ${ago(r.last_visit_ms)}` : "" })),
        el("p", { class: "meta" },
          el("meter", { min: "0", max: "100", value: String(r.affinity), title: `affinity ${r.affinity}` }),
          ` ${r.affinity} · ${r.tier.replaceAll("_", " ")} · ${r.visit_count} visits (${r.completed_count} completed)`),
        el("div", { class: "row" },
          el("button", { type: "button", class: "edit", onclick: () => toggleEditor(item, r).catch(failed) }, "Summary & notes"),
          el("button", { type: "button", class: "danger forget", onclick: () => forget(r).catch(failed) }, "Forget")));
      list.append(item);
    }
    $("relations-empty").hidden = relations.length > 0;
  }

  async function toggleEditor(item, r) {
    const existing = item.querySelector(".editor");
    if (existing) {
      existing.remove();
      item.classList.remove("editing");
      return;
    }
    const { relation } = await api("GET", `/api/relations/${encodeURIComponent(r.partner_id)}`);
    const summary = el("textarea", { class: "summary", maxlength: "4000", id: `summary-${r.partner_id}` });
    summary.value = relation.summary;
    const notes = el("textarea", { class: "notes", maxlength: "4000", id: `notes-${r.partner_id}` });
    notes.value = relation.notes;
    const saved = el("span", { class: "saved", role: "status" });
    const save = el("button", { type: "button", class: "save" }, "Save");
    save.addEventListener("click", async () => {
      save.disabled = true;
      saved.textContent = "";
      try {
        const reply = await api("POST", `/api/relations/${encodeURIComponent(r.partner_id)}`,
          { summary: summary.value, notes: notes.value });
        // What was stored (personal data is redacted before it reaches the disk).
        summary.value = reply.relation.summary;
        notes.value = reply.relation.notes;
        saved.textContent = "Saved.";
      } catch (err) {
        failed(err);
      } finally {
        save.disabled = false;
      }
    });
    item.classList.add("editing");
    item.append(el("div", { class: "editor" },
      el("label", { for: summary.id, text: "What your character remembers (used in its next visit)" }), summary,
      el("label", { for: notes.id, text: "Your notes (never sent to anyone)" }), notes,
      el("div", { class: "row" }, save, saved)));
  }

  async function forget(r) {
    if (!confirm(`Forget everything about ${r.partner_name}? Affinity, summary and notes go.`)) return;
    await api("DELETE", `/api/relations/${encodeURIComponent(r.partner_id)}`);
    notice(`${r.partner_name} was forgotten.`);
    await refreshRelations();
  }

  // -- directory ------------------------------------------------------------------------------

  async function refreshDirectory() {
    const search = $("dir-search").value.trim();
    const query = search ? `?search=${encodeURIComponent(search)}` : "";
    const d = await api("GET", `/api/directory${query}`);
    const list = $("directory");
    list.replaceChildren();
    for (const e of d.entries) {
      names.set(e.peer_id, e.name);
      list.append(el("li", { "data-peer": e.peer_id },
        el("div", { class: "head" },
          el("span", { class: "name", text: e.self ? `${e.name} (you)` : e.name }),
          el("span", { class: "pill", "data-status": e.status, text: e.status })),
        e.description ? el("p", { class: "quote", text: e.description }) : null,
        el("p", { class: "meta", text: [e.vouched_by ? "legacy HTTP participant (via a bridge)" : "", e.tags.length ? `#${e.tags.join(" #")}` : "", `seen ${ago(e.learned_ms || e.last_seen_ms)}`].filter(Boolean).join(" · ") }),
        el("p", { class: "meta mono", text: e.peer_id })));
    }
    $("dir-summary").textContent = `${d.entries.length} shown · ${d.present} present of ${d.held} known`;
  }

  // -- souvenirs ------------------------------------------------------------------------------

  // A partner's call waiting for the owner: the arguments are shown as text (pretty JSON),
  // exactly what the tool will receive if approved.
  function approvalItem(call) {
    const decide = async (approve, buttons) => {
      buttons.forEach((b) => { b.disabled = true; });
      try {
        await api("POST", `/api/souvenirs/approvals/${encodeURIComponent(call.id)}`, { approve });
        notice(`${approve ? "Approved" : "Denied"}: ${call.caller_name}'s call to ${call.tool}.`);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) notice("That call is no longer waiting (it expired).", true);
        else failed(err);
      } finally {
        await refreshApprovals();
      }
    };
    const approve = el("button", { type: "button", class: "approve", "data-call": call.id }, "Approve");
    const deny = el("button", { type: "button", class: "danger deny", "data-call": call.id }, "Deny");
    approve.addEventListener("click", () => decide(true, [approve, deny]));
    deny.addEventListener("click", () => decide(false, [approve, deny]));
    return el("li", { class: "approval", "data-call": call.id },
      el("div", { class: "head" },
        el("span", { class: "name", text: `${call.caller_name} wants to run ${call.tool}` }),
        el("span", { class: "when", text: waitingText(call) })),
      el("p", { class: "meta", text: "with these arguments:" }),
      el("pre", { class: "args mono", text: JSON.stringify(call.arguments, null, 2) }),
      el("p", { class: "meta mono", text: `caller ${call.caller} · visit ${call.visit}` }),
      el("div", { class: "row" }, approve, deny));
  }

  function waitingText(call) {
    const left = Math.max(0, Math.round((call.expires_ms - Date.now()) / 1000));
    return `asked ${ago(call.asked_ms)} · denied in ${left} s unless you answer`;
  }

  let shownApprovals = "";
  let noSouvenirs = false; // a spectator (409): it lends nothing, so no polling

  async function refreshApprovals() {
    const { pending } = await api("GET", "/api/souvenirs/approvals");
    const badge = $("approvals-badge");
    badge.textContent = String(pending.length);
    badge.hidden = pending.length === 0;
    // Rebuilt only when the set of calls changes, so a button is never swapped under a click.
    const ids = pending.map((c) => c.id).join(",");
    if (ids === shownApprovals && $("approvals").children.length === pending.length) {
      pending.forEach((call, i) => {
        $("approvals").children[i].querySelector(".when").textContent = waitingText(call);
      });
      return;
    }
    shownApprovals = ids;
    $("approvals").replaceChildren(...pending.map(approvalItem));
    $("approvals-empty").hidden = pending.length > 0;
  }

  async function refreshSouvenirs() {
    const [lent, calls] = await Promise.all([
      api("GET", "/api/souvenirs"),
      api("GET", "/api/souvenirs/footprints?limit=50"),
      refreshApprovals(),
    ]);
    const list = $("lent");
    list.replaceChildren();
    for (const t of lent.lent) {
      list.append(el("li", { "data-tool": t.name },
        el("div", { class: "head" },
          el("span", { class: "name" }, t.name,
            el("span", { class: t.ask ? "tag ask" : "tag", text: t.ask ? "asks you first" : "lent freely" }),
            el("span", { class: "tag", text: t.read_only ? "read-only" : "can change things" })),
          el("span", { class: "when", text: `from ${t.plugin}` })),
        t.description ? el("p", { class: "meta", text: short(t.description, 400) }) : null));
    }
    $("lent-empty").hidden = lent.lent.length > 0;
    const c = lent.counters;
    $("plugins").textContent = [
      ...lent.plugins.map((p) => `${p.name}: ${p.state}${p.sandboxed === false ? " (unsandboxed)" : ""}`),
      `lent ${c.lent_ok} · refused ${c.lent_refused} · failed ${c.lent_failed}`,
      `borrowed ${c.borrowed_ok} · refused ${c.borrowed_refused} · failed ${c.borrowed_failed}`,
    ].join(" · ");
    const log = $("souvenir-calls");
    log.replaceChildren();
    for (const f of calls.footprints) {
      const ran = f.outcome === "ok" || f.outcome === "tool_error";
      log.append(el("li", { class: ran ? "call-ran" : "call-refused", "data-outcome": f.outcome },
        el("span", { class: "when", text: `${when(f.ts_ms)} · ` }), f.text));
    }
    $("souvenir-calls-empty").hidden = calls.footprints.length > 0;
  }

  // -- live log -------------------------------------------------------------------------------

  let lastLiveId = 0;
  let liveRetryMs = 1000;
  let memoryRefresh = null;

  function actionText(body, kind) {
    const target = body.to && String(body.to).startsWith("12D3KooW") ? nameOf(body.to) : body.to;
    const what = body.text || body.name || body.at || body.alt || "";
    return `${body.type || kind}${what ? `: ${what}` : ""}${target ? ` → ${target}` : ""}`;
  }

  function liveText(record) {
    const f = record.fields || {};
    const body = f.body || {};
    switch (record.event) {
      case "visit_line":
        return `${f.mine ? selfName : f.partner_name}: ${f.text}`;
      case "visit_started":
        return `${f.role === "host" ? "visit from" : "visiting"} ${f.partner_name || nameOf(f.partner)}${f.private ? " (private)" : ""}`;
      case "visit_ended":
        return `visit with ${nameOf(f.partner)} ended: ${outcomeText(String(f.outcome))}${f.reason ? ` (${String(f.reason).replaceAll("_", " ")})` : ""}, ${f.turns} lines`;
      case "visit_ending":
        return `ending the visit with ${nameOf(f.partner)} (you asked)`;
      case "message_left":
        return `${f.partner_name || nameOf(f.partner)} left a message (${f.reason})`;
      case "visit_declined":
        return `declined ${nameOf(f.partner)} (${f.reason})`;
      case "relation_updated":
        return `${nameOf(f.partner)}: affinity ${f.affinity} (${String(f.tier).replaceAll("_", " ")})`;
      case "souvenir_approval_asked":
        return `${nameOf(f.caller)} asks to run ${f.tool}: waiting for your answer (Souvenirs)`;
      case "souvenir_approval":
        return `${nameOf(f.caller)}'s call to ${f.tool}: ${f.decision}`;
      case "souvenir_call":
        return `${nameOf(f.caller)} called ${nameOf(f.lender)}'s ${f.tool}: ${String(f.outcome).replaceAll("_", " ")}`;
      case "action_sent":
        return `${selfName} ${actionText(body, f.kind)}`;
      case "action_received":
        return `${nameOf(f.from)} ${actionText(body, f.kind)}`;
      default:
        return Object.entries(f).map(([k, v]) => `${k}=${short(typeof v === "string" ? v : JSON.stringify(v), 120)}`).join(" ");
    }
  }

  function addLiveLine(record) {
    const log = $("live");
    let line;
    if (record.type === "gap") {
      line = el("li", { class: "gap", "data-group": "node" }, `${record.missed} events were missed here`);
    } else {
      line = el("li", { "data-group": record.group, "data-event": record.event },
        el("span", { class: "t", text: new Date(record.ts).toLocaleTimeString() }),
        el("span", { class: "ev", text: record.event }),
        short(liveText(record), 600));
      line.hidden = !groupShown(record.group);
    }
    log.prepend(line);
    while (log.children.length > LIVE_MAX_LINES) log.lastElementChild.remove();
  }

  function groupShown(group) {
    const box = document.querySelector(`.filters input[data-group="${group}"]`);
    return !box || box.checked;
  }

  function applyFilters() {
    for (const line of $("live").children) {
      if (line.dataset.group) line.hidden = !groupShown(line.dataset.group);
    }
  }

  function liveState(text) {
    $("live-state").textContent = text;
  }

  function memoryChanged() {
    // A visit moved on: footprints and relations are re-read, once, a moment later.
    if (memoryRefresh) return;
    memoryRefresh = setTimeout(() => {
      memoryRefresh = null;
      if (currentTab === "visits" && !openVisit) refreshVisits().catch(failed);
      // Never under the owner's fingers: an open editor keeps what they are typing.
      const editing = document.querySelector("li.relation.editing");
      if (currentTab === "relations" && !editing) refreshRelations().catch(failed);
    }, MEMORY_REFRESH_DELAY_MS);
  }

  function connectLive() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ token: TOKEN, since: String(lastLiveId) });
    const socket = new WebSocket(`${scheme}://${location.host}/api/live?${query}`);
    let closingReason = "";
    socket.addEventListener("open", () => {
      liveRetryMs = 1000;
      liveState("live");
    });
    socket.addEventListener("message", (message) => {
      let record;
      try {
        record = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      if (record.type === "closing") {
        closingReason = record.reason;
        return;
      }
      if (typeof record.id !== "number" || record.id <= lastLiveId) return; // seen already
      lastLiveId = record.id;
      addLiveLine(record);
      if (record.group === "visit") memoryChanged();
      if (record.event && record.event.startsWith("souvenir_")) {
        (currentTab === "souvenirs" ? refreshSouvenirs() : refreshApprovals()).catch(() => {});
      }
      const moves = record.event && (record.event.startsWith("peer_") || record.event.startsWith("visit_"));
      if (moves && record.event !== "visit_line" && currentTab === "status") {
        refreshStatus().catch(failed);
      }
    });
    socket.addEventListener("close", () => {
      liveState(closingReason ? `reconnecting (${closingReason})` : "reconnecting");
      setTimeout(connectLive, liveRetryMs);
      liveRetryMs = Math.min(liveRetryMs * 2, LIVE_RETRY_MAX_MS);
    });
  }

  // -- start ------------------------------------------------------------------------------------

  function start() {
    if (!TOKEN) {
      notice("This page needs its token: open the dashboard_ready URL printed by `roomverse node`.", true);
      return;
    }
    for (const button of document.querySelectorAll(".tabs button")) {
      button.addEventListener("click", () => showTab(button.dataset.tab));
    }
    for (const button of document.querySelectorAll(".switch button")) {
      button.addEventListener("click", () => setStatus(button.dataset.status));
    }
    for (const box of document.querySelectorAll(".filters input")) {
      box.addEventListener("change", applyFilters);
    }
    $("conv-close").addEventListener("click", closeConversation);
    $("conv-delete").addEventListener("click", () => deleteOpenVisit().catch(failed));
    let searchTimer = null;
    $("dir-search").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => refreshDirectory().catch(failed), 250);
    });
    setInterval(() => {
      // On every tab: the header's status pill stays true if the CLI changes it.
      if (!document.hidden) refreshStatus().catch(currentTab === "status" ? failed : () => {});
    }, STATUS_EVERY_MS);
    setInterval(() => {
      if (!document.hidden && currentTab === "directory") refreshDirectory().catch(failed);
    }, DIRECTORY_EVERY_MS);
    setInterval(() => {
      // On every tab: the badge says a partner is waiting for the owner's answer.
      if (document.hidden || noSouvenirs) return;
      const quiet = (err) => { noSouvenirs = err instanceof ApiError && err.status === 409; };
      if (currentTab === "souvenirs") refreshSouvenirs().catch(failed);
      else refreshApprovals().catch(quiet);
    }, APPROVALS_EVERY_MS);
    showTab("status");
    // Names first, so the live log's first lines say who rather than a PeerID.
    Promise.allSettled([refreshStatus(), refreshDirectory()]).then(connectLive);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
