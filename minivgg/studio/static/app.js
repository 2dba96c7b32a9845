// minivgg studio: plain JavaScript, no build step, no network beyond this server.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const COLORS = ["#e4572e", "#2e86ab", "#4caf50", "#a23b72"];
  const $ = (id) => document.getElementById(id);
  const state = {
    samples: [], maxStyles: 4, styles: [], watched: null, rows: [], frames: 0,
    status: null, content: null, masks: [], painted: [], active: 0, from: null,
  };
  window.studio = state; // read by the browser tests

  function url(path, extra) {
    const q = new URLSearchParams(extra || {});
    q.set("token", token);
    return path + "?" + q.toString();
  }
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers["X-Minivgg-Token"] = token;
    const response = await fetch(path, opts);
    let body = null;
    try { body = await response.json(); } catch (e) { body = { error: "the server answered " + response.status }; }
    return { ok: response.ok, status: response.status, body: body };
  }
  function clearErrors() { document.querySelectorAll(".error").forEach((e) => { e.textContent = ""; }); }
  function showError(field, message) {
    let box = $("err-" + field);
    if (!box && /^style\d$/.test(field)) box = $("err-" + field) || $("err-styles");
    if (!box && /^blend\d$/.test(field)) box = $("err-blend");
    if (!box && /^mask\d$/.test(field)) box = $("err-regions");
    (box || $("err-form")).textContent = message;
  }
  function sourceOptions(select, allowUpload, runId, what) {
    select.innerHTML = "";
    if (allowUpload) select.add(new Option("upload a file…", "upload"));
    state.samples.forEach((s) => select.add(new Option(`sample: ${s.title} (${s.author}, ${s.year})`, "sample:" + s.name)));
    if (runId) select.add(new Option(`${what} of run ${runId}`, "run:" + runId));
  }

  // ------------------------------------------------------------------ styles
  function addStyle(source) {
    if (state.styles.length >= state.maxStyles) return;
    const k = state.styles.length + 1;
    const row = document.createElement("div");
    row.className = "style-row";
    row.style.borderLeftColor = COLORS[k - 1];
    row.innerHTML = `<div class="row"><b>Style ${k}</b>
      <select id="style${k}-source" aria-label="style ${k} source"></select>
      <input type="file" id="style${k}-file" accept="image/*" aria-label="style ${k} file">
      <label>blend <input class="blend" id="blend${k}" value="1"></label>
      ${k > 1 ? `<button type="button" id="remove-style${k}" title="remove">✕</button>` : ""}</div>
      <div class="error" id="err-style${k}"></div>`;
    $("styles").appendChild(row);
    const select = $(`style${k}-source`);
    sourceOptions(select, true, state.from, `style ${k}`);
    select.value = source || (state.samples[(k - 1) % Math.max(1, state.samples.length)] ? "sample:" + state.samples[(k - 1) % state.samples.length].name : "upload");
    if (k > 1) $(`remove-style${k}`).onclick = removeLastStyle;
    state.styles.push(row);
    state.masks.push(newMask());
    state.painted.push(false);
    renderBrushes();
    redraw();
  }
  function removeLastStyle() {
    if (state.styles.length <= 1) return;
    state.styles.pop().remove();
    state.masks.pop();
    state.painted.pop();
    state.active = Math.min(state.active, state.styles.length - 1);
    renderBrushes();
    redraw();
  }
  function renderBrushes() {
    const box = $("brushes");
    box.innerHTML = "";
    state.styles.forEach((_, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.id = "brush" + (i + 1);
      b.className = "brush" + (i === state.active ? " active" : "");
      b.style.background = COLORS[i];
      b.style.color = "#fff";
      b.textContent = "style " + (i + 1);
      b.onclick = () => { state.active = i; $("erase").checked = false; renderBrushes(); };
      box.appendChild(b);
    });
    $("add-style").disabled = state.styles.length >= state.maxStyles;
  }

  // ------------------------------------------------------------------ regions
  function newMask() {
    const c = document.createElement("canvas");
    c.width = $("paint").width;
    c.height = $("paint").height;
    return c;
  }
  function loadContent() {
    const source = $("content-source").value;
    const file = $("content-file").files[0];
    let src = null;
    if (source === "upload" && file) src = URL.createObjectURL(file);
    else if (source.startsWith("sample:")) src = url("/api/samples/" + source.slice(7));
    else if (source.startsWith("run:")) src = url(`/api/runs/${source.slice(4)}/files/content.png`);
    if (!src) { state.content = null; redraw(); return; }
    const img = new Image();
    img.onload = () => {
      const scale = Math.min(320 / img.width, 320 / img.height);
      const w = Math.max(1, Math.round(img.width * scale)), h = Math.max(1, Math.round(img.height * scale));
      const canvas = $("paint");
      if (canvas.width !== w || canvas.height !== h) {
        canvas.width = w; canvas.height = h;
        state.masks = state.masks.map((old) => { const m = newMask(); m.getContext("2d").drawImage(old, 0, 0, w, h); return m; });
      }
      state.content = img;
      redraw();
    };
    img.src = src;
  }
  function redraw() {
    const canvas = $("paint"), ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (state.content) ctx.drawImage(state.content, 0, 0, canvas.width, canvas.height);
    const tint = document.createElement("canvas");
    tint.width = canvas.width; tint.height = canvas.height;
    const t = tint.getContext("2d");
    state.masks.forEach((m, i) => {
      if (!state.painted[i]) return;
      t.globalCompositeOperation = "source-over";
      t.clearRect(0, 0, tint.width, tint.height);
      t.drawImage(m, 0, 0);
      t.globalCompositeOperation = "source-in";
      t.fillStyle = COLORS[i];
      t.fillRect(0, 0, tint.width, tint.height);
      ctx.globalAlpha = 0.5;
      ctx.drawImage(tint, 0, 0);
      ctx.globalAlpha = 1;
    });
  }
  function stroke(from, to) {
    const size = +$("brush-size").value, erase = $("erase").checked;
    state.masks.forEach((m, i) => {
      const own = i === state.active;
      if (!own && erase) return;
      const ctx = m.getContext("2d");
      ctx.globalCompositeOperation = own && !erase ? "source-over" : "destination-out";
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = size;
      ctx.lineCap = "round";
      ctx.beginPath();
      ctx.moveTo(from.x, from.y);
      ctx.lineTo(to.x, to.y);
      ctx.stroke();
    });
    if (!erase) state.painted[state.active] = true;
    redraw();
  }
  function setupPainting() {
    const canvas = $("paint");
    let last = null;
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return { x: (e.clientX - r.left) * canvas.width / r.width, y: (e.clientY - r.top) * canvas.height / r.height };
    };
    canvas.addEventListener("pointerdown", (e) => { last = at(e); stroke(last, last); canvas.setPointerCapture && canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointermove", (e) => { if (!last) return; const p = at(e); stroke(last, p); last = p; });
    const end = () => { last = null; };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointerleave", end);
    $("clear-regions").onclick = () => {
      state.masks = state.masks.map(() => newMask());
      state.painted = state.painted.map(() => false);
      redraw();
    };
  }
  function maskBlob(m) {
    const c = document.createElement("canvas");
    c.width = m.width; c.height = m.height;
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.drawImage(m, 0, 0);
    return new Promise((resolve) => c.toBlob(resolve, "image/png"));
  }

  // ------------------------------------------------------------------ runs
  const FIELDS = ["preset", "size", "iters", "stop_tol", "color", "scales", "tile_size", "seed"];
  async function start() {
    clearErrors();
    const form = new FormData();
    form.append("content_source", $("content-source").value);
    if ($("content-source").value === "upload" && $("content-file").files[0]) form.append("content", $("content-file").files[0]);
    state.styles.forEach((_, i) => {
      const k = i + 1, source = $(`style${k}-source`).value;
      form.append(`style${k}_source`, source);
      if (source === "upload" && $(`style${k}-file`).files[0]) form.append(`style${k}`, $(`style${k}-file`).files[0]);
      form.append(`blend${k}`, $(`blend${k}`).value);
    });
    FIELDS.forEach((f) => form.append(f, $(f).value));
    if ($("all_iters").checked) form.append("all_iters", "on");
    if (state.styles.length > 1 && state.painted.some((p) => p)) {
      for (let i = 0; i < state.masks.length; i++) form.append(`mask${i + 1}`, await maskBlob(state.masks[i]), `mask${i + 1}.png`);
    }
    $("start").disabled = true;
    try {
      const r = await api("/api/runs", { method: "POST", body: form });
      if (!r.ok) { showError(r.body.field || "form", r.body.error); return; }
      watch(r.body.id, []);
      setStatus(r.body.status);
      refreshGallery();
    } catch (e) {
      showError("form", "the server could not be reached (" + e + ")");
    } finally {
      $("start").disabled = false;
    }
  }
  function watch(id, rows) {
    state.watched = id;
    state.rows = rows || [];
    $("run-id").textContent = id ? "run " + id : "";
    const ready = (name) => url(`/api/runs/${id}/files/${name}`, { download: "1" });
    $("download-png").href = ready("result.png");
    $("download-log").href = ready("log.json");
    drawCurves();
  }
  function setStatus(status, info) {
    state.status = status;
    $("run-status").textContent = status || "–";
    $("stop").disabled = !(status === "running" || status === "queued");
    $("resume").disabled = !(status === "stopped" && (!info || info.resumable !== false));
    const has = status === "done" || status === "stopped";
    $("download-png").classList.toggle("disabled", !has);
    $("download-log").classList.toggle("disabled", !has);
  }
  function showResult(id) {
    $("live-image").src = url(`/api/runs/${id}/files/result.png`, { t: Date.now() });
  }
  function fmt(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.round(s);
    return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  }
  function onIter(ev) {
    state.rows.push(ev);
    $("iteration").textContent = ev.iteration + (ev.scales > 1 ? ` (scale ${ev.scale}/${ev.scales})` : "") + ` of ${ev.iters}`;
    $("elapsed").textContent = fmt(ev.elapsed);
    $("left").textContent = fmt(ev.left);
    scheduleCurves();
  }
  let curvesPending = false;
  function scheduleCurves() {
    if (curvesPending) return;
    curvesPending = true;
    requestAnimationFrame(() => { curvesPending = false; drawCurves(); });
  }
  function drawCurves() {
    const c = $("curves"), ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    const terms = [["loss", "#222"], ["content", COLORS[1]], ["style", COLORS[0]], ["tv", COLORS[2]]];
    const rows = state.rows;
    ctx.font = "11px sans-serif";
    terms.forEach(([t, col], i) => { ctx.fillStyle = col; ctx.fillText(t, 40 + i * 60, 12); });
    if (!rows.length) return;
    let lo = Infinity, hi = -Infinity;
    rows.forEach((r) => terms.forEach(([t]) => { const v = r[t]; if (v > 0 && isFinite(v)) { lo = Math.min(lo, Math.log10(v)); hi = Math.max(hi, Math.log10(v)); } }));
    if (!isFinite(lo)) return;
    if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    const x0 = 36, y0 = 18, w = c.width - x0 - 6, h = c.height - y0 - 18, n = rows.length;
    const X = (j) => x0 + (n > 1 ? (j / (n - 1)) * w : 0), Y = (v) => y0 + (1 - (Math.log10(v) - lo) / (hi - lo)) * h;
    ctx.strokeStyle = "#ccc";
    ctx.strokeRect(x0, y0, w, h);
    ctx.fillStyle = "#666";
    ctx.fillText("1e" + hi.toFixed(1), 2, y0 + 8);
    ctx.fillText("1e" + lo.toFixed(1), 2, y0 + h);
    ctx.fillText(`${rows.length} iterations`, x0 + w - 80, c.height - 4);
    terms.forEach(([t, col]) => {
      ctx.strokeStyle = col;
      ctx.beginPath();
      let on = false;
      rows.forEach((r, j) => { const v = r[t]; if (!(v > 0 && isFinite(v))) { on = false; return; } if (on) ctx.lineTo(X(j), Y(v)); else ctx.moveTo(X(j), Y(v)); on = true; });
      ctx.stroke();
    });
  }
  function queueText(ev) {
    const parts = [];
    if (ev.current) parts.push("running " + ev.current);
    if (ev.waiting && ev.waiting.length) parts.push(ev.waiting.length + " queued");
    $("queue-status").textContent = parts.length ? parts.join(", ") : "idle";
    if (state.watched && ev.waiting && ev.waiting.includes(state.watched)) setStatus("queued");
    else if (state.watched && ev.current === state.watched && state.status !== "running") setStatus("running");
  }
  function connect() {
    const source = new EventSource(url("/api/events"));
    const on = (type, fn) => source.addEventListener(type, (e) => fn(JSON.parse(e.data)));
    on("hello", (ev) => {
      queueText(ev);
      if (!state.watched && ev.current) watch(ev.current, []);
      if (ev.current && ev.current === state.watched) {
        state.rows = ev.rows.slice();
        drawCurves();
        if (ev.frame) { $("live-image").src = "data:image/jpeg;base64," + ev.frame.jpeg; }
      }
    });
    on("queue", queueText);
    on("status", (ev) => { if (ev.run === state.watched) setStatus(ev.status); });
    on("iter", (ev) => {
      if (!state.watched) watch(ev.run, []);
      if (ev.run === state.watched) onIter(ev);
    });
    on("frame", (ev) => {
      if (ev.run !== state.watched) return;
      $("live-image").src = "data:image/jpeg;base64," + ev.jpeg;
      state.frames += 1;
    });
    on("end", (ev) => {
      refreshGallery();
      if (ev.run !== state.watched) return;
      setStatus(ev.status);
      if (ev.status === "done" || ev.status === "stopped") showResult(ev.run);
      if (ev.status === "failed" && ev.error) showError(ev.field || "form", ev.error);
    });
    source.onerror = () => { $("queue-status").textContent = "reconnecting…"; };
  }
  async function stop() {
    if (!state.watched) return;
    const r = await api(`/api/runs/${state.watched}/stop`, { method: "POST" });
    if (!r.ok) showError("form", r.body.error);
  }
  async function resume() {
    if (!state.watched) return;
    clearErrors();
    const r = await api(`/api/runs/${state.watched}/resume`, { method: "POST" });
    if (!r.ok) { showError("form", r.body.error); return; }
    setStatus(r.body.status);
  }

  // ------------------------------------------------------------------ gallery
  async function refreshGallery() {
    const r = await api("/api/runs");
    if (!r.ok) return;
    const box = $("gallery");
    box.innerHTML = "";
    r.body.forEach((run) => {
      const s = run.settings, card = document.createElement("div");
      card.className = "card";
      card.id = "card-" + run.id;
      const thumb = run.files.includes("thumb.jpg") ? `<img alt="" src="${url(`/api/runs/${run.id}/files/thumb.jpg`)}">` : "<img alt=\"\">";
      const loss = run.final_loss === null || run.final_loss === undefined ? "–" : Number(run.final_loss).toPrecision(4);
      card.innerHTML = `${thumb}<div><b class="status-${run.status}">${run.status}</b> ${run.id}</div>
        <div>${s.preset}, ${s.size || "preset"} px, ${s.iters || "preset"} it, ${s.styles.length} style(s)${s.masks ? ", regions" : ""}</div>
        <div>loss ${loss}, ${fmt(run.seconds)}</div>`;
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = "Open";
      open.className = "open";
      open.onclick = () => openRun(run.id);
      card.appendChild(open);
      box.appendChild(card);
    });
  }
  async function openRun(id) {
    const r = await api(`/api/runs/${id}`);
    if (!r.ok) { showError("form", r.body.error); return; }
    const info = r.body, s = info.settings;
    clearErrors();
    state.from = id;
    sourceOptions($("content-source"), true, id, "content");
    $("content-source").value = "run:" + id;
    while (state.styles.length) { state.styles.pop().remove(); }
    state.masks = []; state.painted = [];
    s.styles.forEach((_, i) => addStyle("run:" + id));
    s.styles.forEach((src, i) => { $(`blend${i + 1}`).value = s.blend[i]; });
    $("preset").value = s.preset;
    ["size", "stop_tol", "tile_size", "seed"].forEach((f) => { $(f).value = s[f] === null || s[f] === undefined ? "" : s[f]; });
    $("iters").value = s.iters === null ? "" : [].concat(s.iters).join(",");
    $("scales").value = s.scales ? s.scales.join(",") : "";
    $("all_iters").checked = !!s.all_iters;
    $("color").value = s.color;
    loadContent();
    if (s.masks) {
      s.styles.forEach((_, i) => {
        const img = new Image();
        img.onload = () => {
          const m = state.masks[i], ctx = m.getContext("2d");
          ctx.drawImage(img, 0, 0, m.width, m.height);
          const d = ctx.getImageData(0, 0, m.width, m.height); // black becomes transparent
          for (let p = 0; p < d.data.length; p += 4) { d.data[p + 3] = d.data[p]; d.data[p] = d.data[p + 1] = d.data[p + 2] = 255; }
          ctx.putImageData(d, 0, 0);
          state.painted[i] = true;
          redraw();
        };
        img.src = url(`/api/runs/${id}/files/mask${i + 1}.png`);
      });
    }
    watch(id, info.rows || []);
    setStatus(info.status, info);
    if (info.files.includes("result.png")) showResult(id);
  }

  // ------------------------------------------------------------------ start
  async function init() {
    const r = await api("/api/state");
    if (!r.ok) { showError("form", r.body.error); $("queue-status").textContent = "no access"; return; }
    const st = r.body;
    state.samples = st.samples;
    state.maxStyles = st.max_styles;
    st.presets.forEach((p) => $("preset").add(new Option(p, p)));
    st.color_modes.forEach((m) => $("color").add(new Option(m, m)));
    sourceOptions($("content-source"), true, null, "content");
    $("content-source").onchange = loadContent;
    $("content-file").onchange = () => { $("content-source").value = "upload"; loadContent(); };
    $("add-style").onclick = () => addStyle();
    $("start").onclick = start;
    $("stop").onclick = stop;
    $("resume").onclick = resume;
    $("refresh-gallery").onclick = refreshGallery;
    $("styles").addEventListener("change", (e) => {
      const m = /^style(\d)-file$/.exec(e.target.id);
      if (m) $(`style${m[1]}-source`).value = "upload";
    });
    setupPainting();
    addStyle();
    queueText(st);
    connect();
    refreshGallery();
    document.body.dataset.ready = "1";
  }
  init();
})();
