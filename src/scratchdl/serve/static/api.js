// scratchdl serve: the JSON API (see /docs) as the page calls it, and its arrays drawn.
// Arrays from the API are {shape, min, max, data}: data is base64, one byte per value,
// 0 at min and 255 at max.

// -- the API ------------------------------------------------------------------------------

export async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

export function bytesOf(array) {
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
export function arrayCanvas(array, scale) {
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
