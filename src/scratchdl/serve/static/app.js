// scratchdl serve: the page. It uses the same JSON API as anyone else (see /docs).
// Arrays from the API are {shape, min, max, data}: data is base64, one byte per value,
// 0 at min and 255 at max.
"use strict";

const $ = (selector) => document.querySelector(selector);
const RUNS_POLL_MS = 3000; // a training run writes its checkpoint once per epoch
const MODELS_POLL_MS = 15000; // a run writes its model once, when it ends
const DRAW_WIDTH = 18; // stroke width on the 280-pixel pad: about a pen's width on MNIST

const state = {
  model: null, // the id chosen in #model
  last: null, // the latest input sent: {body, type}, re-sent when the model changes
  busy: false, // a prediction is on its way
  pending: null, // the input to send when it returns
  run: null, // the run shown in the Runs view
  runsTimer: null,
};

// -- the API ------------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

function bytesOf(array) {
  const raw = atob(array.data);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

// -- drawing arrays -----------------------------------------------------------------------

// The colour of level q (0..255) of an array spanning [min, max]: gray from black for
// arrays that are never negative; around zero, orange for positive and blue for negative.
function colour(q, min, max) {
  if (!(min < 0 && max > 0)) return [q, q, q];
  const zero = (-min / (max - min)) * 255;
  if (q >= zero) {
    const t = (q - zero) / (255 - zero);
    return [255 * t, 140 * t, 20 * t];
  }
  const t = (zero - q) / zero;
  return [40 * t, 120 * t, 255 * t];
}

// Tiles of an array: (C, H, W) maps, or (C, 1, H, W) filters, or a vector (n) as squares.
function tiling(shape) {
  if (shape.length === 4) return { count: shape[0] * shape[1], h: shape[2], w: shape[3] };
  if (shape.length === 3) return { count: shape[0], h: shape[1], w: shape[2] };
  if (shape.length === 2) return { count: 1, h: shape[0], w: shape[1] };
  const n = shape[0];
  const w = n <= 16 ? n : Math.ceil(Math.sqrt(n)); // the 10 scores in one row
  return { count: 1, h: Math.ceil(n / w), w, vector: n };
}

// A canvas holding every tile of an array side by side, one pixel between tiles.
function arrayCanvas(array, scale) {
  const values = bytesOf(array);
  const { count, h, w, vector } = tiling(array.shape);
  const rows = Math.ceil(count / Math.ceil(Math.sqrt(count * 1.6))); // wider than high
  const cols = Math.ceil(count / rows); // no row left half empty: 30 maps are 6 x 5
  const canvas = document.createElement("canvas");
  canvas.width = cols * (w + 1) - 1;
  canvas.height = rows * (h + 1) - 1;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, canvas.height);
  image.data.fill(0);
  for (let i = 3; i < image.data.length; i += 4) image.data[i] = 255; // opaque black gaps
  const size = vector || values.length / count;
  for (let k = 0; k < count; k++) {
    const x0 = (k % cols) * (w + 1);
    const y0 = Math.floor(k / cols) * (h + 1);
    for (let j = 0; j < size; j++) {
      const [r, g, b] = colour(values[k * size + j], array.min, array.max);
      const p = 4 * ((y0 + Math.floor(j / w)) * canvas.width + x0 + (j % w));
      image.data[p] = r;
      image.data[p + 1] = g;
      image.data[p + 2] = b;
    }
  }
  ctx.putImageData(image, 0, 0);
  canvas.style.width = `${canvas.width * scale}px`;
  canvas.classList.add("pixels");
  return canvas;
}

function layerCard(title, detail, array, scale) {
  const card = document.createElement("figure");
  card.className = "layer";
  const caption = document.createElement("figcaption");
  caption.innerHTML = "<b></b><br><small></small>";
  caption.querySelector("b").textContent = title;
  caption.querySelector("small").textContent = detail;
  card.append(arrayCanvas(array, scale), caption);
  return card;
}

function range(array) {
  return `${array.shape.join("×")}, ${array.min.toPrecision(3)} … ${array.max.toPrecision(3)}`;
}

// -- the prediction -----------------------------------------------------------------------

function makeBars() {
  const bars = $("#bars");
  for (let k = 0; k < 10; k++) {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span class="digit">${k}</span><span class="track"><span class="fill">` +
      `</span></span><span class="value"></span>`;
    bars.append(row);
  }
}

function showPrediction(result) {
  $("#prediction").textContent = String(result.class);
  $("#confidence").textContent = `p = ${result.probabilities[result.class].toFixed(3)}`;
  [...$("#bars").children].forEach((row, k) => {
    const p = result.probabilities[k];
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = p.toFixed(3);
    row.classList.toggle("top", k === result.class);
  });
  const layers = $("#layers");
  layers.replaceChildren(layerCard("input 28×28", "after centring", result.input, 4));
  for (const layer of result.layers) {
    const maps = layer.shape.length === 3;
    const scale = maps ? Math.max(1, Math.round(48 / layer.shape[1])) : 8;
    layers.append(layerCard(`${layer.index + 1}. ${layer.name}`, range(layer), layer, scale));
  }
  const filters = $("#filters");
  filters.replaceChildren();
  if (result.filters) {
    filters.append(layerCard("filters", range(result.filters), result.filters, 6));
  } else {
    filters.textContent = "This model has no convolution.";
  }
}

function clearPrediction(text = "") {
  $("#prediction").textContent = "";
  $("#confidence").textContent = "";
  $("#message").textContent = text;
  for (const row of $("#bars").children) {
    row.querySelector(".fill").style.width = "0";
    row.querySelector(".value").textContent = "";
    row.classList.remove("top");
  }
}

// One request at a time; while one is out, only the newest input waits to be sent.
function predict(input) {
  state.last = input;
  state.pending = input;
  if (!state.busy) sendNext();
}

async function sendNext() {
  const input = state.pending;
  state.pending = null;
  if (!input) return;
  state.busy = true;
  try {
    const body = await input.body();
    const url = `/api/predict?model=${encodeURIComponent(state.model)}&layers=1`;
    const result = await api(url, {
      method: "POST",
      headers: { "Content-Type": input.type },
      body,
    });
    if (!state.pending) {
      $("#message").textContent = "";
      showPrediction(result);
    }
  } catch (error) {
    if (!state.pending) clearPrediction(error.message);
  } finally {
    state.busy = false;
    if (state.pending) sendNext();
  }
}

// -- the pad ------------------------------------------------------------------------------

function setUpPad() {
  const pad = $("#pad");
  const ctx = pad.getContext("2d");
  let drawing = false;
  let inked = false;
  const blank = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    inked = false;
  };
  const at = (event) => {
    const box = pad.getBoundingClientRect(); // the pad may be shown smaller (a phone)
    return [
      ((event.clientX - box.left) * pad.width) / box.width,
      ((event.clientY - box.top) * pad.height) / box.height,
    ];
  };
  const send = () => {
    if (inked) predict({ type: "image/png", body: () => padPng(pad) });
  };
  blank();
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = DRAW_WIDTH;
  ctx.lineCap = ctx.lineJoin = "round";
  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    pad.setPointerCapture(event.pointerId);
    const [x, y] = at(event);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 0.01, y);
    ctx.stroke();
    inked = true;
    $("#upload-preview").hidden = true;
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = at(event);
    ctx.lineTo(x, y);
    ctx.stroke();
    send(); // updated as you draw; predict() keeps one request in flight
  });
  const stop = () => {
    if (!drawing) return;
    drawing = false;
    send();
  };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);
  $("#clear").addEventListener("click", () => {
    blank();
    state.pending = null;
    clearPrediction();
    $("#layers").replaceChildren();
  });
}

function padPng(pad) {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

// -- upload -------------------------------------------------------------------------------

function setUpUpload() {
  const drop = $("#drop");
  const upload = (file) => {
    if (!file) return;
    $("#clear").click(); // the pad's drawing is not what is shown now
    const preview = $("#upload-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    // the raw bytes, not a form: the server needs no multipart parser; it tells the
    // format from the bytes, and a browser's guess (image/avif, "" ...) is not one it takes
    predict({ type: "application/octet-stream", body: async () => file });
  };
  $("#file").addEventListener("change", (event) => upload(event.target.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    upload(event.dataTransfer.files[0]);
  });
}

// -- the test set -------------------------------------------------------------------------

async function showTestSet(mistakes) {
  const grid = $("#test-grid");
  $("#test-summary").textContent = "classifying…";
  const seed = Math.floor(Math.random() * 2 ** 31);
  const query = `model=${encodeURIComponent(state.model)}&count=40&seed=${seed}`;
  try {
    const result = await api(`/api/testset?${query}&mistakes=${mistakes ? 1 : 0}`);
    const pct = (100 * result.accuracy).toFixed(2);
    $("#test-summary").textContent = `${result.source}: ${pct}% right, ${result.errors} ` +
      `mistakes. ${mistakes ? "Some of the mistakes" : "Random images"}, ` +
      "shown as label → prediction.";
    grid.replaceChildren();
    for (const item of result.images) {
      const card = document.createElement("button");
      card.type = "button";
      card.className = `sample ${item.label === item.predicted ? "right" : "wrong"}`;
      const array = { shape: [28, 28], min: 0, max: 255, data: item.pixels };
      const caption = document.createElement("span");
      caption.textContent = `${item.label} → ${item.predicted}`;
      card.append(arrayCanvas(array, 2), caption);
      card.addEventListener("click", () => lookInside(item.pixels));
      grid.append(card);
    }
  } catch (error) {
    $("#test-summary").textContent = error.message;
  }
}

function lookInside(pixels) {
  const bytes = bytesOf({ data: pixels });
  const rows = [];
  for (let i = 0; i < 28; i++) {
    rows.push(Array.from(bytes.slice(28 * i, 28 * i + 28), (v) => +(v / 255).toFixed(4)));
  }
  $("#upload-preview").hidden = true;
  showView("inside");
  const json = JSON.stringify({ pixels: rows });
  predict({ type: "application/json", body: async () => json });
}

// -- runs ---------------------------------------------------------------------------------

async function refreshRuns() {
  try {
    const result = await api("/api/runs");
    const body = $("#runs-table tbody");
    body.replaceChildren();
    $("#runs-summary").textContent = result.runs.length
      ? `Run folders in ${result.root}/, refreshed every ${RUNS_POLL_MS / 1000} s.`
      : `No runs in ${result.root}/ yet: start one with scratchdl train.`;
    for (const run of result.runs) {
      const row = document.createElement("tr");
      const acc = run.test_acc == null ? "" : run.test_acc.toFixed(4);
      const epochs = run.epochs ? `${run.epochs_done}/${run.epochs}` : "";
      for (const text of [run.name, run.state, epochs, acc]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.classList.toggle("chosen", run.name === state.run);
      row.addEventListener("click", () => {
        state.run = run.name;
        refreshRuns();
      });
      body.append(row);
    }
    if (!state.run && result.runs.length) state.run = result.runs[0].name;
    if (state.run) drawRun(await api(`/api/runs/${encodeURIComponent(state.run)}`));
  } catch (error) {
    $("#runs-summary").textContent = error.message;
  }
}

function drawRun(run) {
  const canvas = $("#run-chart");
  const final = run.final_test_acc == null ? "" : `, final test accuracy ${run.final_test_acc}`;
  $("#run-title").textContent = `${run.name}: ${run.state}${final}`;
  canvas.hidden = run.state === "unreadable";
  if (canvas.hidden) {
    $("#run-title").textContent += ` (${run.reason})`;
    return;
  }
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 50, R = 50, T = 20, B = 30;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  ctx.font = "12px sans-serif";
  const n = Math.max(1, run.iterations);
  const epochs = Math.max(1, run.epochs || run.test_acc.length);
  const top = extreme(run.loss, 1e-6, Math.max);
  // accuracy from a round tenth below its lowest value to 1: curves near 0.99 stay apart
  const lowest = extreme(run.test_acc, extreme(run.train_acc, 1, Math.min), Math.min);
  const low = Math.max(0, Math.min(0.9, Math.floor(10 * lowest) / 10));
  const x = (iteration) => L + ((W - L - R) * iteration) / n;
  const yLoss = (v) => H - B - ((H - T - B) * v) / top;
  const yAcc = (v) => H - B - ((H - T - B) * (v - low)) / (1 - low);
  ctx.strokeStyle = "#ccc";
  ctx.strokeRect(L, T, W - L - R, H - T - B);
  ctx.fillStyle = "#444";
  ctx.fillText(`loss (max ${top.toFixed(2)})`, 4, 14);
  ctx.fillText("1", W - R + 6, T + 4);
  ctx.fillText(String(low), W - R + 6, H - B);
  ctx.fillText("accuracy", W - R - 50, 14);
  ctx.fillText(`${run.iterations} iterations, ${run.test_acc.length}/${epochs} epochs`, L, H - 8);
  line(ctx, "#999", run.loss.map((v, i) => [x(run.loss_iterations[i]), v == null ? null : yLoss(v)]));
  const perEpoch = run.iterations / Math.max(1, run.test_acc.length);
  const points = (values) => values.map((v, e) => [x((e + 1) * perEpoch), yAcc(v)]);
  line(ctx, "#2a7", points(run.train_acc), true);
  line(ctx, "#d50", points(run.test_acc), true);
  ctx.fillStyle = "#2a7";
  ctx.fillText("train", W - R - 130, 14);
  ctx.fillStyle = "#d50";
  ctx.fillText("test", W - R - 90, 14);
}

// The extreme (pick: Math.min or Math.max) of start and the values that are not null, in a
// loop: Math.min(...values) passes every value as an argument, and a run of 300 000 epochs
// overflows the call stack.
function extreme(values, start, pick) {
  let found = start;
  for (const v of values) if (v != null) found = pick(found, v);
  return found;
}

function line(ctx, colour, points, dots = false) {
  ctx.strokeStyle = ctx.fillStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  let pen = false;
  for (const [x, y] of points) {
    if (y == null) {
      pen = false;
      continue;
    }
    pen ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    pen = true;
  }
  ctx.stroke();
  if (dots) for (const [x, y] of points) if (y != null) ctx.fillRect(x - 2, y - 2, 4, 4);
}

// -- views and start-up -------------------------------------------------------------------

function showView(name) {
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === name));
  }
  for (const view of document.querySelectorAll(".view")) {
    view.hidden = view.id !== `view-${name}`;
  }
  clearInterval(state.runsTimer);
  if (name === "runs") {
    refreshRuns();
    state.runsTimer = setInterval(refreshRuns, RUNS_POLL_MS); // a run still training grows
  }
  if (name === "testset" && !$("#test-grid").children.length) showTestSet(false);
}

// The model menu (#model) from /api/models, the chosen model kept; returns the answer.
async function refreshModels() {
  const info = await api("/api/models");
  const select = $("#model");
  const ids = info.models.map((model) => model.id);
  const shown = [...select.options].map((option) => option.value);
  if (ids.join("\n") !== shown.join("\n")) {
    select.replaceChildren();
    for (const model of info.models) {
      const option = document.createElement("option");
      option.value = model.id;
      option.textContent = model.title;
      select.append(option);
    }
    if (state.model && !ids.includes(state.model)) state.model = info.default; // deleted
    if (state.model) select.value = state.model;
  }
  return info;
}

async function start() {
  makeBars();
  setUpPad();
  setUpUpload();
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  $("#test-random").addEventListener("click", () => showTestSet(false));
  $("#test-mistakes").addEventListener("click", () => showTestSet(true));
  try {
    const info = await refreshModels();
    const select = $("#model");
    state.model = info.default;
    // a run that ends while the page is open offers its model: asked again now and then,
    // and when the menu is about to open
    setInterval(() => refreshModels().catch(() => {}), MODELS_POLL_MS);
    select.addEventListener("focus", () => refreshModels().catch(() => {}));
    select.addEventListener("change", () => {
      state.model = select.value;
      if (state.last) predict(state.last);
      $("#test-grid").replaceChildren();
      if (!$("#view-testset").hidden) showTestSet(false);
    });
    document.body.dataset.ready = "true"; // the models are known: the page can predict
  } catch (error) {
    $("#message").textContent = `cannot reach the server: ${error.message}`;
  }
}

start();
