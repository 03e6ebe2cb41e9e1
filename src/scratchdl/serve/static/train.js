// scratchdl serve: the Train tab. Choose the settings (or one of the book's presets), start
// runs, and watch them learn: the curves, histograms and filters come as Server-Sent Events
// from /api/jobs/stream; the page never polls a chart. It uses the same JSON API as anyone
// else (POST /api/jobs, .../stop, .../resume). Whatever a job says is written with
// textContent: nothing from a job is read as HTML.

import { COLOURS, drawAccuracy, drawHistogram, drawLoss, filterCanvas } from "./train_charts.js";
import { addSwitch, lang, onLanguage, t, translate } from "./train_i18n.js";

const $ = (selector, root = document) => root.querySelector(selector);
const NETWORKS = ["mlp", "two-layer", "simple-cnn"];
const DATASETS = ["mnist", "fashion-mnist", "mnist-sample"];
const OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"];
const OPTIMIZER_NAMES = { sgd: "SGD", momentum: "Momentum", nesterov: "Nesterov", adagrad: "AdaGrad", rmsprop: "RMSprop", adam: "Adam" };
const DEFAULT_LR = { sgd: 0.1, momentum: 0.01, nesterov: 0.01, adagrad: 0.01, rmsprop: 0.001, adam: 0.001 };
const MLP_ONLY = ["hidden_layers", "activation", "batchnorm", "dropout", "weight_decay"];
const RESUMABLE = ["stopped", "diverged", "failed"];
const HIST_SIZE = [150, 80];
const KINDS = { Relu: "ReLU", Sigmoid: "sigmoid", Tanh: "tanh" }; // the book's names

const jobs = new Map(); // id -> {summary, iterations, values, train, test, histograms, filters}
const shown = new Set(); // the ids drawn on the charts
const colours = new Map(); // id -> colour, kept while the page lives
let presets = [];
let selected = null; // the job whose histograms are shown
let drawing = false;

// -- the panel ----------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "i18n") {
      if (value) node.dataset.i18n = value;
    }
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function field(key, input) {
  input.id = `train-${key.replace("_", "-")}`;
  input.name = key;
  return el("label", { class: `field field-${key}` }, el("span", { i18n: key }), input);
}

function choice(options, prefix) {
  return el("select", {}, ...options.map((o) => el("option", { value: o, i18n: prefix ? `${prefix}.${o}` : null }, prefix ? "" : OPTIMIZER_NAMES[o] || o)));
}

function number(attributes) {
  return el("input", { type: "number", ...attributes });
}

function buildPanel(view) {
  const lr = el("input", { type: "range", min: "-5", max: "0", step: "0.05", value: "-3" });
  const form = el(
    "form",
    { id: "train-form", class: "train-form", novalidate: true },
    field("preset", el("select", {}, el("option", { value: "", i18n: "preset.none" }))),
    el("p", { id: "train-preset-text", class: "hint" }),
    field("model", choice(NETWORKS, "net")),
    field("hidden_layers", number({ min: "1", step: "1", value: "4" })),
    field("hidden_size", number({ min: "1", step: "1", value: "100" })),
    field("activation", choice(["relu", "sigmoid", "tanh"], "act")),
    field("dataset", choice(DATASETS, "data")),
    field("train_size", number({ min: "1", step: "1", placeholder: "60000" })),
    field("optimizer", choice(OPTIMIZERS)),
    el("label", { class: "field field-lr" }, el("span", { i18n: "lr" }), lr, el("output", { id: "train-lr-value" })),
    field("batch_size", number({ min: "1", step: "1", value: "100" })),
    field("epochs", number({ min: "1", step: "1", value: "5" })),
    field("init", choice(["he", "xavier", "std"], "init")),
    field("init_std", number({ min: "0", step: "any", value: "0.01" })),
    field("batchnorm", el("input", { type: "checkbox" })),
    field("dropout", number({ min: "0", step: "0.05", value: "0" })),
    field("weight_decay", number({ min: "0", step: "any", value: "0" })),
    field("augment", el("input", { type: "checkbox" })),
    field("seed", number({ min: "0", step: "1", value: "0" })),
    el("div", { class: "row" }, el("button", { id: "train-start", type: "submit", i18n: "start" })),
  );
  lr.id = "train-lr";
  lr.name = "lr";
  const table = el(
    "table",
    { id: "train-jobs" },
    el("thead", {}, el("tr", {}, ...["show", "run", "state", "progress", "test"].map((k) => el("th", { i18n: `col.${k}` })), el("th"))),
    el("tbody"),
  );
  const charts = el(
    "div",
    { class: "card train-charts" },
    el("h2", { i18n: "loss.title" }),
    el("canvas", { id: "train-loss", width: "720", height: "300", "data-points": "0" }),
    el("p", { class: "hint", i18n: "loss.note" }),
    el("ul", { id: "train-legend", class: "legend" }),
    el("h2", { i18n: "acc.title" }),
    el("canvas", { id: "train-acc", width: "720", height: "240" }),
    el("p", { class: "hint", i18n: "acc.note" }),
    el("p", { id: "train-empty", class: "hint", i18n: "none.yet" }),
  );
  const pictures = el(
    "div",
    { class: "card" },
    el("h2", {}, el("span", { i18n: "hist.title" }), " ", el("small", { id: "train-hist-job" })),
    el("div", { id: "train-hist", class: "hists" }),
    el("h3", { i18n: "weights.title" }),
    el("div", { id: "train-weights", class: "hists" }),
    el("h3", { id: "train-filters-title", i18n: "filters.title", hidden: true }),
    el("div", { id: "train-filters" }),
  );
  view.append(
    el(
      "div",
      { class: "train-top" },
      el("div", { class: "card train-settings" }, el("h2", { i18n: "settings" }), form, el("p", { id: "train-message", class: "message", role: "status" })),
      el("div", { class: "train-main" }, charts),
    ),
    el("div", { class: "card" }, el("h2", { i18n: "jobs" }), el("p", { id: "train-limits", class: "hint" }), table),
    pictures,
  );
}

// -- settings <-> the form ----------------------------------------------------------------

function input(key) {
  return $(`#train-${key.replace("_", "-")}`);
}

function showLr() {
  $("#train-lr-value").textContent = Number((10 ** Number(input("lr").value)).toPrecision(2)).toString();
}

function setLr(value) {
  input("lr").value = String(Math.log10(value));
  showLr();
}

// The settings the form says, only those the chosen network has.
function readForm() {
  const model = input("model").value;
  const s = {
    model,
    hidden_size: Number(input("hidden_size").value),
    dataset: input("dataset").value,
    optimizer: input("optimizer").value,
    lr: Number((10 ** Number(input("lr").value)).toPrecision(3)),
    batch_size: Number(input("batch_size").value),
    epochs: Number(input("epochs").value),
    init: input("init").value,
    init_std: Number(input("init_std").value),
    augment: input("augment").checked,
    seed: Number(input("seed").value),
  };
  if (input("train_size").value !== "") s.train_size = Number(input("train_size").value);
  if (model === "mlp") {
    s.hidden_layers = Number(input("hidden_layers").value);
    s.activation = input("activation").value;
    s.batchnorm = input("batchnorm").checked;
    s.dropout = Number(input("dropout").value);
    s.weight_decay = Number(input("weight_decay").value);
  }
  if (s.init !== "std") delete s.init_std;
  return s;
}

function fillForm(s) {
  for (const [key, value] of Object.entries(s)) {
    if (key === "lr") setLr(value);
    else if (key === "train_size") input(key).value = value == null ? "" : value;
    else if (input(key)?.type === "checkbox") input(key).checked = Boolean(value);
    else if (input(key)) input(key).value = value;
  }
  if (!("train_size" in s)) input("train_size").value = "";
  enableFields();
}

function enableFields() {
  const mlp = input("model").value === "mlp";
  for (const key of MLP_ONLY) input(key).disabled = !mlp;
  if (!mlp && input("init").value !== "std") input("init").value = "std";
  for (const option of input("init").options) option.disabled = !mlp && option.value !== "std";
  input("init_std").disabled = input("init").value !== "std";
  // a preset compares one setting: its runs set that one, whatever the form says
  const preset = presets.find((p) => p.id === input("preset").value);
  const varied = new Set(preset ? preset.runs.flatMap((r) => Object.keys(r.settings)) : []);
  for (const node of document.querySelectorAll("#train-form .field")) {
    const key = [...node.classList].find((c) => c.startsWith("field-"))?.slice(6);
    node.classList.toggle("varied", varied.has(key));
  }
}

function choosePreset() {
  const preset = presets.find((p) => p.id === input("preset").value);
  const text = $("#train-preset-text");
  if (!preset) {
    text.textContent = "";
    enableFields();
    return;
  }
  fillForm({ ...preset.base, ...preset.runs[0].settings });
  text.textContent = `${preset.text[lang()]} ${t("preset.runs")}${preset.runs.map((r) => r.label).join(", ")}`;
}

// -- the API ------------------------------------------------------------------------------

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.detail || `${response.status} ${response.statusText}`);
  return answer;
}

async function start(event) {
  event.preventDefault();
  const message = $("#train-message");
  const preset = input("preset").value;
  const settings = readForm();
  message.textContent = "";
  message.classList.remove("error");
  try {
    const body = preset ? { preset, settings: sharedSettings(preset, settings) } : { settings };
    const answer = await post("/api/jobs", body);
    if (preset) shown.clear(); // a preset is a figure of its own
    for (const job of answer.jobs) {
      track(job);
      shown.add(job.id);
    }
    selected = answer.jobs[0].id;
    message.textContent = t("started") + answer.jobs.map((j) => j.label).join(", ");
  } catch (error) {
    message.textContent = error.message;
    message.classList.add("error");
  }
  scheduleDraw();
}

// What a preset's runs share, from the form: never the setting they compare.
function sharedSettings(id, settings) {
  const preset = presets.find((p) => p.id === id);
  const shared = { ...settings };
  for (const run of preset.runs) for (const key of Object.keys(run.settings)) delete shared[key];
  if (preset.runs.some((r) => "init" in r.settings)) delete shared.init_std;
  return shared;
}

async function act(id, action) {
  const message = $("#train-message");
  message.textContent = "";
  message.classList.remove("error");
  try {
    track(await post(`/api/jobs/${encodeURIComponent(id)}/${action}`, {}));
  } catch (error) {
    message.textContent = error.message;
    message.classList.add("error");
  }
  scheduleDraw();
}

// -- the stream -----------------------------------------------------------------------------

function track(summary) {
  let job = jobs.get(summary.id);
  if (!job) {
    job = { iterations: [], values: [], train: [], test: [], histograms: null, filters: null };
    jobs.set(summary.id, job);
    colours.set(summary.id, COLOURS[colours.size % COLOURS.length]);
  }
  job.summary = summary;
  return job;
}

function setCurves(job, curves) {
  job.iterations = [...curves.loss_iterations];
  job.values = [...curves.loss];
  job.train = [...curves.train_acc];
  job.test = [...curves.test_acc];
}

function handle(event) {
  const job = jobs.get(event.id);
  switch (event.type) {
    case "snapshot": {
      const first = !shown.size; // a page opened now shows the latest runs started together
      const newest = event.jobs.length ? event.jobs[event.jobs.length - 1].group : null;
      for (const detail of event.jobs) {
        const known = track(detail);
        setCurves(known, detail.curves);
        known.histograms = detail.histograms;
        known.filters = detail.filters;
        if (first && (detail.group === newest || detail.state === "running")) shown.add(detail.id);
      }
      $("#train-limits").textContent = t("limits", event);
      document.body.dataset.trainReady = "true";
      break;
    }
    case "job":
      track(event.job);
      break;
    case "loss":
      if (!job) break;
      while (job.iterations.length && job.iterations[job.iterations.length - 1] > event.from) {
        job.iterations.pop(); // a resumed run goes on from its checkpoint
        job.values.pop();
      }
      event.values.forEach((v, i) => {
        job.iterations.push(event.from + i + 1);
        job.values.push(v);
      });
      break;
    case "epoch":
      if (!job) break;
      job.train.length = job.test.length = event.epoch - 1;
      job.train.push(event.train_acc);
      job.test.push(event.test_acc);
      break;
    case "restored":
      if (job) setCurves(job, event);
      break;
    case "histograms":
    case "filters":
      if (job) job[event.type] = event;
      break;
    case "removed":
      jobs.delete(event.id);
      shown.delete(event.id);
      break;
    default:
      break;
  }
  scheduleDraw();
}

function connect() {
  const source = new EventSource("/api/jobs/stream");
  source.onmessage = (message) => handle(JSON.parse(message.data));
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) $("#train-limits").textContent = t("stream.lost");
  };
}

// -- drawing ------------------------------------------------------------------------------

function scheduleDraw() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => {
    drawing = false;
    draw();
  });
}

function draw() {
  const list = [...shown].filter((id) => jobs.has(id)).map((id) => [id, jobs.get(id)]);
  const loss = list.map(([id, j]) => ({ colour: colours.get(id), iterations: j.iterations, values: j.values }));
  $("#train-loss").dataset.points = drawLoss($("#train-loss"), loss, t("iteration"));
  const epochs = Math.max(1, ...list.map(([, j]) => j.summary.epochs));
  const acc = list.map(([id, j]) => ({ colour: colours.get(id), train: j.train, test: j.test }));
  drawAccuracy($("#train-acc"), acc, epochs, t("epoch"));
  $("#train-empty").hidden = list.length > 0;
  drawLegend(list);
  drawTable();
  drawPictures();
}

function drawLegend(list) {
  const items = list.map(([id, j]) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colours.get(id);
    const acc = j.summary.test_acc == null ? "" : ` ${j.summary.test_acc.toFixed(3)}`;
    return el("li", { "data-job": id }, swatch, el("span", {}, j.summary.label), el("small", {}, ` ${t(`state.${j.summary.state}`)}${acc}`));
  });
  $("#train-legend").replaceChildren(...items);
}

function drawTable() {
  const rows = [...jobs.entries()].reverse().map(([id, j]) => {
    const s = j.summary;
    const box = el("input", { type: "checkbox", class: "show", "aria-label": s.label });
    box.checked = shown.has(id);
    box.addEventListener("change", () => {
      if (box.checked) shown.add(id);
      else shown.delete(id);
      scheduleDraw();
    });
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colours.get(id);
    const name = el("button", { type: "button", class: "link" }, s.label);
    name.addEventListener("click", () => {
      selected = id;
      scheduleDraw();
    });
    let state = t(`state.${s.state}`);
    if (s.queue_position) state += ` (${t("queue")} ${s.queue_position})`;
    const stateCell = el("td", { class: "state", "data-state": s.state }, state);
    if (s.message) stateCell.append(el("br"), el("small", {}, s.message));
    const progress = `${t("epoch")} ${s.epoch}/${s.epochs} · ${t("iteration")} ${s.iteration}/${s.iterations}`;
    const actions = el("td");
    if (["queued", "running"].includes(s.state)) {
      const stop = el("button", { type: "button", class: "stop", i18n: "stop" }, t("stop"));
      stop.addEventListener("click", () => act(id, "stop"));
      actions.append(stop);
    } else if (RESUMABLE.includes(s.state)) {
      const resume = el("button", { type: "button", class: "resume", i18n: "resume" }, t("resume"));
      resume.addEventListener("click", () => act(id, "resume"));
      actions.append(resume);
    }
    const acc = s.final_test_acc ?? s.test_acc;
    return el(
      "tr",
      { "data-job": id, class: id === selected ? "selected" : null },
      el("td", {}, box),
      el("td", {}, swatch, name, el("br"), el("small", {}, id)),
      stateCell,
      el("td", {}, progress),
      el("td", {}, acc == null ? "" : acc.toFixed(4)),
      actions,
    );
  });
  $("#train-jobs tbody").replaceChildren(...rows);
}

function drawPictures() {
  if (!jobs.has(selected)) selected = [...shown].find((id) => jobs.has(id)) ?? null;
  const job = jobs.get(selected);
  const hist = job?.histograms;
  const colour = colours.get(selected) || COLOURS[0];
  $("#train-hist-job").textContent = hist ? `${t("hist.of")} ${job.summary.label}, ${t("hist.after")} ${hist.iteration}` : "";
  $("#train-hist").replaceChildren(...(hist ? hist.activations : []).map((h) => {
    const zero = h.zero == null ? "" : ` · ${t("hist.zero")} ${(100 * h.zero).toFixed(0)} %`;
    return histFigure(`${t("hist.layer", { k: h.layer })} (${KINDS[h.kind] || h.kind})${zero}`, h, colour);
  }));
  $("#train-weights").replaceChildren(...(hist ? hist.weights : []).map((h) => histFigure(h.name, h, colour)));
  const filters = job?.filters;
  $("#train-filters-title").hidden = !filters;
  $("#train-filters").replaceChildren(...(filters ? [filterCanvas(filters, 4)] : []));
}

function histFigure(caption, hist, colour) {
  const canvas = el("canvas", { width: String(HIST_SIZE[0]), height: String(HIST_SIZE[1]) });
  drawHistogram(canvas, hist, colour);
  return el("figure", { class: "hist" }, canvas, el("figcaption", {}, caption));
}

// -- start-up -----------------------------------------------------------------------------

async function setUp() {
  const view = $("#view-train");
  if (!view) return;
  addSwitch($("header"));
  buildPanel(view);
  translate();
  onLanguage(() => {
    choosePreset();
    scheduleDraw();
  });
  input("lr").addEventListener("input", showLr);
  input("model").addEventListener("change", enableFields);
  input("init").addEventListener("change", enableFields);
  input("optimizer").addEventListener("change", () => setLr(DEFAULT_LR[input("optimizer").value]));
  input("preset").addEventListener("change", choosePreset);
  $("#train-form").addEventListener("submit", start);
  setLr(DEFAULT_LR.adam);
  input("optimizer").value = "adam";
  enableFields();
  const response = await fetch("/api/presets").catch(() => null);
  if (!response || !response.ok) {
    view.replaceChildren(el("div", { class: "card" }, el("p", { i18n: "off" }, t("off"))));
    return;
  }
  presets = (await response.json()).presets;
  const name = (p) => `${p.title[lang()]} (${lang() === "ja" ? "図 " : "fig. "}${p.figure})`;
  for (const p of presets) input("preset").append(el("option", { value: p.id }, name(p)));
  onLanguage(() => presets.forEach((p, i) => (input("preset").options[i + 1].textContent = name(p))));
  connect();
  draw();
}

setUp();
