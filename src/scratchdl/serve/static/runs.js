// scratchdl serve: the Runs tab: the run folders under --runs, and the chosen one's curves
// (loss per iteration, train and test accuracy per epoch), from GET /api/runs.

import { api } from "./api.js";
import { WORDS } from "./i18n.js";
import { t } from "./train_i18n.js";

const $ = (selector) => document.querySelector(selector);
export const RUNS_POLL_MS = 3000; // a training run writes its checkpoint once per epoch

// -- the list ---------------------------------------------------------------------------------

const chosen = { run: null }; // the run shown

// The runs table and the chosen run's curves, asked again from the server.
export async function refreshRuns() {
  try {
    const result = await api("/api/runs");
    const body = $("#runs-table tbody");
    body.replaceChildren();
    const where = { root: result.root, seconds: RUNS_POLL_MS / 1000 };
    $("#runs-summary").textContent = t(result.runs.length ? "runs.some" : "runs.none", where);
    for (const run of result.runs) {
      const row = document.createElement("tr");
      const acc = run.test_acc == null ? "" : run.test_acc.toFixed(4);
      const epochs = run.epochs ? `${run.epochs_done}/${run.epochs}` : "";
      for (const text of [run.name, stateWord(run.state), epochs, acc]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.classList.toggle("chosen", run.name === chosen.run);
      row.addEventListener("click", () => {
        chosen.run = run.name;
        refreshRuns();
      });
      body.append(row);
    }
    if (!chosen.run && result.runs.length) chosen.run = result.runs[0].name;
    if (chosen.run) drawRun(await api(`/api/runs/${encodeURIComponent(chosen.run)}`));
  } catch (error) {
    $("#runs-summary").textContent = error.message;
  }
}

// The run's state in the page's language; a state this page does not know, as the server says.
function stateWord(state) {
  return WORDS.en[`run.${state}`] ? t(`run.${state}`) : state;
}

// The words in the new language: the Runs tab, when it is shown, is rebuilt (a hidden one is
// rebuilt when it is opened).
export function redrawRuns() {
  if (!$("#view-runs").hidden) refreshRuns();
}

function drawRun(run) {
  const canvas = $("#run-chart");
  const final = run.final_test_acc == null ? "" : t("runs.final", { acc: run.final_test_acc });
  $("#run-title").textContent = `${run.name}${t("colon")}${stateWord(run.state)}${final}`;
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
  ctx.fillText(t("chart.loss", { top: top.toFixed(2) }), 4, 14);
  ctx.fillText("1", W - R + 6, T + 4);
  ctx.fillText(String(low), W - R + 6, H - B);
  const along = { iterations: run.iterations, done: run.test_acc.length, epochs };
  ctx.fillText(t("chart.x", along), L, H - 8);
  line(ctx, "#999", run.loss.map((v, i) => [x(run.loss_iterations[i]), v == null ? null : yLoss(v)]));
  const perEpoch = run.iterations / Math.max(1, run.test_acc.length);
  const points = (values) => values.map((v, e) => [x((e + 1) * perEpoch), yAcc(v)]);
  line(ctx, "#2a7", points(run.train_acc), true);
  line(ctx, "#d50", points(run.test_acc), true);
  // the legend, right-aligned at the plot's edge: its words are as wide as their language
  let right = W - R;
  for (const [key, colour] of [["chart.acc", "#444"], ["chart.test", "#d50"], ["chart.train", "#2a7"]]) {
    const word = t(key);
    right -= ctx.measureText(word).width;
    ctx.fillStyle = colour;
    ctx.fillText(word, right, 14);
    right -= 12;
  }
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
