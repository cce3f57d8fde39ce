// The timeline chart: one line per emotion (probability over time), a ribbon of the winning
// emotion per window, and a playback cursor. Plain SVG drawn with the DOM API; no library.
// The chart element is a slider for assistive technology: its value is the playback time and
// its value text says which emotion leads there; arrow keys, Home/End and clicks seek.

const SVG_NS = "http://www.w3.org/2000/svg";

// Distinct hues, each with at least 4.5:1 contrast on white; dash patterns tell lines apart
// without colour.
const COLOURS = {
  neutral: "#5f6368",
  calm: "#0e7c86",
  happy: "#b45309",
  sad: "#1d4ed8",
  angry: "#c81e1e",
  fearful: "#7e22ce",
  disgust: "#3f6212",
  surprised: "#be185d",
  boredom: "#44403c",
};
const EXTRA_COLOURS = ["#334155", "#9a3412", "#065f46", "#6d28d9"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3"];

export function colourOf(emotion, index = 0) {
  return COLOURS[emotion] ?? EXTRA_COLOURS[index % EXTRA_COLOURS.length];
}

export function dashOf(index) {
  return DASHES[index % DASHES.length];
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function niceStep(span, target) {
  const raw = span / Math.max(1, target);
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

export function formatSeconds(t) {
  return `${t.toFixed(t < 10 ? 1 : 0)} s`;
}

/**
 * Whether the crowd gate took the voice out of window w (several people talk at once), as the server
 * decided it (w.crowd_gated): the window's crowd score is at or above the model's threshold, or most
 * of the clip's speech is a crowd and the clip's audio is not used at all.
 */
export function crowded(w) {
  return w.crowd_gated === true;
}

/** Whether the prediction listened to the voice (voice-activity detection ran, or the audio was used). */
export function listened(result) {
  return result.speech != null || result.modalities?.audio?.used === true;
}

/** Whether the prediction looked for a face: it analysed video frames (an audio file has none). */
export function faceSought(result) {
  return result.face_coverage != null;
}

/**
 * What a window without emotion lacks, by what the prediction looked for: "no speech" where it listened,
 * "no face" where it searched frames for a face (not in an audio file: it has no face to miss), both,
 * or "—" where it did neither.
 */
export function missingText(result) {
  const lacks = [...(listened(result) ? ["no speech"] : []), ...(faceSought(result) ? ["no face"] : [])];
  return lacks.length ? lacks.join(", ") : "—";
}

/**
 * "happy 71%", "happy 38% (uncertain)", or for a window without emotion what it lacks (`missing`,
 * of missingText), or "crowd (several people talk at once)" when the crowd gate took its voice out.
 */
export function windowText(w, missing) {
  if (!w.emotion) return crowded(w) ? "crowd (several people talk at once)" : missing;
  return `${w.emotion} ${Math.round(100 * w.probabilities[w.emotion])}%${w.uncertain ? " (uncertain)" : ""}`;
}

const MIN_WIDTH = 300;

/**
 * The [time, probability] points of emotion's line, one list per run of consecutive windows with
 * probabilities (at the windows' centres); a window alone in its run gives its point twice. A
 * timeline of one window spans that window.
 */
function scoredRuns(timeline, centres, emotion) {
  if (timeline.length === 1) {
    const p = timeline[0].probabilities?.[emotion];
    return p == null ? [] : [[[timeline[0].start, p], [timeline[0].end, p]]];
  }
  const runs = [];
  let run = null;
  timeline.forEach((w, k) => {
    if (!w.probabilities) {
      run = null;
      return;
    }
    if (!run) runs.push((run = []));
    run.push([centres[k], w.probabilities[emotion]]);
  });
  return runs.map((points) => (points.length === 1 ? [points[0], points[0]] : points));
}

/** The window whose centre is nearest to time t. */
export function windowAt(timeline, t) {
  let best = null;
  let bestDistance = Infinity;
  for (const w of timeline) {
    const d = Math.abs((w.start + w.end) / 2 - t);
    if (t >= w.start && t <= w.end && d < bestDistance) {
      best = w;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * Draw the timeline of `result` (the JSON of POST /v1/predict) into `container`.
 * Returns { setTime(t) } to move the cursor; calls onSeek(t) when the user picks a time.
 */
export function renderTimeline(container, result, { onSeek = () => {} } = {}) {
  const timeline = result.timeline ?? [];
  const emotions = Object.keys(result.probabilities ?? timeline.find((w) => w.probabilities)?.probabilities ?? {});
  const lastEnd = timeline.length ? timeline[timeline.length - 1].end : 0;
  const duration = Math.max(result.duration ?? 0, lastEnd, 0.001);
  const step = timeline.length > 1 ? timeline[1].start - timeline[0].start : duration;

  // drawn at the container's width (a phone's too), so that the axis text keeps its size
  const W = Math.max(MIN_WIDTH, Math.round(container.clientWidth) || 800), H = 280;
  const M = { left: 44, right: 22, top: 26, bottom: 30 };
  const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
  const x = (t) => M.left + (t / duration) * plotW;
  const y = (p) => M.top + (1 - p) * plotH;

  container.replaceChildren();
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, "aria-hidden": "true", focusable: "false" }, container);
  svg.classList.add("timeline-svg");

  // grid and axes
  const grid = el("g", { class: "grid" }, svg);
  const axis = el("g", { class: "axis" }, svg);
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    el("line", { x1: M.left, x2: W - M.right, y1: y(p), y2: y(p) }, grid);
    const label = el("text", { x: M.left - 6, y: y(p) + 4, "text-anchor": "end" }, axis);
    label.textContent = `${Math.round(p * 100)}%`;
  }
  // a label every 45 px at least (a phone: a 4 s clip is labelled each second, it was every 2 s)
  const tStep = niceStep(duration, Math.max(3, Math.min(8, Math.floor(plotW / 45))));
  for (let t = 0; t <= duration + 1e-9; t += tStep) {
    el("line", { x1: x(t), x2: x(t), y1: M.top, y2: H - M.bottom }, grid);
    const label = el("text", { x: x(t), y: H - M.bottom + 16, "text-anchor": "middle" }, axis);
    label.textContent = formatSeconds(t);
  }

  // ribbon: the winning emotion of each window, split at midpoints between window centres; grey
  // where there is none (light: no speech, darker: a crowd), with the reason as a tooltip
  const ribbon = el("g", { class: "ribbon" }, svg);
  const missing = missingText(result);
  const centres = timeline.map((w) => (w.start + w.end) / 2);
  timeline.forEach((w, i) => {
    const from = i === 0 ? w.start : (centres[i - 1] + centres[i]) / 2;
    const to = i === timeline.length - 1 ? w.end : (centres[i] + centres[i + 1]) / 2;
    const rect = el("rect", {
      x: x(from), y: 6, width: Math.max(0.5, x(to) - x(from)), height: 12,
      fill: w.emotion ? colourOf(w.emotion, emotions.indexOf(w.emotion)) : crowded(w) ? "#a3a3a3" : "#ddd",
      "fill-opacity": w.uncertain ? 0.45 : 1,
    }, ribbon);
    rect.dataset.emotion = w.emotion ?? "none";
    if (crowded(w)) rect.dataset.gate = "crowd";
    el("title", {}, rect).textContent = windowText(w, missing);
  });

  // one line per emotion and run of windows with scores: a gap where a window has none (no speech)
  const lines = el("g", { class: "lines" }, svg);
  emotions.forEach((emotion, i) => {
    for (const points of scoredRuns(timeline, centres, emotion)) {
      const line = el("polyline", {
        points: points.map(([t, p]) => `${x(t).toFixed(1)},${y(p).toFixed(1)}`).join(" "),
        fill: "none",
        stroke: colourOf(emotion, i),
        "stroke-width": emotion === result.emotion ? 3.5 : 2,
        "stroke-linejoin": "round",
        "stroke-linecap": "round",  // a lone window's line is a dot
        "stroke-dasharray": dashOf(i),
      }, lines);
      line.classList.add("line");
      line.dataset.emotion = emotion;
    }
  });

  const cursor = el("line", { class: "cursor", x1: x(0), x2: x(0), y1: 4, y2: H - M.bottom }, svg);

  // accessibility: the container is a slider over playback time
  container.tabIndex = 0;
  container.setAttribute("role", "slider");
  container.setAttribute("aria-labelledby", "timeline-heading");
  container.setAttribute("aria-describedby", "timeline-hint");
  container.setAttribute("aria-valuemin", "0");
  container.setAttribute("aria-valuemax", duration.toFixed(2));

  let current = 0;
  function setTime(t) {
    current = Math.min(Math.max(t, 0), duration);
    cursor.setAttribute("x1", x(current));
    cursor.setAttribute("x2", x(current));
    const w = windowAt(timeline, current);
    container.setAttribute("aria-valuenow", current.toFixed(2));
    const what = !w ? "no window" : windowText(w, missing);
    container.setAttribute("aria-valuetext", `${formatSeconds(current)}: ${what}`);
    return w;
  }

  container.onclick = (event) => {
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * W;
    const t = ((px - M.left) / plotW) * duration;
    onSeek(Math.min(Math.max(t, 0), duration));
  };
  container.onkeydown = (event) => {
    const moves = { ArrowRight: step, ArrowUp: step, ArrowLeft: -step, ArrowDown: -step };
    let t = null;
    if (event.key in moves) t = current + moves[event.key];
    else if (event.key === "Home") t = 0;
    else if (event.key === "End") t = duration;
    if (t === null) return;
    event.preventDefault();
    onSeek(Math.min(Math.max(t, 0), duration));
  };

  setTime(0);
  return { setTime, duration };
}

/** A small line sample for the legend (colour and dash pattern of emotion i). */
export function legendSwatch(emotion, i) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("width", "28");
  svg.setAttribute("height", "10");
  svg.setAttribute("aria-hidden", "true");
  el("line", {
    x1: 1, x2: 27, y1: 5, y2: 5, stroke: colourOf(emotion, i), "stroke-width": 3, "stroke-dasharray": dashOf(i),
  }, svg);
  return svg;
}
