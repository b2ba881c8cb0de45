/*
 * RoomVerse firehose viewer: a read-only view of the network's public actions.
 *
 * Everything that arrives from the network (names, speech, context, even PeerIDs) is
 * untrusted: it is only ever inserted with textContent / createElement, never as HTML,
 * and images become data: URLs only for the allow-listed image types.
 *
 * Protocol (see firehose/ws): each text frame holds one or more JSON objects, one per
 * line; the server sends hello, then events strictly increasing by cursor; `?cursor=N`
 * resumes inclusively. The page remembers the highest cursor it has
 * shown (also in sessionStorage, with the events, so a reload resumes where it stopped)
 * and ignores any cursor at or below it, so a resume never shows a duplicate.
 */
"use strict";

(() => {
  const STORE_KEY = "roomverse.firehose.v1";
  const HISTORY = 300; // events shown from before the page was opened (everyone's view)
  const MAX_ROWS = 1000; // event rows kept in the page; older ones are dropped
  const KEEP_ON_RELOAD = 300; // events kept in sessionStorage so a reload redraws them
  const MAX_KEPT_IMAGE_B64 = 48 * 1024; // bigger images are not kept across a reload
  const SAVE_DELAY_MS = 400;
  const DIRECTORY_REFRESH_MS = 15000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const MAX_FILTERS = 16; // the server refuses more (HTTP 400)
  const VISIT_PAIR_WINDOW_MS = 120000; // a move and the speech that follows it: one visit
  const MAX_NOTICES = 5;
  const STABLE_MS = 10000; // a connection that lived this long resets the backoff
  const MAX_HOOK_ENTRIES = 10000;
  const IMAGE_MIMES = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);
  const PRESENT = ["online", "away", "asleep"];
  const KINDS = ["action", "context"];
  const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
  const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{20,128}$/; // base58btc, as libp2p prints them
  const GESTURE_VERBS = {
    wave: "waves", bow: "bows", nod: "nods", smile: "smiles", shrug: "shrugs",
    laugh: "laughs", clap: "claps", hug: "hugs", wink: "winks", sigh: "sighs",
  };
  const CLOSING_TEXT = {
    slow_consumer: "This page fell behind and the firehose dropped the connection.",
    read_only: "The firehose closed the connection: viewers can only read.",
    server_shutdown: "The firehose shut down or is restarting.",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $("conn-state"), connDetail: $("conn-detail"), notices: $("notices"), online: $("online"),
    onlineCount: $("online-count"), onlineEmpty: $("online-empty"),
    character: $("filter-character"), kindAction: $("kind-action"), kindContext: $("kind-context"),
    feed: $("feed"), feedEmpty: $("feed-empty"), feedTitle: $("feed-title"),
    everyone: $("show-everyone"), lastCursor: $("last-cursor"), filters: $("filters"),
  };

  const state = {
    filters: { character: [], kind: [] }, // kind [] means both
    last: null, // highest cursor shown in this view
    historyStart: null, // where a fresh view starts, learnt from a probe's hello
    oldest: null,
    latest: null,
    kept: [], // compact events for sessionStorage
    names: new Map(), // PeerID → name (directory and events)
    ws: null,
    conn: null,
    attempt: 0,
    retryTimer: null,
    saveTimer: null,
    visits: new Map(), // visit id → group element
    pairs: new Map(), // "A|B" → most recent group element of that pair
    rows: 0,
  };

  /* Hooks for tests and curious readers; nothing here changes what the page does. */
  const hooks = {
    received: [], // cursors received over the network by this page load, in order
    restored: [], // cursors redrawn from sessionStorage at load
    ignored: [], // cursors dropped as duplicates (≤ last seen)
    connections: [], // every WebSocket URL opened
    notices: [], // reasons of the notices shown
    state: () => ({ last: state.last, filters: state.filters, oldest: state.oldest, latest: state.latest }),
  };
  window.__firehose = hooks;

  function record(list, value) {
    if (list.length >= MAX_HOOK_ENTRIES) list.splice(0, list.length / 2);
    list.push(value);
  }

  /* ---------- small DOM helpers (text only, never HTML) ---------- */

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function isInt(value) {
    return Number.isSafeInteger(value);
  }

  function str(value, max) {
    return typeof value === "string" ? value.slice(0, max) : "";
  }

  function shortId(peerId) {
    return peerId.length > 16 ? `${peerId.slice(0, 6)}…${peerId.slice(-6)}` : peerId;
  }

  function peerLabel(peerId, name) {
    const known = str(name, 64) || state.names.get(peerId) || "";
    return known || shortId(peerId);
  }

  /* A clickable name: opens that character's timeline. */
  function peerButton(peerId, name) {
    const button = el("button", "peer", peerLabel(peerId, name));
    button.type = "button";
    button.dataset.peer = peerId;
    if (str(name, 64) || state.names.has(peerId)) button.dataset.named = "1";
    button.title = `${peerId} — show only this character`;
    return button;
  }

  function refreshNames() {
    for (const button of document.querySelectorAll("button.peer:not([data-named])")) {
      const name = state.names.get(button.dataset.peer);
      if (name) {
        button.textContent = name;
        button.dataset.named = "1";
      }
    }
    updateFeedTitle();
  }

  function learnName(peerId, name) {
    const clean = str(name, 64);
    if (clean && state.names.get(peerId) !== clean) {
      state.names.set(peerId, clean);
      return true;
    }
    return false;
  }

  /* ---------- connection state and notices ---------- */

  function setConn(value, detail) {
    ui.conn.textContent = value;
    ui.conn.dataset.state = value;
    ui.connDetail.textContent = detail || "";
    document.body.dataset.conn = value;
  }

  /* ``transient``: about the connection, resolved by the next hello (see resolveNotices). */
  function notice(reason, text, transient = false) {
    record(hooks.notices, reason);
    for (const old of ui.notices.querySelectorAll(".notice")) {
      if (old.dataset.reason === reason) old.remove();
    }
    const box = el("div", "notice");
    box.dataset.reason = reason;
    if (transient) box.dataset.transient = "1";
    box.append(el("span", "notice-text", text));
    const close = el("button", "notice-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => box.remove());
    box.append(close);
    ui.notices.prepend(box);
    const all = ui.notices.querySelectorAll(".notice");
    for (let i = MAX_NOTICES; i < all.length; i++) all[i].remove();
  }

  /* The connection is back: say so on the notices about losing it, so a glance after a
     brief drop still tells what happened, and that nothing was missed. */
  function resolveNotices() {
    const at = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    for (const box of ui.notices.querySelectorAll('.notice[data-transient="1"]:not([data-resolved])')) {
      box.dataset.resolved = "1";
      box.querySelector(".notice-text").append(` Reconnected at ${at}; the feed resumed where it stopped.`);
    }
  }

  /* ---------- WebSocket with resume ---------- */

  function wsUrl(cursor) {
    const url = new URL("/ws", window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    url.search = "";
    for (const peer of state.filters.character) url.searchParams.append("character", peer);
    for (const kind of state.filters.kind) url.searchParams.append("kind", kind);
    if (cursor !== null) url.searchParams.set("cursor", String(cursor));
    return url.toString();
  }

  /*
   * Three ways to open: resume after the last cursor shown; start a fresh view at the
   * history start a probe found; or probe (no cursor) to learn the held range first.
   */
  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    let cursor = null;
    let mode = "probe";
    if (state.last !== null) {
      cursor = state.last + 1;
      mode = "resume";
    } else if (state.historyStart !== null) {
      cursor = state.historyStart;
      mode = "history";
    }
    const url = wsUrl(cursor);
    record(hooks.connections, url);
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      scheduleReconnect();
      return;
    }
    const conn = { ws, mode, closingReason: null, switching: false, greetedAt: null };
    state.ws = ws;
    state.conn = conn;
    ws.addEventListener("message", (msg) => {
      if (state.conn === conn && typeof msg.data === "string") onFrame(conn, msg.data);
    });
    ws.addEventListener("close", (ev) => {
      if (state.conn !== conn) return;
      state.ws = null;
      state.conn = null;
      onClosed(conn, ev);
    });
  }

  /* Drop the current socket on purpose and open the next one at once. */
  function reconnectNow() {
    const conn = state.conn;
    if (conn) {
      state.conn = null;
      state.ws = null;
      conn.switching = true;
      try { conn.ws.close(1000, "switching"); } catch (err) { /* already closing */ }
    }
    connect();
  }

  function scheduleReconnect() {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    state.attempt = Math.min(state.attempt + 1, 16);
    setConn("reconnecting", `(next try in ${Math.ceil(delay / 1000)} s)`);
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(connect, delay);
  }

  /* A frame carries one or more JSON objects, one per line (the firehose joins what it
     has queued for this page). A line may switch connections (a hello that starts the
     history view), so the rest of that frame belongs to a socket no longer listened to. */
  function onFrame(conn, data) {
    for (const line of data.split("\n")) {
      if (state.conn !== conn) return;
      if (line.trim()) onLine(conn, line);
    }
  }

  function onLine(conn, line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (err) {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "hello") onHello(conn, msg);
    else if (msg.type === "event") { if (!conn.switching && conn.mode !== "probe") onEvent(msg); }
    else if (msg.type === "cursor_too_old") onTooOld(conn, msg);
    else if (msg.type === "closing") onClosing(conn, msg);
  }

  function onHello(conn, msg) {
    conn.greetedAt = Date.now();
    state.oldest = isInt(msg.oldest) ? msg.oldest : null;
    state.latest = isInt(msg.latest) ? msg.latest : null;
    setConn("live");
    resolveNotices();
    refreshDirectory();
    if (conn.mode === "resume" && state.latest !== null && state.latest < state.last) {
      // Fewer events than this page has seen: a new firehose (or a wiped one) with its own
      // cursors; resuming would wait for cursors that mean other events. Start over.
      notice("reset", "The firehose's history was reset; the feed starts again.");
      state.last = null;
      state.historyStart = null;
      clearFeed();
      save();
      reconnectNow();
      return;
    }
    if (conn.mode !== "probe") return;
    if (state.oldest !== null && state.latest !== null && state.latest >= 1 && state.latest >= state.oldest) {
      // A timeline shows the character's whole held history; everyone's view the last part.
      const first = Math.max(state.oldest, 1);
      state.historyStart = state.filters.character.length
        ? first
        : Math.max(first, state.latest - HISTORY + 1);
      reconnectNow();
    } else {
      conn.mode = "live"; // nothing held yet: this socket is already live
    }
  }

  function onTooOld(conn, msg) {
    // Only a resume can lose events; a fresh view just starts at what is held.
    if (conn.mode !== "resume") return;
    const from = isInt(msg.cursor) ? msg.cursor : "?";
    const oldest = isInt(msg.oldest) ? msg.oldest : "?";
    let lost = `cursors from ${from}`;
    if (oldest !== "?") lost = oldest - 1 === from ? `cursor ${from}` : `cursors ${from} to ${oldest - 1}`;
    notice(
      "cursor_too_old",
      `Some events were too old to replay: the firehose no longer holds ${lost}; the feed continues from ${oldest}.`
    );
  }

  function onClosing(conn, msg) {
    const reason = str(msg.reason, 64) || "unknown";
    conn.closingReason = reason;
    notice(`closing:${reason}`, CLOSING_TEXT[reason] || `The firehose closed the connection (${reason}).`, true);
  }

  function onClosed(conn, ev) {
    if (conn.switching) return;
    // A connection that was greeted worked: start the backoff low again, but not at zero
    // unless it lasted, so a firehose that keeps dropping this page is not hammered.
    if (conn.greetedAt !== null) {
      state.attempt = Date.now() - conn.greetedAt > STABLE_MS ? 0 : Math.min(state.attempt, 2);
    }
    if (!conn.closingReason && ev.code === 1008) {
      notice("policy", `The firehose refused this connection${ev.reason ? ` (${str(ev.reason, 120)})` : ""}.`, true);
    }
    scheduleReconnect();
  }

  function onEvent(msg) {
    const ev = cleanEvent(msg);
    if (ev === null) return;
    if (state.last !== null && ev.cursor <= state.last) {
      record(hooks.ignored, ev.cursor);
      return;
    }
    state.last = ev.cursor;
    record(hooks.received, ev.cursor);
    show(ev);
    keep(ev);
    scheduleSave();
  }

  /* The fields the page uses, type-checked; anything malformed is dropped. */
  function cleanEvent(msg) {
    if (!isInt(msg.cursor) || !KINDS.includes(msg.kind)) return null;
    if (typeof msg.from !== "string" || !PEER_ID.test(msg.from)) return null;
    if (!msg.body || typeof msg.body !== "object" || Array.isArray(msg.body)) return null;
    return {
      cursor: msg.cursor,
      kind: msg.kind,
      from: msg.from,
      name: str(msg.name, 64) || null,
      seq: isInt(msg.seq) ? msg.seq : null,
      ts: isInt(msg.ts) ? msg.ts : null,
      body: msg.body,
    };
  }

  /* ---------- rendering ---------- */

  function show(ev) {
    if (ev.name && learnName(ev.from, ev.name)) refreshNames();
    const row = eventRow(ev);
    place(ev, row);
    state.rows += 1;
    trimRows();
    ui.feedEmpty.hidden = true;
    ui.lastCursor.textContent = String(state.last);
    document.body.dataset.lastCursor = String(state.last);
  }

  function timeEl(ts) {
    const node = el("time", "ts");
    const date = new Date(ts === null ? NaN : ts);
    if (Number.isNaN(date.getTime())) return node; // beyond what a Date holds
    node.dateTime = date.toISOString();
    node.title = date.toLocaleString();
    const sameDay = date.toDateString() === new Date().toDateString();
    node.textContent = sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
      : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    return node;
  }

  function eventRow(ev) {
    const body = ev.body;
    const type = str(body.type, 16);
    // The type names a CSS class: only a plain word may, whatever a peer put there.
    const row = el("li", `event kind-${ev.kind} type-${/^[a-z_]+$/.test(type) ? type : "other"}`);
    row.dataset.cursor = String(ev.cursor);
    row.dataset.from = ev.from;
    row.dataset.kind = ev.kind;
    row.dataset.type = type;
    if (ev.seq !== null) row.dataset.seq = String(ev.seq);
    const head = el("div", "event-head");
    head.append(peerButton(ev.from, ev.name), timeEl(ev.ts));
    row.append(head, ev.kind === "action" ? actionContent(body, type) : contextContent(ev, body, type));
    return row;
  }

  function looksLikePeer(value) {
    return typeof value === "string" && (state.names.has(value) || PEER_ID.test(value));
  }

  function actionContent(body, type) {
    const what = el("div", "what");
    if (type === "speak") {
      const to = str(body.to, 128);
      if (to && typeof body.visit !== "string" && looksLikePeer(to)) {
        what.append(el("span", "verb", "to "), peerButton(to), el("span", "verb", ": "));
      }
      what.append(el("q", "speech", str(body.text, 4000)));
    } else if (type === "move") {
      const to = str(body.to, 128);
      if (looksLikePeer(to)) what.append(el("span", "verb", "is visiting "), peerButton(to));
      else what.append(el("span", "verb", "moves to "), el("span", "place", to));
    } else if (type === "look") {
      what.append(el("span", "verb", "looks at "), el("span", "place", str(body.at, 128)));
    } else if (type === "gesture") {
      const name = str(body.name, 32);
      const to = str(body.to, 128);
      const verb = Object.prototype.hasOwnProperty.call(GESTURE_VERBS, name) ? GESTURE_VERBS[name] : null;
      what.append(el("span", "gesture", verb || `gestures: ${name}`));
      if (to && looksLikePeer(to)) what.append(el("span", "verb", verb ? " at " : " to "), peerButton(to));
    } else if (type === "souvenir") {
      // Who used whose lent tool in a public visit; never the arguments or the result.
      what.append(el("span", "verb", "used "), peerButton(str(body.lender, 128)),
        el("span", "verb", "'s souvenir "), el("span", "souvenir", str(body.tool, 64)));
    } else {
      what.append(el("span", "muted", `(an action of type ${type || "?"})`));
    }
    return what;
  }

  function contextContent(ev, body, type) {
    const what = el("div", "what context");
    if (type === "text") {
      what.append(el("p", "context-text", str(body.text, 16000)));
    } else if (type === "image") {
      const mime = str(body.mime, 32);
      const alt = str(body.alt, 500);
      const data = body.data_b64;
      const figure = el("figure", "context-image");
      if (IMAGE_MIMES.has(mime) && typeof data === "string" && data.length > 0 && BASE64.test(data)) {
        const img = document.createElement("img");
        img.alt = alt || `an image shared by ${peerLabel(ev.from, ev.name)}`;
        img.decoding = "async";
        img.loading = "lazy";
        img.src = `data:${mime};base64,${data}`;
        figure.append(img);
      } else if (body._dropped) {
        figure.append(el("span", "muted", "(image not kept across the reload)"));
      } else {
        figure.append(el("span", "muted", "(an image the page will not show)"));
      }
      if (alt) figure.append(el("figcaption", "", alt));
      what.append(figure);
    } else {
      what.append(el("span", "muted", `(context of type ${type || "?"})`));
    }
    return what;
  }

  function pairKey(a, b) {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  /* "A ↔ B": the guest (who moved) first when known. */
  function visitHead(a, b) {
    const head = el("div", "visit-head");
    head.append(peerButton(a));
    if (b) head.append(el("span", "arrow", " ↔ "), peerButton(b));
    return head;
  }

  function newVisitGroup(a, b, key) {
    const group = el("li", "visit");
    group.dataset.pair = key;
    const lines = el("ol", "visit-lines");
    group.append(visitHead(a, b), lines);
    group.lastTs = 0;
    return group;
  }

  /*
   * Speech of one visit (same `visit` id) goes in one group headed "A ↔ B"; the guest's
   * `move` to the host opens that group, and the first line with a visit id adopts it.
   * A group moves to the top of the feed when it gets a new line, so the top is always
   * the latest activity.
   */
  function place(ev, row) {
    const body = ev.body;
    const type = ev.kind === "action" ? body.type : null;
    const ts = ev.ts || 0;
    const to = typeof body.to === "string" && looksLikePeer(body.to) ? body.to : null;
    let group = null;
    if (type === "speak" && typeof body.visit === "string" && body.visit) {
      const visit = body.visit.slice(0, 64);
      group = state.visits.get(visit) || null;
      if (group !== null && group.dataset.pair.includes("|") && !group.dataset.pair.split("|").includes(ev.from)) {
        // Anyone can sign a line naming any visit id: only its two characters join it.
        ui.feed.prepend(row);
        return;
      }
      if (group === null && to) {
        const recent = state.pairs.get(pairKey(ev.from, to));
        if (recent && !recent.dataset.visit && ts - recent.lastTs < VISIT_PAIR_WINDOW_MS) group = recent;
      }
      if (group === null) group = newVisitGroup(ev.from, to, to ? pairKey(ev.from, to) : ev.from);
      if (!group.dataset.visit) {
        group.dataset.visit = visit;
        state.visits.set(visit, group);
      }
    } else if (type === "move" && to) {
      const key = pairKey(ev.from, to);
      const recent = state.pairs.get(key);
      if (recent && recent.dataset.visit && !recent.dataset.moved && ts - recent.lastTs < VISIT_PAIR_WINDOW_MS) {
        group = recent; // the host's first line came before the guest's move
        group.dataset.moved = "1";
        group.querySelector(".visit-head").replaceWith(visitHead(ev.from, to));
        group.lastTs = Math.max(group.lastTs, ts);
        group.querySelector(".visit-lines").prepend(row);
        raise(group);
        return;
      }
      group = newVisitGroup(ev.from, to, key);
      group.dataset.moved = "1";
    }
    if (group === null) {
      ui.feed.prepend(row);
      return;
    }
    if (group.dataset.pair.includes("|")) state.pairs.set(group.dataset.pair, group);
    group.lastTs = Math.max(group.lastTs, ts);
    group.querySelector(".visit-lines").append(row);
    raise(group);
  }

  function raise(group) {
    if (ui.feed.firstElementChild !== group) ui.feed.prepend(group);
  }

  function trimRows() {
    while (state.rows > MAX_ROWS && ui.feed.lastElementChild) {
      const oldest = ui.feed.lastElementChild;
      const count = oldest.classList.contains("visit") ? oldest.querySelectorAll(".event").length : 1;
      forgetGroup(oldest);
      oldest.remove();
      state.rows -= count;
    }
  }

  function forgetGroup(node) {
    if (node.dataset.visit && state.visits.get(node.dataset.visit) === node) state.visits.delete(node.dataset.visit);
    if (node.dataset.pair && state.pairs.get(node.dataset.pair) === node) state.pairs.delete(node.dataset.pair);
  }

  function clearFeed() {
    ui.feed.replaceChildren();
    state.visits.clear();
    state.pairs.clear();
    state.rows = 0;
    state.kept = [];
    ui.feedEmpty.hidden = false;
    ui.lastCursor.textContent = "—";
    delete document.body.dataset.lastCursor;
  }

  /* ---------- persistence (sessionStorage: this tab only) ---------- */

  function keep(ev) {
    let body = ev.body;
    if (typeof body.data_b64 === "string" && body.data_b64.length > MAX_KEPT_IMAGE_B64) {
      body = { ...body, _dropped: true };
      delete body.data_b64;
    }
    state.kept.push({ ...ev, body });
    if (state.kept.length > KEEP_ON_RELOAD * 2) state.kept = state.kept.slice(-KEEP_ON_RELOAD);
  }

  function scheduleSave() {
    if (state.saveTimer === null) state.saveTimer = setTimeout(save, SAVE_DELAY_MS);
  }

  /* The cursor and the events are saved together, so a reload never skips an event it
     has not redrawn: at worst it fetches again what it had not saved. */
  function save() {
    clearTimeout(state.saveTimer);
    state.saveTimer = null;
    const doc = { v: 1, filters: state.filters, last: state.last, events: state.kept.slice(-KEEP_ON_RELOAD) };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        window.sessionStorage.setItem(STORE_KEY, JSON.stringify(doc));
        return;
      } catch (err) {
        // Over quota: keep fewer events; the cursor must still match the events kept.
        doc.events = doc.events.slice(Math.floor(doc.events.length / 2));
      }
    }
  }

  function load() {
    try {
      const doc = JSON.parse(window.sessionStorage.getItem(STORE_KEY) || "null");
      if (!doc || doc.v !== 1 || !isInt(doc.last)) return null;
      const filters = cleanFilters(doc.filters && doc.filters.character, doc.filters && doc.filters.kind);
      const events = Array.isArray(doc.events) ? doc.events : [];
      return { filters, last: doc.last, events };
    } catch (err) {
      return null;
    }
  }

  /* ---------- filters ---------- */

  function cleanFilters(characters, kinds) {
    const character = [...new Set(Array.isArray(characters) ? characters : [])]
      .filter((p) => typeof p === "string" && PEER_ID.test(p));
    let kind = [...new Set(Array.isArray(kinds) ? kinds : [])].filter((k) => KINDS.includes(k));
    if (kind.length === KINDS.length) kind = []; // both is the default
    return { character: character.slice(0, MAX_FILTERS - kind.length), kind };
  }

  function sameFilters(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function filtersFromHash() {
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    if (!params.has("character") && !params.has("kind")) return null;
    return cleanFilters(params.getAll("character"), params.getAll("kind"));
  }

  function writeHash() {
    const params = new URLSearchParams();
    for (const peer of state.filters.character) params.append("character", peer);
    for (const kind of state.filters.kind) params.append("kind", kind);
    const hash = params.toString();
    window.history.replaceState(null, "", hash ? `#${hash}` : window.location.pathname + window.location.search);
  }

  function syncFilterForm() {
    const peer = state.filters.character[0] || "";
    ensureCharacterOption(peer);
    ui.character.value = peer;
    const kinds = state.filters.kind.length ? state.filters.kind : KINDS;
    ui.kindAction.checked = kinds.includes("action");
    ui.kindContext.checked = kinds.includes("context");
  }

  function updateFeedTitle() {
    const peer = state.filters.character[0];
    const kinds = state.filters.kind.length ? ` · ${state.filters.kind.join(", ")} only` : "";
    ui.feedTitle.textContent = peer ? `Timeline of ${peerLabel(peer)}${kinds}` : `Everyone${kinds}`;
    ui.everyone.hidden = !peer;
    document.title = peer ? `${peerLabel(peer)} · RoomVerse firehose` : "RoomVerse · firehose";
  }

  /* A new filter is a new view: clear it and open a fresh stream with those filters. */
  function applyFilters(next) {
    if (sameFilters(next, state.filters)) return;
    state.filters = next;
    state.last = null;
    state.historyStart = null;
    clearFeed();
    syncFilterForm();
    updateFeedTitle();
    writeHash();
    save();
    reconnectNow();
  }

  function filtersFromForm() {
    const kinds = [];
    if (ui.kindAction.checked) kinds.push("action");
    if (ui.kindContext.checked) kinds.push("context");
    return cleanFilters(ui.character.value ? [ui.character.value] : [], kinds);
  }

  function showCharacter(peerId) {
    const kinds = state.filters.kind;
    applyFilters(cleanFilters([peerId], kinds));
    window.scrollTo({ top: 0 });
  }

  /* ---------- who is online ---------- */

  function ensureCharacterOption(peerId) {
    if (!peerId) return;
    for (const option of ui.character.options) if (option.value === peerId) return;
    const option = el("option", "", peerLabel(peerId));
    option.value = peerId;
    ui.character.append(option);
  }

  async function refreshDirectory() {
    let doc;
    try {
      const reply = await fetch("/api/directory", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!reply.ok) return;
      doc = await reply.json();
    } catch (err) {
      return;
    }
    if (!doc || !Array.isArray(doc.entries)) return;
    const entries = doc.entries.filter(
      (e) => e && typeof e.peer_id === "string" && PEER_ID.test(e.peer_id) && !e.self
    );
    let renamed = false;
    for (const entry of entries) renamed = learnName(entry.peer_id, entry.name) || renamed;
    const present = entries
      .filter((e) => PRESENT.includes(e.status))
      .sort((a, b) => PRESENT.indexOf(a.status) - PRESENT.indexOf(b.status)
        || peerLabel(a.peer_id).localeCompare(peerLabel(b.peer_id)));
    renderOnline(present);
    renderCharacterOptions(present);
    if (renamed) refreshNames();
  }

  function renderOnline(present) {
    const items = present.map((entry) => {
      const item = el("li", `who status-${entry.status}`);
      item.dataset.peerId = entry.peer_id;
      item.dataset.status = entry.status;
      const dot = el("span", "dot");
      dot.setAttribute("aria-hidden", "true");
      const status = el("span", "status", entry.status);
      const button = peerButton(entry.peer_id, entry.name);
      const description = str(entry.description, 300);
      if (description) button.title = `${description}\n${entry.peer_id}`;
      item.append(dot, button, status);
      return item;
    });
    ui.online.replaceChildren(...items);
    ui.onlineCount.textContent = String(present.filter((e) => e.status === "online").length);
    ui.onlineEmpty.hidden = present.length > 0;
  }

  function renderCharacterOptions(present) {
    const selected = state.filters.character[0] || "";
    // Rebuilding an open <select> closes it under the user's finger: only when it changed.
    const signature = JSON.stringify(present.map((e) => [e.peer_id, peerLabel(e.peer_id), e.status]));
    if (signature === renderCharacterOptions.last) return;
    renderCharacterOptions.last = signature;
    const options = [el("option", "", "Everyone")];
    options[0].value = "";
    for (const entry of present) {
      const option = el("option", "", `${peerLabel(entry.peer_id)} (${entry.status})`);
      option.value = entry.peer_id;
      options.push(option);
    }
    ui.character.replaceChildren(...options);
    ensureCharacterOption(selected);
    ui.character.value = selected;
  }

  /* ---------- start ---------- */

  function start() {
    const saved = load();
    const fromHash = filtersFromHash();
    if (saved && (fromHash === null || sameFilters(fromHash, saved.filters))) {
      state.filters = saved.filters;
      for (const raw of saved.events) {
        const ev = raw && typeof raw === "object" ? cleanEvent(raw) : null;
        if (ev === null || ev.cursor > saved.last) continue;
        if (state.last !== null && ev.cursor <= state.last) continue;
        state.last = ev.cursor;
        record(hooks.restored, ev.cursor);
        show(ev);
        keep(ev);
      }
      state.last = saved.last; // may be past the last kept event if none was kept
      if (state.last !== null) {
        ui.lastCursor.textContent = String(state.last);
        document.body.dataset.lastCursor = String(state.last);
      }
    } else if (fromHash !== null) {
      state.filters = fromHash;
    }
    syncFilterForm();
    updateFeedTitle();
    writeHash();

    ui.filters.addEventListener("submit", (ev) => ev.preventDefault());
    ui.filters.addEventListener("change", () => {
      if (!ui.kindAction.checked && !ui.kindContext.checked) {
        // Nothing to show is never what was meant: keep the other kind.
        (document.activeElement === ui.kindAction ? ui.kindContext : ui.kindAction).checked = true;
      }
      applyFilters(filtersFromForm());
    });
    ui.everyone.addEventListener("click", () => applyFilters(cleanFilters([], state.filters.kind)));
    document.addEventListener("click", (ev) => {
      const button = ev.target instanceof Element ? ev.target.closest("button.peer") : null;
      if (button && PEER_ID.test(button.dataset.peer || "")) showCharacter(button.dataset.peer);
    });
    window.addEventListener("pagehide", save);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") save();
      else refreshDirectory();
    });
    window.addEventListener("online", () => {
      if (state.conn === null) connect();
    });
    window.setInterval(() => {
      if (document.visibilityState !== "hidden") refreshDirectory();
    }, DIRECTORY_REFRESH_MS);

    refreshDirectory();
    connect();
  }

  start();
})();
