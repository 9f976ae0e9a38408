// The dashboard's script: live figures from /tasks/events (Server-Sent Events, only while
// the tab is visible), the charts (drawn on canvas), selecting jobs, and actions on every
// job a filter matches, a batch per request with a progress bar. Values are written with
// textContent only: nothing received is ever parsed as HTML.
"use strict";

(function () {
  const body = document.body;
  const indicator = document.getElementById("live");
  const liveChart = document.getElementById("live-chart");
  const WINDOW = 300; // seconds shown by the live chart
  const COLOURS = { done: "#2f7d46", failed: "#c0392b", grid: "#e3e3e3", text: "#666" };
  let source = null;
  let series = [];

  // -- formatting --------------------------------------------------------------------------

  function span(seconds) {
    if (seconds < 0.01) return (seconds * 1000).toFixed(1) + " ms";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.round(seconds / 86400) + " d";
  }

  function format(value, how) {
    if (value === null || value === undefined) return "-";
    if (how === "span") return span(value);
    if (how === "rate") return value.toFixed(1) + "/s";
    if (how === "ago") return span(Math.max(Date.now() / 1000 - value, 0)) + " ago";
    if (how === "quiet") return value ? "quiet" : "";
    if (typeof value === "number") return value.toLocaleString("en-US");
    return String(value);
  }

  // -- live figures ------------------------------------------------------------------------

  function setState(state, why) {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.title = why || (state === "on" ? "Live updates" : "Live updates paused");
  }

  function lookup(message, path) {
    return path.split(".").reduce((found, key) => (found == null ? undefined : found[key]), message);
  }

  function apply(message) {
    if (message.error) {
      setState("error", message.error);
      return;
    }
    setState("on");
    for (const el of document.querySelectorAll("[data-live]")) {
      const value = lookup(message, el.dataset.live);
      if (value !== undefined) el.textContent = format(value, el.dataset.format);
    }
    for (const el of document.querySelectorAll("[data-live-in]")) {
      const item = (message[el.dataset.liveIn] || {})[el.dataset.key];
      if (item) el.textContent = format(item[el.dataset.field], el.dataset.format);
    }
    if (message.series) series = message.series;
    else if (message.rate) series.push(message.rate);
    const since = message.at - WINDOW;
    while (series.length && series[0][0] < since) series.shift();
    if (liveChart) draw(liveChart, series, message.at - WINDOW, message.at);
  }

  const wantsLive = document.querySelector("[data-live], [data-live-in], #live-chart") !== null;

  function connect() {
    if (source || document.hidden || !wantsLive) return;
    source = new EventSource(body.dataset.events);
    source.onmessage = (event) => apply(JSON.parse(event.data));
    source.onerror = () => setState("off", "Reconnecting…");
  }

  function disconnect() {
    if (!source) return;
    source.close();
    source = null;
    setState("off");
  }

  document.addEventListener("visibilitychange", () => (document.hidden ? disconnect() : connect()));
  window.addEventListener("pagehide", disconnect);
  connect();

  // -- charts ------------------------------------------------------------------------------

  // points: [[time (s), succeeded, failed], ...]; drawn as two lines from `from` to `to`.
  function draw(canvas, points, from, to) {
    const ctx = canvas.getContext("2d");
    const width = canvas.width;
    const height = canvas.height;
    const pad = { left: 48, right: 8, top: 10, bottom: 20 };
    ctx.clearRect(0, 0, width, height);
    let top = 1;
    for (const p of points) top = Math.max(top, p[1], p[2]);
    const x = (t) => pad.left + ((t - from) / Math.max(to - from, 1)) * (width - pad.left - pad.right);
    const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
    ctx.font = "11px sans-serif";
    ctx.fillStyle = COLOURS.text;
    ctx.strokeStyle = COLOURS.grid;
    for (const level of [0, top / 2, top]) {
      ctx.beginPath();
      ctx.moveTo(pad.left, y(level));
      ctx.lineTo(width - pad.right, y(level));
      ctx.stroke();
      ctx.fillText(level >= 10 ? Math.round(level).toLocaleString("en-US") : level.toFixed(1), 4, y(level) + 4);
    }
    ctx.fillText(new Date(from * 1000).toLocaleString(), pad.left, height - 4);
    const end = new Date(to * 1000).toLocaleString();
    ctx.fillText(end, width - pad.right - ctx.measureText(end).width, height - 4);
    for (const [index, colour] of [[1, COLOURS.done], [2, COLOURS.failed]]) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[index])) : ctx.moveTo(x(p[0]), y(p[index]))));
      ctx.stroke();
    }
    ctx.lineWidth = 1;
    canvas.dataset.points = String(points.length);
  }

  for (const canvas of document.querySelectorAll("canvas[data-kind=history]")) {
    const raw = JSON.parse(document.getElementById(canvas.dataset.source).textContent);
    const points = raw.map(([at, processed, failed]) => [at, processed - failed, failed]);
    if (points.length) draw(canvas, points, points[0][0], points[points.length - 1][0]);
  }
  if (liveChart) draw(liveChart, [], Date.now() / 1000 - WINDOW, Date.now() / 1000);

  // -- selecting jobs ----------------------------------------------------------------------

  for (const all of document.querySelectorAll("[data-select-all]")) {
    all.addEventListener("change", () => {
      for (const box of all.form.querySelectorAll(`input[name="${all.dataset.selectAll}"]`)) box.checked = all.checked;
    });
  }

  // -- actions on everything a filter matches ----------------------------------------------

  for (const form of document.querySelectorAll("form[data-bulk]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const action = event.submitter ? event.submitter.value : "";
      const buttons = form.querySelectorAll("button");
      const progress = form.querySelector("progress");
      const status = form.querySelector(".bulk-status");
      const total = Number(form.dataset.total);
      let cursor = "";
      let done = 0;
      let examined = 0;
      buttons.forEach((b) => (b.disabled = true));
      progress.hidden = false;
      progress.value = 0;
      for (;;) {
        const data = new FormData(form);
        data.set("action", action);
        data.set("cursor", cursor);
        let reply;
        let response;
        try {
          response = await fetch(form.getAttribute("action"), { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" } });
          reply = await response.json();
        } catch (error) {
          reply = { error: String(error) };
        }
        if (!response || !response.ok || reply.error) {
          status.textContent = `Stopped after ${done} job(s): ${reply.error || response.status}`;
          break;
        }
        done += reply.done;
        examined += reply.examined;
        progress.max = Math.max(total, examined, 1);
        progress.value = examined;
        if (!reply.cursor) {
          progress.value = progress.max;
          status.textContent = `Done: ${action} took effect on ${done} job(s) of ${examined} looked at.`;
          break;
        }
        status.textContent = `${action}: ${done} job(s) so far, ${examined} of ${total} looked at…`;
        cursor = reply.cursor;
      }
      form.dataset.finished = "1";
      buttons.forEach((b) => (b.disabled = false));
    });
  }
})();
