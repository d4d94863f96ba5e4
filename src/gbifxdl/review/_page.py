"""The review page: one self-contained HTML file (inline style and script, no external resource)."""

from __future__ import annotations

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gbifxdl review</title>
<style>
:root { --bg:#f6f6f4; --fg:#1d1d1b; --muted:#6b6b66; --line:#d9d9d4; --focus:#1f6feb;
  --good:#2e7d32; --bad:#c62828; --wrong_species:#8e24aa; --needs_crop:#ef6c00; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
header { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
  padding:8px 16px; display:flex; flex-wrap:wrap; gap:8px 16px; align-items:center; }
header h1 { font-size:16px; margin:0; }
select, button { font:inherit; padding:3px 8px; border:1px solid var(--line); border-radius:4px; background:#fff; }
button:hover { border-color:var(--muted); }
.bar { height:6px; width:160px; background:var(--line); border-radius:3px; overflow:hidden; display:inline-block;
  vertical-align:middle; }
.bar > span { display:block; height:100%; background:var(--good); }
#save { font-weight:600; }
#save.saved { color:var(--good); } #save.saving { color:var(--muted); } #save.failed { color:var(--bad); }
.tools button[data-mark] { border-left:4px solid var(--muted); }
.tools kbd, .keys kbd { font:12px monospace; border:1px solid var(--line); border-radius:3px; padding:0 3px; background:#fafafa; }
main { padding:12px 16px; }
#grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px, 1fr)); gap:10px; }
.cell { position:relative; margin:0; background:#fff; border:3px solid transparent; border-radius:6px;
  outline:1px solid var(--line); cursor:pointer; overflow:hidden; }
.cell img { display:block; width:100%; aspect-ratio:1/1; object-fit:contain; background:#eee; }
.cell figcaption { font-size:11px; color:var(--muted); padding:2px 6px; white-space:nowrap; overflow:hidden;
  text-overflow:ellipsis; }
.cell.broken img { visibility:hidden; }
.cell.broken::before { content:"no image"; position:absolute; top:40%; width:100%; text-align:center; color:var(--muted); }
.cell.focus { border-color:var(--focus); }
.cell .tag { position:absolute; left:4px; top:4px; color:#fff; font-size:11px; font-weight:600;
  padding:1px 6px; border-radius:3px; display:none; }
.cell[data-mark] .tag { display:block; }
.cell[data-mark=good] .tag { background:var(--good); }
.cell[data-mark=bad] .tag { background:var(--bad); }
.cell[data-mark=wrong_species] .tag { background:var(--wrong_species); }
.cell[data-mark=needs_crop] .tag { background:var(--needs_crop); }
.cell[data-mark=bad] img, .cell[data-mark=wrong_species] img { opacity:.45; }
.cell .state { position:absolute; right:4px; top:4px; font-size:11px; background:rgba(255,255,255,.85);
  padding:0 4px; border-radius:3px; }
.cell[data-state=saving] .state::after { content:"saving…"; color:var(--muted); }
.cell[data-state=saved] .state::after { content:"saved"; color:var(--good); }
.cell[data-state=failed] .state::after { content:"not saved"; color:var(--bad); }
.cell .aside { position:absolute; left:4px; bottom:22px; font-size:10px; background:rgba(0,0,0,.6); color:#fff;
  padding:0 4px; border-radius:3px; }
.cell .why { position:absolute; left:4px; bottom:22px; max-width:calc(100% - 56px); overflow:hidden;
  white-space:nowrap; text-overflow:ellipsis; font-size:10px; background:rgba(255,243,224,.95);
  color:#5d3a00; padding:0 4px; border-radius:3px; }
.cell .p { position:absolute; right:4px; bottom:22px; font-size:11px; font-weight:600; background:rgba(0,0,0,.7);
  color:#fff; padding:0 4px; border-radius:3px; }
.cell.proposed { outline:2px dashed var(--bad); }
.cell.proposed.reject { outline:2px dashed var(--good); }
.cell.proposed .tag { display:block; background:var(--bad); }
.cell.proposed.reject .tag { background:var(--good); }
#target { width:auto; }
#rankbar { display:flex; flex-wrap:wrap; gap:6px 14px; align-items:center; padding:6px 16px; background:#fffdf5;
  border-bottom:1px solid var(--line); }
#rankbar[hidden] { display:none; }
#rankinfo { max-width:760px; }
#rankinfo.warn { color:var(--bad); }
.trust { font-weight:600; }
#confirm { background:#fdecea; border:1px solid var(--bad); border-radius:4px; padding:4px 8px; }
#confirm[hidden], #thresholdbox[hidden] { display:none; }
input[type=number] { font:inherit; width:5em; padding:2px 4px; border:1px solid var(--line); border-radius:4px; }
footer { padding:8px 16px 24px; color:var(--muted); }
.keys { display:flex; flex-wrap:wrap; gap:4px 14px; }
</style></head>
<body>
<header>
  <h1 id="title">review</h1>
  <label>class <select id="cls"><option value="">all classes</option></select></label>
  <label>order <select id="sort"><option value="class">class by class</option>
    <option value="likely">likely wrong first</option></select></label>
  <span><button id="prev" title="previous page ( [ or p )">&#8592;</button>
    <span id="pageinfo">page 1 of 1</span>
    <button id="next" title="next page ( ] or n )">&#8594;</button></span>
  <span><span class="bar"><span id="bar" style="width:0"></span></span> <span id="progress">0 of 0 marked</span></span>
  <span id="save" class="saved">all marks saved</span>
  <span class="tools">
    <button data-mark="good" style="border-left-color:var(--good)"><kbd>g</kbd> good</button>
    <button data-mark="bad" style="border-left-color:var(--bad)"><kbd>b</kbd> bad</button>
    <button data-mark="wrong_species" style="border-left-color:var(--wrong_species)"><kbd>w</kbd> wrong species</button>
    <button data-mark="needs_crop" style="border-left-color:var(--needs_crop)"><kbd>c</kbd> needs crop</button>
    <button data-mark="clear"><kbd>0</kbd> clear</button>
    <button id="undo"><kbd>u</kbd> undo</button>
  </span>
  <span><button id="find" title="rank the unmarked images by how likely each is bad, from your marks"><kbd>f</kbd>
    find more like these</button> <select id="target" title="what to find"><option value="bad">bad</option>
    <option value="wrong_species">wrong species</option></select></span>
</header>
<div id="rankbar" hidden>
  <span id="rankinfo"></span>
  <span><button id="showranked"><kbd>t</kbd> top-ranked</button> <button id="showall"><kbd>a</kbd> all images</button></span>
  <span id="thresholdbox">mark all ranked at or above <input id="threshold" type="number" min="0.5" max="1" step="0.01"
    value="0.9"> <button id="above">mark <span id="abovecount">0</span> <span class="tname">bad</span>&#8230;</button></span>
  <span id="confirm" hidden><span id="confirmtext"></span> <button id="confirmyes">yes, mark them</button>
    <button id="confirmno">cancel</button></span>
</div>
<main><div id="grid" role="grid" aria-label="images"></div></main>
<footer class="keys">
  <span><kbd>&#8592;</kbd><kbd>&#8594;</kbd><kbd>&#8593;</kbd><kbd>&#8595;</kbd> move</span>
  <span><kbd>g</kbd>/<kbd>1</kbd> good</span><span><kbd>b</kbd>/<kbd>2</kbd> bad</span>
  <span><kbd>w</kbd>/<kbd>3</kbd> wrong species</span><span><kbd>c</kbd>/<kbd>4</kbd> needs crop</span>
  <span><kbd>0</kbd>/<kbd>Backspace</kbd> clear</span><span><kbd>u</kbd>/<kbd>Ctrl+Z</kbd> undo</span>
  <span><kbd>n</kbd>/<kbd>]</kbd> next page</span><span><kbd>p</kbd>/<kbd>[</kbd> previous page</span>
  <span><kbd>f</kbd> find more like these</span><span>top-ranked: <kbd>Space</kbd> switch a proposal (bad / good),
    <kbd>Enter</kbd> confirm the page's proposals (dashed outlines)</span>
  <span>marks are saved on disk before they show "saved"</span>
</footer>
<script>
"use strict";
const QUERY = new URLSearchParams(location.search);
const TOKEN = QUERY.get("t") || "";
const SIZE = QUERY.get("size") || "";  // images a page (the server's default when absent)
const LABELS = {good:"good", bad:"bad", wrong_species:"wrong species", needs_crop:"needs crop"};
const KEYS = {g:"good", "1":"good", b:"bad", x:"bad", "2":"bad", w:"wrong_species", "3":"wrong_species",
              c:"needs_crop", "4":"needs_crop", "0":"clear", Backspace:"clear", Delete:"clear"};
const S = {cls:"", page:0, pages:1, items:[], focus:0, undo:[], pending:0, failed:0, sort:"class", view:"all",
           rank:null, target:"bad"};
const $ = id => document.getElementById(id);
const api = (path, params) => {
  const q = new URLSearchParams(Object.assign({t: TOKEN}, params || {}));
  return path + "?" + q.toString();
};

async function getJSON(path, params) {
  const r = await fetch(api(path, params), {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function progress(c) {
  const pct = c.images ? 100 * c.marked / c.images : 0;
  $("bar").style.width = pct.toFixed(1) + "%";
  $("progress").textContent = c.marked + " of " + c.images + " marked" +
    (S.cls ? " in this class (" + c.marked_all + " of " + c.images_all + " in all)" : "");
}

function saveState() {
  const el = $("save");
  if (S.failed) { el.className = "failed"; el.textContent = S.failed + " marks NOT saved: retrying"; }
  else if (S.pending) { el.className = "saving"; el.textContent = "saving…"; }
  else { el.className = "saved"; el.textContent = "all marks saved"; }
}

function cellOf(i) { return $("grid").children[i]; }

function decision(item) {  // in the top-ranked view: what Enter writes for an unmarked image (null: nothing)
  if (item.mark) return null;
  if (item.choice !== undefined) return item.choice;
  return item.p !== undefined && item.p >= 0.5 ? S.target : null;
}

function paint(i) {
  const item = S.items[i], cell = cellOf(i);
  if (!cell) return;
  const d = S.view === "ranked" ? decision(item) : null;
  cell.classList.toggle("proposed", !!d);
  cell.classList.toggle("reject", d === "good");
  if (item.mark) { cell.dataset.mark = item.mark; cell.querySelector(".tag").textContent = LABELS[item.mark]; }
  else { delete cell.dataset.mark; }
  if (d) cell.querySelector(".tag").textContent = d === "good" ? "→ good" : "→ " + LABELS[d] + "?";
}

function render() {
  const grid = $("grid");
  grid.textContent = "";
  S.items.forEach((item, i) => {
    const fig = document.createElement("figure");
    fig.className = "cell"; fig.dataset.key = item.key; fig.dataset.i = i; fig.tabIndex = -1;
    fig.setAttribute("role", "gridcell");
    const img = document.createElement("img");
    img.alt = item.key; img.decoding = "async"; img.loading = "lazy";
    img.addEventListener("error", () => fig.classList.add("broken"));
    img.src = api("/thumb/" + encodeURIComponent(item.key));
    const cap = document.createElement("figcaption");
    cap.textContent = item.class + " · " + item.key.slice(0, 10);
    const tag = document.createElement("span"); tag.className = "tag";
    const st = document.createElement("span"); st.className = "state";
    fig.append(img, cap, tag, st);
    if (item.removed) {
      const a = document.createElement("span"); a.className = "aside"; a.textContent = "set aside: " + item.removed;
      fig.append(a);
    } else if (item.why && S.view !== "ranked" && !item.why.startsWith("ranked")) {
      const w = document.createElement("span"); w.className = "why"; w.textContent = item.why; fig.append(w);
    }
    if (item.p !== undefined) {
      const b = document.createElement("span"); b.className = "p"; b.textContent = "p " + item.p.toFixed(2);
      b.title = "probability of " + LABELS[S.target] + ", from your marks"; fig.append(b);
    }
    fig.addEventListener("click", () => setFocus(i));
    grid.append(fig);
    paint(i);
  });
  $("pageinfo").textContent = (S.view === "ranked" ? "top-ranked, " : "") + "page " + (S.page + 1) + " of " + S.pages;
  setFocus(Math.min(S.focus, S.items.length - 1));
}

function setFocus(i) {
  if (!S.items.length) return;
  i = Math.max(0, Math.min(S.items.length - 1, i));
  const old = $("grid").querySelector(".cell.focus");
  if (old) old.classList.remove("focus");
  S.focus = i;
  const cell = cellOf(i);
  cell.classList.add("focus");
  cell.scrollIntoView({block: "nearest"});
}

async function load(page) {
  const params = {class: S.cls, page: page, sort: S.sort, view: S.view};
  const data = await getJSON("/api/images", Object.assign(params, SIZE ? {size: SIZE} : {}));
  S.page = data.page; S.pages = data.pages; S.items = data.items;
  if (S.focus >= S.items.length) S.focus = 0;
  render(); progress(data);
  document.body.dataset.loaded = String(Date.now());
}

async function send(key, mark, i) {
  S.pending += 1; saveState();
  const cell = i !== undefined && S.items[i] && S.items[i].key === key ? cellOf(i) : null;
  if (cell) cell.dataset.state = "saving";
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(api("/api/marks", {class: S.cls}), {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({marks: [{key: key, mark: mark}]})});
      if (!r.ok) throw new Error("status " + r.status);
      const data = await r.json();
      if (attempt) S.failed -= 1;
      S.pending -= 1; saveState(); progress(data);
      if (cell && cell.dataset.key === key) cell.dataset.state = "saved";
      return;
    } catch (e) {
      if (!attempt) { S.failed += 1; }
      if (cell) cell.dataset.state = "failed";
      saveState();
      await new Promise(res => setTimeout(res, Math.min(8000, 500 * 2 ** attempt)));
    }
  }
}

function mark(mark) {
  const i = S.focus, item = S.items[i];
  if (!item) return;
  const next = mark === "clear" ? null : mark;
  S.undo.push({key: item.key, before: item.mark || null, page: S.page, cls: S.cls, i: i});
  item.mark = next; paint(i);
  send(item.key, mark, i);
  if (next && i < S.items.length - 1) setFocus(i + 1);
}

async function undo() {
  const last = S.undo.pop();
  if (!last) return;
  if (last.bulk) {  // a confirmed page of the ranking: every mark taken back
    const r = await fetch(api("/api/marks", {class: S.cls}), {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({marks: last.bulk.map(k => ({key: k, mark: "clear"}))})});
    if (r.ok) progress(await r.json());
    S.items.forEach((it, i) => { if (last.bulk.includes(it.key)) { it.mark = null; paint(i); } });
    return;
  }
  if (last.cls !== S.cls || last.page !== S.page) { S.cls = last.cls; $("cls").value = last.cls; await load(last.page); }
  const i = S.items.findIndex(it => it.key === last.key);
  if (i >= 0) { S.items[i].mark = last.before; paint(i); setFocus(i); }
  send(last.key, last.before || "clear", i >= 0 ? i : undefined);
}

function pct(x) { return Math.round(100 * x) + "%"; }

function showRanking(r) {
  S.rank = r;
  const name = LABELS[r.target];
  $("rankbar").hidden = false;
  const info = $("rankinfo");
  let text = "Ranked " + r.ranked + " unmarked images by how likely each is " + name + ": logistic regression on " +
    r.source + ", learned from " + r.positives + " marked " + name + " and " + r.negatives + " other (" + r.seconds +
    " s). ";
  let trust = "";
  if (r.accuracy === null) {
    trust = "Not measured yet: mark at least 2 " + name + " and 2 other images to see how often it is right.";
    info.className = "warn";
  } else {
    trust = "Held-out accuracy " + pct(r.accuracy) + " (" + r.folds + "-fold cross-validation; always guessing the " +
      "commoner answer scores " + pct(r.baseline) + "); it finds " + pct(r.recall) + " of the " + name +
      " images it did not learn from.";
    info.className = r.accuracy > r.baseline ? "" : "warn";
  }
  info.textContent = text;
  const t = document.createElement("span"); t.className = "trust"; t.id = "trust"; t.textContent = trust;
  info.append(t);
  document.querySelectorAll(".tname").forEach(e => e.textContent = name);
  $("confirm").hidden = true;
  updateAbove();
}

async function updateAbove() {
  if (!S.rank) return;
  const t = parseFloat($("threshold").value);
  $("abovecount").textContent = "…";
  const data = await getJSON("/api/images", {view: "ranked", size: 1, min_p: t});
  $("abovecount").textContent = data.rows;
  $("above").disabled = !data.rows;
  S.aboveRows = data.rows;
}

async function findMore() {
  const btn = $("find");
  btn.disabled = true;
  $("rankbar").hidden = false;
  $("rankinfo").className = ""; $("rankinfo").textContent = "learning from your marks…";
  const watch = setInterval(async () => {  // the first ranking may describe every image first: say how far
    try {
      const g = await getJSON("/api/rank/progress");
      if (g.busy && g.total && g.done < g.total)
        $("rankinfo").textContent = "describing the images (first time only): " + g.done + " of " + g.total + "…";
    } catch (e) { /* the answer to the ranking says what went wrong */ }
  }, 700);
  try {
    const r = await fetch(api("/api/rank", {target: S.target}), {method: "POST"});
    clearInterval(watch);
    const data = await r.json();
    if (!r.ok) { $("rankinfo").className = "warn"; $("rankinfo").textContent = data.error || ("status " + r.status); return; }
    showRanking(data);
    S.view = "ranked"; S.focus = 0;
    await load(0);
  } finally { clearInterval(watch); btn.disabled = false; }
}

async function confirmPage() {
  if (S.view !== "ranked") return;
  const marks = S.items.filter(it => decision(it)).map(it => ({key: it.key, mark: decision(it)}));
  if (!marks.length) return;
  S.pending += 1; saveState();
  try {
    const r = await fetch(api("/api/marks", {class: S.cls}), {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({marks: marks, via: "rank"})});
    if (!r.ok) throw new Error("status " + r.status);
    progress(await r.json());
    S.undo.push({bulk: marks.map(m => m.key)});
  } catch (e) { S.failed += 1; S.pending -= 1; saveState(); return; }
  S.pending -= 1; saveState();
  await findMore();  // learn from the new marks at once
}

async function confirmAbove(yes) {
  if (!yes) { $("confirm").hidden = true; return; }
  const t = parseFloat($("threshold").value);
  const r = await fetch(api("/api/rank/confirm", {class: S.cls}), {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({id: S.rank.id, threshold: t, count: S.aboveRows, mark: S.target})});
  const data = await r.json();
  $("confirm").hidden = true;
  if (!r.ok) { $("rankinfo").className = "warn"; $("rankinfo").textContent = data.error; return; }
  progress(data);
  $("rankinfo").textContent = data.saved + " images marked " + LABELS[S.target] + " (ranked at or above " + t + ")";
  S.view = "all"; await load(S.page);
  updateAbove();
}

function columns() {
  const cells = $("grid").children;
  if (!cells.length) return 1;
  const top = cells[0].offsetTop;
  let n = 0;
  while (n < cells.length && cells[n].offsetTop === top) n++;
  return Math.max(1, n);
}

document.addEventListener("keydown", ev => {
  if (ev.target && ev.target.tagName === "SELECT") return;
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "z") { ev.preventDefault(); undo(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target && ev.target.tagName === "BUTTON" && (ev.key === "Enter" || ev.key === " ")) {
    if (ev.target.closest("#confirm")) return;  // the confirmation's own buttons
    ev.target.blur();
  }
  if (ev.target && ev.target.tagName === "INPUT") { if (ev.key === "Enter") { ev.target.blur(); updateAbove(); } return; }
  const k = ev.key;
  if (S.view === "ranked" && k === " ") {
    ev.preventDefault();
    const it = S.items[S.focus];
    if (it && !it.mark) { it.choice = decision(it) === S.target ? "good" : S.target; paint(S.focus); }
    return;
  }
  if (S.view === "ranked" && k === "Enter") { ev.preventDefault(); confirmPage(); return; }
  if (k === "f") { ev.preventDefault(); findMore(); return; }
  if (k === "t" && S.rank) { ev.preventDefault(); S.view = "ranked"; S.focus = 0; load(0); return; }
  if (k === "a" && S.view !== "all") { ev.preventDefault(); S.view = "all"; S.focus = 0; load(0); return; }
  if (KEYS[k] !== undefined) { ev.preventDefault(); mark(KEYS[k]); }
  else if (k === "u" || k === "z") { ev.preventDefault(); undo(); }
  else if (k === "ArrowRight") { ev.preventDefault(); setFocus(S.focus + 1); }
  else if (k === "ArrowLeft") { ev.preventDefault(); setFocus(S.focus - 1); }
  else if (k === "ArrowDown") { ev.preventDefault(); setFocus(S.focus + columns()); }
  else if (k === "ArrowUp") { ev.preventDefault(); setFocus(S.focus - columns()); }
  else if (k === "n" || k === "]" || k === "PageDown") { ev.preventDefault(); if (S.page + 1 < S.pages) { S.focus = 0; load(S.page + 1); } }
  else if (k === "p" || k === "[" || k === "PageUp") { ev.preventDefault(); if (S.page > 0) { S.focus = 0; load(S.page - 1); } }
});
document.querySelectorAll("button[data-mark]").forEach(b => b.addEventListener("click", () => mark(b.dataset.mark)));
$("undo").addEventListener("click", () => undo());
$("next").addEventListener("click", () => { if (S.page + 1 < S.pages) { S.focus = 0; load(S.page + 1); } });
$("prev").addEventListener("click", () => { if (S.page > 0) { S.focus = 0; load(S.page - 1); } });
$("cls").addEventListener("change", ev => { S.cls = ev.target.value; S.focus = 0; load(0); ev.target.blur(); });
$("sort").addEventListener("change", ev => { S.sort = ev.target.value; S.view = "all"; S.focus = 0; load(0); ev.target.blur(); });
$("target").addEventListener("change", ev => { S.target = ev.target.value; ev.target.blur(); });
$("find").addEventListener("click", () => findMore());
$("showranked").addEventListener("click", () => { S.view = "ranked"; S.focus = 0; load(0); });
$("showall").addEventListener("click", () => { S.view = "all"; S.focus = 0; load(0); });
$("threshold").addEventListener("change", () => updateAbove());
$("above").addEventListener("click", () => {
  $("confirmtext").textContent = "Mark " + S.aboveRows + " images " + LABELS[S.target] + " (every unmarked image ranked at or above " +
    $("threshold").value + ")? curate will set them aside; undo by marking them again.";
  $("confirm").hidden = false; $("confirmyes").focus();
});
$("confirmyes").addEventListener("click", () => confirmAbove(true));
$("confirmno").addEventListener("click", () => confirmAbove(false));
window.addEventListener("beforeunload", ev => { if (S.pending) { ev.preventDefault(); ev.returnValue = ""; } });

(() => {  // the icon carries the token too (the browser's own /favicon.ico request would not)
  const icon = document.createElement("link");
  icon.rel = "icon"; icon.type = "image/svg+xml"; icon.href = api("/favicon.svg");
  document.head.append(icon);
})();
(async () => {
  const index = await getJSON("/api/index");
  $("title").textContent = "review: " + index.dataset;
  document.title = "gbifxdl review: " + index.dataset;
  for (const c of index.classes) {
    const o = document.createElement("option");
    o.value = c.label; o.textContent = c.label + (c.name ? " " + c.name : "") + " (" + c.images + ")";
    $("cls").append(o);
  }
  await load(0);
})();
</script>
</body></html>
"""
