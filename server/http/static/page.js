// pixline's page: upload, every recipe's output, the recipe playground, recent uploads.
// Plain JavaScript; every URL is relative to the page, so it works behind a front that sends
// the media and resizer roles' paths to different processes.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "pixline-upload-token";
// What a browser asks for images: the playground's format: auto recipes negotiate with it.
const BROWSER_ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";
const ID_RE = /^[0-9a-f]{32}$/;
// A placeholder comes from a plugin's analyser: only a plain colour is painted, never other CSS.
const COLOUR_RE = /^#[0-9a-fA-F]{6}$/;

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let waitingForToken = [];   // actions to run again once a token is given
let recipes = [];           // [{name, description, eager, ...}] from GET recipes
let current = null;         // GET images/<id> of the image shown
let galleryPages = [null];  // cursors of the gallery pages seen, the current one last
let playgroundRun = null;   // AbortController of the playground render in flight
let playgroundTimer = 0;
let presetsTimer = 0;     // the next look at the shown image's presets

class NeedsToken extends Error {}

// -- talking to the server -------------------------------------------------------------------
async function api(url, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", "Bearer " + token);
  const response = await fetch(url, { ...options, headers });
  if (response.status === 401 || response.status === 403) {
    askForToken(response.status === 403 && token ? "That token is not valid." : "This server needs its upload token.");
    throw new NeedsToken();
  }
  return response;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch (_) {
    return { detail: `${response.status} ${response.statusText}` };
  }
}

// Runs an action that talks to guarded routes; when the server asks for the token, it runs again
// once the token is given.
async function guarded(action) {
  try {
    await action();
  } catch (err) {
    if (err instanceof NeedsToken) waitingForToken.push(action);
    else throw err;
  }
}

function askForToken(message) {
  $("token-message").textContent = message;
  $("token-form").hidden = false;
  $("token-input").focus();
}

function useToken(event) {
  event.preventDefault();
  token = $("token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-form").hidden = true;
  const actions = waitingForToken;
  waitingForToken = [];
  actions.forEach((action) => guarded(action));
}

// -- formatting --------------------------------------------------------------------------------
function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(2)} MB`;
}

// "render;dur=231.5" → "rendered in 232 ms"; "store;dur=2.1" → "from the store in 2 ms"
function formatTiming(header) {
  const match = /^(render|store);dur=([\d.]+)/.exec(header || "");
  if (!match) return "";
  const ms = Math.round(parseFloat(match[2]));
  return match[1] === "render" ? `rendered in ${ms} ms` : `from the store in ${ms} ms`;
}

function formatOf(response) {
  return (response.headers.get("Content-Type") || "").replace(/^image\//, "").split(";")[0];
}

// A quality a quality: auto search chose, used only when it is a whole number from 1 to 100.
function checkedQuality(value) {
  const n = typeof value === "string" ? (/^\d{1,3}$/.test(value) ? Number(value) : NaN) : value;
  return Number.isInteger(n) && n >= 1 && n <= 100 ? n : null;
}

// "quality q72 (auto)": X-Pixline-Quality on a fresh render; else, for a stored output, the
// auto_quality GET images/<id> lists for that format (`outputs`: the recipe's outputs there).
function formatQuality(response, outputs = []) {
  let quality = checkedQuality(response.headers.get("X-Pixline-Quality"));
  if (quality === null) {
    const output = outputs.find((o) => o && o.format === formatOf(response));
    const chosen = output && output.auto_quality;
    quality = chosen && typeof chosen === "object" ? checkedQuality(chosen.quality) : null;
  }
  return quality === null ? "" : `quality q${quality} (auto)`;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function absolute(url) {
  return new URL(url, document.baseURI).href;
}

// -- upload ------------------------------------------------------------------------------------
async function upload(file) {
  const status = $("upload-status");
  status.className = "";
  status.textContent = `Uploading ${file.name} (${formatBytes(file.size)})…`;
  const owner = $("owner").value.trim();
  const query = owner ? `?owner=${encodeURIComponent(owner)}` : "";
  const response = await api(`images${query}`, {
    method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
  });
  if (!response.ok) {
    const problem = await problemOf(response);
    status.className = "bad";
    status.textContent = `${file.name}: ${problem.detail || problem.title}`;
    return;
  }
  const body = await response.json();
  status.textContent = `${file.name}: ${response.status === 201 ? "stored" : "already stored"} as ${body.id}`;
  await show(body.id);
  await guarded(() => loadGallery(null));
}

function setUpUpload() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) guarded(() => upload(file));
    event.target.value = "";
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) guarded(() => upload(file));
  });
}

// -- one image: every recipe's outputs ---------------------------------------------------------
async function show(imageId) {
  // With the token the answer has the upload's fields too; without one, what is public.
  const response = await fetch(`images/${imageId}`, { headers: token ? { Authorization: "Bearer " + token } : {} });
  if (!response.ok) {
    $("upload-status").textContent = (await problemOf(response)).detail;
    return;
  }
  current = await response.json();
  history.replaceState(null, "", `#${imageId}`);
  $("image").hidden = false;
  const fields = Object.entries(current.fields || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
  $("image-summary").textContent = `${current.id}${fields ? " · " + fields : ""}`;
  const grid = $("outputs");
  grid.replaceChildren(originalCard(current));
  for (const [name, derivative] of Object.entries(current.derivatives)) {
    for (const output of derivative.outputs) {
      const card = outputCard(name, derivative, output, current.urls[name]);
      grid.append(card);
      loadOutput(card, `r/${name}/${imageId}`, output.media_type, derivative.outputs);
    }
  }
  document.querySelectorAll(".tile").forEach((tile) => tile.classList.toggle("current", tile.dataset.id === imageId));
  showPresets(current);
  watchPresets(imageId, 500);
  schedulePlayground(0);
}

// Each eager recipe's state (pending, ready, failed with its reason) and the image's: the state
// that the image.ready and image.failed events tell, from GET images/<id>.
function showPresets(info) {
  for (const card of document.querySelectorAll("#outputs figure[data-recipe]")) {
    const badge = card.querySelector(".preset");
    const state = (info.derivatives[card.dataset.recipe] || {}).state;
    if (!badge || !state) continue;
    badge.dataset.preset = state;
    badge.textContent = state;
    badge.title = info.derivatives[card.dataset.recipe].reason || "";
  }
  const overall = $("image-presets");
  overall.dataset.preset = info.presets || "";
  overall.textContent = info.presets ? `presets ${info.presets}` : "";
}

// While any eager recipe is pending, look again: soon at first, then less and less often, for a
// few minutes (an image served in place gets its presets on first request, not from the queue).
function watchPresets(imageId, delay, looks = 0) {
  clearTimeout(presetsTimer);
  if (!current || current.id !== imageId || current.presets !== "pending" || looks >= 40) return;
  presetsTimer = setTimeout(async () => {
    const response = await fetch(`images/${imageId}`, { headers: token ? { Authorization: "Bearer " + token } : {} });
    if (!current || current.id !== imageId) return;
    if (response.ok) {
      const info = await response.json();
      current.presets = info.presets;
      current.derivatives = info.derivatives;
      showPresets(info);
    }
    watchPresets(imageId, Math.min(delay * 1.5, 10000), looks + 1);
  }, delay);
}

// No route serves the original itself: its frame shows the first output that keeps its shape.
function originalCard(meta) {
  const uploaded = meta.uploaded_at ? new Date(meta.uploaded_at).toLocaleString() : "";
  const img = element("img", { alt: "original (a smaller output)" });
  const preview = element("div", { class: "preview" }, img);
  img.addEventListener("load", () => drawFaces(preview, (meta.analysis || {}).faces), { once: true });
  return element("figure", { class: "output original", "data-state": "done" },
    element("div", { class: "frame" }, preview),
    element("figcaption", {},
      element("div", { class: "title" }, element("b", { text: "original" }), element("span", { class: "fmt", text: meta.format })),
      element("div", { class: "facts", text: `${meta.width} × ${meta.height} · ${formatBytes(meta.bytes)}` }),
      element("div", { class: "facts", text: uploaded ? `uploaded ${uploaded}` : "" })));
}

// The faces found at upload (pixline-faces: analysis.faces, [{x, y, width, height}] in fractions of
// the image) as outlined boxes over the preview, placed in percentages through the CSSOM (the CSP
// allows no style="" attribute). Nothing when there are none.
function drawFaces(preview, faces) {
  preview.querySelectorAll(".face-box").forEach((box) => box.remove());
  if (!Array.isArray(faces)) return;
  for (const face of faces.slice(0, 100)) {
    const box = faceBox(face);
    if (box) preview.append(box);
  }
}

function fraction(value) {
  return typeof value === "number" && Number.isFinite(value) ? Math.min(Math.max(value, 0), 1) : null;
}

function faceBox(face) {
  if (!face || typeof face !== "object") return null;
  const [x, y, width, height] = ["x", "y", "width", "height"].map((key) => fraction(face[key]));
  if ([x, y, width, height].includes(null) || !width || !height) return null;
  const box = element("div", { class: "face-box", "aria-hidden": "true" });
  box.style.left = `${x * 100}%`;
  box.style.top = `${y * 100}%`;
  box.style.width = `${Math.min(width, 1 - x) * 100}%`;   // inside the picture
  box.style.height = `${Math.min(height, 1 - y) * 100}%`;
  return box;
}

function outputCard(name, derivative, output, url) {
  const input = element("input", { readonly: "", value: absolute(url), "aria-label": `${name} URL` });
  const button = element("button", { type: "button", text: "Copy" });
  button.addEventListener("click", () => copy(input, button));
  const recipe = recipes.find((r) => r.name === name);
  const negotiated = derivative.outputs.length > 1;
  const preset = derivative.eager ? element("span", { class: "preset", "data-preset": "" }) : "";
  return element("figure", {
    class: "output", "data-recipe": name, "data-format": output.format, "data-state": "loading",
    title: recipe ? recipe.description : "",
  },
  element("div", { class: "frame" }, element("img", { alt: `${name} as ${output.format}` })),
  element("figcaption", {},
    element("div", { class: "title" }, element("b", { text: name }), element("span", { class: "fmt", text: output.format }),
      preset),
    element("div", { class: "facts", text: "loading…" }),
    negotiated ? element("div", { class: "hint", text: `format by Accept: ${output.media_type}` }) : "",
    element("div", { class: "copy" }, input, button)));
}

async function loadOutput(card, url, mediaType, outputs) {
  const facts = card.querySelector(".facts");
  try {
    const response = await fetch(url, { headers: { Accept: mediaType } });
    if (!response.ok) throw new Error((await problemOf(response)).detail);
    const blob = await response.blob();
    const timing = formatTiming(response.headers.get("Server-Timing"));
    const quality = formatQuality(response, outputs);
    const img = card.querySelector("img");
    img.onload = () => {
      showAsOriginal(img);
      card.querySelector(".fmt").textContent = formatOf(response);
      facts.replaceChildren(
        element("span", { class: "dims", text: `${img.naturalWidth} × ${img.naturalHeight}` }), " · ",
        element("span", { class: "bytes", text: formatBytes(blob.size) }),
        quality ? " · " : "", quality ? element("span", { class: "quality", text: quality }) : "",
        timing ? " · " : "", timing ? element("span", { class: "time", text: timing }) : "");
      card.dataset.state = "done";
    };
    img.onerror = () => {
      facts.textContent = `${formatBytes(blob.size)} of ${formatOf(response)}: this browser cannot show it`;
      card.dataset.state = "error";
    };
    img.src = URL.createObjectURL(blob);
  } catch (err) {
    facts.textContent = err.message;
    card.dataset.state = "error";
  }
}

function showAsOriginal(img) {
  const original = document.querySelector(".output.original img");
  const sameShape = Math.abs(img.naturalWidth / img.naturalHeight - current.width / current.height) < 0.01;
  if (original && !original.src && sameShape) original.src = img.src;
}

async function copy(input, button) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (_) {  // no clipboard API outside secure contexts: select and copy the old way
    input.select();
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 1200);
}

function firstRecipe() {
  const thumb = recipes.find((r) => r.name === "thumb");
  return thumb ? "thumb" : (recipes[0] || { name: "thumb" }).name;
}

// -- the recipe playground ---------------------------------------------------------------------
const LINE = 20;  // px: the editor's line height (page.css --code-line)
const PADDING = 8;

function drawGutter(badLine) {
  const count = $("pg-yaml").value.split("\n").length;
  const lines = [];
  for (let n = 1; n <= count; n++) lines.push(n === badLine ? `<span class="bad">${n}</span>` : `${n}`);
  $("pg-gutter").innerHTML = lines.join("\n");
  $("pg-gutter").scrollTop = $("pg-yaml").scrollTop;
}

function placeAtLine(node, line) {
  node.style.top = `${PADDING + (line - 1) * LINE - $("pg-yaml").scrollTop}px`;
}

function showPlaygroundError(problem) {
  const line = problem.line || 1;
  const error = $("pg-error");
  const detail = (problem.detail || problem.title || "").replace(/^playground(?: \(line \d+\))?: /, "");
  error.textContent = `line ${line}: ${detail}`;
  error.dataset.line = String(line);
  error.hidden = false;
  $("pg-mark").hidden = false;
  placeAtLine(error, line);
  placeAtLine($("pg-mark"), line);
  drawGutter(line);
  $("pg-output").dataset.state = "error";
  $("pg-info").textContent = problem.title || "error";
}

function clearPlaygroundError() {
  $("pg-error").hidden = true;
  delete $("pg-error").dataset.line;
  $("pg-mark").hidden = true;
  drawGutter(0);
}

function schedulePlayground(delay) {
  clearTimeout(playgroundTimer);
  playgroundTimer = setTimeout(() => guarded(renderPlayground), delay);
}

async function renderPlayground() {
  const text = $("pg-yaml").value;
  if (!current || !text.trim()) {
    $("pg-status").textContent = current ? "" : "upload or pick an image first";
    return;
  }
  if (playgroundRun) playgroundRun.abort();
  const run = new AbortController();
  playgroundRun = run;
  $("pg-status").textContent = "rendering…";
  const output = $("pg-output");
  output.dataset.state = "loading";
  let response;
  try {
    response = await api(`playground?image=${current.id}`, {
      method: "POST", body: text, signal: run.signal,
      headers: { "Content-Type": "application/yaml; charset=utf-8", Accept: BROWSER_ACCEPT },
    });
  } catch (err) {
    if (err.name === "AbortError") return;
    throw err;
  }
  if (run !== playgroundRun) return;
  $("pg-status").textContent = "";
  if (response.status === 429) {
    // An aborted fetch does not stop its render on the server, and a client has only a few at once
    // there: try again when the server says the earlier ones should be done.
    $("pg-status").textContent = "waiting for earlier renders…";
    schedulePlayground(1000 * (Number(response.headers.get("Retry-After")) || 2));
    return;
  }
  if (!response.ok) {
    showPlaygroundError(await problemOf(response));
    return;
  }
  clearPlaygroundError();
  const blob = await response.blob();
  const img = $("pg-img");
  const timing = formatTiming(response.headers.get("Server-Timing"));
  const quality = formatQuality(response);  // nothing is stored: only the header can say
  img.onload = () => {
    if (run !== playgroundRun) return;
    $("pg-info").textContent = [`${img.naturalWidth} × ${img.naturalHeight}`, formatOf(response),
      formatBytes(blob.size), quality, timing].filter(Boolean).join(" · ");
    output.dataset.state = "done";
  };
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
}

async function pickRecipe() {
  const name = $("pg-recipe").value;
  if (!name) {
    $("pg-yaml").value = "";
    clearPlaygroundError();
    $("pg-output").dataset.state = "empty";
    $("pg-info").textContent = "Write a recipe: a list of steps.";
    return;
  }
  const response = await fetch(`recipes/${encodeURIComponent(name)}`);
  $("pg-yaml").value = (await response.json()).source;
  clearPlaygroundError();
  schedulePlayground(0);
}

function setUpPlayground() {
  const editor = $("pg-yaml");
  $("pg-recipe").addEventListener("change", pickRecipe);
  $("pg-render").addEventListener("click", () => schedulePlayground(0));
  editor.addEventListener("input", () => {
    drawGutter(0);
    schedulePlayground(700);
  });
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      schedulePlayground(0);
    } else if (event.key === "Tab") {  // two spaces, as YAML wants, instead of leaving the editor
      event.preventDefault();
      editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
    }
  });
  editor.addEventListener("scroll", () => {
    $("pg-gutter").scrollTop = editor.scrollTop;
    const line = Number($("pg-error").dataset.line || 0);
    if (line) {
      placeAtLine($("pg-error"), line);
      placeAtLine($("pg-mark"), line);
    }
  });
  drawGutter(0);
}

// -- recent uploads ----------------------------------------------------------------------------
async function loadGallery(cursor) {
  const query = cursor ? `?after=${encodeURIComponent(cursor)}` : "";
  const response = await api(`images${query}`);
  if (!response.ok) return;
  const page = await response.json();
  if (cursor === null) galleryPages = [null];
  const grid = $("gallery-grid");
  grid.replaceChildren(...page.images.map((image) => {
    const tile = element("button", { type: "button", class: "tile", "data-id": image.id, title: image.id },
      galleryImage(image),
      element("span", { text: `${image.width} × ${image.height} ${image.format}` }),
      element("span", { text: new Date(image.uploaded_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) }));
    tile.classList.toggle("current", Boolean(current && current.id === image.id));
    tile.addEventListener("click", () => show(image.id));
    return tile;
  }));
  if (!page.images.length) grid.replaceChildren(element("p", { class: "empty", text: "No uploads yet." }));
  const older = $("older");
  older.disabled = !page.next;
  older.onclick = () => {
    galleryPages.push(page.next);
    guarded(() => loadGallery(page.next));
  };
  $("newer").disabled = galleryPages.length <= 1;
}

// A tile's picture: painted with the image's dominant colour (its "colour" placeholder, made at
// upload) until its output loads, so a page of pending presets is not a page of grey squares.
function galleryImage(image) {
  const img = element("img", { alt: image.id, loading: "lazy" });
  const colour = (image.placeholders || {}).colour;
  if (typeof colour === "string" && COLOUR_RE.test(colour)) {
    img.dataset.placeholder = colour;
    img.style.backgroundColor = colour;  // the CSSOM, which the page's CSP allows (a style="" would not)
    img.addEventListener("load", () => img.style.removeProperty("background-color"), { once: true });
  }
  img.src = `r/${firstRecipe()}/${image.id}`;  // after the listener: a cached output may load at once
  return img;
}

function setUpGallery() {
  $("newer").addEventListener("click", () => {
    galleryPages.pop();
    const cursor = galleryPages[galleryPages.length - 1];
    guarded(() => loadGallery(cursor));
  });
}

// -- start -------------------------------------------------------------------------------------
async function start() {
  $("token-form").addEventListener("submit", useToken);
  setUpUpload();
  setUpPlayground();
  setUpGallery();
  const response = await fetch("recipes");
  if (response.ok) recipes = (await response.json()).recipes;
  for (const recipe of recipes) $("pg-recipe").append(element("option", { value: recipe.name, text: recipe.name }));
  const wanted = location.hash.slice(1);
  if (ID_RE.test(wanted)) await show(wanted);
  await guarded(() => loadGallery(null));
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
