// pdns-sensor's page for analysts. Plain JavaScript, no framework, no
// build step: it is embedded in the binary and served as written.
//
// The URL is the state: `/?q=…&in=…&type=…&after=…&before=…&tab=…`.
// Searching, pivoting and switching tabs are ordinary navigations, so a
// link can go into a ticket, reloading shows the same thing, and the
// browser's back button works without any history code. Every value from
// the server is written as text (never as HTML), and the server's
// Content-Security-Policy allows no inline script either.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORAGE = "pdns-sensor-key";
  const STATUS_EVERY_MS = 5000;
  const PARAMS = ["q", "in", "type", "after", "before"];
  const MAX_ROWS = 10000;

  // ---- credentials ----------------------------------------------------

  // Every request says it comes from a script, so that a sensor with keys
  // answers a missing one with a plain 401 rather than a challenge (which
  // would make the browser open its own login dialog).
  function authHeaders() {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const headers = { "X-Requested-With": "XMLHttpRequest" };
    if (!key) return headers;
    // A `user:password` line of the key file is HTTP Basic; a bare key
    // goes as DNSDB's X-API-Key. Both are accepted by every data endpoint.
    if (key.includes(":")) {
      const bytes = new TextEncoder().encode(key);
      let binary = "";
      bytes.forEach((b) => (binary += String.fromCharCode(b)));
      headers.Authorization = "Basic " + btoa(binary);
    } else headers["X-API-Key"] = key;
    return headers;
  }

  // An API answer, or a sentence saying why there is none.
  class Failure extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(path) {
    let response;
    try {
      response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
    } catch (e) {
      throw new Failure("The sensor did not answer (" + e.message + "). Is it running, and is this the right address?", 0);
    }
    if (response.ok) return response;
    let detail = "";
    try {
      const text = await response.text();
      try {
        detail = JSON.parse(text).error || text;
      } catch (_) {
        detail = text;
      }
    } catch (_) {
      // no body
    }
    detail = String(detail).trim();
    switch (response.status) {
      case 401:
      case 403: {
        const had = sessionStorage.getItem(KEY_STORAGE);
        throw new Failure(had ? "The sensor refused this key (" + detail + "). Enter another one." : "This sensor needs an API key.", response.status);
      }
      case 429: {
        const after = response.headers.get("Retry-After");
        throw new Failure("This key is over its quota" + (after ? ": try again in " + after + " s" : "") + ". (" + detail + ")", 429);
      }
      case 400:
        throw new Failure("The sensor cannot search for that: " + detail, 400);
      case 501:
        throw new Failure(detail || "This sensor cannot answer that search.", 501);
      default:
        throw new Failure("The sensor failed to answer (HTTP " + response.status + ")" + (detail ? ": " + detail : "") + ".", response.status);
    }
  }

  function showError(error) {
    if (error.status === 401 || error.status === 403) {
      // The key box says it, next to where the key goes.
      $("key-why").textContent = error.message;
      $("key-box").hidden = false;
      $("key").focus();
      return;
    }
    const box = $("error");
    box.textContent = error.message;
    box.hidden = false;
  }

  // ---- formatting -----------------------------------------------------

  function utc(seconds) {
    if (seconds === null || seconds === undefined) return "";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(".000Z", "");
  }

  function rfc3339(seconds) {
    return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
  }

  function human(n, unit) {
    if (n === null || n === undefined) return null;
    const steps = unit === "B" ? ["B", "KiB", "MiB", "GiB", "TiB"] : ["", " k", " M", " G", " T"];
    const base = unit === "B" ? 1024 : 1000;
    let i = 0;
    while (Math.abs(n) >= base && i < steps.length - 1) {
      n /= base;
      i++;
    }
    const text = i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 1 : 0);
    return text + steps[i];
  }

  function ago(seconds) {
    if (seconds < 1) return "just now";
    if (seconds < 120) return Math.round(seconds) + " s ago";
    if (seconds < 7200) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " days ago";
  }

  // A fence as epoch seconds: what the date inputs and deep links hold
  // (a date, an RFC 3339 time or epoch seconds).
  function epoch(text, endOfDay) {
    if (!text) return null;
    if (/^\d+$/.test(text)) return Number(text);
    if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
      const t = Date.parse(text + "T00:00:00Z") / 1000;
      return endOfDay ? t + 86399 : t;
    }
    const t = Date.parse(text);
    return Number.isNaN(t) ? null : Math.floor(t / 1000);
  }

  // ---- the URL is the state -------------------------------------------

  const state = new URLSearchParams(location.search);

  function link(changes) {
    const next = new URLSearchParams();
    for (const k of PARAMS.concat(["tab", "limit"])) {
      const v = k in changes ? changes[k] : state.get(k);
      if (v) next.set(k, v);
    }
    const s = next.toString();
    return "/" + (s ? "?" + s : "");
  }

  // A search of `q` with this search's other settings, on the records tab.
  function pivot(q, side) {
    return link({ q: q, in: side || "", tab: "", limit: "" });
  }

  function pivotLink(text, q, side, title) {
    const a = document.createElement("a");
    a.href = pivot(q, side);
    a.textContent = text;
    if (title) a.title = title;
    return a;
  }

  function fillForm() {
    $("q").value = state.get("q") || "";
    $("in").value = state.get("in") || "auto";
    if (!$("in").value) $("in").value = "auto";
    const type = state.get("type") || "";
    const select = $("type");
    if (type && ![...select.options].some((o) => o.value === type)) {
      const o = document.createElement("option");
      o.value = o.textContent = type;
      select.append(o);
    }
    select.value = type;
    for (const k of ["after", "before"]) {
      const v = state.get(k) || "";
      // A date input holds dates only; other fences stay in the URL.
      $(k).value = /^\d{4}-\d{2}-\d{2}$/.test(v) ? v : "";
    }
  }

  function submit(event) {
    event.preventDefault();
    const changes = { tab: state.get("tab") || "", limit: "" };
    for (const k of PARAMS) {
      let v = $(k).value.trim();
      if (k === "in" && v === "auto") v = "";
      if ((k === "after" || k === "before") && !v && !/^\d{4}-\d{2}-\d{2}$/.test(state.get(k) || "")) {
        v = state.get(k) || ""; // keep a fence the date input cannot show
      }
      changes[k] = v;
    }
    location.assign(link(changes));
  }

  function tabs() {
    const current = state.get("tab") || "records";
    for (const name of ["records", "negative", "nod"]) {
      const tab = $("tab-" + name);
      tab.href = link({ tab: name === "records" ? "" : name });
      if (name === current) tab.setAttribute("aria-current", "page");
      $("panel-" + name).hidden = name !== current;
    }
    return current;
  }

  // ---- records ----------------------------------------------------------

  let rows = [];
  let sortKey = null;
  let sortDown = false;

  function searchPath(q) {
    const p = new URLSearchParams({ q: q });
    for (const k of ["in", "type", "after", "before", "limit"]) {
      let v = state.get(k);
      if (!v) continue;
      if (k === "before" && /^\d{4}-\d{2}-\d{2}$/.test(v)) v = String(epoch(v, true));
      p.set(k, v);
    }
    return "/ui/search?" + p.toString();
  }

  async function searchRecords(q) {
    $("summary").textContent = "Searching…";
    const answer = await (await api(searchPath(q))).json();
    rows = answer.rows;
    const description = answer.query.description.replace(/\.$/, "");
    let text = answer.rows.length + (answer.rows.length === 1 ? " row" : " rows") + ": " + description + ".";
    if (answer.end !== "complete") text += " " + capital(answer.message) + ".";
    $("summary").textContent = text;
    if (answer.end === "limited" && answer.rows.length < MAX_ROWS) {
      const more = document.createElement("a");
      more.id = "more";
      more.href = link({ limit: String(MAX_ROWS) });
      more.textContent = "Show up to " + MAX_ROWS.toLocaleString("en") + " rows";
      $("summary").append(" ", more);
    }
    $("summary").dataset.kind = answer.query.kind;
    $("summary").dataset.end = answer.end;
    drawRecords();
  }

  function capital(s) {
    return s ? s[0].toUpperCase() + s.slice(1) : s;
  }

  function compare(a, b, key) {
    const x = a[key];
    const y = b[key];
    if (typeof x === "number" || typeof y === "number") return (x ?? -1) - (y ?? -1);
    const sx = Array.isArray(x) ? x.join("+") : x ?? "";
    const sy = Array.isArray(y) ? y.join("+") : y ?? "";
    return sx < sy ? -1 : sx > sy ? 1 : 0;
  }

  function sorted() {
    if (!sortKey) return rows;
    const out = rows.slice();
    out.sort((a, b) => compare(a, b, sortKey) * (sortDown ? -1 : 1));
    return out;
  }

  function drawRecords() {
    const table = $("records");
    const body = table.tBodies[0];
    body.replaceChildren();
    const shown = sorted();
    table.hidden = shown.length === 0;
    $("exports").hidden = shown.length === 0;
    if (shown.length === 0) return;
    let lo = Infinity;
    let hi = -Infinity;
    for (const r of shown) {
      lo = Math.min(lo, r.time_first);
      hi = Math.max(hi, r.time_last);
    }
    $("axis").textContent = utc(lo).slice(0, 10) + " → " + utc(hi).slice(0, 10);
    const fragment = document.createDocumentFragment();
    for (const r of shown) fragment.append(recordRow(r, lo, hi));
    body.append(fragment);
    for (const th of table.tHead.rows[0].cells) {
      if (!th.dataset.key) continue;
      th.setAttribute("aria-sort", th.dataset.key === sortKey ? (sortDown ? "descending" : "ascending") : "none");
    }
    exportLinks(shown);
  }

  function cell(label, content, className) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (className) td.className = className;
    if (content instanceof Node) td.append(content);
    else td.textContent = content === null || content === undefined ? "" : String(content);
    return td;
  }

  function recordRow(r, lo, hi) {
    const tr = document.createElement("tr");
    let name = "";
    if (r.rrname !== null) {
      name = document.createElement("span");
      name.append(pivotLink(r.rrname, r.rrname, "names", "Records owned by " + r.rrname));
      name.append(" ");
      const back = pivotLink("⇠", r.rrname, "rdata", "Records pointing at " + r.rrname);
      back.className = "back";
      back.setAttribute("aria-label", "Records pointing at " + r.rrname);
      name.append(back);
    }
    tr.append(cell("Name", name, "name"));
    tr.append(cell("Type", r.rrtype));
    const data = r.pivot === null ? r.rdata : pivotData(r);
    tr.append(cell("Data", data, "rdata"));
    tr.append(cell("Count", r.count, "num"));
    tr.append(cell("First seen", utc(r.time_first), "time"));
    tr.append(cell("Last seen", utc(r.time_last), "time"));
    tr.append(cell("TTL", r.ttl, "num"));
    tr.append(cell("Origin", r.origin === null ? "" : r.origin.join(", ")));
    tr.append(cell("Timeline", timeline(r, lo, hi), "timeline"));
    return tr;
  }

  // The rdata text with the name or address in it as a link.
  function pivotData(r) {
    const span = document.createElement("span");
    const at = r.rdata.indexOf(r.pivot);
    const isAddress = r.rrtype === "A" || r.rrtype === "AAAA";
    const a = pivotLink(r.pivot, r.pivot, isAddress ? "" : "names", isAddress ? "Records pointing at " + r.pivot : "Records owned by " + r.pivot);
    a.className = "pivot";
    if (at < 0) {
      span.append(r.rdata + " ", a);
    } else {
      span.append(r.rdata.slice(0, at), a, r.rdata.slice(at + r.pivot.length));
    }
    return span;
  }

  const SVG = "http://www.w3.org/2000/svg";
  const TIMELINE_WIDTH = 160;

  function timeline(r, lo, hi) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + TIMELINE_WIDTH + " 12");
    svg.setAttribute("width", TIMELINE_WIDTH);
    svg.setAttribute("height", "12");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "seen from " + utc(r.time_first) + " to " + utc(r.time_last));
    const title = document.createElementNS(SVG, "title");
    title.textContent = utc(r.time_first) + " → " + utc(r.time_last) + " (" + r.count + "×)";
    svg.append(title);
    const track = document.createElementNS(SVG, "line");
    track.setAttribute("x1", "0");
    track.setAttribute("x2", String(TIMELINE_WIDTH));
    track.setAttribute("y1", "6");
    track.setAttribute("y2", "6");
    track.setAttribute("class", "track");
    svg.append(track);
    const span = Math.max(hi - lo, 1);
    const x1 = ((r.time_first - lo) / span) * (TIMELINE_WIDTH - 3);
    const x2 = ((r.time_last - lo) / span) * (TIMELINE_WIDTH - 3);
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", x1.toFixed(1));
    bar.setAttribute("y", "2");
    bar.setAttribute("width", Math.max(x2 - x1, 3).toFixed(1));
    bar.setAttribute("height", "8");
    bar.setAttribute("rx", "2");
    bar.setAttribute("class", "seen");
    svg.append(bar);
    return svg;
  }

  function sortBy(key) {
    if (sortKey === key) sortDown = !sortDown;
    else {
      sortKey = key;
      sortDown = key === "count" || key === "time_first" || key === "time_last";
    }
    drawRecords();
  }

  // ---- export -----------------------------------------------------------

  let exportUrls = [];

  function csvField(v) {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function toCsv(shown) {
    const lines = ["rrname,rrtype,rdata,count,time_first,time_last,ttl,origin"];
    for (const r of shown) {
      lines.push(
        [r.rrname, r.rrtype, r.rdata, r.count, rfc3339(r.time_first), rfc3339(r.time_last), r.ttl, r.origin === null ? "" : r.origin.join("+")]
          .map(csvField)
          .join(","),
      );
    }
    return lines.join("\r\n") + "\r\n";
  }

  // COF (draft-dulaunoy-dnsop-passive-dns-cof): one object per line.
  function toCof(shown) {
    return shown
      .map((r) => {
        const o = {};
        if (r.rrname !== null) o.rrname = r.rrname;
        o.rrtype = r.rrtype;
        o.rdata = r.rdata;
        o.count = r.count;
        o.time_first = r.time_first;
        o.time_last = r.time_last;
        return JSON.stringify(o) + "\n";
      })
      .join("");
  }

  function exportLinks(shown) {
    exportUrls.forEach((u) => URL.revokeObjectURL(u));
    const csv = URL.createObjectURL(new Blob([toCsv(shown)], { type: "text/csv" }));
    const cof = URL.createObjectURL(new Blob([toCof(shown)], { type: "application/x-ndjson" }));
    exportUrls = [csv, cof];
    $("export-csv").href = csv;
    $("export-cof").href = cof;
  }

  // ---- negative answers -------------------------------------------------

  async function searchNegatives(q) {
    const summary = $("neg-summary");
    const plain = q.replace(/^name:/i, "").trim();
    if (!/^(\*\.)?[^\s/*?\[]+$/.test(plain) || /^[0-9.]+$|:/.test(plain)) {
      summary.textContent = "Negative answers are kept per question name: search a name or *.name.";
      return;
    }
    summary.textContent = "Searching…";
    const p = new URLSearchParams({ limit: "1000" });
    const type = state.get("type");
    if (type && type !== "ANY" && type !== "ANY-DNSSEC") p.set("rrtype", type);
    const after = epoch(state.get("after"), false);
    const before = epoch(state.get("before"), true);
    if (after !== null) p.set("time_last_after", String(after));
    if (before !== null) p.set("time_first_before", String(before));
    const text = await (await api("/negative/" + encodeURIComponent(plain) + "?" + p)).text();
    const list = text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    const body = $("negatives").tBodies[0];
    body.replaceChildren();
    for (const n of list) {
      const tr = document.createElement("tr");
      tr.append(cell("Name", pivotLink(n.rrname, n.rrname, "names")));
      tr.append(cell("Type", n.rrtype));
      tr.append(cell("Answer", n.rcode));
      tr.append(cell("Count", n.count, "num"));
      tr.append(cell("First seen", utc(n.time_first), "time"));
      tr.append(cell("Last seen", utc(n.time_last), "time"));
      body.append(tr);
    }
    $("negatives").hidden = list.length === 0;
    summary.textContent = list.length + " negative answers (NXDOMAIN, NODATA, SERVFAIL, REFUSED…) for " + plain + (list.length === 1000 ? ", the first 1000." : ".");
  }

  // ---- newly observed domains --------------------------------------------

  async function newDomains() {
    const summary = $("nod-summary");
    summary.textContent = "Searching…";
    const since = epoch(state.get("after"), false) ?? Math.floor(Date.now() / 1000) - 7 * 86400;
    const text = await (await api("/nod?limit=1000&since=" + since)).text();
    const lines = text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    const list = lines.filter((l) => "domain" in l);
    const more = lines.some((l) => l.more === true);
    const body = $("nods").tBodies[0];
    body.replaceChildren();
    for (const d of list) {
      const tr = document.createElement("tr");
      tr.append(cell("Domain", pivotLink(d.domain, "*." + d.domain.replace(/\.$/, ""), "names")));
      tr.append(cell("First seen", utc(d.first_seen) + (d.warmup ? " (warm-up)" : ""), "time"));
      tr.append(cell("First name", d.rrname ? pivotLink(d.rrname, d.rrname, "names") : ""));
      tr.append(cell("Type", d.rrtype || ""));
      tr.append(cell("Seen in", Array.isArray(d.seen_in) ? d.seen_in.join(", ") : d.seen_in || ""));
      body.append(tr);
    }
    $("nods").hidden = list.length === 0;
    summary.textContent = list.length + " registrable domains first seen since " + utc(since) + (more ? ", the first 1000." : ".");
  }

  // ---- status strip -------------------------------------------------------

  let previous = null;

  function setStatus(id, text, title) {
    const dd = $(id);
    dd.textContent = text === null || text === undefined ? "—" : text;
    dd.title = title || "";
  }

  async function status() {
    let s;
    try {
      s = await (await api("/ui/status")).json();
    } catch (_) {
      return; // the search shows why; the strip keeps its last values
    }
    const notHere = "not counted by this process (a separate `run` captures)";
    if (s.packets === null) setStatus("st-rate", null, notHere);
    else if (previous && previous.packets !== null && s.now > previous.now) {
      setStatus("st-rate", human((s.packets - previous.packets) / (s.now - previous.now)) + " pkt/s", human(s.packets) + " packets in all");
    } else setStatus("st-rate", human(s.packets) + " pkt", "packets captured so far");
    setStatus("st-drops", s.drops === null ? null : human(s.drops), s.drops === null ? notHere : "packets the kernel dropped");
    setStatus("st-records", s.records === null ? null : "≈ " + human(s.records), "RocksDB's estimate of stored records");
    setStatus("st-db", human(s.db_bytes, "B"), "size of the database's table files");
    setStatus("st-write", s.last_write ? ago(s.now - s.last_write) : null, s.last_write ? utc(s.last_write) : "this process has written nothing yet");
    $("version").textContent = "pdns-sensor " + s.version + " (" + s.backend + ")";
    previous = s;
  }

  // ---- start ----------------------------------------------------------------

  async function start() {
    fillForm();
    const tab = tabs();
    $("search").addEventListener("submit", submit);
    $("key-box").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
      location.reload();
    });
    for (const th of $("records").tHead.rows[0].cells) {
      if (th.dataset.key) th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.key));
    }
    document.addEventListener("keydown", (event) => {
      const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (event.key === "/" && !typing) {
        event.preventDefault();
        $("q").focus();
        $("q").select();
      }
    });
    status();
    setInterval(status, STATUS_EVERY_MS);
    const q = (state.get("q") || "").trim();
    if (!q && tab !== "nod") {
      $("q").focus();
      document.body.dataset.ready = "idle";
      return;
    }
    try {
      if (tab === "records") await searchRecords(q);
      else if (tab === "negative") await searchNegatives(q);
      else await newDomains();
      document.body.dataset.ready = "yes";
    } catch (e) {
      document.body.dataset.ready = "error";
      for (const id of ["summary", "neg-summary", "nod-summary"]) $(id).textContent = "";
      showError(e instanceof Failure ? e : new Failure("The page failed: " + e.message, 0));
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
