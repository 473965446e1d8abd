// The classiformer try-it page: plain JavaScript, talks only to the server that sent it.
"use strict";

const $ = (id) => document.getElementById(id);
let lastExplanation = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value || sessionStorage.getItem("classiformer-key");
  if (key) h["X-API-Key"] = key;
  return h;
}

async function call(method, path, body) {
  const res = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (res.status === 401) $("key-box").hidden = false;
  return { status: res.status, ok: res.ok, data };
}

function errorText(r) {
  return (r.data && r.data.error && r.data.error.message) || `HTTP ${r.status}`;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

async function loadModel() {
  const r = await call("GET", "/v1/model");
  if (!r.ok) { $("model-info").textContent = "model: " + errorText(r); return; }
  const m = r.data;
  // A multi-label model's outputs are labels a text may have several of, not classes it falls in.
  const kind = m.problem_type === "multi_label_classification" ? "labels" : "classes";
  $("model-info").textContent = `${m.name} · ${m.family} · ${m.labels.length} ${kind}: ${m.labels.join(", ")}`;
}

function showBars(prediction) {
  const bars = $("bars");
  bars.replaceChildren();
  const entries = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
  // A multi-label model answers a label set (each label scored on its own), a single-label one a class.
  const chosen = new Set(prediction.labels || [prediction.label]);
  for (const [name, p] of entries) {
    const row = document.createElement("div");
    row.className = "bar" + (chosen.has(name) ? " top" : "");
    row.dataset.label = name;
    const label = document.createElement("span"); label.className = "name"; label.textContent = name;
    const track = document.createElement("span"); track.className = "track";
    const fill = document.createElement("span"); fill.className = "fill"; fill.style.display = "block";
    fill.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(fill);
    const value = document.createElement("span"); value.className = "value"; value.textContent = (100 * p).toFixed(1) + "%";
    row.append(label, track, value);
    bars.appendChild(row);
  }
  $("label").textContent = prediction.labels
    ? (prediction.labels.length ? prediction.labels.join(", ") : "(no label above its threshold)")
    : prediction.label;
  $("result").hidden = false;
}

// Special tokens ([CLS], [SEP], ...) carry no meaning of the text, yet rollout and attention pile
// weight on them: they are left out of the importance display unless asked for.
function shownPositions(ex) {
  const all = $("show-special").checked;
  const special = ex.special || [];
  return ex.tokens.map((_, i) => i).filter((i) => all || !special[i]);
}

function showTokens() {
  const ex = lastExplanation;
  const method = $("method").value;
  const scores = ex.importance[method] || [];
  const shown = shownPositions(ex);
  // Intensity: the token's share of the total |score| of the shown tokens against an even share,
  // full at 4x an even share; scaled to the peak, an even spread would look as strong as one word.
  const total = Math.max(1e-12, shown.reduce((acc, i) => acc + Math.abs(scores[i] || 0), 0));
  const box = $("tokens");
  box.replaceChildren();
  for (const i of shown) {
    const s = scores[i] || 0;
    const span = document.createElement("span");
    span.className = "tok" + ((ex.special || [])[i] ? " special" : "");
    span.textContent = ex.tokens[i];
    span.title = `${method}: ${s.toFixed(4)}`;
    span.dataset.score = String(s);
    const a = Math.min(1, (Math.abs(s) / total) * shown.length / 4);
    span.style.background = s >= 0 ? `rgba(220, 80, 40, ${a.toFixed(3)})` : `rgba(40, 110, 220, ${a.toFixed(3)})`;
    box.append(span, " ");
  }
  const signed = ["gradient", "ngram"].includes(method);
  $("token-ramp").className = "ramp" + (signed ? " signed" : "");
  $("token-low").textContent = signed ? "opposes the label" : "0";
  $("token-high").textContent = signed ? "supports the label" : "4\u00d7 an even share";
  const hidden = ex.tokens.length - shown.length;
  $("token-scale").textContent = `colour: the token's share of the total |score| of the ${shown.length} tokens shown; `
    + `an even share (1/${shown.length}) is light, 4\u00d7 an even share or more is full colour`
    + (hidden ? `; ${hidden} special token${hidden > 1 ? "s" : ""} left out` : "");
}

// The colours of the heatmap, white at 0 to dark blue at 1 (matplotlib's "Blues", as in the PNGs).
const BLUES = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
function blues(v) {
  const x = Math.min(1, Math.max(0, v)) * (BLUES.length - 1);
  const k = Math.min(BLUES.length - 2, Math.floor(x));
  const t = x - k;
  const c = BLUES[k].map((lo, j) => Math.round(lo + t * (BLUES[k + 1][j] - lo)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function drawHeatmap(att, tokens) {
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!att) {
    $("attention-note").textContent = "(this model exposes no attention)";
    $("attention-legend").hidden = true;
    return;
  }
  const T = att.matrix.length;
  const margin = 80;
  const cell = Math.max(2, Math.floor((canvas.width - margin) / Math.max(T, 1)));
  // One fixed scale, 0 to 1, for every map: scaled to its own peak, an even spread of attention
  // would look as strong as attention on one token.
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      ctx.fillStyle = blues(att.matrix[i][j]);
      ctx.fillRect(margin + j * cell, margin + i * cell, cell, cell);
    }
  }
  if (cell >= 8) {
    ctx.fillStyle = "#1d2330";
    ctx.font = `${Math.min(12, cell - 2)}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    tokens.forEach((tok, i) => {
      const label = tok.length > 10 ? tok.slice(0, 9) + "…" : tok;
      ctx.textAlign = "right";
      ctx.fillText(label, margin - 4, margin + i * cell + cell / 2);
      ctx.save();
      ctx.translate(margin + i * cell + cell / 2, margin - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(label, 0, 0);
      ctx.restore();
    });
  }
  $("attention-note").textContent = `(layer ${att.layer + 1} of ${att.layers}, ${att.reduction}, ${att.heads} heads; `
    + "row = the attending token, column = the token attended to)";
  $("attention-legend").hidden = false;
}

function showExplanation(ex) {
  lastExplanation = ex;
  const select = $("method");
  const previous = select.value;
  select.replaceChildren();
  for (const m of Object.keys(ex.importance)) {
    const o = document.createElement("option"); o.value = m; o.textContent = m; select.appendChild(o);
  }
  if (previous && ex.importance[previous]) select.value = previous;
  $("special-box").hidden = !(ex.special || []).some(Boolean);
  const notes = $("explain-notes");
  notes.replaceChildren();
  for (const n of ex.notes || []) {
    const p = document.createElement("p"); p.className = "warn"; p.textContent = n; notes.appendChild(p);
  }
  showTokens();
  drawHeatmap(ex.attention, ex.tokens);
  $("explanation").hidden = false;
  $("explanation").dataset.ready = "true";
}

async function classify() {
  const text = $("text").value;
  if (!text.trim()) { setStatus("type some text first", true); return; }
  const key = $("api-key").value;
  if (key) sessionStorage.setItem("classiformer-key", key);
  $("predict").disabled = true;
  $("explanation").dataset.ready = "false";
  setStatus("classifying…");
  try {
    const r = await call("POST", "/v1/predict", { texts: [text] });
    if (!r.ok) { setStatus(errorText(r), true); return; }
    showBars(r.data.predictions[0]);
    setStatus("");
    const e = await call("POST", "/v1/explain", { text });
    const note = $("explain-note");
    if (e.ok) { note.hidden = true; showExplanation(e.data); }
    else {
      $("explanation").hidden = true;
      note.hidden = false;
      note.textContent = "No explanation: " + errorText(e);
    }
  } catch (err) {
    setStatus("request failed: " + err, true);
  } finally {
    $("predict").disabled = false;
    $("result").dataset.done = "true";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("predict").addEventListener("click", classify);
  $("text").addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) classify(); });
  $("method").addEventListener("change", showTokens);
  $("show-special").addEventListener("change", showTokens);
  loadModel();
});
