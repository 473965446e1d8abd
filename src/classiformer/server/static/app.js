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
  $("model-info").textContent = `${m.name} · ${m.family} · ${m.labels.length} classes: ${m.labels.join(", ")}`;
}

function showBars(prediction) {
  const bars = $("bars");
  bars.replaceChildren();
  const entries = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of entries) {
    const row = document.createElement("div");
    row.className = "bar" + (name === prediction.label ? " top" : "");
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
  $("label").textContent = prediction.label;
  $("result").hidden = false;
}

function showTokens() {
  const ex = lastExplanation;
  const method = $("method").value;
  const scores = ex.importance[method] || [];
  const peak = Math.max(1e-12, ...scores.map(Math.abs));
  const box = $("tokens");
  box.replaceChildren();
  ex.tokens.forEach((tok, i) => {
    const s = scores[i] || 0;
    const span = document.createElement("span");
    span.className = "tok";
    span.textContent = tok;
    span.title = `${method}: ${s.toFixed(4)}`;
    span.dataset.score = String(s);
    const a = Math.abs(s) / peak;
    span.style.background = s >= 0 ? `rgba(220, 80, 40, ${a.toFixed(3)})` : `rgba(40, 110, 220, ${a.toFixed(3)})`;
    box.append(span, " ");
  });
}

function drawHeatmap(att, tokens) {
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!att) { $("attention-note").textContent = "(this model exposes no attention)"; return; }
  const T = att.matrix.length;
  const margin = 80;
  const cell = Math.max(2, Math.floor((canvas.width - margin) / Math.max(T, 1)));
  let peak = 1e-12;
  for (const row of att.matrix) for (const v of row) peak = Math.max(peak, v);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const v = att.matrix[i][j] / peak;
      const c = Math.round(255 * (1 - v));
      ctx.fillStyle = `rgb(${c}, ${c}, 255)`;
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
  $("attention-note").textContent = `(layer ${att.layer + 1} of ${att.layers}, ${att.reduction}; row = query token)`;
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
  loadModel();
});
