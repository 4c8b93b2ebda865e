// deeper serve: the drawing pad. Pointer events (mouse, pen or finger) draw white ink on black, as
// MNIST digits are; every stroke (and, while drawing, every few hundred milliseconds) the pad is sent
// as a PNG to /api/predict and each model's answer is drawn: class probabilities as bars, the 28x28
// image a classifier receives, boxes over the pad, images the task wrote (a mask overlay), captions.
(function () {
  "use strict";
  const pad = document.getElementById("pad");
  const overlay = document.getElementById("overlay");
  const ctx = pad.getContext("2d");
  const results = document.getElementById("results");
  const errorLine = document.getElementById("error");
  const models = JSON.parse(document.getElementById("models-data").textContent);
  const COLORS = ["#ff5a5a", "#ffd400", "#3ddc84", "#4aa8ff", "#ff7bd5"];
  let drawing = false, last = null, seq = 0, shown = 0, timer = null, lastSent = 0;

  function clear() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
    results.innerHTML = "";
    results.dataset.state = "idle";
    errorLine.hidden = true;
  }

  function setSize(wide) {
    pad.width = overlay.width = wide ? 560 : 280;
    clear();
  }

  function point(e) {
    const r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width, y: (e.clientY - r.top) * pad.height / r.height };
  }

  function stroke(a, b) {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = Number(document.getElementById("pen").value);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    drawing = true;
    last = point(e);
    stroke(last, last);
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = point(e);
    stroke(last, p);
    last = p;
    if (Date.now() - lastSent > 300) predict();   // live, while the stroke goes on
  });
  function end() {
    if (!drawing) return;
    drawing = false;
    predict();
  }
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);

  document.getElementById("clear").addEventListener("click", clear);
  document.getElementById("wide").addEventListener("change", (e) => setSize(e.target.checked));
  document.getElementById("upload").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const img = new Image();
    img.onload = () => {
      clear();
      const s = Math.min(pad.width / img.width, pad.height / img.height);
      const w = img.width * s, h = img.height * s;
      ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
      URL.revokeObjectURL(img.src);
      predict();
    };
    img.src = URL.createObjectURL(file);
  });

  // Send the pad; only the newest answer is drawn (answers may come back out of order).
  function predict() {
    if (!models.length) return Promise.resolve(null);
    lastSent = Date.now();
    const mine = ++seq;
    results.dataset.state = "busy";
    return new Promise((resolve) => pad.toBlob(resolve, "image/png"))
      .then((blob) => fetch("api/predict", {
        method: "POST", headers: { "Content-Type": "image/png" }, body: blob,
      }))
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (mine < shown) return body;
        shown = mine;
        if (!ok) throw new Error(body.error || "the server could not answer");
        errorLine.hidden = true;
        render(body.answers);
        results.dataset.seq = String(mine);
        results.dataset.state = mine === seq ? "done" : "busy";
        return body;
      })
      .catch((err) => {
        errorLine.textContent = String(err.message || err);
        errorLine.hidden = false;
        results.dataset.seq = String(mine);
        results.dataset.state = "error";
      });
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function render(answers) {
    results.innerHTML = "";
    const octx = overlay.getContext("2d");
    octx.clearRect(0, 0, overlay.width, overlay.height);
    answers.forEach((a, i) => {
      const info = models.find((m) => m.id === a.model) || {};
      const box = el("div", { class: "model", "data-model": String(a.model), "data-task": a.task });
      box.append(el("h2", {}, a.name));
      box.append(el("div", { class: "sub" }, `${a.task}: ${info.model || ""}${info.dataset ? " on " + info.dataset : ""}`));
      const ans = a.answer;
      if (ans.caption !== undefined) box.append(el("p", { class: "caption" }, ans.caption));
      const row = el("div", { class: "answer-row" });
      if (Array.isArray(ans.probabilities)) {
        const bars = el("div", { class: "bars" });
        bars.append(el("div", { class: "label", "data-label": String(ans.label) }, ans.name));
        const names = info.classes || [];
        ans.probabilities.forEach((p, k) => {
          const b = el("div", { class: "bar" + (k === ans.label ? " top" : ""), "data-class": String(k), "data-p": String(p) });
          b.append(el("span", { class: "name" }, names[k] !== undefined ? names[k] : String(k)));
          const track = el("span", { class: "track" });
          const fill = el("span", { class: "fill" });
          fill.style.width = (100 * p).toFixed(2) + "%";
          fill.style.display = "block";
          track.append(fill);
          b.append(track);
          b.append(el("span", { class: "value" }, p.toFixed(4)));
          bars.append(b);
        });
        row.append(bars);
      }
      if (Array.isArray(a.input)) row.append(inputCanvas(a.input));
      box.append(row);
      if (Array.isArray(ans.boxes)) drawBoxes(octx, ans, COLORS[i % COLORS.length]);
      for (const img of a.images || []) {   // what the task wrote: a mask overlay, the scene with its boxes
        const fig = el("figure", { class: "written" });
        fig.append(el("img", { src: img.src, alt: img.name, title: img.name }));
        fig.append(el("figcaption", {}, img.name));
        box.append(fig);
      }
      box.append(el("p", { class: "text" }, a.text));
      results.append(box);
    });
  }

  // The image the classifier receives: (C, H, W) values 0..255, drawn pixel for pixel.
  function inputCanvas(chw) {
    const c = chw.length, h = chw[0].length, w = chw[0][0].length;
    const wrap = el("div", { class: "model-input" });
    const cv = el("canvas", { width: String(w), height: String(h), class: "input" });
    const g = cv.getContext("2d");
    const data = g.createImageData(w, h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const o = 4 * (y * w + x);
      data.data[o] = chw[0][y][x];
      data.data[o + 1] = chw[c > 1 ? 1 : 0][y][x];
      data.data[o + 2] = chw[c > 1 ? 2 : 0][y][x];
      data.data[o + 3] = 255;
    }
    g.putImageData(data, 0, 0);
    wrap.append(cv);
    wrap.append(el("div", {}, `what the model sees (${w}x${h})`));
    return wrap;
  }

  function drawBoxes(g, ans, color) {
    const [w, h] = ans.size || [pad.width, pad.height];
    const sx = overlay.width / w, sy = overlay.height / h;
    g.lineWidth = 2;
    g.strokeStyle = g.fillStyle = color;
    g.font = "13px system-ui, sans-serif";
    ans.boxes.forEach((b, j) => {
      g.strokeRect(b[0] * sx, b[1] * sy, (b[2] - b[0]) * sx, (b[3] - b[1]) * sy);
      const label = (ans.names ? ans.names[j] : ans.labels[j]) + (ans.scores ? " " + ans.scores[j].toFixed(2) : "");
      g.fillText(label, b[0] * sx + 2, Math.max(12, b[1] * sy - 3));
    });
  }

  window.deeperPad = { predict, clear, pad, setSize };
  clear();
})();
