// machinima director console: no dependencies, no CDN. Speaks docs/protocol.md (version 1).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#ff7043", "#4fc3f7", "#aed581", "#ba68c8", "#ffd54f", "#4db6ac", "#f06292", "#90a4ae"];
  let ws = null, skel = null, stage = {}, welcome = null, seq = 0;
  let view = { cx: 0, top: 2.6, scale: 0 }; // live view framing: world x at the centre, metres, px per metre
  const latest = new Map(); // performer -> Float32Array(55*7)
  const pending = new Map(); // command id -> {resolve, reject}
  const colorOf = new Map();

  function log(text, cls) {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + text;
    if (cls) li.className = cls;
    $("log").prepend(li);
    while ($("log").children.length > 100) $("log").lastChild.remove();
  }

  function newId(type) { return type + "-" + Date.now().toString(36) + "-" + (seq++) + "-" + Math.random().toString(36).slice(2, 8); }

  function command(type, fields) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== 1) { reject(new Error("not connected")); return; }
      const id = newId(type);
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify(Object.assign({ v: 1, type: type, id: id }, fields || {})));
    });
  }

  // --- binary frames (little-endian header of 20 bytes, see docs/protocol.md) ---------------
  function decodeFrame(buf, off, len) {
    const dv = new DataView(buf, off, len);
    if (dv.getUint8(0) !== 0x4d || dv.getUint8(1) !== 0x51) return;
    const kind = dv.getUint8(3), enc = dv.getUint8(4), nlen = dv.getUint8(5), count = dv.getUint16(6, true);
    const name = new TextDecoder().decode(new Uint8Array(buf, off + 20, nlen));
    let p = 20 + nlen;
    if (kind === 3) {
      for (let i = 0; i < count; i++) {
        const n = dv.getUint32(p, true); p += 4;
        decodeFrame(buf, off + p, n); p += n;
      }
    } else if (kind === 1 && enc === 0) {
      const vals = new Float32Array(count * 7);
      for (let i = 0; i < count * 7; i++) vals[i] = dv.getFloat32(p + 4 * i, true);
      latest.set(name, vals);
    }
  }

  // --- forward kinematics of canonical local poses (x y z, quat x y z w) ----------------------
  function qmul(a, b) {
    return [a[3] * b[0] + a[0] * b[3] + a[1] * b[2] - a[2] * b[1],
            a[3] * b[1] - a[0] * b[2] + a[1] * b[3] + a[2] * b[0],
            a[3] * b[2] + a[0] * b[1] - a[1] * b[0] + a[2] * b[3],
            a[3] * b[3] - a[0] * b[0] - a[1] * b[1] - a[2] * b[2]];
  }
  function qrot(q, v) {
    const u = [q[0], q[1], q[2]], w = q[3];
    const t = [2 * (u[1] * v[2] - u[2] * v[1]), 2 * (u[2] * v[0] - u[0] * v[2]), 2 * (u[0] * v[1] - u[1] * v[0])];
    return [v[0] + w * t[0] + (u[1] * t[2] - u[2] * t[1]), v[1] + w * t[1] + (u[2] * t[0] - u[0] * t[2]), v[2] + w * t[2] + (u[0] * t[1] - u[1] * t[0])];
  }
  function qnorm(q) { const n = Math.hypot(q[0], q[1], q[2], q[3]) || 1; return [q[0] / n, q[1] / n, q[2] / n, q[3] / n]; }
  function fk(vals) {
    const n = skel.bones.length, pos = new Array(n), rot = new Array(n);
    for (const i of skel.order) {
      const lp = [vals[i * 7], vals[i * 7 + 1], vals[i * 7 + 2]];
      const lq = qnorm([vals[i * 7 + 3], vals[i * 7 + 4], vals[i * 7 + 5], vals[i * 7 + 6]]);
      const p = skel.parents[i];
      if (p < 0) { pos[i] = lp; rot[i] = lq; }
      else { const r = qrot(rot[p], lp); pos[i] = [pos[p][0] + r[0], pos[p][1] + r[1], pos[p][2] + r[2]]; rot[i] = qmul(rot[p], lq); }
    }
    return pos;
  }

  // Auto-framing: the view always holds every live performer (and at least the 5 m around the
  // stage centre). It widens at once, so nobody is ever off screen, and narrows gently.
  function frame(bodies, w, h) {
    let lo = -2.5, hi = 2.5, top = 2.2;
    for (const pos of bodies) for (const p of pos) { lo = Math.min(lo, p[0] - 0.4); hi = Math.max(hi, p[0] + 0.4); top = Math.max(top, p[1] + 0.4); }
    const scale = Math.min(w / (hi - lo), (h - 40) / top), cx = (lo + hi) / 2;
    if (!view.scale || scale < view.scale) view = { cx: cx, top: top, scale: scale };
    else view = { cx: view.cx + 0.1 * (cx - view.cx), top: top, scale: view.scale + 0.1 * (scale - view.scale) };
    // never leave anyone out while easing: recentre when an edge would cut someone
    const half = w / 2 / view.scale;
    if (lo < view.cx - half) view.cx = lo + half; else if (hi > view.cx + half) view.cx = hi - half;
    return view;
  }

  function draw() {
    const cv = $("view"), ctx = cv.getContext("2d");
    ctx.fillStyle = "#0b0c10"; ctx.fillRect(0, 0, cv.width, cv.height);
    const bodies = skel ? [...latest].map(([name, vals]) => [name, fk(vals)]) : [];
    const v = frame(bodies.map((b) => b[1]), cv.width, cv.height);
    // floor grid (front view: x right, y up), 1 m cells
    const scale = v.scale, cx = cv.width / 2 - v.cx * scale, floor = cv.height - 30;
    ctx.strokeStyle = "#1f232c"; ctx.lineWidth = 1;
    for (let x = Math.floor(v.cx - cv.width / 2 / scale); x <= v.cx + cv.width / 2 / scale; x++) {
      ctx.beginPath(); ctx.moveTo(cx + x * scale, 0); ctx.lineTo(cx + x * scale, floor); ctx.stroke();
    }
    ctx.strokeStyle = "#39404d"; ctx.beginPath(); ctx.moveTo(0, floor); ctx.lineTo(cv.width, floor); ctx.stroke();
    if (skel) {
      let k = 0;
      for (const [name, pos] of bodies) {
        if (!colorOf.has(name)) colorOf.set(name, COLORS[colorOf.size % COLORS.length]);
        const col = colorOf.get(name);
        const sx = (p) => cx + p[0] * scale, sy = (p) => floor - p[1] * scale;
        ctx.strokeStyle = col; ctx.lineWidth = 3; ctx.lineCap = "round";
        for (let i = 0; i < pos.length; i++) {
          const p = skel.parents[i]; if (p < 0) continue;
          ctx.beginPath(); ctx.moveTo(sx(pos[p]), sy(pos[p])); ctx.lineTo(sx(pos[i]), sy(pos[i])); ctx.stroke();
        }
        const head = pos[skel.bones.indexOf("Head")];
        ctx.fillStyle = col; ctx.beginPath(); ctx.arc(sx(head), sy(head) - 8, 9, 0, 2 * Math.PI); ctx.fill();
        ctx.font = "13px system-ui"; ctx.fillText(name, sx(head) + 14, sy(head) - 14);
        k++;
      }
      if (!k) { ctx.fillStyle = "#5c6270"; ctx.font = "16px system-ui"; ctx.fillText("no performers yet", 20, 30); }
    }
    requestAnimationFrame(draw);
  }

  // --- stage state --------------------------------------------------------------------------
  function fmt(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }
  function renderState() {
    const rec = $("recstate");
    if (stage.recording) { rec.className = "badge recording"; rec.textContent = "● REC " + stage.take + "  " + fmt(stage.elapsed_s, 1) + " s"; }
    else { rec.className = "badge standby"; rec.textContent = stage.error ? "STOPPED: " + stage.error : "STANDBY"; }
    const director = welcome && welcome.role === "director";
    $("record").disabled = !director || !!stage.recording;
    $("stop").disabled = $("cut").disabled = $("markerbtn").disabled = !director || !stage.recording;
    $("notebtn").disabled = $("setslate").disabled = !director;
    for (const k of ["production", "scene", "shot"]) {
      if (stage.slate && document.activeElement !== $(k) && !$(k).dataset.edited) $(k).value = stage.slate[k] || "";
    }
    const tb = $("performers").tBodies[0];
    tb.innerHTML = "";
    for (const p of stage.performers || []) {
      if (p.kind !== "performer") continue;
      const tr = tb.insertRow();
      const cells = [p.name, p.connected ? "live" : "gone", fmt(p.rate, 1), p.loss + " (" + fmt(p.loss_pct, 1) + "%)", fmt(p.latency_ms, 1)];
      cells.forEach((c, i) => { const td = tr.insertCell(); td.textContent = c; if (i === 1) td.className = p.connected ? "ok" : "bad"; });
      const td = tr.insertCell();
      if (p.connected && p.client && welcome && welcome.role === "director") {
        const b = document.createElement("button"); b.className = "small"; b.textContent = "kick";
        b.title = "disconnect " + p.client; b.onclick = () => act("kick", { name: p.client, reason: "from the console" });
        td.appendChild(b);
      }
      if (!p.connected) latest.delete(p.name);
    }
  }

  async function refreshTakes() {
    try {
      const res = await command("takes", { limit: 30 });
      const tb = $("takes").tBodies[0];
      tb.innerHTML = "";
      for (const t of res.takes) {
        const tr = tb.insertRow();
        tr.dataset.take = t.id;
        const marks = (t.markers || []).map((m) => m.name + "@" + m.timecode).join(", ");
        [t.id, t.status, t.timecode_in + "–" + (t.timecode_out || ""), (t.performers || []).join(", "), (t.notes || []).join(" · "), marks]
          .forEach((c) => { tr.insertCell().textContent = c; });
      }
    } catch (e) { log("takes: " + e.message, "error"); }
  }

  function onText(msg) {
    if ((msg.type === "ack" || msg.type === "error") && pending.has(msg.id)) {
      const p = pending.get(msg.id); pending.delete(msg.id);
      if (msg.type === "ack") p.resolve(msg.result); else p.reject(new Error(msg.code + ": " + msg.message));
      return;
    }
    if (msg.type === "state") { stage = msg.stage; renderState(); }
    else if (msg.type === "error") log(msg.code + ": " + msg.message, "error");
    else if (msg.type === "warning") { log(msg.message, "warn"); refreshTakes(); }
    else if (msg.type === "event") log("event " + msg.name + " from " + msg.from + " " + JSON.stringify(msg.payload));
    else if (msg.type === "dropped") log("live view skipped " + msg.count + " stale frames", "warn");
  }

  function join() {
    const token = $("token").value.trim();
    if (!token) { log("paste a token first (machinima server token --role director --name you)", "error"); return; }
    if (ws) ws.close();
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/stage";
    ws = new WebSocket(url, ["machinima.stage.v1"]);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(JSON.stringify({ v: 1, type: "hello", token: token, client: "console" }));
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") { decodeFrame(ev.data, 0, ev.data.byteLength); return; }
      const msg = JSON.parse(ev.data);
      if (msg.type === "welcome") {
        welcome = msg; stage = msg.stage;
        $("conn").className = "badge on"; $("conn").textContent = "online";
        $("who").textContent = msg.name + " (" + msg.role + ")";
        log("joined as " + msg.name + " (" + msg.role + ")");
        if (msg.stage.recovered && msg.stage.recovered.length) log("recovered after a crash: " + msg.stage.recovered.join(", "), "warn");
        command("subscribe", { frames: true, encoding: "f32", events: true });
        renderState(); refreshTakes();
        return;
      }
      onText(msg);
    };
    ws.onclose = (ev) => {
      $("conn").className = "badge off"; $("conn").textContent = "offline";
      for (const p of pending.values()) p.reject(new Error("connection closed"));
      pending.clear();
      log("disconnected: " + (ev.reason || "connection lost") + " (" + ev.code + ")", "error");
      if (welcome && ![4001, 4002, 4010, 4011].includes(ev.code)) setTimeout(join, 1000);
      welcome = null; renderState();
    };
  }

  async function act(type, fields, after) {
    try { const r = await command(type, fields); log(type + " ok " + (r && r.take ? r.take : "")); if (after) after(r); }
    catch (e) { log(type + ": " + e.message, "error"); }
  }

  $("joinbtn").onclick = join;
  $("token").onkeydown = (e) => { if (e.key === "Enter") join(); };
  for (const k of ["production", "scene", "shot"]) $(k).oninput = () => { $(k).dataset.edited = "1"; };
  const slateFields = () => { const s = {}; for (const k of ["production", "scene", "shot"]) { const v = $(k).value.trim(); if (v) s[k] = v; } return s; };
  $("setslate").onclick = () => act("slate", slateFields(), () => { for (const k of ["production", "scene", "shot"]) delete $(k).dataset.edited; });
  $("record").onclick = () => act("record", { slate: slateFields() }, () => { for (const k of ["production", "scene", "shot"]) delete $(k).dataset.edited; refreshTakes(); });
  $("stop").onclick = () => act("stop", {}, refreshTakes);
  $("cut").onclick = () => act("cut", {}, refreshTakes);
  $("markerbtn").onclick = () => act("marker", { name: $("markername").value.trim() || "mark" }, () => { $("markername").value = ""; });
  $("notebtn").onclick = () => { const t = $("notetext").value.trim(); if (t) act("note", { text: t }, () => { $("notetext").value = ""; refreshTakes(); }); };
  $("refresh").onclick = refreshTakes;

  fetch("/skeleton.json").then((r) => r.json()).then((s) => { skel = s; });
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { $("token").value = decodeURIComponent(m[1]); join(); }
  requestAnimationFrame(draw);
})();
