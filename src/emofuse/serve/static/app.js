// emofuse's page: a file or text through POST /v1/analyze, and a live webcam + microphone stream over
// WS /v1/live (protocol: emofuse/serve/live_ws.py). Plain JS, no build step, nothing fetched from elsewhere.
"use strict";

const EMOTIONS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"];
const COLOURS = {neutral: "#7b8794", happy: "#e6a700", sad: "#3b82f6", angry: "#dc2626", fearful: "#7c3aed",
                 disgusted: "#15803d", surprised: "#db2777"};
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const tag = (label) => label ? `<span class="tag" style="background:${COLOURS[label] || "#555"}">${esc(label)}</span>` : "";
const headers = () => $("token").value ? {Authorization: `Bearer ${$("token").value}`} : {};

// ------------------------------------------------------------------------------------------------ files

function status(el, text, error = false) { el.textContent = text; el.classList.toggle("error", error); }

async function analyse(body, what) {
  status($("file-status"), `analysing ${what}…`);
  const t0 = performance.now();
  let r;
  try {
    r = await fetch("v1/analyze", {method: "POST", body, headers: body instanceof FormData ? headers() :
      {...headers(), "content-type": "application/json"}});
  } catch (e) { status($("file-status"), `the server cannot be reached: ${e}`, true); return; }
  const doc = await r.json().catch(() => ({detail: `HTTP ${r.status}`}));
  if (!r.ok && !doc.results) { status($("file-status"), doc.detail || `HTTP ${r.status}`, true); return; }
  const errors = doc.results.filter((d) => d.error).map((d) => d.error);
  const ok = doc.results.filter((d) => !d.error);
  status($("file-status"), `${ok.length} analysed in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
         (errors.length ? ` — ${errors.join("; ")}` : ""), errors.length > 0);
  if (ok.length) show(ok[0]);
}

function show(doc) {
  const rows = $("segments").querySelector("tbody");
  rows.innerHTML = "";
  doc.segments.forEach((s, i) => {
    const m = s.modalities || {}, f = s.fused || {};
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${s.start.toFixed(2)}</td><td>${s.end.toFixed(2)}</td><td>${esc(s.text)}</td><td>${tag(f.label)}</td>` +
      `<td>${f.confidence != null ? f.confidence.toFixed(2) : ""}</td><td>${tag(m.voice?.label)}</td><td>${tag(m.face?.label)}</td>` +
      `<td>${tag(m.text?.label)}</td><td>${f.valence != null ? f.valence.toFixed(2) : ""}</td><td>${f.arousal != null ? f.arousal.toFixed(2) : ""}</td>`;
    tr.addEventListener("click", () => select(doc, i));
    rows.appendChild(tr);
  });
  $("segments").hidden = doc.segments.length === 0;
  timeline(doc);
  if (doc.segments.length) select(doc, 0);
  else $("bars").innerHTML = `<p class="status">${esc(doc.summary?.notes?.join("; ") || "no segments")}</p>`;
}

function select(doc, i) {
  [...$("segments").querySelectorAll("tbody tr")].forEach((tr, j) => tr.classList.toggle("sel", i === j));
  const s = doc.segments[i];
  const groups = Object.entries(s.modalities || {}).map(([m, o]) => [m, o.probs]);
  if (s.fused) groups.push(["fused", s.fused.probs]);
  $("bars").innerHTML = groups.map(([name, probs]) => `<div class="bar-group"><h3>${esc(name)}</h3>` +
    EMOTIONS.map((e) => `<div class="bar"><span>${e}</span><i style="width:${(100 * (probs[e] || 0)).toFixed(1)}%;` +
      `background:${COLOURS[e]}"></i><span>${(probs[e] || 0).toFixed(2)}</span></div>`).join("") + "</div>").join("");
}

function timeline(doc) {
  const c = $("timeline"), g = c.getContext("2d");
  const segs = doc.segments.filter((s) => s.end > s.start);
  c.hidden = segs.length === 0;
  if (!segs.length) return;
  const T = Math.max(doc.duration || 0, ...segs.map((s) => s.end)), W = c.width, H = c.height, x = (t) => 40 + (W - 50) * t / T;
  g.clearRect(0, 0, W, H);
  g.fillStyle = "#52606d"; g.font = "11px system-ui";
  g.fillText("label", 2, 28); g.fillText("valence", 2, 82);
  for (const s of segs) {
    g.fillStyle = COLOURS[s.fused?.label] || "#ccc";
    g.fillRect(x(s.start), 12, Math.max(1, x(s.end) - x(s.start)), 24);
  }
  g.strokeStyle = "#e4e7eb"; g.beginPath(); g.moveTo(40, 80); g.lineTo(W - 10, 80); g.stroke();
  g.strokeStyle = "#1d232a"; g.beginPath();
  segs.forEach((s, i) => { const y = 80 - 30 * (s.fused?.valence || 0); i ? g.lineTo(x((s.start + s.end) / 2), y) : g.moveTo(x((s.start + s.end) / 2), y); });
  g.stroke();
  g.fillStyle = "#52606d"; g.fillText(`${T.toFixed(1)} s`, W - 40, H - 4); g.fillText("0", 40, H - 4);
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files); });
$("file").addEventListener("change", (e) => upload(e.target.files));
$("text-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if ($("text").value.trim()) analyse(JSON.stringify({text: $("text").value}), "the text");
});
function upload(files) {
  if (!files.length) return;
  const fd = new FormData();
  for (const f of files) fd.append("file", f, f.name);
  analyse(fd, [...files].map((f) => f.name).join(", "));
}

// ------------------------------------------------------------------------------------------------ live

let live = null;

async function start() {
  $("start").disabled = true;
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: true}, video: {width: 640, height: 480}});
  } catch (e) { status($("live-status"), `no camera or microphone: ${e.message}`, true); $("start").disabled = false; return; }
  $("video").srcObject = media;
  const url = new URL("v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if ($("token").value) url.searchParams.set("token", $("token").value);
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const ctx = new AudioContext({sampleRate: 16000});
  live = {ws, media, ctx, timer: null, points: [], sending: false};
  ws.onopen = () => ws.send(JSON.stringify({type: "start", sample_rate: ctx.sampleRate, format: "pcm16"}));
  ws.onmessage = (m) => event(JSON.parse(m.data));
  ws.onclose = (e) => { status($("live-status"), e.reason ? `closed: ${e.reason}` : "stopped", e.code !== 1000 && !!e.reason); teardown(); };
  // microphone -> 16-bit PCM, ~128 ms per message, tagged 0x01
  const src = ctx.createMediaStreamSource(media);
  const proc = ctx.createScriptProcessor(2048, 1, 1);
  proc.onaudioprocess = (e) => {
    if (ws.readyState !== WebSocket.OPEN || !live.ready) return;
    const x = e.inputBuffer.getChannelData(0), buf = new ArrayBuffer(1 + 2 * x.length), dv = new DataView(buf);
    dv.setUint8(0, 1);
    for (let i = 0; i < x.length; i++) dv.setInt16(1 + 2 * i, Math.max(-1, Math.min(1, x[i])) * 32767, true);
    ws.send(buf);
  };
  src.connect(proc); proc.connect(ctx.destination);
  live.proc = proc;
  // webcam -> JPEG frames, 8 per second at most, tagged 0x02; none while the socket is backed up
  const grab = document.createElement("canvas");
  live.timer = setInterval(() => {
    const v = $("video");
    if (!live.ready || live.sending || ws.bufferedAmount > 1 << 18 || !v.videoWidth) return;
    grab.width = v.videoWidth; grab.height = v.videoHeight;
    grab.getContext("2d").drawImage(v, 0, 0);
    live.sending = true;
    grab.toBlob(async (blob) => {
      const b = new Uint8Array(await blob.arrayBuffer()), msg = new Uint8Array(b.length + 1);
      msg[0] = 2; msg.set(b, 1);
      if (ws.readyState === WebSocket.OPEN) ws.send(msg);
      live.sending = false;
      live.frameSize = [grab.width, grab.height];
    }, "image/jpeg", 0.75);
  }, 125);
  $("stop").disabled = false;
  status($("live-status"), "connecting…");
}

function event(e) {
  if (e.type === "ready") { live.ready = true; status($("live-status"), "live: speak and look at the camera"); }
  else if (e.type === "face") face(e);
  else if (e.type === "partial") $("partial").textContent = `… ${e.text}`;
  else if (e.type === "utterance" && e.segment) utterance(e.segment);
  else if (e.type === "error") status($("live-status"), e.detail, true);
  else if (e.type === "end") status($("live-status"), `stopped: ${e.utterances} utterance(s), ${e.frames} frame(s)`);
}

function face(e) {
  const c = $("overlay"), v = $("video"), g = c.getContext("2d");
  c.width = v.clientWidth; c.height = v.clientHeight;
  g.clearRect(0, 0, c.width, c.height);
  const [fw, fh] = live?.frameSize || [v.videoWidth, v.videoHeight];
  $("face-label").innerHTML = e.label ? `face: ${tag(e.label)} ${(e.probs[e.label] || 0).toFixed(2)}` : "face: none";
  if (!e.box || !fw) return;
  const sx = c.width / fw, sy = c.height / fh, [x0, y0, x1, y1] = e.box;
  g.strokeStyle = COLOURS[e.label] || "#fff"; g.lineWidth = 3;
  g.strokeRect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy);
  g.fillStyle = g.strokeStyle; g.font = "bold 15px system-ui"; g.fillText(e.label, x0 * sx, Math.max(14, y0 * sy - 4));
}

function utterance(s) {
  const f = s.fused || {}, li = document.createElement("li");
  li.innerHTML = `[${s.start.toFixed(1)}–${s.end.toFixed(1)} s] ${tag(f.label)} ${esc(s.text || "(no words)")} ` +
    `<small>V ${(f.valence ?? 0).toFixed(2)} A ${(f.arousal ?? 0).toFixed(2)}</small>`;
  $("utterances").prepend(li);
  $("partial").textContent = "";
  live.points.push([f.valence ?? 0, f.arousal ?? 0, f.label]);
  const c = $("va"), g = c.getContext("2d"), W = c.width, H = c.height, px = (v) => W / 2 + v * (W / 2 - 10), py = (a) => H / 2 - a * (H / 2 - 10);
  g.clearRect(0, 0, W, H);
  g.strokeStyle = "#e4e7eb"; g.beginPath(); g.moveTo(0, H / 2); g.lineTo(W, H / 2); g.moveTo(W / 2, 0); g.lineTo(W / 2, H); g.stroke();
  g.fillStyle = "#9aa5b1"; g.font = "10px system-ui"; g.fillText("valence", W - 44, H / 2 - 4); g.fillText("arousal", W / 2 + 4, 10);
  g.strokeStyle = "#9aa5b1"; g.beginPath();
  live.points.forEach(([v, a], i) => (i ? g.lineTo(px(v), py(a)) : g.moveTo(px(v), py(a))));
  g.stroke();
  live.points.forEach(([v, a, l], i) => { g.fillStyle = COLOURS[l] || "#555"; g.globalAlpha = 0.3 + 0.7 * (i + 1) / live.points.length;
    g.beginPath(); g.arc(px(v), py(a), 5, 0, 7); g.fill(); });
  g.globalAlpha = 1;
}

function stop() {
  if (!live) return;
  $("stop").disabled = true;
  if (live.ws.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify({type: "stop"}));
  live.ready = false;
  status($("live-status"), "finishing the last utterance…");
}

function teardown() {
  if (!live) return;
  clearInterval(live.timer);
  live.proc?.disconnect();
  live.media.getTracks().forEach((t) => t.stop());
  live.ctx.close();
  live = null;
  $("start").disabled = false; $("stop").disabled = true;
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
