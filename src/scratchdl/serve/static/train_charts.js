// scratchdl serve: the Train tab's charts, drawn on canvases from the numbers of the stream.
// Several runs share one chart, each in its colour, so that a preset reads as the book's
// figure; the legend is HTML beside it (train.js).

export const COLOURS = [
  "#1f6fd1", "#d62f2f", "#2a9d3a", "#f08a00", "#8a4fc7", "#8c5a3c", "#d448a8", "#13a3b5",
];
const AXIS = "#5b6475";
const GRID = "#e3e7ee";
const PAD = { left: 52, right: 14, top: 12, bottom: 34 };
const SMOOTH = 0.6; // weight of the previous bucket in the loss curves' smoothing
const BUCKET_PX = 3; // iterations are averaged per this many pixels

function frame(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const box = {
    x0: PAD.left,
    y0: PAD.top,
    w: canvas.width - PAD.left - PAD.right,
    h: canvas.height - PAD.top - PAD.bottom,
  };
  ctx.font = "12px system-ui, sans-serif";
  return { ctx, box };
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function axes(ctx, box, xTicks, yTicks, xLabel) {
  ctx.strokeStyle = GRID;
  ctx.fillStyle = AXIS;
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const [y, text] of yTicks) {
    ctx.beginPath();
    ctx.moveTo(box.x0, y);
    ctx.lineTo(box.x0 + box.w, y);
    ctx.stroke();
    ctx.fillText(text, box.x0 - 6, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const [x, text] of xTicks) {
    ctx.beginPath();
    ctx.moveTo(x, box.y0);
    ctx.lineTo(x, box.y0 + box.h);
    ctx.stroke();
    ctx.fillText(text, x, box.y0 + box.h + 4);
  }
  ctx.fillText(xLabel, box.x0 + box.w / 2, box.y0 + box.h + 19);
  ctx.strokeStyle = AXIS;
  ctx.strokeRect(box.x0, box.y0, box.w, box.h);
}

// The loss curves: `series` is [{colour, iterations, values}] (iteration numbers from 1).
// Returns the number of loss values drawn.
export function drawLoss(canvas, series, xLabel) {
  const { ctx, box } = frame(canvas);
  let last = 1;
  let lo = Infinity;
  let hi = -Infinity;
  let count = 0;
  const curves = series.map((s) => {
    const n = s.iterations.length;
    count += n;
    if (n) last = Math.max(last, s.iterations[n - 1]);
    return s;
  });
  const px = (it) => box.x0 + (it / last) * box.w;
  const smoothed = curves.map((s) => {
    const buckets = new Map();
    for (let i = 0; i < s.iterations.length; i++) {
      const v = s.values[i];
      if (v == null || !(v > 0)) continue;
      const b = Math.floor((px(s.iterations[i]) - box.x0) / BUCKET_PX);
      const cell = buckets.get(b) || [0, 0, 0];
      cell[0] += s.iterations[i];
      cell[1] += v;
      cell[2] += 1;
      buckets.set(b, cell);
    }
    const points = [];
    let level = null;
    for (const b of [...buckets.keys()].sort((a, c) => a - c)) {
      const [sx, sv, n] = buckets.get(b);
      level = level == null ? sv / n : SMOOTH * level + (1 - SMOOTH) * (sv / n);
      points.push([sx / n, level]);
      lo = Math.min(lo, level);
      hi = Math.max(hi, level);
    }
    return { colour: s.colour, points };
  });
  if (!(hi > 0)) {
    lo = 0.1;
    hi = 3;
  }
  const d0 = Math.floor(Math.log10(Math.max(lo, 1e-4)));
  const d1 = Math.max(d0 + 1, Math.ceil(Math.log10(hi)));
  const py = (v) => box.y0 + box.h * (1 - (Math.log10(v) - d0) / (d1 - d0));
  const yTicks = [];
  for (let d = d0; d <= d1; d++) {
    for (const m of d1 - d0 <= 2 ? [1, 2, 5] : [1]) {
      const v = m * 10 ** d;
      if (v <= 10 ** d1) yTicks.push([py(v), String(Number(v.toPrecision(1)))]);
    }
  }
  const step = niceStep(last, 6);
  const xTicks = [];
  for (let it = 0; it <= last; it += step) xTicks.push([px(it), String(it)]);
  axes(ctx, box, xTicks, yTicks, xLabel);
  ctx.save();
  ctx.beginPath();
  ctx.rect(box.x0, box.y0, box.w, box.h);
  ctx.clip();
  ctx.lineWidth = 2;
  for (const s of smoothed) line(ctx, s.colour, s.points.map(([x, v]) => [px(x), py(v)]));
  ctx.restore();
  return count;
}

// Accuracy per epoch: `series` is [{colour, train, test}], epochs from 1; `epochs`: the x range.
export function drawAccuracy(canvas, series, epochs, xLabel) {
  const { ctx, box } = frame(canvas);
  const last = Math.max(1, epochs);
  const px = (e) => box.x0 + (e / last) * box.w;
  const py = (a) => box.y0 + box.h * (1 - a);
  const yTicks = [0, 0.2, 0.4, 0.6, 0.8, 1].map((a) => [py(a), a.toFixed(1)]);
  const step = Math.max(1, niceStep(last, 8)); // whole epochs
  const xTicks = [];
  for (let e = 0; e <= last; e += step) xTicks.push([px(e), String(e)]);
  axes(ctx, box, xTicks, yTicks, xLabel);
  const dots = last <= 40;
  for (const s of series) {
    ctx.lineWidth = 2;
    ctx.setLineDash([6, 4]);
    line(ctx, s.colour, s.train.map((a, i) => [px(i + 1), py(a)]), dots);
    ctx.setLineDash([]);
    line(ctx, s.colour, s.test.map((a, i) => [px(i + 1), py(a)]), dots);
  }
}

function line(ctx, colour, points, dots = false) {
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.stroke();
  if (dots) for (const [x, y] of points) ctx.fillRect(x - 2, y - 2, 4, 4);
}

// One histogram {lo, hi, counts}: bars over [lo, hi], the range written below.
export function drawHistogram(canvas, hist, colour) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const base = h - 14;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  const most = Math.max(1, ...hist.counts);
  const bar = w / hist.counts.length;
  ctx.fillStyle = colour;
  hist.counts.forEach((c, i) => {
    const top = base - (c / most) * (base - 4);
    ctx.fillRect(i * bar + 0.5, top, Math.max(1, bar - 1), base - top);
  });
  ctx.fillStyle = AXIS;
  ctx.fillRect(0, base, w, 1);
  ctx.font = "10px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  ctx.textAlign = "left";
  ctx.fillText(short(hist.lo), 1, h);
  ctx.textAlign = "right";
  ctx.fillText(short(hist.hi), w - 1, h);
}

function short(v) {
  return Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(0) : String(+v.toFixed(2));
}

// The first convolution's filters {shape: [FN, C, FH, FW], data: base64 gray levels}: one
// tile per filter, black gaps between, drawn `scale` times larger.
export function filterCanvas(filters, scale) {
  const raw = atob(filters.data);
  const [FN, C, FH, FW] = filters.shape;
  const count = FN * C;
  const cols = Math.ceil(Math.sqrt(count * 1.6));
  const rows = Math.ceil(count / cols);
  const canvas = document.createElement("canvas");
  canvas.width = cols * (FW + 1) - 1;
  canvas.height = rows * (FH + 1) - 1;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, canvas.height);
  for (let i = 3; i < image.data.length; i += 4) image.data[i] = 255;
  for (let k = 0; k < count; k++) {
    const x0 = (k % cols) * (FW + 1);
    const y0 = Math.floor(k / cols) * (FH + 1);
    for (let j = 0; j < FH * FW; j++) {
      const q = raw.charCodeAt(k * FH * FW + j);
      const p = 4 * ((y0 + Math.floor(j / FW)) * canvas.width + x0 + (j % FW));
      image.data[p] = image.data[p + 1] = image.data[p + 2] = q;
    }
  }
  ctx.putImageData(image, 0, 0);
  canvas.style.width = `${canvas.width * scale}px`;
  canvas.className = "pixels";
  return canvas;
}
