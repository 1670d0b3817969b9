// lenet serve's page: draw (or upload) a digit, ask the API, show what the network computed.
// Plain JavaScript, no libraries: everything the page needs is served by `lenet serve` itself.
"use strict";

const MAX_SIDE = 1024; // photos are scaled to this many pixels at most before sending
const DEBOUNCE_MS = 120; // while drawing, ask again once the pen rests this long

// viridis at nine even steps, for the feature maps (dark: low, yellow: high)
const VIRIDIS = [
  [68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140],
  [40, 174, 128], [94, 201, 98], [173, 220, 48], [253, 231, 37],
];

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const stroke = document.getElementById("stroke");
const strokeValue = document.getElementById("stroke-value");
const fileInput = document.getElementById("file");
const prediction = document.getElementById("prediction");
const statusLine = document.getElementById("status");
const probsList = document.getElementById("probs");

let classNames = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
let inked = false; // anything on the pad yet
let drawing = null; // the pointer drawing now, and its last point
let timer = null;
let asked = 0; // requests sent; only the newest answer is shown
let upload = null; // an uploaded photo (scaled), sent instead of the pad until drawn on

function paper() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function clearAll() {
  paper();
  inked = false;
  upload = null;
  asked += 1; // an answer still on its way is for a picture that is gone
  clearTimeout(timer);
  busy(false);
  prediction.textContent = "\u2013";
  statusLine.textContent = "";
  showProbabilities(null);
  showInput(null);
  showLayers(null);
}

// ---- drawing: mouse, touch and pen through pointer events ----

function point(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * pad.width) / box.width,
    y: ((event.clientY - box.top) * pad.height) / box.height,
  };
}

function line(from, to) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = Number(stroke.value);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  const p = point(event);
  drawing = { id: event.pointerId, last: p };
  line(p, p); // a dot for a tap
  inked = true;
  upload = null;
  busy(true);
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing || drawing.id !== event.pointerId) return;
  const p = point(event);
  line(drawing.last, p);
  drawing.last = p;
  schedule();
});

function endStroke(event) {
  if (!drawing || drawing.id !== event.pointerId) return;
  drawing = null;
  clearTimeout(timer);
  ask();
}

pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function schedule() {
  clearTimeout(timer);
  busy(true);
  timer = setTimeout(ask, DEBOUNCE_MS);
}

// #prediction is aria-busy while an answer for the newest drawing is still to come.
function busy(on) {
  prediction.setAttribute("aria-busy", on ? "true" : "false");
}

// ---- controls ----

document.getElementById("clear").addEventListener("click", clearAll);

stroke.addEventListener("input", () => {
  strokeValue.textContent = stroke.value;
});

document.getElementById("upload").addEventListener("click", () => fileInput.click());

fileInput.addEventListener("change", async () => {
  const file = fileInput.files[0];
  fileInput.value = ""; // the same file again is a new choice
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file);
    upload = await scaled(bitmap);
    showOnPad(bitmap);
    bitmap.close();
    inked = true;
    ask();
  } catch (err) {
    statusLine.textContent = `This file could not be read as a picture (${err.message || err}).`;
  }
});

// A photo scaled so that its longer side is at most MAX_SIDE pixels, as a JPEG: a phone's
// photo then fits the API's 2 MB limit.
function scaled(bitmap) {
  const factor = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * factor));
  canvas.height = Math.max(1, Math.round(bitmap.height * factor));
  const c = canvas.getContext("2d");
  c.fillStyle = "#fff"; // a transparent picture goes on white paper
  c.fillRect(0, 0, canvas.width, canvas.height);
  c.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("no JPEG"))), "image/jpeg", 0.92),
  );
}

function showOnPad(bitmap) {
  paper();
  const factor = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
  const w = bitmap.width * factor;
  const h = bitmap.height * factor;
  ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
}

// ---- asking the API ----

function padBlob() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

async function post(path, blob) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": blob.type },
    body: blob,
  });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = { error: `the server answered ${response.status} without JSON` };
  }
  return { ok: response.ok, status: response.status, body };
}

async function ask() {
  if (!inked) return;
  const mine = ++asked;
  busy(true);
  const blob = upload || (await padBlob());
  let answers;
  try {
    answers = await Promise.all([post("api/predict", blob), post("api/activations", blob)]);
  } catch (err) {
    if (mine === asked) {
      statusLine.textContent = "The server cannot be reached.";
      busy(false);
    }
    return;
  }
  if (mine !== asked) return; // a newer drawing was sent meanwhile
  busy(false);
  const [pred, act] = answers;
  if (!pred.ok) {
    const noInk = pred.status === 422;
    prediction.textContent = noInk ? "\u2013" : "?";
    statusLine.textContent = noInk ? "Draw a digit (no ink found yet)." : pred.body.error;
    showProbabilities(null);
    showInput(null);
    showLayers(null);
    return;
  }
  const p = pred.body;
  const best = p.probabilities[p.predicted];
  prediction.innerHTML = "";
  const digit = document.createElement("span");
  digit.className = "digit";
  digit.textContent = classNames[p.predicted];
  const prob = document.createElement("span");
  prob.className = "prob";
  prob.textContent = ` probability ${best.toFixed(3)}`;
  prediction.append(digit, prob);
  statusLine.textContent = (p.warnings || []).join(" ");
  showProbabilities(p.probabilities, p.predicted);
  showInput(p.input);
  showLayers(act.ok ? act.body.stages : null);
}

// ---- showing the answer ----

function buildProbabilities() {
  probsList.innerHTML = "";
  probsList.classList.toggle("long", classNames.some((name) => name.length > 2));
  classNames.forEach((name) => {
    const li = document.createElement("li");
    li.innerHTML =
      '<span class="name"></span><span class="track"><span class="bar"></span></span>' +
      '<span class="value"></span>';
    li.querySelector(".name").textContent = name;
    probsList.append(li);
  });
  showProbabilities(null);
}

function showProbabilities(probs, best) {
  [...probsList.children].forEach((li, k) => {
    const p = probs ? probs[k] : 0;
    li.classList.toggle("best", probs !== null && k === best);
    li.querySelector(".bar").style.width = `${(100 * p).toFixed(1)}%`;
    li.querySelector(".value").textContent = probs ? p.toFixed(3) : "";
  });
}

function colour(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return VIRIDIS[i].map((a, c) => Math.round(a + (VIRIDIS[i + 1][c] - a) * f));
}

// Draw a 2-D array onto a canvas of its size; gray for the input, viridis for the maps.
function paint(canvas, rows, lo, hi, gray) {
  const h = rows.length;
  const w = rows[0].length;
  canvas.width = w;
  canvas.height = h;
  const c = canvas.getContext("2d");
  const image = c.createImageData(w, h);
  const span = hi > lo ? hi - lo : 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const t = (rows[y][x] - lo) / span;
      const rgb = gray ? [255 * t, 255 * t, 255 * t] : colour(t);
      const o = 4 * (y * w + x);
      image.data[o] = rgb[0];
      image.data[o + 1] = rgb[1];
      image.data[o + 2] = rgb[2];
      image.data[o + 3] = 255;
    }
  }
  c.putImageData(image, 0, 0);
}

function blank(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

function showInput(rows) {
  const canvas = document.getElementById("input");
  if (rows) paint(canvas, rows, 0, 1, true);
  else blank(canvas);
}

function range(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values.flat(Infinity)) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function buildMaps(id, count, side) {
  const box = document.getElementById(id);
  box.innerHTML = "";
  for (let i = 0; i < count; i++) {
    const fig = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.className = "map";
    canvas.width = side;
    canvas.height = side;
    canvas.setAttribute("aria-label", `${id} map ${i}`);
    const caption = document.createElement("figcaption");
    caption.textContent = `#${i}`;
    fig.append(canvas, caption);
    box.append(fig);
  }
}

function showMaps(id, maps) {
  const canvases = document.getElementById(id).querySelectorAll("canvas");
  if (!maps) {
    canvases.forEach(blank);
    return;
  }
  const [lo, hi] = range(maps);
  maps.forEach((m, i) => {
    if (canvases[i]) paint(canvases[i], m, lo, hi, false);
  });
}

function showBars(id, values) {
  const canvas = document.getElementById(id);
  const scale = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * scale));
  const height = Math.max(1, Math.round(canvas.clientHeight * scale));
  canvas.width = width;
  canvas.height = height;
  const c = canvas.getContext("2d");
  c.clearRect(0, 0, width, height);
  if (!values) return;
  const [lo, hi] = range(values);
  const top = Math.max(hi, 0);
  const bottom = Math.min(lo, 0);
  const span = top - bottom || 1;
  const zero = height * (top / span);
  const step = width / values.length;
  c.fillStyle = "#1f6feb";
  values.forEach((v, i) => {
    const y = height * ((top - v) / span);
    c.fillRect(i * step + step * 0.1, Math.min(y, zero), step * 0.8, Math.abs(zero - y));
  });
  c.fillStyle = "#5b6572";
  c.fillRect(0, Math.round(zero) - 1, width, 1);
}

function showLayers(stages) {
  showMaps("conv1", stages ? stages.conv1.values : null);
  showMaps("conv2", stages ? stages.conv2.values : null);
  showBars("fc1", stages ? stages.fc1.values : null);
  showBars("fc2", stages ? stages.fc2.values : null);
}

// ---- start ----

async function start() {
  paper();
  buildProbabilities();
  try {
    const response = await fetch("api/model");
    const m = await response.json();
    if (!response.ok) throw new Error(m.error);
    classNames = m.class_names;
    buildProbabilities();
    const acc =
      m.test_accuracy === null ? "test accuracy not recorded"
        : `test accuracy ${(100 * m.test_accuracy).toFixed(2)}%`;
    document.getElementById("model").textContent =
      `${m.arch} LeNet, ${m.parameters.toLocaleString("en")} parameters, ${acc}: ${m.checkpoint}`;
    const [c1, s1] = m.shapes.conv1;
    const [c2, s2] = m.shapes.conv2;
    buildMaps("conv1", c1, s1);
    buildMaps("conv2", c2, s2);
    document.getElementById("conv1-title").textContent =
      `conv1: ${c1} maps of ${s1}x${s1}, after ${m.activation}`;
    document.getElementById("conv2-title").textContent =
      `conv2: ${c2} maps of ${s2}x${s2}, after ${m.activation}`;
    document.getElementById("fc1-title").textContent =
      `fc1: ${m.shapes.fc1[0]} outputs after ${m.activation}`;
    document.getElementById("fc2-title").textContent =
      `fc2: ${m.shapes.fc2[0]} outputs after ${m.activation}`;
  } catch (err) {
    document.getElementById("model").textContent = `The model could not be read: ${err.message}`;
  }
  showLayers(null);
}

start();
