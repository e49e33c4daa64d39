// The supervisor map page: login, grid boundaries, incidents by status, filters, details.
//
// Runs under a strict Content-Security-Policy: no inline script or style, no eval. Tokens live
// in sessionStorage (never a cookie) and go out only to this page's own origin.
//
// Data source (chosen by the server, handed over as <body data-source>):
//   tiles   - vector tiles /tiles/{grids|microgrids|incidents}/{z}/{x}/{y}.mvt, the
//             Authorization header added by MapLibre's transformRequest; filters are applied
//             on the client (layer filters).
//   geojson - /api/v1/areas?level=grid&bbox=…&format=geojson and
//             /api/v1/incidents?format=geojson&bbox=…&status=…, reloaded when the view moves
//             or a filter changes; filters are applied by the API.
//
// window.gridgovMap is a small status object for tests and for debugging in the console.

import * as maplibregl from "./vendor/maplibre-gl/maplibre-gl.mjs";

const body = document.body;
const CONFIG = {
  source: body.dataset.source === "tiles" ? "tiles" : "geojson",
  basemapStyle: body.dataset.basemapStyle || "",
  tilesUrl: body.dataset.tilesUrl || "/tiles/{layer}/{z}/{x}/{y}.mvt",
  api: body.dataset.api || "/api/v1",
  // The area levels, root first (geo/levels.py): name, label, code_length, tile_layer…
  levels: JSON.parse(body.dataset.levels),
};
const ORIGIN = window.location.origin;
const STORAGE_KEY = "gridgov.map.auth";
const PAGE_LIMIT = 500;
const MAX_PAGES = 20;
const MICROGRID_MIN_ZOOM = 14;
const TILE_MAX_ZOOM = 16;

// Every status of the closed loop (GB/T 30428), in the order of the loop.
const STATUSES = [
  // Red is kept for "overdue" (a ring around the dot), so no status is red.
  { code: "reported", label: "待受理", color: "#f76707", open: true },
  { code: "accepted", label: "已受理", color: "#fab005", open: true },
  { code: "dispatched", label: "已派遣", color: "#1c7ed6", open: true },
  { code: "in_progress", label: "处置中", color: "#7048e8", open: true },
  { code: "resolved", label: "已处置待核查", color: "#12b886", open: true },
  { code: "verified", label: "已核查待结案", color: "#37b24d", open: true },
  { code: "returned", label: "退回返工", color: "#e64980", open: true },
  { code: "closed", label: "已结案", color: "#868e96", open: false },
  { code: "rejected", label: "不予受理", color: "#495057", open: false },
  { code: "duplicate", label: "重复件", color: "#ced4da", open: false },
];
const STATUS_BY_CODE = Object.fromEntries(STATUSES.map((s) => [s.code, s]));
const OPEN_STATUSES = STATUSES.filter((s) => s.open).map((s) => s.code);
const ACTION_LABELS = {
  report: "上报",
  accept: "受理",
  reject: "不予受理",
  duplicate: "标记重复",
  dispatch: "派遣",
  reassign: "改派",
  start: "开始处置",
  resolve: "处置完成",
  verify: "核查通过",
  return: "退回返工",
  close: "结案",
  escalate: "上报升级",
  comment: "备注",
  reroute: "重新分派网格",
};
const PRIORITY_LABELS = { urgent: "紧急", high: "高", normal: "一般", low: "低" };
const LEVEL_LABELS = Object.fromEntries(CONFIG.levels.map((l) => [l.name, l.label]));
const ROOT_LEVEL = CONFIG.levels[0].name;
// The levels an incident's routing names in its details, finest first (the root is implied).
const ROUTED_LEVELS = CONFIG.levels.slice(1).reverse();
// The level drawn by each outline layer ("grids", "microgrids"), for the GeoJSON source.
const LAYER_LEVEL = Object.fromEntries(
  CONFIG.levels.filter((l) => l.tile_layer).map((l) => [l.tile_layer, l.name]),
);
const ROLE_LABELS = { supervisor: "监督员", admin: "管理员", worker: "网格员" };
const EMPTY = { type: "FeatureCollection", features: [] };

// ---------------------------------------------------------------- status object for tests

const state = {
  source: CONFIG.source,
  ready: false,
  map: null,
  maplibreVersion: maplibregl.getVersion(),
  user: null,
  counts: { grids: 0, microgrids: 0, incidents: 0, overdue: 0, clusters: 0 },
  byStatus: {},
  renderedIncidentIds: [],
  categories: [],
  categorySource: null, // "api" (GET /categories) or "derived" (from loaded incidents)
  filters: { statuses: [...OPEN_STATUSES], category: "", overdueOnly: false },
  pending: 0,
  loads: 0,
  idles: 0,
  selected: null,
  errors: [],
};
window.gridgovMap = state;

function recordError(message) {
  state.errors.push(String(message));
  setStatus(String(message), true);
}

document.addEventListener("securitypolicyviolation", (event) => {
  recordError(`CSP blocked ${event.blockedURI || "inline"} (${event.violatedDirective})`);
});
window.addEventListener("error", (event) => recordError(event.message));
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason && event.reason.name === "AbortError") return;
  recordError(event.reason && event.reason.message ? event.reason.message : event.reason);
});

// ---------------------------------------------------------------- small DOM helpers

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setStatus(text, isError = false) {
  const line = $("status-line");
  line.textContent = text;
  line.classList.toggle("is-error", isError);
}

const timeFormat = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  hour12: false,
});

function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : timeFormat.format(date);
}

function statusLabel(code) {
  return STATUS_BY_CODE[code] ? STATUS_BY_CODE[code].label : code || "—";
}

// ---------------------------------------------------------------- auth: tokens in sessionStorage

const auth = {
  load() {
    try {
      return JSON.parse(sessionStorage.getItem(STORAGE_KEY)) || null;
    } catch {
      return null;
    }
  },
  save(data) {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(data));
  },
  clear() {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};
let refreshing = null;

function tokenFresh(session) {
  // Renew a little before the server would refuse the token.
  return session && session.access && Date.now() < session.expiresAt - 30000;
}

async function refreshAccess() {
  if (!refreshing) {
    refreshing = (async () => {
      const session = auth.load();
      if (!session || !session.refresh) throw new Error("not logged in");
      const response = await fetch(`${CONFIG.api}/auth/refresh`, {
        method: "POST",
        headers: { Authorization: `Bearer ${session.refresh}`, Accept: "application/json" },
        credentials: "omit",
      });
      if (!response.ok) {
        auth.clear();
        throw new Error("session expired");
      }
      const data = await response.json();
      auth.save({
        ...session,
        access: data.access_token,
        refresh: data.refresh_token || session.refresh,
        expiresAt: Date.now() + data.expires_in * 1000,
      });
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function accessToken() {
  let session = auth.load();
  if (!tokenFresh(session)) {
    await refreshAccess();
    session = auth.load();
  }
  return session.access;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// Fetch from our own API with the access token; one refresh-and-retry on 401.
async function api(path, { signal, allow404 = false } = {}) {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    let token;
    try {
      token = await accessToken();
    } catch {
      sessionEnded();
      throw new ApiError(401, { message: "登录已过期" });
    }
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      credentials: "omit",
      signal,
    });
    if (response.status === 401 && attempt === 0) {
      await refreshAccess().catch(() => {});
      continue;
    }
    if (response.status === 404 && allow404) return null;
    // A load superseded while its body streams in rejects here with AbortError: pass that on
    // (the caller ignores it), never as a null body that looks like a success.
    const data = await response.json().catch((err) => {
      if (err.name === "AbortError") throw err;
      return null;
    });
    if (!response.ok) {
      if (response.status === 401) sessionEnded();
      throw new ApiError(response.status, data);
    }
    return data;
  }
  throw new ApiError(401, null);
}

function sessionEnded() {
  auth.clear();
  if (state.map) window.location.replace(window.location.pathname + window.location.search);
  else showLogin("登录已过期，请重新登录。");
}

// ---------------------------------------------------------------- login

function showLogin(message) {
  $("workspace").hidden = true;
  $("userbox").hidden = true;
  $("login-screen").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("login-username").focus();
}

async function login(event) {
  event.preventDefault();
  const button = $("login-submit");
  const error = $("login-error");
  button.disabled = true;
  error.hidden = true;
  try {
    const response = await fetch(`${CONFIG.api}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "omit",
      body: JSON.stringify({
        username: $("login-username").value.trim(),
        password: $("login-password").value,
      }),
    });
    // A load superseded while its body streams in rejects here with AbortError: pass that on
    // (the caller ignores it), never as a null body that looks like a success.
    const data = await response.json().catch((err) => {
      if (err.name === "AbortError") throw err;
      return null;
    });
    if (!response.ok) {
      error.textContent =
        response.status === 401
          ? "用户名或密码不正确。"
          : `登录失败（${(data && data.message) || response.status}）。`;
      error.hidden = false;
      return;
    }
    auth.save({
      access: data.access_token,
      refresh: data.refresh_token,
      expiresAt: Date.now() + data.expires_in * 1000,
      user: data.user,
    });
    $("login-password").value = "";
    await startWorkspace(data.user);
  } catch (err) {
    error.textContent = `登录失败：${err.message}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function logout() {
  auth.clear();
  window.location.replace(window.location.pathname + window.location.search);
}

// ---------------------------------------------------------------- where to look first

function extendBounds(bounds, coordinates) {
  if (typeof coordinates[0] === "number") {
    bounds[0] = Math.min(bounds[0], coordinates[0]);
    bounds[1] = Math.min(bounds[1], coordinates[1]);
    bounds[2] = Math.max(bounds[2], coordinates[0]);
    bounds[3] = Math.max(bounds[3], coordinates[1]);
  } else {
    for (const part of coordinates) extendBounds(bounds, part);
  }
  return bounds;
}

// The caller's own areas (their outline is drawn) and the bounds that frame them.
async function jurisdiction(user) {
  const bounds = [Infinity, Infinity, -Infinity, -Infinity];
  const codes = (user.areas || []).slice(0, 10);
  const features = [];
  if (codes.length) {
    for (const code of codes) {
      const feature = await api(`${CONFIG.api}/areas/${encodeURIComponent(code)}?format=geojson`, {
        allow404: true,
      });
      if (feature) features.push(feature);
    }
  } else {
    const districts = await api(`${CONFIG.api}/areas?level=${ROOT_LEVEL}&format=geojson&limit=5`);
    features.push(...districts.features);
  }
  for (const feature of features) {
    if (feature.geometry) extendBounds(bounds, feature.geometry.coordinates);
  }
  return {
    bounds: Number.isFinite(bounds[0]) ? bounds : null,
    areas: { type: "FeatureCollection", features },
  };
}

// ---------------------------------------------------------------- the map

function baseStyle() {
  if (CONFIG.basemapStyle) return CONFIG.basemapStyle;
  return {
    version: 8,
    sources: {},
    layers: [{ id: "background", type: "background", paint: { "background-color": "#eef2f6" } }],
  };
}

function tileSource(layer, minzoom = 0) {
  const url = new URL(CONFIG.tilesUrl.replace("{layer}", layer), ORIGIN).href
    .replace("%7Bz%7D", "{z}")
    .replace("%7Bx%7D", "{x}")
    .replace("%7By%7D", "{y}");
  return { type: "vector", tiles: [url], minzoom, maxzoom: TILE_MAX_ZOOM };
}

// The Authorization header goes to our own origin only: never to a basemap's host.
async function transformRequest(url) {
  if (!url.startsWith(`${ORIGIN}/`)) return { url };
  const token = await accessToken();
  return { url, headers: { Authorization: `Bearer ${token}` } };
}

const statusColor = ["match", ["get", "status"]];
for (const s of STATUSES) statusColor.push(s.code, s.color);
statusColor.push("#868e96");
const isOverdue = ["==", ["get", "overdue"], true];
const isCluster = ["has", "count"];
const OVERDUE_RED = "#e03131";
const dotRadius = ["interpolate", ["linear"], ["zoom"], 10, 5, 14, 7, 17, 10];
const ringRadius = ["interpolate", ["linear"], ["zoom"], 10, 9, 14, 11, 17, 14];

function addDataLayers(map, scope) {
  const tiles = CONFIG.source === "tiles";
  map.addSource("scope", { type: "geojson", data: scope });
  if (tiles) {
    map.addSource("grids", tileSource("grids"));
    map.addSource("microgrids", tileSource("microgrids", MICROGRID_MIN_ZOOM));
    map.addSource("incidents", tileSource("incidents"));
  } else {
    map.addSource("grids", { type: "geojson", data: EMPTY });
    map.addSource("microgrids", { type: "geojson", data: EMPTY });
    map.addSource("incidents", { type: "geojson", data: EMPTY });
  }
  const from = (source) => (tiles ? { source, "source-layer": source } : { source });

  map.addLayer({
    id: "grids-fill",
    type: "fill",
    ...from("grids"),
    paint: { "fill-color": "#1971c2", "fill-opacity": 0.05 },
  });
  map.addLayer({
    id: "microgrids-line",
    type: "line",
    ...from("microgrids"),
    minzoom: MICROGRID_MIN_ZOOM,
    paint: { "line-color": "#4dabf7", "line-width": 0.8, "line-dasharray": [3, 2] },
  });
  map.addLayer({
    id: "grids-line",
    type: "line",
    ...from("grids"),
    paint: {
      "line-color": "#1971c2",
      "line-width": ["interpolate", ["linear"], ["zoom"], 10, 0.8, 15, 2.2],
    },
  });
  map.addLayer({
    id: "scope-line",
    type: "line",
    source: "scope",
    paint: { "line-color": "#0b2e59", "line-width": 3.5, "line-opacity": 0.85 },
  });
  map.addLayer({
    id: "incident-clusters",
    type: "circle",
    ...from("incidents"),
    filter: isCluster,
    paint: {
      "circle-color": "rgba(24, 100, 171, 0.55)",
      "circle-radius": ["interpolate", ["linear"], ["get", "count"], 1, 9, 10, 14, 100, 22, 1000, 30],
      "circle-stroke-color": [
        "case",
        [">", ["coalesce", ["get", "overdue_count"], 0], 0],
        OVERDUE_RED,
        "#ffffff",
      ],
      "circle-stroke-width": 2.5,
    },
  });
  // Overdue: a soft red disc with a red ring around the status-coloured dot.
  map.addLayer({
    id: "incidents-overdue-halo",
    type: "circle",
    ...from("incidents"),
    filter: ["all", ["!", isCluster], isOverdue],
    paint: {
      "circle-color": OVERDUE_RED,
      "circle-opacity": 0.15,
      "circle-radius": ringRadius,
      "circle-stroke-color": OVERDUE_RED,
      "circle-stroke-width": 2.5,
    },
  });
  map.addLayer({
    id: "incidents",
    type: "circle",
    ...from("incidents"),
    filter: ["!", isCluster],
    paint: {
      "circle-color": statusColor,
      "circle-radius": dotRadius,
      "circle-stroke-color": "#ffffff",
      "circle-stroke-width": 1.5,
    },
  });
  map.addLayer({
    id: "incidents-selected",
    type: "circle",
    ...from("incidents"),
    filter: ["==", ["get", "id"], -1],
    paint: {
      "circle-color": "rgba(0, 0, 0, 0)",
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 10, 12, 14, 14, 17, 17],
      "circle-stroke-color": "#102a43",
      "circle-stroke-width": 2.5,
    },
  });
}

// Client-side filters (all that the tiles need; for GeoJSON the API filtered already).
function applyLayerFilters() {
  const map = state.map;
  if (!map || !map.getLayer("incidents")) return;
  const { statuses, category, overdueOnly } = state.filters;
  const conditions = ["all", ["!", isCluster], ["in", ["get", "status"], ["literal", statuses]]];
  if (category) conditions.push(["==", ["get", "category"], category]);
  if (overdueOnly) conditions.push(isOverdue);
  map.setFilter("incidents", conditions);
  map.setFilter("incidents-overdue-halo", [...conditions, isOverdue]);
}

function updateCounts() {
  const map = state.map;
  const uniq = (features, key) => new Set(features.map((f) => f.properties[key])).size;
  const grids = map.queryRenderedFeatures({ layers: ["grids-line"] });
  const microgrids = map.queryRenderedFeatures({ layers: ["microgrids-line"] });
  const incidents = map.queryRenderedFeatures({ layers: ["incidents"] });
  const clusters = map.queryRenderedFeatures({ layers: ["incident-clusters"] });
  const byId = new Map();
  for (const feature of incidents) byId.set(feature.properties.id, feature.properties);
  const byStatus = {};
  let overdue = 0;
  for (const props of byId.values()) {
    byStatus[props.status] = (byStatus[props.status] || 0) + 1;
    if (props.overdue === true) overdue += 1;
  }
  state.counts = {
    grids: uniq(grids, "code"),
    microgrids: uniq(microgrids, "code"),
    incidents: byId.size,
    overdue,
    clusters: clusters.length,
  };
  state.byStatus = byStatus;
  state.renderedIncidentIds = [...byId.keys()].sort((a, b) => a - b);
  for (const s of STATUSES) {
    const count = document.querySelector(`[data-status-count="${s.code}"]`);
    if (count) count.textContent = byStatus[s.code] ? String(byStatus[s.code]) : "";
  }
  if (CONFIG.source === "tiles") deriveCategoriesFromTiles();
  if (!state.errors.length) {
    const c = state.counts;
    const clustered = c.clusters ? ` · ${c.clusters} 个聚合点` : "";
    setStatus(
      `视图内：${c.grids} 个网格 · ${c.incidents} 起事件（${c.overdue} 起超期）${clustered}`,
    );
  }
}

// ---------------------------------------------------------------- GeoJSON loading

let loadController = null;
let loadTimer = null;

function viewBbox(map) {
  const b = map.getBounds();
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  return [
    clamp(b.getWest(), -180, 180),
    clamp(b.getSouth(), -90, 90),
    clamp(b.getEast(), -180, 180),
    clamp(b.getNorth(), -90, 90),
  ]
    .map((v) => v.toFixed(6))
    .join(",");
}

async function fetchAllPages(url, signal) {
  const features = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const pageUrl = cursor ? `${url}&cursor=${encodeURIComponent(cursor)}` : url;
    const collection = await api(pageUrl, { signal });
    features.push(...collection.features);
    cursor = collection.next_cursor;
    if (!cursor) break;
  }
  return { type: "FeatureCollection", features };
}

function incidentsUrl(bbox) {
  const { statuses, category, overdueOnly } = state.filters;
  const params = new URLSearchParams({ format: "geojson", limit: String(PAGE_LIMIT), bbox });
  params.set("status", statuses.join(","));
  if (category) params.set("category", category);
  if (overdueOnly) params.set("overdue", "true");
  return `${CONFIG.api}/incidents?${params}`;
}

function areasUrl(level, bbox) {
  const params = new URLSearchParams({ level, bbox, format: "geojson", limit: String(PAGE_LIMIT) });
  return `${CONFIG.api}/areas?${params}`;
}

async function loadGeojson() {
  const map = state.map;
  if (loadController) loadController.abort();
  const controller = new AbortController();
  loadController = controller;
  const bbox = viewBbox(map);
  const wantMicrogrids = map.getZoom() >= MICROGRID_MIN_ZOOM;
  state.pending += 1;
  setStatus("正在加载…");
  try {
    const [grids, microgrids, incidents] = await Promise.all([
      fetchAllPages(areasUrl(LAYER_LEVEL.grids, bbox), controller.signal),
      wantMicrogrids
        ? fetchAllPages(areasUrl(LAYER_LEVEL.microgrids, bbox), controller.signal)
        : Promise.resolve(EMPTY),
      state.filters.statuses.length
        ? fetchAllPages(incidentsUrl(bbox), controller.signal)
        : Promise.resolve(EMPTY),
    ]);
    if (controller.signal.aborted) return;
    map.getSource("grids").setData(grids);
    map.getSource("microgrids").setData(microgrids);
    map.getSource("incidents").setData(incidents);
    deriveCategoriesFrom(incidents.features.map((f) => f.properties));
    state.loads += 1;
  } catch (err) {
    if (err.name !== "AbortError") recordError(`加载失败：${err.message}`);
  } finally {
    state.pending -= 1;
  }
}

function scheduleLoad(delay = 250) {
  if (CONFIG.source !== "geojson") return;
  clearTimeout(loadTimer);
  loadTimer = setTimeout(loadGeojson, delay);
}

// ---------------------------------------------------------------- filters and categories

function renderStatusLegend() {
  const list = $("status-legend");
  list.replaceChildren();
  for (const s of STATUSES) {
    const checkbox = el("input", { type: "checkbox", value: s.code, dataset: { status: s.code } });
    checkbox.checked = state.filters.statuses.includes(s.code);
    checkbox.addEventListener("change", onStatusChange);
    const swatch = el("span", { className: "swatch", "aria-hidden": "true" });
    swatch.style.background = s.color;
    list.append(
      el(
        "li",
        {},
        el(
          "label",
          {},
          checkbox,
          swatch,
          el("span", { text: s.label }),
          el("span", { className: "count", dataset: { statusCount: s.code } }),
        ),
      ),
    );
  }
}

function onStatusChange() {
  const checked = [...document.querySelectorAll("#status-legend input:checked")];
  setStatuses(checked.map((input) => input.value));
}

function setStatuses(statuses) {
  state.filters.statuses = STATUSES.map((s) => s.code).filter((c) => statuses.includes(c));
  for (const input of document.querySelectorAll("#status-legend input")) {
    input.checked = state.filters.statuses.includes(input.value);
  }
  filtersChanged();
}

function filtersChanged() {
  applyLayerFilters();
  scheduleLoad(0);
}

const knownCategories = new Map(); // code -> name

function renderCategories() {
  const select = $("filter-category");
  const current = state.filters.category;
  const options = [el("option", { value: "", text: "全部类别" })];
  const sorted = [...knownCategories.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  for (const [code, name] of sorted) {
    options.push(el("option", { value: code, text: name && name !== code ? name : code }));
  }
  select.replaceChildren(...options);
  select.value = knownCategories.has(current) ? current : "";
  state.categories = sorted.map(([code, name]) => ({ code, name }));
}

function deriveCategoriesFrom(items) {
  if (state.categorySource !== "derived") return;
  let added = false;
  for (const props of items) {
    if (!props.category) continue;
    const name = props.category_name || knownCategories.get(props.category) || props.category;
    if (knownCategories.get(props.category) !== name) {
      knownCategories.set(props.category, name);
      added = true;
    }
  }
  if (added) renderCategories();
}

function deriveCategoriesFromTiles() {
  if (state.categorySource !== "derived" || !state.map.getSource("incidents")) return;
  const features = state.map.querySourceFeatures("incidents", { sourceLayer: "incidents" });
  deriveCategoriesFrom(features.map((f) => f.properties));
}

async function loadCategories() {
  try {
    const data = await api(`${CONFIG.api}/categories`, { allow404: true });
    if (data && Array.isArray(data.items)) {
      for (const item of data.items) knownCategories.set(item.code, item.name);
      state.categorySource = "api";
      $("category-note").textContent = "";
      renderCategories();
      return;
    }
  } catch (err) {
    if (err.status === 401) return;
  }
  // No category endpoint (yet): list the categories of the incidents seen on the map.
  state.categorySource = "derived";
  $("category-note").textContent = "类别取自已加载的事件。";
  renderCategories();
}

function wireFilters() {
  renderStatusLegend();
  $("filter-category").addEventListener("change", (event) => {
    state.filters.category = event.target.value;
    filtersChanged();
  });
  $("filter-overdue").addEventListener("change", (event) => {
    state.filters.overdueOnly = event.target.checked;
    filtersChanged();
  });
  $("status-open").addEventListener("click", () => setStatuses(OPEN_STATUSES));
  $("status-all").addEventListener("click", () => setStatuses(STATUSES.map((s) => s.code)));
}

// ---------------------------------------------------------------- details panel

function fact(term, value, className) {
  return [el("dt", { text: term }), el("dd", { className }, value ?? "—")];
}

function areaText(area) {
  return area ? `${area.name}（${area.code}）` : "—";
}

function renderDetails(incident) {
  const status = STATUS_BY_CODE[incident.status];
  const badge = el("span", {
    className: "badge",
    id: "detail-status",
    dataset: { status: incident.status },
    text: statusLabel(incident.status),
  });
  badge.style.background = status ? status.color : "#868e96";
  const routing = incident.routing || {};
  const location = incident.location || {};
  $("details-title").textContent = incident.ref || `事件 ${incident.id}`;
  const content = el(
    "div",
    { id: "detail", dataset: { incidentId: String(incident.id), status: incident.status } },
    el(
      "div",
      { className: "badges" },
      badge,
      incident.overdue ? el("span", { className: "badge badge-overdue", text: "⚠ 已超期" }) : null,
      el("span", {
        className: "badge badge-priority",
        text: `优先级：${PRIORITY_LABELS[incident.priority] || incident.priority}`,
      }),
    ),
    el("p", { className: "description", text: incident.description }),
    el(
      "dl",
      { className: "facts" },
      ...fact("编号", el("span", { id: "detail-id", text: String(incident.id) })),
      ...fact("类别", incident.category ? incident.category.name : "—"),
      ...fact("状态", `${statusLabel(incident.status)}（${incident.status}）`),
      ...fact("上报时间", formatTime(incident.reported_at)),
      ...fact(
        "当前时限",
        formatTime(incident.deadline) + (incident.overdue ? "（已超期）" : ""),
        incident.overdue ? "is-overdue" : undefined,
      ),
      ...fact("办理层级", LEVEL_LABELS[incident.handling_level] || incident.handling_level),
      ...fact("处置单位", incident.handling_unit || "—"),
      ...ROUTED_LEVELS.flatMap((level) => fact(level.label, areaText(routing[level.name]))),
      ...fact(
        "位置",
        location.lon !== undefined ? `${location.lon.toFixed(6)}, ${location.lat.toFixed(6)}` : "—",
      ),
      ...(incident.rework_count ? fact("返工次数", String(incident.rework_count)) : []),
      ...(incident.escalation_count ? fact("升级次数", String(incident.escalation_count)) : []),
    ),
  );
  $("details-body").replaceChildren(content);
}

function renderTimeline(items) {
  const list = $("timeline");
  if (!items.length) {
    list.replaceChildren(el("li", { className: "tl-empty", text: "暂无记录" }));
    return;
  }
  list.replaceChildren(
    ...items.map((entry) => {
      const change =
        entry.to_status && entry.to_status !== entry.from_status
          ? `${entry.from_status ? `${statusLabel(entry.from_status)} → ` : ""}${statusLabel(entry.to_status)}`
          : null;
      const meta = [entry.actor ? `经办：${entry.actor}` : "系统", change].filter(Boolean);
      return el(
        "li",
        { dataset: { action: entry.action, eventId: String(entry.id) } },
        el(
          "div",
          { className: "tl-head" },
          el("span", { className: "tl-action", text: ACTION_LABELS[entry.action] || entry.action }),
          el("span", { className: "tl-time", text: formatTime(entry.at) }),
        ),
        el("div", { className: "tl-meta", text: meta.join(" · ") }),
        entry.note ? el("div", { className: "tl-note", text: entry.note }) : null,
      );
    }),
  );
}

let detailsRequest = 0;

async function showIncident(id) {
  const request = ++detailsRequest;
  state.selected = { id, status: null, timeline: null, loading: true };
  state.map.setFilter("incidents-selected", ["==", ["get", "id"], id]);
  $("details").hidden = false;
  $("details-title").textContent = `事件 ${id}`;
  $("details-body").replaceChildren(el("p", { className: "loading", text: "正在加载…" }));
  $("timeline").replaceChildren();
  state.map.resize();
  try {
    const [incident, timeline] = await Promise.all([
      api(`${CONFIG.api}/incidents/${id}`),
      api(`${CONFIG.api}/incidents/${id}/timeline`),
    ]);
    if (request !== detailsRequest) return;
    renderDetails(incident);
    renderTimeline(timeline.items);
    state.selected = { id, status: incident.status, timeline: timeline.items.length, loading: false };
  } catch (err) {
    if (request !== detailsRequest) return;
    const message = err.status === 404 ? "该事件不存在或不在您的管辖范围内。" : `加载失败：${err.message}`;
    $("details-body").replaceChildren(el("p", { className: "error", text: message }));
    state.selected = { id, status: null, timeline: null, loading: false, error: message };
  }
}

function closeDetails() {
  detailsRequest += 1;
  state.selected = null;
  $("details").hidden = true;
  if (state.map) {
    state.map.setFilter("incidents-selected", ["==", ["get", "id"], -1]);
    state.map.resize();
  }
}

// ---------------------------------------------------------------- hover: what is under the mouse

function wireTooltip(map) {
  const tooltip = new maplibregl.Popup({
    closeButton: false,
    closeOnClick: false,
    className: "map-tooltip",
    offset: 14,
    maxWidth: "280px",
  });
  map.on("mousemove", (event) => {
    const layers = ["incidents", "incident-clusters", "grids-fill"].filter((l) => map.getLayer(l));
    const [feature] = map.queryRenderedFeatures(event.point, { layers });
    if (!feature) {
      tooltip.remove();
      return;
    }
    const p = feature.properties;
    let text;
    if (feature.layer.id === "incidents") {
      const category = knownCategories.get(p.category) || p.category_name || p.category;
      text = `${category} · ${statusLabel(p.status)}${p.overdue === true ? " · 已超期" : ""}`;
    } else if (feature.layer.id === "incident-clusters") {
      text = `${p.count} 起事件${p.overdue_count ? `，${p.overdue_count} 起超期` : ""}（点击放大）`;
    } else {
      text = p.name ? `${p.name}（${p.code}）` : p.code;
    }
    tooltip.setLngLat(event.lngLat).setText(text).addTo(map);
  });
  map.getCanvas().addEventListener("mouseleave", () => tooltip.remove());
}

// ---------------------------------------------------------------- start

async function startWorkspace(user) {
  state.user = user;
  $("login-screen").hidden = true;
  $("workspace").hidden = false;
  $("userbox").hidden = false;
  $("user-name").textContent = user.display_name || user.username;
  $("user-role").textContent = ROLE_LABELS[user.role] || user.role;
  $("source-note").textContent =
    CONFIG.source === "tiles" ? "数据来源：矢量瓦片（/tiles）" : "数据来源：GeoJSON 接口";
  setStatus("正在加载…");

  const [{ bounds, areas }] = await Promise.all([jurisdiction(user), loadCategories()]);
  const map = new maplibregl.Map({
    container: "map",
    style: baseStyle(),
    ...(bounds
      ? { bounds, fitBoundsOptions: { padding: 40 } }
      : { center: [121.55, 29.87], zoom: 11 }),
    transformRequest,
    attributionControl: { compact: true },
    dragRotate: false,
    pitchWithRotate: false,
  });
  state.map = map;
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");

  map.on("load", () => {
    addDataLayers(map, areas);
    applyLayerFilters();
    map.on("click", "incidents", (event) => {
      const feature = event.features && event.features[0];
      if (feature) showIncident(Number(feature.properties.id));
    });
    map.on("click", "incident-clusters", (event) => {
      map.easeTo({ center: event.lngLat, zoom: Math.min(map.getZoom() + 2, 18) });
    });
    for (const layer of ["incidents", "incident-clusters"]) {
      map.on("mouseenter", layer, () => {
        map.getCanvas().style.cursor = "pointer";
      });
      map.on("mouseleave", layer, () => {
        map.getCanvas().style.cursor = "";
      });
    }
    wireTooltip(map);
    map.on("moveend", () => scheduleLoad());
    map.on("idle", () => {
      state.idles += 1;
      updateCounts();
    });
    scheduleLoad(0);
    state.ready = true;
  });
  map.on("error", (event) => {
    const error = event.error || {};
    if (error.name === "AbortError") return;
    recordError(`地图错误：${error.message || error.status || "未知"}`);
  });
}

async function boot() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("details-close").addEventListener("click", closeDetails);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("details").hidden) closeDetails();
  });
  wireFilters();
  const session = auth.load();
  if (!session || !session.refresh) {
    showLogin();
    return;
  }
  try {
    const me = await api(`${CONFIG.api}/me`);
    auth.save({ ...auth.load(), user: me });
    await startWorkspace(me);
  } catch {
    showLogin();
  }
}

boot();
