// The avemo page: choose or record a clip, upload it with progress, show the prediction.
// Talks only to this server (POST /v1/predict, GET /healthz, GET /v1/models); no third-party code.

import {
  colourOf, crowded, faceSought, formatSeconds, legendSwatch, listened, missingText, renderTimeline, windowText,
} from "./chart.js";

const $ = (id) => document.getElementById(id);
const MAX_RECORD_SECONDS = 10;
const NAMES = { audio: "Voice (audio)", video: "Face (video)", text: "Words (text)" };
const SHORT_NAMES = { audio: "voice", video: "face", text: "words" };

const state = {
  file: null,
  limits: null,
  mediaUrl: null,
  chart: null,
  timeline: [],
  recorder: null,
  recordTimer: null,
  processTimer: null,
  progressId: null,
};

function percent(p) {
  if (p > 0 && p < 0.005) return "< 0.5 %";
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.005 ? 0 : 1)} %`;
}

function humanBytes(n) {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(n >= 10 * 1024 * 1024 ? 0 : 1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} bytes`;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

function chooseFile(file, label) {
  state.file = file;
  $("selected-file").textContent = file ? `${label}: ${file.name} (${humanBytes(file.size)})` : "No clip chosen yet.";
  $("submit-button").disabled = !file;
  showError("");
}

// ---------------------------------------------------------------- limits
async function loadLimits() {
  try {
    const response = await fetch("/healthz", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const health = await response.json();
    state.limits = health.limits;
    const { max_upload_bytes: maxBytes, max_duration: maxSeconds, window } = health.limits;
    $("limits-text").textContent = `At most ${humanBytes(maxBytes)} and ${formatSeconds(maxSeconds)}.`;
    const input = $("window-input");
    input.min = window.min;
    input.max = window.max;
    input.value = window.default;
    showHop();
    input.addEventListener("input", showHop);
    offerModalities(health.modalities ?? ["audio", "video"]);
  } catch {
    // the page still works; the server enforces its limits anyway
  }
}

// The footer says which model answers (GET /v1/models): the bundled one, or a checkpoint by its run
// name and the corpora it was trained on, where its checkpoint records them.
async function loadModel() {
  try {
    const response = await fetch("/v1/models", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const [model] = (await response.json()).models;
    $("served-model-text").textContent = `${modelText(model)}; treat any output as an estimate.`;
  } catch {
    // the footer keeps its caution alone
  }
}

function modelText(model) {
  if (!model.run) return "The bundled model was trained on acted English and German speech";
  const corpora = model.corpora?.length ? `trained on ${model.corpora.join(", ")}` : "its training corpora are not recorded";
  return `The model is the checkpoint ${model.run} (${model.name}), ${corpora}`;
}

// The hop a request gets: the model's, or the window itself when that is shorter (as the server applies it).
function showHop() {
  const window = Number($("window-input").value);
  const hop = window > 0 ? Math.min(state.limits.default_hop, window) : state.limits.default_hop;
  $("hop-text").textContent = `A new window starts every ${+hop.toFixed(2)} s.`;  // 0.25 s, not 0.3 s
}

// A modality the server does not offer (text, unless it was started with the text expert; one its
// model does not read) is unticked and disabled, with a tooltip saying why.
function offerModalities(offered) {
  for (const box of document.querySelectorAll('input[name="modalities"]')) {
    const available = offered.includes(box.value);
    box.disabled = !available;
    if (!available) box.checked = false;
    const label = box.closest("label");
    const wanted = ["audio", "video", "text"].filter((m) => offered.includes(m) || m === box.value).join(",");
    const why = box.value === "text" ? "" : "its model does not read it, or ";
    label.title = available ? "" : `This server does not offer the ${box.value} modality (${why}start it with: avemo serve --modalities ${wanted}).`;
  }
}

// Text needs the transcript: ticking it ticks (and locks) "Transcribe speech".
function followTextBox() {
  const transcribe = $("transcribe-input");
  if ($("text-input").checked) transcribe.checked = true;
  transcribe.disabled = $("text-input").checked;
}

// ---------------------------------------------------------------- recording
function pickMimeType() {
  const candidates = ["video/webm;codecs=vp8,opus", "video/webm", "video/mp4"];
  return candidates.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) ?? "";
}

async function startRecording() {
  const button = $("record-button");
  if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
    $("record-status").textContent = "This browser cannot record (no MediaRecorder or camera access).";
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (err) {
    $("record-status").textContent = `Camera or microphone unavailable: ${err.message || err.name}.`;
    return;
  }
  const preview = $("record-preview");
  preview.srcObject = stream;
  preview.hidden = false;
  preview.play().catch(() => {});

  const mimeType = pickMimeType();
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const chunks = [];
  const started = performance.now();
  recorder.ondataavailable = (event) => {
    if (event.data && event.data.size) chunks.push(event.data);
  };
  recorder.onstop = () => {
    clearInterval(state.recordTimer);
    stream.getTracks().forEach((track) => track.stop());
    preview.srcObject = null;
    preview.hidden = true;
    button.textContent = "Start recording";
    button.setAttribute("aria-pressed", "false");
    state.recorder = null;
    const type = recorder.mimeType || mimeType || "video/webm";
    const blob = new Blob(chunks, { type });
    const seconds = (performance.now() - started) / 1000;
    if (!blob.size) {
      $("record-status").textContent = "Nothing was recorded.";
      return;
    }
    const suffix = type.includes("mp4") ? "mp4" : "webm";
    chooseFile(new File([blob], `recording.${suffix}`, { type }), "Recording");
    $("record-status").textContent = `Recorded ${formatSeconds(seconds)}.`;
  };
  recorder.start(250);
  state.recorder = recorder;
  button.textContent = "Stop recording";
  button.setAttribute("aria-pressed", "true");
  $("record-status").textContent = `Recording… (stops by itself after ${MAX_RECORD_SECONDS} s)`;
  state.recordTimer = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000;
    if (elapsed >= MAX_RECORD_SECONDS && recorder.state === "recording") recorder.stop();
  }, 200);
}

function toggleRecording() {
  if (state.recorder && state.recorder.state === "recording") state.recorder.stop();
  else startRecording();
}

// ---------------------------------------------------------------- upload
function setBusy(busy) {
  $("predict-form").setAttribute("aria-busy", String(busy));
  $("submit-button").disabled = busy || !state.file;
  $("record-button").disabled = busy;
  $("file-input").disabled = busy;
}

function selectedModalities() {
  return [...document.querySelectorAll('input[name="modalities"]:checked')].map((box) => box.value);
}

function submit(event) {
  event.preventDefault();
  showError("");
  if (!state.file) {
    showError("Choose a file or record a clip first.");
    return;
  }
  if (state.limits && state.file.size > state.limits.max_upload_bytes) {
    showError(`${state.file.name}: the file is larger than the limit of ${humanBytes(state.limits.max_upload_bytes)}.`);
    return;
  }
  const modalities = selectedModalities();
  if (!modalities.some((m) => m !== "text")) {
    showError("Tick at least one of voice (audio) or face (video).");
    return;
  }
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("window", $("window-input").value || "1");
  form.append("modalities", modalities.join(","));
  if ($("transcribe-input").checked) form.append("transcribe", "true");
  const progressId = newProgressId();
  form.append("progress_id", progressId);

  const uploadBar = $("upload-progress");
  const processBar = $("process-progress");
  uploadBar.value = 0;
  processBar.value = 0;
  $("upload-text").textContent = "";
  $("process-text").textContent = "waiting";
  $("progress").hidden = false;
  setBusy(true);
  setStatus(`Uploading ${state.file.name}…`);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/predict");
  xhr.responseType = "json";
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    uploadBar.value = Math.round((100 * e.loaded) / e.total);
    $("upload-text").textContent = `${humanBytes(e.loaded)} of ${humanBytes(e.total)}`;
  };
  xhr.upload.onload = () => {
    uploadBar.value = 100;
    $("upload-text").textContent = "done";
    processBar.removeAttribute("value"); // indeterminate until the server reports progress
    setStatus("Analysing the clip…");
    state.progressId = progressId;
    state.processTimer = setInterval(() => pollProgress(progressId), 400);
  };
  const finish = () => {
    clearInterval(state.processTimer);
    state.progressId = null;
    setBusy(false);
  };
  xhr.onload = () => {
    finish();
    const body = xhr.response;
    if (xhr.status === 200 && body && "emotion" in body) {
      processBar.value = 100;
      $("process-text").textContent = "done";
      // no emotion is flagged uncertain by the API too; "no emotion, uncertain" would read as a doubt of its own
      setStatus(`Done: ${body.emotion ?? "no emotion"}${body.emotion != null && body.uncertain ? ", uncertain" : ""}.`);
      showResult(body);
    } else {
      processBar.value = 0;
      $("process-text").textContent = "failed";
      setStatus("");
      const message = body?.error?.message ?? `the server answered HTTP ${xhr.status}`;
      showError(message);
    }
  };
  xhr.onerror = () => {
    finish();
    setStatus("");
    showError("The upload failed: the server could not be reached or closed the connection.");
  };
  xhr.send(form);
}

function newProgressId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function pollProgress(progressId) {
  let entry;
  try {
    const response = await fetch(`/v1/progress/${progressId}`, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    entry = await response.json();
  } catch {
    return;
  }
  if (state.progressId !== progressId) return; // the answer came in meanwhile
  const bar = $("process-progress");
  const text = $("process-text");
  if (entry.state === "unknown") return; // not registered yet (or just finished)
  if (entry.state === "queued") {
    text.textContent = "waiting for a free worker";
  } else if (entry.total) {
    bar.value = Math.min(100, Math.round((100 * entry.done) / entry.total));
    text.textContent = `${formatSeconds(entry.done)} of ${formatSeconds(entry.total)}`;
  } else {
    text.textContent = "analysing";
  }
}

// ---------------------------------------------------------------- result
function showBars(result) {
  const list = $("probability-bars");
  list.replaceChildren();
  const emotions = Object.keys(result.probabilities ?? {});
  if (!emotions.length) {  // no emotion: the heading does not stand over an empty list
    const item = document.createElement("li");
    item.className = "none";
    item.textContent = "No scores: the model had nothing it could read (see Modalities).";
    list.appendChild(item);
  }
  emotions.forEach((emotion, i) => {
    const p = result.probabilities[emotion];
    const item = document.createElement("li");
    item.dataset.emotion = emotion;
    if (emotion === result.emotion) item.classList.add("top");
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = emotion;
    const track = document.createElement("span");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.display = "block";
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    fill.style.background = colourOf(emotion, i);
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(p);
    item.append(name, track, value);
    list.appendChild(item);
  });
}

function showLegend(result) {
  const legend = $("timeline-legend");
  legend.replaceChildren();
  Object.keys(result.probabilities ?? {}).forEach((emotion, i) => {
    const item = document.createElement("li");
    item.append(legendSwatch(emotion, i), document.createTextNode(emotion));
    legend.appendChild(item);
  });
}

function showTable(result) {
  const table = $("timeline-table");
  table.replaceChildren();
  const emotions = Object.keys(result.probabilities ?? {});
  const head = table.createTHead().insertRow();
  const said = result.transcript != null;
  // the crowd gate, shown as the speech gate is: its score per window, and "crowd" where it took the voice out
  const crowd = result.timeline.some((w) => w.crowd != null);
  // a column for what the prediction looked for: no face column for an audio file (no face to miss),
  // no voice or speech column where nothing listened (no audio track, voice not requested)
  const voice = listened(result);
  const face = faceSought(result);
  const missing = missingText(result);
  for (const title of ["start (s)", "end (s)", "emotion", ...emotions, ...(voice ? ["voice"] : []),
    ...(face ? ["face"] : []), ...(voice ? ["speech"] : []), ...(crowd ? ["crowd"] : []), "uncertain",
    ...(said ? ["words"] : [])]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = title;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const w of result.timeline) {
    const row = body.insertRow();
    const gated = crowded(w);
    const cells = [w.start.toFixed(2), w.end.toFixed(2), w.emotion ?? (gated ? "crowd" : missing),
      ...emotions.map((e) => (w.probabilities ? percent(w.probabilities[e]) : "")),
      ...(voice ? [w.audio ? "yes" : gated ? "no (crowd)" : "no"] : []), ...(face ? [w.video ? "yes" : "no"] : []),
      ...(voice ? [w.speech == null ? "" : percent(w.speech)] : []),
      ...(crowd ? [w.crowd == null ? "" : percent(w.crowd)] : []), w.uncertain ? "yes" : "no"];
    for (const text of cells) row.insertCell().textContent = text;
    if (said) {  // the words wrap; the other cells keep to one line
      const words = row.insertCell();
      words.className = "words";
      words.textContent = w.text ?? "";
    }
  }
}

function showTranscript(result) {
  const transcript = result.transcript;
  $("transcript-box").hidden = transcript == null;
  if (transcript == null) return;
  const language = transcript.language ? ` (language: ${transcript.language})` : "";
  // a file without an audio track was not listened to: "no speech recognised" would say it was
  const silent = result.modalities.audio?.reason === "the file has no audio track";
  $("transcript-text").textContent = transcript.text ? `“${transcript.text}”${language}`
    : silent ? "No audio to transcribe: the file has no audio track." : "No speech was recognised.";
}

function showModalities(result) {
  const list = $("modalities-list");
  list.replaceChildren();
  for (const [modality, status] of Object.entries(result.modalities)) {
    const item = document.createElement("li");
    item.dataset.modality = modality;
    item.append(`${NAMES[modality] ?? modality}: `);
    const verdict = document.createElement("span");
    verdict.className = status.used ? "used" : "unused";
    verdict.textContent = status.used ? "used" : "not used";
    item.append(verdict);
    // "not used: REASON", as avemo predict's table: a reason has brackets of its own ("an audio-only file (no video stream)")
    if (!status.used && status.reason) item.append(`: ${status.reason}`);
    if (modality === "video" && status.used && result.face_coverage != null) {
      item.append(`, face found in ${percent(result.face_coverage)} of the analysed frames`);
    }
    if (status.probabilities) item.append(" ", modalityScores(status.probabilities));
    list.appendChild(item);
  }
  const model = result.model ?? {};
  const parts = [model.name, model.version, model.engine && `engine ${model.engine}`].filter(Boolean);
  $("model-text").textContent = parts.length ? `Model: ${parts.join(", ")}.` : "";
  const warnings = result.warnings ?? [];
  $("warnings-text").hidden = !warnings.length;
  // what the decoders skipped (the result covers what could be decoded) and what the abstention saw
  // ("too little speech", a crowd): not all of them mean that the file is damaged
  $("warnings-text").textContent = warnings.length ? `Note: ${warnings.join("; ")}.` : "";
}

// A modality's own clip-level probabilities, most likely first (its evidence before the fusion).
function modalityScores(probabilities) {
  const scores = document.createElement("span");
  scores.className = "scores";
  const ranked = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  scores.textContent = `(on its own: ${ranked.map(([emotion, p]) => `${emotion} ${percent(p)}`).join(", ")})`;
  return scores;
}

function showMedia(result) {
  const video = $("player");
  const audio = $("audio-player");
  if (state.mediaUrl) URL.revokeObjectURL(state.mediaUrl);
  state.mediaUrl = URL.createObjectURL(state.file);
  const isAudio = (state.file.type || "").startsWith("audio/") || result.modalities?.video?.reason?.includes("no video");
  const media = isAudio ? audio : video;
  const other = isAudio ? video : audio;
  other.pause();
  other.removeAttribute("src");
  other.hidden = true;
  media.src = state.mediaUrl;
  media.hidden = false;
  return media;
}

// Why there is no emotion, as the modalities say: "voice not used: no speech detected in ...; face not
// used: an audio-only file (no video stream)"
function unusedText(result) {
  const unused = Object.entries(result.modalities).filter(([, status]) => !status.used && status.reason);
  return unused.map(([m, status]) => `${SHORT_NAMES[m] ?? m} not used: ${status.reason}`).join("; ")
    || "no modality could be used";
}

// Why an answer is flagged: too little speech to trust the voice (the abstention's warning says so),
// else a top probability below the model's threshold
function uncertainWhy(result) {
  const short = (result.warnings ?? []).some((w) => w.startsWith("too little speech"));
  return short ? "too little speech to trust the voice" : "below the model's confidence threshold";
}

function showResult(result) {
  const section = $("result");
  section.hidden = false;
  section.dataset.emotion = result.emotion ?? "none";
  section.dataset.uncertain = result.uncertain ? "true" : "false";
  $("emotion-label").textContent = result.emotion ?? "no emotion";
  $("emotion-label").classList.toggle("none", result.emotion == null);  // not capitalised as an emotion is
  $("emotion-confidence").textContent = result.emotion == null
    ? `(${unusedText(result)})`
    : `(${percent(result.probabilities[result.emotion])} probability${result.uncertain ? `; uncertain: ${uncertainWhy(result)}` : ""})`;
  showBars(result);
  showLegend(result);
  showTable(result);
  showModalities(result);
  showTranscript(result);
  state.timeline = result.timeline;

  const media = showMedia(result);
  const nowText = $("now-text");
  const missing = missingText(result);
  const follow = (t) => {
    const w = state.chart.setTime(t);
    const words = w && w.text ? `, saying “${w.text}”` : "";
    nowText.textContent = w ? `At ${formatSeconds(t)}: ${windowText(w, missing)}${words}` : "";
  };
  state.chart = renderTimeline($("timeline-chart"), result, {
    onSeek: (t) => {
      follow(t);
      if (Number.isFinite(media.duration) || media.readyState > 0) media.currentTime = t;
    },
  });
  follow(0);
  let frame = null;
  const tick = () => {
    follow(media.currentTime);
    frame = media.paused ? null : requestAnimationFrame(tick);
  };
  media.onplay = () => {
    if (frame === null) frame = requestAnimationFrame(tick);
  };
  media.onseeked = () => follow(media.currentTime);
  media.ontimeupdate = () => {
    if (frame === null) follow(media.currentTime);
  };
  $("result-heading").focus();
}

// ---------------------------------------------------------------- wiring
$("file-input").addEventListener("change", (event) => {
  const file = event.target.files[0] ?? null;
  chooseFile(file, "File");
});
$("record-button").addEventListener("click", toggleRecording);
$("predict-form").addEventListener("submit", submit);
$("text-input").addEventListener("change", followTextBox);
loadLimits();
loadModel();
