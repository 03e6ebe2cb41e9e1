// scratchdl serve: the Train tab. Choose the settings (or one of the book's presets), start
// runs, and watch them learn: the curves, histograms and filters come as Server-Sent Events
// from /api/jobs/stream; the page never polls a chart. It uses the same JSON API as anyone
// else (POST /api/jobs, .../stop, .../resume). Whatever a job says is written with
// textContent: nothing from a job is read as HTML.

import { COLOURS, drawAccuracy, drawHistogram, drawLoss, filterCanvas } from "./train_charts.js";
import { buildPanel, el, input, readForm, setUpForm, sharedSettings, translateForm } from "./train_form.js";
import { addSwitch, onLanguage, t, translate } from "./train_i18n.js";

const $ = (selector, root = document) => root.querySelector(selector);
const RESUMABLE = ["stopped", "diverged", "failed"];
const HIST_SIZE = [150, 80];
const KINDS = { Relu: "ReLU", Sigmoid: "sigmoid", Tanh: "tanh" }; // the book's names

const jobs = new Map(); // id -> {summary, iterations, values, train, test, histograms, filters}
const shown = new Set(); // the ids drawn on the charts
const colours = new Map(); // id -> colour, kept while the page lives
let selected = null; // the job whose histograms are shown
let drawing = false;
let limits = null; // [key, values] of #train-limits' words, written again in a new language

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

async function act(id, action, body = {}) {
  const message = $("#train-message");
  message.textContent = "";
  message.classList.remove("error");
  try {
    track(await post(`/api/jobs/${encodeURIComponent(id)}/${action}`, body));
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
      setLimits("limits", event);
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
    if (source.readyState !== EventSource.CLOSED) setLimits("stream.lost");
  };
}

function setLimits(key, values = {}) {
  limits = [key, values];
  $("#train-limits").textContent = t(key, values);
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
      // a diverged run goes on at the form's learning rate (its message asks for a smaller one)
      const diverged = s.state === "diverged";
      if (diverged) resume.title = t("resume.lr");
      resume.addEventListener("click", () => act(id, "resume", diverged ? { lr: readForm().lr } : {}));
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
  const response = await fetch("/api/presets").catch(() => null);
  if (!response || !response.ok) {
    view.replaceChildren(el("div", { class: "card" }, el("p", { i18n: "off" }, t("off"))));
    return;
  }
  setUpForm(await response.json(), start);
  onLanguage(() => {
    if (limits) setLimits(...limits);
    translateForm();
    scheduleDraw();
  });
  connect();
  draw();
}

setUp();
