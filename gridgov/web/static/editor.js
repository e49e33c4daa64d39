// The boundary editor (/admin/boundaries): pick areas on the map, split / merge / move an edge /
// redraw, draw with terra-draw, preview (dry run) with the problems drawn where they are and the
// impact listed, apply after a confirmation naming the counts, browse the history and revert.
//
// Everything goes through the editing API (/api/v1/boundaries/edits/…, /changes…): the page
// holds no rule of its own. Same CSP as /map (no inline script or style); terra-draw's UMD
// builds are loaded before this module (globals terraDraw, terraDrawMaplibreGlAdapter).
//
// window.gridgovEditor is a small status object for tests and for debugging in the console.

import * as maplibregl from "./vendor/maplibre-gl/maplibre-gl.mjs";

const API = document.body.dataset.api || "/api/v1";
const BASEMAP = document.body.dataset.basemapStyle || "";
const STORAGE_KEY = "gridgov.editor.auth";
const EMPTY = { type: "FeatureCollection", features: [] };
const OPS = {
  split: { label: "拆分", pick: 1, draw: "linestring", hint: "选一个区域，画一条穿过它的线。" },
  merge: { label: "合并", pick: 2, draw: null, hint: "选两个相邻区域，无需绘制。" },
  "move-edge": {
    label: "移动边界",
    pick: 2,
    draw: "linestring",
    hint: "选两个相邻区域，画出新的共同边界（从外缘到外缘）。",
  },
  redraw: { label: "重绘", pick: 1, draw: "polygon", hint: "选一个区域，画出它的新范围。" },
};
const STATUS_LABELS = { applied: "已生效", pending: "待生效", cancelled: "已取消", failed: "失败" };
// The refusals an administrator meets most (the API's English detail follows).
const PROBLEM_LABELS = {
  line_misses_area: "线没有穿过所选区域",
  line_only_touches: "线只接触到区域边缘",
  line_does_not_split: "线没有把区域分开",
  piece_too_small: "分出的部分太小",
  wrong_piece_count: "分出的块数不对",
  not_adjacent: "区域不相邻",
  not_siblings: "区域不属于同一上级",
  gap_left: "会留下空隙",
  overlap: "与其他区域重叠",
  gap: "与相邻区域之间有空隙",
  outside_parent: "超出上级区域范围",
  code_taken: "编码已被使用",
  has_workers: "区域内仍有在岗人员",
  unknown_area: "区域不存在或已撤销",
  effective_from_out_of_range: "生效时间超出允许范围",
  effective_from_before_current: "生效时间早于当前边界",
};
// Where a change set came from (its `source`), for the history.
function sourceLabel(source) {
  const edits = { split: "拆分", merge: "合并", "move-edge": "移动边界", redraw: "重绘", create: "新建区域", retire: "撤销区域" };
  if (source.startsWith("edit:")) return edits[source.slice(5)] || source;
  if (source.startsWith("revert:")) return `撤销 #${source.slice(7)}`;
  if (source.startsWith("cli:")) return `命令行导入 ${source.slice(4)}`;
  return { demo: "演示数据", api: "接口导入" }[source] || source;
}
const ACTION_LABELS = { created: "新建", updated: "调整", retired: "撤销", restored: "恢复" };

const $ = (id) => document.getElementById(id);
const state = {
  ready: false,
  selected: [],
  op: null,
  drawn: null,
  preview: null,
  lastApplied: null,
  history: [],
  busy: false,
};
window.gridgovEditor = state;
let map = null;
let draw = null;
let finishedAt = 0;

// ---------------------------------------------------------------- auth and API

function session() {
  try {
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY));
  } catch {
    return null;
  }
}

async function call(method, path, body) {
  const token = (session() || {}).access;
  const response = await fetch(`${API}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      Accept: "application/json",
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    credentials: "omit",
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => null);
  if (response.status === 401) {
    sessionStorage.removeItem(STORAGE_KEY);
    showLogin("登录已过期，请重新登录。");
  }
  return { status: response.status, data };
}

function showLogin(message) {
  $("workspace").hidden = true;
  $("userbox").hidden = true;
  $("login-screen").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
}

async function login(event) {
  event.preventDefault();
  const response = await fetch(`${API}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    credentials: "omit",
    body: JSON.stringify({
      username: $("login-username").value.trim(),
      password: $("login-password").value,
    }),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    showLogin(response.status === 401 ? "用户名或密码不正确。" : "登录失败。");
    return;
  }
  if (data.user.role !== "admin") {
    showLogin("边界编辑仅限管理员。");
    return;
  }
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ access: data.access_token, user: data.user }));
  $("login-password").value = "";
  start(data.user);
}

function status(text) {
  $("status-line").textContent = text;
}

// ---------------------------------------------------------------- the map

async function start(user) {
  $("login-screen").hidden = true;
  $("workspace").hidden = false;
  $("userbox").hidden = false;
  $("user-name").textContent = user.display_name || user.username;
  const districts = await call("GET", "/areas?level=district&format=geojson&limit=5");
  const bounds = boundsOf(districts.data.features);
  map = new maplibregl.Map({
    container: "map",
    style: BASEMAP || {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#eef2f6" } }],
    },
    bounds,
    fitBoundsOptions: { padding: 20 },
    attributionControl: false,
  });
  state.map = map;
  map.on("load", () => {
    addLayers();
    draw = new terraDraw.TerraDraw({
      adapter: new terraDrawMaplibreGlAdapter.TerraDrawMapLibreGLAdapter({ map }),
      modes: [new terraDraw.TerraDrawLineStringMode(), new terraDraw.TerraDrawPolygonMode()],
    });
    draw.start();
    draw.on("finish", (id) => {
      state.drawn = draw.getSnapshotFeature(id).geometry;
      state.drawing = false;
      finishedAt = Date.now();
      draw.setMode("static");
      status("已绘制，可预览影响。");
      refreshButtons();
    });
    map.on("click", "areas-fill", (event) => {
      // The click that closed a ring reaches the map too: it must not pick the area under it.
      if (state.drawing || Date.now() - finishedAt < 400) return;
      toggle(event.features[0].properties);
    });
    map.on("moveend", loadAreas);
    loadAreas().then(() => {
      state.ready = true;
    });
    loadHistory();
  });
}

function boundsOf(features) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === "number") {
      b[0] = Math.min(b[0], c[0]);
      b[1] = Math.min(b[1], c[1]);
      b[2] = Math.max(b[2], c[0]);
      b[3] = Math.max(b[3], c[1]);
    } else c.forEach(walk);
  };
  features.forEach((f) => f.geometry && walk(f.geometry.coordinates));
  return [
    [b[0], b[1]],
    [b[2], b[3]],
  ];
}

function addLayers() {
  for (const id of ["areas", "before", "after", "problems"]) {
    map.addSource(id, { type: "geojson", data: EMPTY, promoteId: "code" });
  }
  map.addLayer({
    id: "areas-fill",
    type: "fill",
    source: "areas",
    paint: {
      "fill-color": ["case", ["boolean", ["feature-state", "selected"], false], "#4dabf7", "#ffffff"],
      "fill-opacity": ["case", ["boolean", ["feature-state", "selected"], false], 0.55, 0.35],
    },
  });
  map.addLayer({
    id: "areas-line",
    type: "line",
    source: "areas",
    paint: { "line-color": "#1864ab", "line-width": 1.2 },
  });
  map.addLayer({
    id: "before-line",
    type: "line",
    source: "before",
    paint: { "line-color": "#868e96", "line-width": 2, "line-dasharray": [2, 2] },
  });
  map.addLayer({
    id: "after-fill",
    type: "fill",
    source: "after",
    paint: {
      "fill-color": ["match", ["get", "tone"], 0, "#37b24d", 1, "#f59f00", 2, "#7048e8", "#1c7ed6"],
      "fill-opacity": 0.35,
    },
  });
  map.addLayer({
    id: "after-line",
    type: "line",
    source: "after",
    paint: { "line-color": "#2b8a3e", "line-width": 2.5 },
  });
  map.addLayer({
    id: "problems",
    type: "circle",
    source: "problems",
    paint: {
      "circle-radius": 9,
      "circle-color": "#c92a2a",
      "circle-opacity": 0.7,
      "circle-stroke-color": "#fff",
      "circle-stroke-width": 2,
    },
  });
}

async function loadAreas() {
  const b = map.getBounds();
  const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6));
  const level = $("level").value;
  const { data } = await call("GET", `/areas?level=${level}&bbox=${bbox.join(",")}&format=geojson&limit=500`);
  const features = (data.features || []).map((f) => ({ ...f, id: f.properties.code }));
  map.getSource("areas").setData({ type: "FeatureCollection", features });
  state.areas = features.length;
  markSelected();
}

function markSelected() {
  map.removeFeatureState({ source: "areas" });
  for (const area of state.selected) map.setFeatureState({ source: "areas", id: area.code }, { selected: true });
}

function toggle(area) {
  const at = state.selected.findIndex((a) => a.code === area.code);
  if (at >= 0) state.selected.splice(at, 1);
  else {
    state.selected.push({ code: area.code, name: area.name });
    const limit = state.op ? OPS[state.op].pick : 2;
    while (state.selected.length > limit) state.selected.shift();
  }
  markSelected();
  renderSelected();
  resetResult();
}

function renderSelected() {
  const list = $("selected");
  list.replaceChildren(
    ...state.selected.map((a) => {
      const li = document.createElement("li");
      li.textContent = `${a.name}（${a.code}）`;
      return li;
    }),
  );
  refreshButtons();
}

// ---------------------------------------------------------------- operations

function chooseOp(op) {
  state.op = op;
  for (const button of document.querySelectorAll(".op")) {
    button.classList.toggle("active", button.dataset.op === op);
  }
  $("op-hint").textContent = OPS[op].hint;
  while (state.selected.length > OPS[op].pick) state.selected.shift();
  markSelected();
  renderSelected();
  clearDrawing();
  resetResult();
}

function clearDrawing() {
  state.drawn = null;
  state.drawing = false;
  if (draw) {
    draw.clear();
    draw.setMode("static");
  }
}

function startDrawing() {
  clearDrawing();
  resetResult();
  state.drawing = true;
  draw.setMode(OPS[state.op].draw);
  status(OPS[state.op].draw === "polygon" ? "点击画出范围，回到起点结束。" : "点击画线，按回车结束。");
}

function ready() {
  const op = OPS[state.op];
  return Boolean(op && state.selected.length === op.pick && (!op.draw || state.drawn));
}

function refreshButtons() {
  const op = OPS[state.op];
  $("draw").disabled = state.busy || !op || !op.draw || state.selected.length !== op.pick;
  $("preview").disabled = state.busy || !ready();
  $("apply").disabled = state.busy || !ready() || !state.preview || !state.preview.valid;
}

function body() {
  const codes = state.selected.map((a) => a.code);
  const common = { description: $("description").value.trim() };
  const effective = $("effective").value;
  if (effective) common.effective_from = new Date(effective).toISOString();
  switch (state.op) {
    case "split":
      return { ...common, code: codes[0], line: state.drawn };
    case "merge":
      return { ...common, codes };
    case "move-edge":
      return { ...common, codes, line: state.drawn };
    default:
      return { ...common, code: codes[0], geometry: state.drawn };
  }
}

async function submit(path, payload, dryRun) {
  state.busy = true;
  refreshButtons();
  try {
    const query = dryRun ? "?dry_run=true&details=cases" : "?dry_run=false";
    return await call("POST", `${path}${query}`, payload);
  } finally {
    state.busy = false;
    refreshButtons();
  }
}

async function preview() {
  status("正在校验…");
  const { status: code, data } = await submit(`/boundaries/edits/${state.op}`, body(), true);
  showResult(code, data);
}

function counts(data) {
  const impact = data.impact;
  return {
    cases: impact.moved_open_incidents,
    assignments: impact.assignments.length,
    codes: impact.recoded.length,
    areas: impact.area_changes.length,
  };
}

function showResult(code, data) {
  $("result").hidden = false;
  const problems = [];
  if (code !== 200 && data && data.error) {
    problems.push({ kind: data.error, detail: data.message, location: (data.details || {}).location });
  } else if (data) {
    problems.push(...data.problems.filter((p) => (p.severity || "error") === "error"));
  }
  state.preview = code === 200 ? data : { valid: false };
  if (code === 200 && data.valid === false) state.preview = data;
  const valid = code === 200 && data.valid;
  $("verdict").textContent = valid ? "校验通过，可以应用。" : "校验未通过，无法应用：";
  $("verdict").className = valid ? "verdict ok" : "verdict bad";
  $("problems").replaceChildren(
    ...problems.map((p) => {
      const li = document.createElement("li");
      li.textContent = `${PROBLEM_LABELS[p.kind] || "校验问题"}（${p.kind}）：${p.detail || ""}`;
      return li;
    }),
  );
  const points = problems
    .filter((p) => p.location)
    .map((p) => ({
      type: "Feature",
      geometry: { type: "Point", coordinates: [p.location.lon, p.location.lat] },
      properties: { kind: p.kind },
    }));
  map.getSource("problems").setData({ type: "FeatureCollection", features: points });
  state.problemPoints = points.length;
  if (code === 200) {
    map.getSource("before").setData(data.geometry.before);
    // Each area after the change in its own tone, so the pieces of a split stand apart.
    const after = data.geometry.after.features.map((f, i) => ({
      ...f,
      properties: { ...f.properties, tone: i % 4 },
    }));
    map.getSource("after").setData({ type: "FeatureCollection", features: after });
    const c = counts(data);
    const items = [
      ["迁移的在办案件", c.cases],
      ["受影响的任务分配", c.assignments],
      ["编码变更", c.codes],
      ["变动的区域", c.areas],
    ];
    $("impact").replaceChildren(
      ...items.flatMap(([label, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = label;
        const dd = document.createElement("dd");
        dd.textContent = String(value);
        return [dt, dd];
      }),
    );
    const lines = [
      ...data.impact.area_changes.map(
        (a) => `${ACTION_LABELS[a.action] || a.action} ${a.code} ${a.name || ""}${a.from ? `（原 ${a.from}）` : ""}`,
      ),
      ...data.impact.moves.map((m) => `案件 ${m.from || "无"} → ${m.to || "无"}：${m.count} 件`),
      ...data.impact.assignments.map((a) => `${a.username}（${a.area}）：区域${a.change === "retired" ? "撤销" : "调整"}`),
    ];
    $("area-changes").replaceChildren(
      ...lines.map((text) => {
        const li = document.createElement("li");
        li.textContent = text;
        return li;
      }),
    );
  } else {
    $("impact").replaceChildren();
    $("area-changes").replaceChildren();
  }
  status(valid ? "预览完成。" : "校验未通过。");
  refreshButtons();
}

function resetResult() {
  state.preview = null;
  $("result").hidden = true;
  if (map && map.getSource("problems")) {
    for (const id of ["before", "after", "problems"]) map.getSource(id).setData(EMPTY);
  }
  refreshButtons();
}

function confirmDialog(title, text) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function countsText(data) {
  const c = counts(data);
  return `将变动 ${c.areas} 个区域，迁移 ${c.cases} 件在办案件，影响 ${c.assignments} 个任务分配，${c.codes} 个编码变更。`;
}

async function apply() {
  const payload = body();
  const when = payload.effective_from ? `将于 ${new Date(payload.effective_from).toLocaleString("zh-CN")} 生效。` : "立即生效。";
  const title = `确认${OPS[state.op].label}`;
  if (!(await confirmDialog(title, `${countsText(state.preview)}${when}`))) return;
  const { status: code, data } = await submit(`/boundaries/edits/${state.op}`, payload, false);
  if (code !== 200) {
    showResult(code, data);
    return;
  }
  state.lastApplied = { changeset: data.changeset, status: data.status, operation: data.operation };
  status(data.status === "pending" ? `已排期：变更 #${data.changeset}` : `已应用：变更 #${data.changeset}`);
  state.selected = [];
  renderSelected();
  clearDrawing();
  resetResult();
  await loadAreas();
  await loadHistory();
}

// ---------------------------------------------------------------- history

async function loadHistory() {
  const { data } = await call("GET", "/boundaries/changes?limit=20");
  state.history = data.items;
  $("history").replaceChildren(...data.items.map(historyItem));
}

function historyItem(item) {
  const li = document.createElement("li");
  li.dataset.changeset = String(item.id);
  const head = document.createElement("div");
  head.className = "history-head";
  const badge = document.createElement("span");
  badge.className = `badge badge-${item.status}`;
  badge.textContent = STATUS_LABELS[item.status] || item.status;
  const title = document.createElement("span");
  title.textContent = `#${item.id} ${sourceLabel(item.source)}${item.description ? `：${item.description}` : ""}`;
  head.append(badge, title);
  const meta = document.createElement("div");
  meta.className = "history-meta";
  const c = item.counts;
  const links = item.reverts ? ` · 撤销了 #${item.reverts}` : item.reverted_by ? ` · 已被 #${item.reverted_by} 撤销` : "";
  meta.textContent =
    `${new Date(item.effective_from).toLocaleString("zh-CN")} · ${item.author || "系统"} · ` +
    `新建 ${c.created || 0} 调整 ${c.updated || 0} 撤销 ${c.retired || 0} · 案件 ${c.moved_open_incidents}${links}`;
  li.append(head, meta);
  if (item.failure) {
    const why = document.createElement("div");
    why.className = "history-failure";
    const kinds = [...new Set(item.failure.problems.map((p) => PROBLEM_LABELS[p.kind] || p.kind))];
    why.textContent = `到期时已不符合当前地图，未生效：${kinds.join("、")}`;
    li.append(why);
  }
  if (item.status === "applied" && !item.reverted_by && item.source !== "demo") {
    li.append(actionButton("撤销此变更", () => revert(item)));
  }
  if (item.status === "pending") li.append(actionButton("取消排期", () => cancel(item)));
  return li;
}

function actionButton(label, handler) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "btn btn-link";
  button.textContent = label;
  button.addEventListener("click", handler);
  return button;
}

async function revert(item) {
  status(`正在预览撤销 #${item.id}…`);
  const dry = await submit(`/boundaries/changes/${item.id}/revert`, null, true);
  if (dry.status !== 200 || !dry.data.valid) {
    showResult(dry.status, dry.data);
    return;
  }
  showResult(dry.status, dry.data);
  if (!(await confirmDialog(`确认撤销变更 #${item.id}`, countsText(dry.data)))) return;
  const done = await submit(`/boundaries/changes/${item.id}/revert`, null, false);
  if (done.status !== 200) {
    showResult(done.status, done.data);
    return;
  }
  state.lastApplied = { changeset: done.data.changeset, status: done.data.status, operation: "revert" };
  status(`已撤销 #${item.id}（变更 #${done.data.changeset}）`);
  resetResult();
  await loadAreas();
  await loadHistory();
}

async function cancel(item) {
  if (!(await confirmDialog(`取消变更 #${item.id}`, "该变更将不会生效。"))) return;
  await call("POST", `/boundaries/changes/${item.id}/cancel`);
  await loadHistory();
}

// ---------------------------------------------------------------- wiring

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(STORAGE_KEY);
  window.location.reload();
});
for (const button of document.querySelectorAll(".op")) {
  button.addEventListener("click", () => chooseOp(button.dataset.op));
}
$("draw").addEventListener("click", startDrawing);
$("preview").addEventListener("click", preview);
$("apply").addEventListener("click", apply);
$("clear-selection").addEventListener("click", () => {
  state.selected = [];
  markSelected();
  renderSelected();
  resetResult();
});
$("level").addEventListener("change", () => {
  state.selected = [];
  renderSelected();
  resetResult();
  loadAreas();
});
// Test hook: the screen position of a WGS-84 point in the map's container.
state.project = (lon, lat) => {
  const p = map.project([lon, lat]);
  return { x: p.x, y: p.y };
};

const saved = session();
if (saved && saved.user && saved.user.role === "admin") start(saved.user);
else showLogin();
