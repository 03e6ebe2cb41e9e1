// scratchdl serve: the Train tab's settings form: built here (no HTML to keep in step with
// it), read into the settings of POST /api/jobs, filled in by a preset. A preset compares one
// setting across its runs; the form marks that one (◆) and never sends it.

import { lang, t } from "./train_i18n.js";

const $ = (selector) => document.querySelector(selector);

const NETWORKS = ["mlp", "two-layer", "simple-cnn"];
const DATASETS = ["mnist", "fashion-mnist", "mnist-sample"];
const OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"];
const OPTIMIZER_NAMES = { sgd: "SGD", momentum: "Momentum", nesterov: "Nesterov", adagrad: "AdaGrad", rmsprop: "RMSprop", adam: "Adam" };
const MLP_ONLY = ["hidden_layers", "activation", "batchnorm", "dropout", "weight_decay"];

let presets = []; // GET /api/presets
let defaultLr = {}; // scratchdl train's learning rate for each optimizer, from the same

// -- the panel ----------------------------------------------------------------------------

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "i18n") {
      if (value) node.dataset.i18n = value;
    } else if (value === true) {
      node.setAttribute(key, "");
    } else if (value !== false && value != null) {
      node.setAttribute(key, value);
    }
  }
  node.append(...children);
  return node;
}

function field(key, control) {
  control.id = `train-${key.replace("_", "-")}`;
  control.name = key;
  return el("label", { class: `field field-${key}` }, el("span", { i18n: key }), control);
}

function choice(options, prefix) {
  return el("select", {}, ...options.map((o) => el("option", { value: o, i18n: prefix ? `${prefix}.${o}` : null }, prefix ? "" : OPTIMIZER_NAMES[o] || o)));
}

function number(attributes) {
  return el("input", { type: "number", ...attributes });
}

export function buildPanel(view) {
  const lr = el("input", { type: "range", min: "-5", max: "1", step: "0.05", value: "-3" }); // log10
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

export function input(key) {
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
export function readForm() {
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

export function fillForm(s) {
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

export function choosePreset() {
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

// What a preset's runs share, from the form: never the setting they compare.
export function sharedSettings(id, settings) {
  const preset = presets.find((p) => p.id === id);
  const shared = { ...settings };
  for (const run of preset.runs) for (const key of Object.keys(run.settings)) delete shared[key];
  if (preset.runs.some((r) => "init" in r.settings)) delete shared.init_std;
  return shared;
}

// Wire the form: its fields, the presets (from the server), and `start` for its Start.
export function setUpForm(answer, start) {
  presets = answer.presets;
  defaultLr = answer.default_lr;
  input("lr").addEventListener("input", showLr);
  input("model").addEventListener("change", enableFields);
  input("init").addEventListener("change", enableFields);
  input("optimizer").addEventListener("change", () => setLr(defaultLr[input("optimizer").value]));
  input("preset").addEventListener("change", choosePreset);
  document.querySelector("#train-form").addEventListener("submit", start);
  setLr(defaultLr.adam);
  input("optimizer").value = "adam";
  for (const p of presets) input("preset").append(el("option", { value: p.id }, presetName(p)));
  enableFields();
}

export function presetName(p) {
  return `${p.title[lang()]} (${lang() === "ja" ? "図 " : "fig. "}${p.figure})`;
}

// The words that depend on the language and are not in the i18n table: the presets'.
export function translateForm() {
  presets.forEach((p, i) => (input("preset").options[i + 1].textContent = presetName(p)));
  choosePreset();
}
