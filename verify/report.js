// The run page's players (verify/html.py inlines this file): each draws its recording's envelope,
// precomputed by verify/waveform.py, on a canvas over the run's clock, marks its regions as
// buttons under it and follows the playback with a play head. A region, a click on the waveform
// or a turn's row plays the run's own WAV from the matching place in the file. No network.
(() => {
  "use strict";
  const LANES = { burst: 0, lost: 0, glitch: 1, gap: 2, turn: 0, answer: 1, "barge-in": 2, stall: 3, freeze: 3 };
  const LEVELS = 100;

  // Play `audio` from `at` seconds into its file, pausing at `until` when one is given.
  function play(audio, at, until) {
    for (const other of document.querySelectorAll("audio")) if (other !== audio) other.pause();
    audio.dataset.until = until === undefined || until === null ? "" : String(until);
    audio.currentTime = at;
    // A refused play (no user gesture yet) is not an error of the page: the position moved.
    audio.play().catch(() => {});
  }

  // The last column whose file position is at or before `t`: where the play head stands.
  function column(seek, t) {
    let lo = 0;
    let hi = seek.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (seek[mid] <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  function draw(canvas, data) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    const wave = height - 16; // the bottom strip holds the time ticks
    const n = data.low.length;
    const mid = wave / 2;
    g.fillStyle = "#3b6ea5";
    for (let c = 0; c < n; c++) {
      const x = (c / n) * width;
      const top = mid - (data.high[c] / LEVELS) * mid;
      const bottom = mid - (data.low[c] / LEVELS) * mid;
      g.fillRect(x, top, Math.max(width / n, 1), Math.max(bottom - top, 1));
    }
    g.fillStyle = "#555";
    g.font = "11px sans-serif";
    const span = data.end - data.start;
    const step = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600].find((s) => span / s <= 12) || 1200;
    for (let t = Math.ceil(data.start / step) * step; t <= data.end; t += step) {
      const x = ((t - data.start) / span) * width;
      g.fillRect(x, wave, 1, 4);
      g.fillText(`${+t.toFixed(1)} s`, x + 2, height - 2);
    }
  }

  for (const player of document.querySelectorAll(".player")) {
    const audio = player.querySelector("audio");
    const canvas = player.querySelector("canvas");
    const data = JSON.parse(player.querySelector("script.wave").textContent);
    const strip = player.querySelector(".regions");
    const head = player.querySelector(".head");
    const span = data.end - data.start;
    const percent = (t) => Math.min(Math.max(((t - data.start) / span) * 100, 0), 100);
    let lanes = 0;
    for (const r of data.regions) {
      const mark = document.createElement("button");
      const lane = LANES[r.kind] || 0;
      lanes = Math.max(lanes, lane + 1);
      mark.type = "button";
      mark.className = `region ${r.kind}`;
      mark.dataset.kind = r.kind;
      mark.dataset.seek = r.seek_s;
      if (r.ref !== null) mark.dataset.ref = r.ref;
      mark.title = `${r.label}: ${r.start_s.toFixed(3)} s on the run's clock (click to play)`;
      mark.setAttribute("aria-label", mark.title);
      mark.style.left = `${percent(r.start_s)}%`;
      mark.style.width = `${Math.max(percent(r.end_s) - percent(r.start_s), 0.4)}%`;
      mark.style.top = `${lane * 12}px`;
      mark.addEventListener("click", () => play(audio, r.seek_s, r.stop_s));
      strip.append(mark);
    }
    strip.style.height = `${lanes * 12}px`;
    draw(canvas, data);
    window.addEventListener("resize", () => draw(canvas, data));
    canvas.addEventListener("click", (e) => {
      const c = Math.floor((e.offsetX / canvas.clientWidth) * data.seek.length);
      play(audio, data.seek[Math.min(Math.max(c, 0), data.seek.length - 1)]);
    });
    audio.addEventListener("timeupdate", () => {
      const until = audio.dataset.until;
      if (until !== "" && until !== undefined && audio.currentTime >= +until) audio.pause();
      head.style.left = `${(column(data.seek, audio.currentTime) / data.seek.length) * 100}%`;
    });
    // a region's end holds for its own playback only, not for the player's own controls
    audio.addEventListener("pause", () => {
      audio.dataset.until = "";
    });
  }

  for (const row of document.querySelectorAll("[data-play]")) {
    row.addEventListener("click", () => {
      const audio = document.getElementById(row.dataset.play);
      play(audio, +row.dataset.seek, row.dataset.until === "" ? null : +row.dataset.until);
    });
  }
})();
