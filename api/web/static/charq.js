// charq dashboard: polls the JSON API (same origin) about once a second and redraws what changed.
// The API key comes from the page (<meta name="charq-api-key">) and goes in the Authorization
// header: /v1 never reads cookies. No build step, no dependencies.
"use strict";

const POLL_MS = 1000;
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

async function api(path) {
  const key = document.querySelector('meta[name="charq-api-key"]');
  const headers = key ? { Authorization: "Bearer " + key.content } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

// Calls step() every POLL_MS until it returns true (done); an error just waits for the next tick.
function poll(step) {
  const tick = async () => {
    let done = false;
    try { done = await step(); } catch (err) { console.warn(err); }
    if (!done) setTimeout(tick, POLL_MS);
  };
  tick();
}

const fmt = (x, digits = 4) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const byId = (id) => document.getElementById(id);

function setStatus(el, status) {
  el.textContent = status;
  el.className = "status status-" + status;
}

// --- the loss chart: an SVG line chart, train loss at every report, val loss at evaluations ---

const SVG = "http://www.w3.org/2000/svg";

function svgEl(parent, name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  parent.appendChild(el);
  return el;
}

function drawLossChart(svg, metrics, totalSteps) {
  const [W, H, L, R, T, B] = [640, 280, 52, 14, 14, 34];
  const train = metrics.filter((m) => m.train_loss !== null).map((m) => [m.step, m.train_loss]);
  const val = metrics.filter((m) => m.val_loss !== null).map((m) => [m.step, m.val_loss]);
  svg.dataset.trainPoints = train.length;
  svg.dataset.valPoints = val.length;
  svg.replaceChildren();
  const all = train.concat(val);
  if (!all.length) {
    svgEl(svg, "text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, "waiting for the first progress report");
    return;
  }
  const xMax = Math.max(totalSteps || 0, ...all.map((p) => p[0]), 1);
  let yMin = Math.min(...all.map((p) => p[1]));
  let yMax = Math.max(...all.map((p) => p[1]));
  if (yMax - yMin < 1e-9) { yMin -= 0.5; yMax += 0.5; }
  const x = (s) => L + ((W - L - R) * s) / xMax;
  const y = (v) => T + ((H - T - B) * (yMax - v)) / (yMax - yMin);
  for (let i = 0; i <= 4; i++) {  // horizontal grid with loss labels
    const v = yMin + ((yMax - yMin) * i) / 4;
    svgEl(svg, "line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" });
    svgEl(svg, "text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, v.toFixed(2));
  }
  for (const s of [0, Math.round(xMax / 2), xMax]) {
    svgEl(svg, "text", { x: x(s), y: H - B + 16, "text-anchor": "middle", class: "tick" }, String(s));
  }
  svgEl(svg, "text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "tick" }, "step");
  svgEl(svg, "path", { d: `M${L},${T} V${H - B} H${W - R}`, class: "axis" });
  const line = (points, cls) => svgEl(svg, "polyline", {
    points: points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "), class: cls });
  line(train, "train");
  line(val, "val");
  for (const p of val) svgEl(svg, "circle", { cx: x(p[0]), cy: y(p[1]), r: 3, class: "val" });
  svgEl(svg, "text", { x: W - R - 150, y: T + 12, class: "legend train" }, "— train");
  svgEl(svg, "text", { x: W - R - 80, y: T + 12, class: "legend val" }, "● validation");
}

// --- pages ---

function jobPage(jobId) {
  const chart = byId("loss-chart");
  poll(async () => {
    const [job, metrics] = await Promise.all([
      api(`/v1/training-jobs/${jobId}`), api(`/v1/training-jobs/${jobId}/metrics`)]);
    const p = job.progress;
    setStatus(byId("status"), job.status);
    byId("step").textContent = p.step;
    byId("total-steps").textContent = p.total_steps ?? "?";
    byId("progress").max = p.total_steps || 1;
    byId("progress").value = p.step;
    byId("train-loss").textContent = fmt(p.train_loss);
    byId("val-loss").textContent = fmt(p.val_loss);
    byId("chars-per-s").textContent = p.chars_per_s ? fmt(p.chars_per_s, 0) : "–";
    byId("eta").textContent = p.eta_s === null ? "–" : fmt(p.eta_s, 0) + " s";
    drawLossChart(chart, metrics.data, p.total_steps);
    const final = FINAL.has(job.status);
    byId("cancel-form").hidden = final || job.status === "cancelling";
    if (job.error) { byId("error").textContent = job.error; byId("error").hidden = false; }
    if (job.model_id && byId("model-link").hidden) {
      byId("model-link").innerHTML = `<a href="/models/${job.model_id}">Model ${job.model_id}: generate text</a>`;
      byId("model-link").hidden = false;
    }
    return final;
  });
}

function modelPage(generationId) {
  poll(async () => {
    const body = await api(`/v1/generation-jobs/${generationId}/samples?limit=100`);
    setStatus(byId("generation-status"), body.status);
    const list = byId("samples");
    if (list.children.length !== body.samples.length) {
      list.replaceChildren(...body.samples.map((s) => {
        const li = document.createElement("li");
        const pre = document.createElement("pre");
        pre.className = "sample";
        pre.textContent = s.text;
        li.appendChild(pre);
        return li;
      }));
    }
    if (!FINAL.has(body.status)) return false;
    const job = await api(`/v1/generation-jobs/${generationId}`);
    if (job.error) { byId("generation-error").textContent = job.error; byId("generation-error").hidden = false; }
    return true;
  });
}

function jobsPage() {
  poll(async () => {
    const body = await api("/v1/training-jobs?limit=50");
    let active = false;
    for (const job of body.data) {
      const row = document.querySelector(`tr[data-job-id="${job.id}"]`);
      if (!row) continue;
      active ||= !FINAL.has(job.status);
      setStatus(row.querySelector('[data-field="status"]'), job.status);
      row.querySelector('[data-field="step"]').textContent = `${job.progress.step} / ${job.progress.total_steps ?? "?"}`;
      row.querySelector("progress").max = job.progress.total_steps || 1;
      row.querySelector("progress").value = job.progress.step;
      row.querySelector('[data-field="train_loss"]').textContent = fmt(job.progress.train_loss);
      row.querySelector('[data-field="val_loss"]').textContent = fmt(job.progress.val_loss);
      if (job.model_id) row.querySelector('[data-field="model"]').innerHTML = `<a href="/models/${job.model_id}">model ${job.model_id}</a>`;
    }
    return !active;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "job") jobPage(document.body.dataset.jobId);
  if (page === "model" && document.body.dataset.generationId) modelPage(document.body.dataset.generationId);
  if (page === "jobs") jobsPage();
});
