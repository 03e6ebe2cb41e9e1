// scratchdl serve: the page: the Draw & upload and Test set tabs, the model menu, the tabs.
// It uses the same JSON API as anyone else (see /docs). Its words come from t() (i18n.js) and
// are written again when the language changes; whatever the server says is shown as it is.

import { api, arrayCanvas, bytesOf } from "./api.js";
import { RUNS_POLL_MS, redrawRuns, refreshRuns } from "./runs.js";
import { onLanguage, t, translate } from "./train_i18n.js";

const $ = (selector) => document.querySelector(selector);
const MODELS_POLL_MS = 15000; // a run writes its model once, when it ends
const DRAW_WIDTH = 18; // stroke width on the 280-pixel pad: about a pen's width on MNIST

const state = {
  model: null, // the id chosen in #model
  last: null, // the latest input sent: {body, type}, re-sent when the model changes
  busy: false, // a prediction is on its way
  pending: null, // the input to send when it returns
  runsTimer: null,
  shown: null, // the prediction shown, drawn again in a new language
  testset: null, // the test images shown: [answer, mistakes]
  error: null, // the start-up error: the server's words, after ours
};

function layerCard(title, detail, array, scale) {
  const card = document.createElement("figure");
  card.className = "layer";
  const caption = document.createElement("figcaption");
  const [name, about] = [document.createElement("b"), document.createElement("small")];
  name.textContent = title;
  about.textContent = detail;
  caption.append(name, document.createElement("br"), about);
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
    const [digit, track, fill, value] = ["digit", "track", "fill", "value"].map((name) => {
      const span = document.createElement("span");
      span.className = name;
      return span;
    });
    digit.textContent = String(k);
    track.append(fill);
    row.append(digit, track, value);
    bars.append(row);
  }
}

function showPrediction(result) {
  state.shown = result;
  $("#prediction").textContent = String(result.class);
  $("#confidence").textContent = `p = ${result.probabilities[result.class].toFixed(3)}`;
  [...$("#bars").children].forEach((row, k) => {
    const p = result.probabilities[k];
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = p.toFixed(3);
    row.classList.toggle("top", k === result.class);
  });
  const layers = $("#layers");
  layers.replaceChildren(layerCard(t("layer.input"), t("layer.centred"), result.input, 4));
  for (const layer of result.layers) {
    const maps = layer.shape.length === 3;
    const scale = maps ? Math.max(1, Math.round(48 / layer.shape[1])) : 8;
    layers.append(layerCard(`${layer.index + 1}. ${layer.name}`, range(layer), layer, scale));
  }
  const filters = $("#filters");
  filters.replaceChildren();
  if (result.filters) {
    filters.append(layerCard(t("layer.filters"), range(result.filters), result.filters, 6));
  } else {
    filters.textContent = t("layer.noconv");
  }
}

function clearPrediction(text = "") {
  state.shown = null;
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
    $("#filters").replaceChildren();
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
  $("#test-summary").textContent = t("test.busy");
  state.testset = null;
  const seed = Math.floor(Math.random() * 2 ** 31);
  const query = `model=${encodeURIComponent(state.model)}&count=40&seed=${seed}`;
  try {
    const result = await api(`/api/testset?${query}&mistakes=${mistakes ? 1 : 0}`);
    state.testset = [result, mistakes];
    testSummary();
    const grid = $("#test-grid");
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

// "N% right, M mistakes": the server's name of the test set, then our words
function testSummary() {
  if (!state.testset) return;
  const [result, mistakes] = state.testset;
  $("#test-summary").textContent = t("test.summary", {
    source: result.source,
    pct: (100 * result.accuracy).toFixed(2),
    errors: result.errors,
    which: t(mistakes ? "test.which.mistakes" : "test.which.random"),
  });
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

// The words this file wrote, in the new language (the [data-i18n] ones are set by translate).
function newLanguage() {
  if (state.shown) showPrediction(state.shown);
  testSummary();
  if (state.error) $("#message").textContent = t("server.lost") + state.error;
  redrawRuns();
}

async function start() {
  translate(); // before the first paint's words are read; train.js adds the switch
  onLanguage(newLanguage);
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
    state.error = error.message;
    $("#message").textContent = t("server.lost") + state.error;
  }
}

start();
