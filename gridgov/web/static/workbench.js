// The supervisors' workbench: the case queue (deadline first), a case's panel with the actions
// the caller may take now, and the indicators dashboard. Everything comes from the JSON API
// with the user's token (common.js); the page itself holds no data.
//
// - Queue: GET /incidents?sort=deadline&status=…&category=…&area=…&handling_level=…&reporter=…
//   &overdue=true&from=&to= (keyset-paged; "previous" replays the cursors seen), and
//   GET /incidents/counts with the same filters but the status, for the counts per status.
// - Case: GET /incidents/{id} (ETag, allowed_actions with their required fields, working hours
//   left), its timeline and photos; an action is POSTed with If-Match, so a stale page gets 412
//   and says so instead of overwriting what someone else did. Dispatch picks from
//   GET /areas/{code}/workers of the case's handling area (grid heads first).
// - Indicators: GET /stats/indicators and /stats/ranking (tables, Chart.js charts, CSV).
//
// window.gridgovWorkbench is a small status object for tests and for debugging.

import {
  $,
  ACTION_LABELS,
  ApiError,
  DUTY_LABELS,
  OPEN_STATUSES,
  PRIORITY_LABELS,
  ROLE_LABELS,
  STATUSES,
  createSession,
  el,
  formatTime,
  statusLabel,
} from "./common.js";
import * as maplibregl from "./vendor/maplibre-gl/maplibre-gl.mjs";

const body = document.body;
const API = body.dataset.api || "/api/v1";
const LEVELS = JSON.parse(body.dataset.levels);
const LEVEL_LABELS = Object.fromEntries(LEVELS.map((l) => [l.name, l.label]));
const HANDLING_LEVELS = ["grid", "community", "town", "district"];
const PAGE_SIZE = 20;
const RATE_LABELS = {
  closure_rate: "结案率",
  on_time_closure_rate: "按期结案率",
  on_time_handling_rate: "按期处置率",
  rework_rate: "返工率",
  town_or_below_rate: "镇街及以下解决率",
  reports_per_grid: "网格平均上报数",
  patrol_coverage: "巡查覆盖率",
};
const COUNT_LABELS = {
  reported: "上报数",
  due: "应结案数",
  closed: "结案数",
  closed_on_time: "按期结案数",
  resolved: "已处置数",
  resolved_on_time: "按期处置数",
  handled: "处置过的案件",
  reworked: "返工数",
  resolved_town_or_below: "镇街及以下解决数",
  overdue: "当前超期数",
  grids: "网格数",
  microgrids: "微网格数",
  microgrids_patrolled: "已巡查微网格数",
};
// Rates that are shares (shown in %); the others are plain ratios.
const SHARE_RATES = new Set(Object.keys(RATE_LABELS).filter((r) => r !== "reports_per_grid"));
const MESSAGES = {
  version_mismatch: "该案件已被他人更新，您看到的是旧版本，操作未执行。请刷新案件后重新操作。",
  invalid_transition: "案件当前状态不允许此操作（可能已被他人处理），请刷新案件。",
  forbidden: "您无权执行此操作。",
  missing_fields: "请填写必填项。",
  invalid_assignee: "所选人员不在该案件处置区域内在岗，请重新选择或先上报升级。",
  invalid_duplicate: "重复件编号无效。",
};

const state = {
  ready: false,
  user: null,
  filters: {},
  queue: [],
  counts: null,
  cursors: [null], // the cursor of each page seen; the last is the current page's
  nextCursor: null,
  selected: null, // the case shown: the incident body
  etag: null,
  timeline: [],
  duplicates: [],
  lastActionResult: null,
  lastError: null,
  people: new Map(), // user id -> display name (from /users, the caller's subtree)
  stats: { indicators: null, ranking: null, trend: [] },
  loads: 0,
  errors: [],
};
window.gridgovWorkbench = state;

window.addEventListener("error", (event) => recordError(event.message));
window.addEventListener("unhandledrejection", (event) =>
  recordError(event.reason && event.reason.message ? event.reason.message : event.reason),
);
document.addEventListener("securitypolicyviolation", (event) =>
  recordError(`CSP blocked ${event.blockedURI || "inline"} (${event.violatedDirective})`),
);

function recordError(message) {
  state.errors.push(String(message));
  setStatus(String(message), true);
}

function setStatus(text, isError = false) {
  const line = $("status-line");
  line.textContent = text;
  line.classList.toggle("is-error", isError);
}

const session = createSession({
  api: API,
  onEnded: () => showLogin("登录已过期，请重新登录。"),
});
const call = session.request;

// ---------------------------------------------------------------- login

function showLogin(message) {
  for (const id of ["queue-view", "stats-view", "patrols-view", "userbox", "tabs"]) {
    $(id).hidden = true;
  }
  $("login-screen").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("login-username").focus();
}

async function submitLogin(event) {
  event.preventDefault();
  const button = $("login-submit");
  const error = $("login-error");
  button.disabled = true;
  error.hidden = true;
  try {
    const user = await session.login($("login-username").value.trim(), $("login-password").value);
    $("login-password").value = "";
    await start(user);
  } catch (err) {
    error.textContent =
      err instanceof ApiError && err.status === 401
        ? "用户名或密码不正确。"
        : `登录失败（${err.message}）。`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

async function start(user) {
  if (user.role === "worker") {
    showLogin("案件工作台供街道、区级监督员使用；网格员请使用手机端。");
    session.logout();
    return;
  }
  state.user = user;
  $("login-screen").hidden = true;
  $("userbox").hidden = false;
  $("tabs").hidden = false;
  $("user-name").textContent = user.username;
  $("user-role").textContent = ROLE_LABELS[user.role] || user.role;
  showTab("queue");
  await Promise.all([loadCategories(), loadAreas(), loadPeople()]);
  renderStatusFilters(OPEN_STATUSES);
  state.filters = readFilters();
  await loadQueue();
  state.ready = true;
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  $("queue-view").hidden = name !== "queue";
  $("stats-view").hidden = name !== "stats";
  $("patrols-view").hidden = name !== "patrols";
  for (const tab of document.querySelectorAll(".tab[data-tab]")) {
    tab.classList.toggle("is-active", tab.dataset.tab === name);
  }
  if (name === "stats") loadStats().catch(showStatsError);
  if (name === "patrols") loadPatrols().catch((err) => recordError(`巡查加载失败：${err.message}`));
  if (name === "queue" && caseMap) caseMap.resize();
}

// ---------------------------------------------------------------- filter choices

async function loadCategories() {
  const { data } = await call("categories");
  const select = $("f-category");
  for (const category of data.items) {
    select.append(el("option", { value: category.code, text: `${category.group} · ${category.name}` }));
  }
}

// The caller's areas and two levels below them (for the district: its towns and communities).
async function loadAreas() {
  const roots = state.user.areas || [];
  const areas = [];
  if (roots.length === 0) {
    const { data } = await call("areas?level=town&limit=500");
    areas.push(...data.items);
  }
  for (const code of roots) {
    const { data: root } = await call(`areas/${encodeURIComponent(code)}`);
    areas.push({ code, name: root.name, level: root.level, depth: 0 });
    const { data: children } = await call(`areas?parent=${encodeURIComponent(code)}&limit=500`);
    for (const child of children.items) {
      areas.push({ ...child, depth: 1 });
      if (child.level === "community" || (child.level === "town" && children.items.length < 6)) {
        const { data: grand } = await call(`areas?parent=${child.code}&limit=500`);
        areas.push(...grand.items.map((a) => ({ ...a, depth: 2 })));
      }
    }
  }
  state.areas = areas;
  const select = $("f-area");
  for (const area of areas) {
    const indent = "\u3000".repeat(area.depth || 0);
    const label = `${indent}${area.name}（${LEVEL_LABELS[area.level] || area.level}）`;
    select.append(el("option", { value: area.code, text: label }));
  }
  const levels = $("f-level");
  for (const level of HANDLING_LEVELS) {
    levels.append(el("option", { value: level, text: `${LEVEL_LABELS[level] || level}级` }));
  }
}

async function loadPeople() {
  const { data } = await call("users?limit=500&active=true", { allow: [403] });
  const select = $("f-reporter");
  for (const person of (data && data.items) || []) {
    state.people.set(person.id, person.display_name || person.username);
    select.append(
      el("option", { value: person.id, text: `${person.display_name}（${person.username}）` }),
    );
  }
}

function personName(id) {
  if (id === null || id === undefined) return "—";
  return state.people.get(id) || `用户 #${id}`;
}

function renderStatusFilters(checked) {
  const list = $("f-statuses");
  list.replaceChildren();
  for (const status of STATUSES) {
    const box = el("input", {
      type: "checkbox",
      value: status.code,
      name: "status",
      checked: checked.includes(status.code),
    });
    box.addEventListener("change", filtersChanged);
    const swatch = el("span", { className: `swatch status-${status.code}` });
    list.append(el("li", {}, el("label", {}, box, swatch, status.label)));
  }
}

// The date inputs are China dates: from 00:00 of the first to 00:00 after the last.
function chinaDay(value, plusDays = 0) {
  if (!value) return null;
  const day = new Date(`${value}T00:00:00+08:00`);
  day.setUTCDate(day.getUTCDate() + plusDays);
  return day.toISOString();
}

function readFilters() {
  const statuses = [...document.querySelectorAll('#f-statuses input[name="status"]:checked')].map(
    (box) => box.value,
  );
  return {
    status: statuses.join(","),
    category: $("f-category").value,
    area: $("f-area").value,
    handling_level: $("f-level").value,
    reporter: $("f-reporter").value,
    overdue: $("f-overdue").checked ? "true" : "",
    from: chinaDay($("f-from").value),
    to: chinaDay($("f-to").value, 1),
  };
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) search.set(key, value);
  }
  return search.toString();
}

function filtersChanged() {
  state.filters = readFilters();
  state.cursors = [null];
  loadQueue().catch((err) => recordError(err.message));
}

// ---------------------------------------------------------------- the queue

async function loadQueue() {
  const cursor = state.cursors[state.cursors.length - 1];
  const list = { ...state.filters, sort: "deadline", limit: PAGE_SIZE, cursor };
  const { status: _ignored, ...countFilters } = state.filters;
  if (!state.filters.status) {
    // No status ticked: nothing to show (the counts still say what is there).
    list.status = "none";
  }
  setStatus("正在加载案件…");
  const [page, counts] = await Promise.all([
    list.status === "none" ? { data: { items: [], next_cursor: null } } : call(`incidents?${query(list)}`),
    call(`incidents/counts?${query(countFilters)}`),
  ]);
  state.queue = page.data.items;
  state.nextCursor = page.data.next_cursor;
  state.counts = counts.data;
  state.loads += 1;
  renderCounts();
  renderQueue();
  setStatus(`共 ${counts.data.total} 件，其中超期 ${counts.data.overdue} 件`);
}

function renderCounts() {
  const counts = state.counts;
  const box = $("counts");
  box.replaceChildren();
  const selected = state.filters.status.split(",");
  for (const status of STATUSES) {
    const n = counts.by_status[status.code] || 0;
    const chip = el(
      "button",
      {
        type: "button",
        className: `count-chip${selected.includes(status.code) ? " is-on" : ""}`,
        dataset: { status: status.code },
        title: `只看“${status.label}”`,
      },
      el("span", { className: `swatch status-${status.code}` }),
      status.label,
      el("b", { text: String(n) }),
    );
    chip.addEventListener("click", () => {
      renderStatusFilters([status.code]);
      filtersChanged();
    });
    box.append(chip);
  }
  box.append(
    el("span", { className: "count-chip count-overdue" }, "超期", el("b", { text: String(counts.overdue) })),
  );
}

function timeLeft(deadline, overdue) {
  if (!deadline) return "—";
  const hours = (new Date(deadline).getTime() - Date.now()) / 3600000;
  const text = Math.abs(hours) >= 48 ? `${Math.round(Math.abs(hours) / 24)} 天` : `${Math.abs(hours).toFixed(1)} 小时`;
  return overdue ? `超期 ${text}` : `剩 ${text}`;
}

function renderQueue() {
  const rows = $("queue-rows");
  rows.replaceChildren();
  for (const item of state.queue) {
    const row = el(
      "tr",
      {
        className: `${item.overdue ? "is-overdue" : ""}${state.selected && state.selected.id === item.id ? " is-selected" : ""}`,
        dataset: { id: item.id },
        tabindex: "0",
      },
      el("td", { text: item.ref }),
      el("td", { text: item.category_name }),
      el("td", {}, el("span", { className: `status-pill status-${item.status}`, text: statusLabel(item.status) })),
      el("td", { text: LEVEL_LABELS[item.handling_level] || item.handling_level }),
      el("td", { text: item.grid || "—" }),
      el("td", { text: formatTime(item.reported_at) }),
      el(
        "td",
        { className: item.overdue ? "deadline is-overdue" : "deadline" },
        formatTime(item.deadline),
        el("small", { text: timeLeft(item.deadline, item.overdue) }),
      ),
    );
    row.addEventListener("click", () => openCase(item.id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") openCase(item.id);
    });
    rows.append(row);
  }
  $("queue-empty").hidden = state.queue.length > 0;
  const page = state.cursors.length;
  $("page-info").textContent = `第 ${page} 页`;
  $("page-prev").disabled = page <= 1;
  $("page-next").disabled = !state.nextCursor;
}

// ---------------------------------------------------------------- the case panel

let caseMap = null;

async function openCase(id) {
  state.lastError = null;
  hideCaseError();
  $("action-form").hidden = true;
  const [{ data, headers }, { data: timeline }, { data: duplicates }] = await Promise.all([
    call(`incidents/${id}`),
    call(`incidents/${id}/timeline`),
    call(`incidents/${id}/duplicates`),
  ]);
  // Set together with the rendering: what the state says is what the panel shows.
  state.selected = data;
  state.etag = headers.get("ETag");
  state.timeline = timeline.items;
  state.duplicates = duplicates.items;
  $("case").hidden = false;
  renderCase();
  renderQueue();
  showOnMap(data).catch((err) => recordError(err.message));
}

function fact(term, value, className) {
  return [el("dt", { text: term }), el("dd", { className, text: value })];
}

function workingLeft(incident) {
  const hours = incident.deadline_working_hours_left;
  if (hours === null || hours === undefined) return "—";
  return hours < 0
    ? `已超期 ${(-hours).toFixed(1)} 个工作小时`
    : `剩余 ${hours.toFixed(1)} 个工作小时`;
}

function renderCase() {
  const c = state.selected;
  $("case-title").textContent = `${c.ref} · ${c.category.name}`;
  const routing = c.routing || {};
  const where = LEVELS.map((level) => routing[level.name] && routing[level.name].name)
    .filter(Boolean)
    .join(" / ");
  const facts = el(
    "dl",
    { className: "facts" },
    ...fact("状态", statusLabel(c.status)),
    ...fact("优先级", PRIORITY_LABELS[c.priority] || c.priority),
    ...fact("位置", where || "未落入网格"),
    ...fact("处置层级", `${LEVEL_LABELS[c.handling_level] || c.handling_level}级`),
    ...fact("处置人", personName(c.handler_id)),
    ...fact("处置单位", c.handling_unit || "—"),
    ...fact("上报人", personName(c.reporter_id)),
    ...fact("上报时间", formatTime(c.reported_at)),
    ...fact("当前期限", formatTime(c.deadline), c.overdue ? "is-overdue" : ""),
    ...fact("剩余时间", workingLeft(c), c.overdue ? "is-overdue" : ""),
    ...fact("处置期限", formatTime(c.handle_deadline)),
    ...fact("返工/升级", `${c.rework_count} 次 / ${c.escalation_count} 次`),
    ...fact("版本", String(c.version)),
  );
  const badges = el(
    "div",
    { className: "badges" },
    el("span", { className: `status-pill status-${c.status}`, text: statusLabel(c.status) }),
    c.overdue ? el("span", { className: "badge badge-overdue", text: "超期" }) : null,
  );
  $("case-facts").replaceChildren(badges, el("p", { className: "description", text: c.description }), facts);
  renderPhotos(c).catch((err) => recordError(err.message));
  renderActions();
  renderDuplicates();
  renderTimeline();
}

// Same category, reported shortly before and close by (the intake's rule): a click opens one,
// so the supervisor can compare before marking this case a duplicate of it.
function renderDuplicates() {
  const list = $("case-duplicates");
  list.replaceChildren(
    ...state.duplicates.map((d) =>
      el(
        "li",
        {},
        el("a", { href: "#", dataset: { incident: String(d.id) }, text: `GG${String(d.id).padStart(8, "0")}` }),
        ` ${statusLabel(d.status)} · ${Math.round(d.distance_m)} 米 · ${formatTime(d.reported_at)}`,
      ),
    ),
  );
  $("case-duplicates-box").hidden = state.duplicates.length === 0;
}

async function renderPhotos(incident) {
  const box = $("case-photos");
  box.replaceChildren();
  for (const photoId of incident.photos) {
    const { response } = await call(`photos/${photoId}`, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    box.append(el("img", { src: url, alt: "现场照片", className: "photo" }));
  }
}

function renderActions() {
  const box = $("case-actions");
  box.replaceChildren();
  for (const allowed of state.selected.allowed_actions) {
    const button = el("button", {
      type: "button",
      className: `btn action-btn action-${allowed.action}`,
      dataset: { action: allowed.action },
      text: ACTION_LABELS[allowed.action] || allowed.action,
    });
    button.addEventListener("click", () => openActionForm(allowed));
    box.append(button);
  }
}

function renderTimeline() {
  const list = $("case-timeline");
  list.replaceChildren();
  for (const event of state.timeline) {
    const moved =
      event.from_status && event.to_status && event.from_status !== event.to_status
        ? `${statusLabel(event.from_status)} → ${statusLabel(event.to_status)}`
        : "";
    list.append(
      el(
        "li",
        { dataset: { action: event.action } },
        el(
          "div",
          { className: "tl-head" },
          el("span", { className: "tl-action", text: ACTION_LABELS[event.action] || event.action }),
          el("span", { className: "tl-time", text: formatTime(event.at) }),
        ),
        el("div", { className: "tl-meta", text: [event.actor || "系统", moved].filter(Boolean).join(" · ") }),
        event.note ? el("div", { className: "tl-note", text: event.note }) : null,
      ),
    );
  }
}

let currentAction = null;

async function openActionForm(allowed) {
  currentAction = allowed;
  hideCaseError();
  const needs = new Set(allowed.required);
  $("action-title").textContent = ACTION_LABELS[allowed.action] || allowed.action;
  $("field-assignee").hidden = !needs.has("assignee_or_handling_unit");
  $("field-duplicate").hidden = !needs.has("duplicate_of");
  $("a-note-label").textContent = needs.has("note") ? "说明（必填）" : "说明（选填）";
  $("a-note").required = needs.has("note");
  $("a-note").value = "";
  $("a-unit").value = "";
  $("a-duplicate").value = "";
  $("action-form").hidden = false;
  if (needs.has("assignee_or_handling_unit")) await loadAssignees();
  $("a-note").focus();
}

// The people on duty where the case is handled: its area at the handling level, and for a
// case above its grid also the grid's own people (who may hold it too), grid heads first.
async function loadAssignees() {
  const c = state.selected;
  const routing = c.routing || {};
  const codes = [];
  if (routing[c.handling_level]) codes.push(routing[c.handling_level].code);
  if (c.handling_level !== "grid" && routing.grid) codes.push(routing.grid.code);
  const select = $("a-assignee");
  select.replaceChildren(el("option", { value: "", text: "（不指定个人）" }));
  const seen = new Set();
  for (const code of codes) {
    const { data } = await call(`areas/${encodeURIComponent(code)}/workers?limit=100`, { allow: [403] });
    for (const duty of (data && data.items) || []) {
      if (seen.has(duty.user.id) || duty.user.id === c.handler_id) continue;
      seen.add(duty.user.id);
      const label = `${duty.user.display_name}（${DUTY_LABELS[duty.duty] || duty.duty}，${duty.area}）`;
      select.append(el("option", { value: duty.user.id, text: label }));
    }
  }
  state.assignees = [...seen];
}

async function submitAction(event) {
  event.preventDefault();
  const allowed = currentAction;
  const payload = { action: allowed.action, note: $("a-note").value.trim() };
  if (allowed.required.includes("assignee_or_handling_unit")) {
    if ($("a-assignee").value) payload.assignee = Number($("a-assignee").value);
    if ($("a-unit").value.trim()) payload.handling_unit = $("a-unit").value.trim();
    if (!payload.assignee && !payload.handling_unit) {
      showCaseError("请选择派遣人员或填写处置单位。");
      return;
    }
  }
  if (allowed.required.includes("duplicate_of")) payload.duplicate_of = Number($("a-duplicate").value);
  if (allowed.required.includes("note") && !payload.note) {
    showCaseError("请填写说明。");
    return;
  }
  const button = $("action-submit");
  button.disabled = true;
  try {
    const { status, data, headers } = await call(`incidents/${state.selected.id}/actions`, {
      method: "POST",
      json: payload,
      headers: { "If-Match": state.etag },
      allow: [409, 412, 403, 422],
    });
    state.lastActionResult = { action: allowed.action, status, error: data && data.error };
    if (status !== 200) {
      state.lastError = data && data.error;
      const extra =
        data && data.error === "version_mismatch" && data.details
          ? `（您看到的是版本 ${data.details.expected_version}，当前为版本 ${data.details.current_version}）`
          : data && data.message && !MESSAGES[data.error] ? `（${data.message}）` : "";
      showCaseError(`${MESSAGES[data && data.error] || "操作失败。"}${extra}`, status === 412 || status === 409);
      return;
    }
    const { data: timeline } = await call(`incidents/${data.id}/timeline`);
    state.selected = data;
    state.etag = headers.get("ETag");
    state.timeline = timeline.items;
    $("action-form").hidden = true;
    renderCase();
    setStatus(`已${ACTION_LABELS[allowed.action] || allowed.action}：${data.ref}`);
    await loadQueue();
  } finally {
    button.disabled = false;
  }
}

function showCaseError(message, offerReload = false) {
  const box = $("case-error");
  box.replaceChildren(message);
  if (offerReload) {
    const reload = el("button", { type: "button", className: "btn btn-link", id: "case-reload", text: "刷新案件" });
    reload.addEventListener("click", () => openCase(state.selected.id));
    box.append(" ", reload);
  }
  box.hidden = false;
}

function hideCaseError() {
  $("case-error").hidden = true;
  $("case-error").replaceChildren();
}

// The small map: the case's point inside its grid's outline.
async function showOnMap(incident) {
  const point = {
    type: "FeatureCollection",
    features: [
      {
        type: "Feature",
        geometry: { type: "Point", coordinates: [incident.location.lon, incident.location.lat] },
        properties: { overdue: incident.overdue },
      },
    ],
  };
  const gridCode = incident.routing && incident.routing.grid && incident.routing.grid.code;
  const grid = gridCode
    ? (await call(`areas/${gridCode}?format=geojson`, { allow: [404] })).data
    : null;
  const outline = { type: "FeatureCollection", features: grid && grid.geometry ? [grid] : [] };
  if (!caseMap) {
    caseMap = new maplibregl.Map({
      container: "case-map",
      style: body.dataset.basemapStyle || {
        version: 8,
        sources: {},
        layers: [{ id: "background", type: "background", paint: { "background-color": "#eef2f6" } }],
      },
      center: point.features[0].geometry.coordinates,
      zoom: 15,
      attributionControl: false,
    });
    await new Promise((resolve) => caseMap.on("load", resolve));
    caseMap.addSource("grid", { type: "geojson", data: outline });
    caseMap.addSource("case", { type: "geojson", data: point });
    caseMap.addLayer({ id: "grid-fill", type: "fill", source: "grid", paint: { "fill-color": "#1971c2", "fill-opacity": 0.08 } });
    caseMap.addLayer({ id: "grid-line", type: "line", source: "grid", paint: { "line-color": "#1864ab", "line-width": 2 } });
    caseMap.addLayer({
      id: "case-dot",
      type: "circle",
      source: "case",
      paint: {
        "circle-radius": 8,
        "circle-color": "#f76707",
        "circle-stroke-width": 3,
        "circle-stroke-color": ["case", ["get", "overdue"], "#e03131", "#ffffff"],
      },
    });
  } else {
    caseMap.getSource("grid").setData(outline);
    caseMap.getSource("case").setData(point);
  }
  if (outline.features.length) {
    const bounds = new maplibregl.LngLatBounds();
    const walk = (coords) =>
      typeof coords[0] === "number" ? bounds.extend(coords) : coords.forEach(walk);
    walk(outline.features[0].geometry.coordinates);
    caseMap.fitBounds(bounds, { padding: 20, duration: 0 });
  } else {
    caseMap.jumpTo({ center: point.features[0].geometry.coordinates, zoom: 15 });
  }
  // Drawn once the map is idle again (tests and screenshots wait for this).
  await new Promise((resolve) => caseMap.once("idle", resolve));
  state.mapShown = incident.id;
}

// ---------------------------------------------------------------- indicators

let charts = {};

function monthLabel(date) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}`;
}

function periodChoices() {
  const now = new Date();
  const months = [];
  for (let i = 0; i < 12; i += 1) months.push(monthLabel(new Date(now.getFullYear(), now.getMonth() - i, 1)));
  const quarters = [];
  for (let i = 0; i < 4; i += 1) {
    const d = new Date(now.getFullYear(), now.getMonth() - 3 * i, 1);
    quarters.push(`${d.getFullYear()}-Q${Math.floor(d.getMonth() / 3) + 1}`);
  }
  return { months, quarters };
}

// The caller's areas and the level below them, for the indicators and the patrol map.
function fillAreaChoices(select) {
  for (const area of state.areas.filter((a) => (a.depth || 0) <= 1)) {
    select.append(el("option", { value: area.code, text: `${"\u3000".repeat(area.depth || 0)}${area.name}` }));
  }
}

function setUpStats() {
  const { months, quarters } = periodChoices();
  const period = $("s-period");
  for (const m of months) period.append(el("option", { value: m, text: `${m} 月` }));
  for (const q of quarters) period.append(el("option", { value: q, text: `${q.replace("-Q", " 年第 ")} 季度` }));
  fillAreaChoices($("s-area"));
  const indicator = $("s-indicator");
  for (const [name, label] of Object.entries(RATE_LABELS)) indicator.append(el("option", { value: name, text: label }));
  indicator.append(el("option", { value: "overdue", text: "超期数" }));
  indicator.value = "on_time_closure_rate";
  const topLevel = state.areas.length && state.areas[0].level;
  $("s-level").value = !state.user.areas.length || topLevel === "district" ? "town" : "grid";
  for (const id of ["s-period", "s-area", "s-level", "s-indicator"]) {
    $(id).addEventListener("change", () => loadStats(id !== "s-period" && id !== "s-area").catch(showStatsError));
  }
  $("s-csv-indicators").addEventListener("click", (e) => download(e, indicatorsQuery("csv"), "indicators"));
  $("s-csv-ranking").addEventListener("click", (e) => download(e, rankingQuery("csv"), "ranking"));
  state.statsSetUp = true;
}

function indicatorsQuery(format = "json", period = $("s-period").value) {
  return `stats/indicators?${query({ area: $("s-area").value, period, format })}`;
}

function rankingQuery(format = "json") {
  const parent = state.user.areas.length ? $("s-area").value : "";
  return `stats/ranking?${query({
    level: $("s-level").value,
    indicator: $("s-indicator").value,
    period: $("s-period").value,
    parent: $("s-level").value === "town" && !state.user.areas.length ? "" : parent,
    format,
  })}`;
}

function showStatsError(err) {
  recordError(`统计加载失败：${err.message}`);
}

function formatRate(name, value) {
  if (value === null || value === undefined) return "—";
  return SHARE_RATES.has(name) ? `${(value * 100).toFixed(1)}%` : Number(value).toFixed(2);
}

async function loadStats(rankingOnly = false) {
  if (!state.statsSetUp) setUpStats();
  if (!rankingOnly) {
    const { data } = await call(indicatorsQuery());
    state.stats.indicators = data;
    $("s-title").textContent = `${data.area.name} · ${data.period.label} 指标（截至 ${formatTime(data.as_of)}）`;
    const rates = $("s-rates");
    rates.replaceChildren();
    for (const [name, rate] of Object.entries(data.rates)) {
      rates.append(
        el(
          "tr",
          { dataset: { rate: name } },
          el("td", { text: RATE_LABELS[name] || name }),
          el("td", { className: "num", text: formatRate(name, rate.value) }),
          el("td", { className: "num", text: String(rate.numerator) }),
          el("td", { className: "num", text: String(rate.denominator) }),
          el("td", { className: "muted", text: data.definitions[name] }),
        ),
      );
    }
    const counts = $("s-counts");
    counts.replaceChildren();
    for (const [name, value] of Object.entries(data.counts)) {
      counts.append(
        el(
          "tr",
          { dataset: { count: name } },
          el("td", { text: COUNT_LABELS[name] || name }),
          el("td", { className: "num", text: String(value) }),
          el("td", { className: "muted", text: data.definitions[name] }),
        ),
      );
    }
    await loadTrend();
  }
  const { data: ranking } = await call(rankingQuery());
  state.stats.ranking = ranking;
  const label = RATE_LABELS[ranking.indicator] || "超期数";
  $("s-ranking-title").textContent = `${ranking.level === "town" ? "街道/镇" : "网格"}排名 · ${label}（${ranking.period.label}）`;
  const table = $("s-ranking");
  table.replaceChildren();
  for (const item of ranking.items) {
    table.append(
      el(
        "tr",
        {},
        el("td", { className: "num", text: item.rank === null ? "—" : String(item.rank) }),
        el("td", { text: `${item.name}（${item.code}）` }),
        el("td", { className: "num", text: ranking.indicator === "overdue" ? String(item.value) : formatRate(ranking.indicator, item.value) }),
        el("td", { className: "num", text: String(item.numerator) }),
        el("td", { className: "num", text: item.denominator === null ? "—" : String(item.denominator) }),
      ),
    );
  }
  drawRanking(ranking, label);
}

// The last 12 months of the chosen area: closure and on-time closure rates, and reports.
async function loadTrend() {
  const { months } = periodChoices();
  const reports = await Promise.all(months.reverse().map((m) => call(indicatorsQuery("json", m))));
  state.stats.trend = reports.map((r) => r.data);
  const labels = months;
  const series = (name) => state.stats.trend.map((d) => (d.rates[name].value === null ? null : +(d.rates[name].value * 100).toFixed(1)));
  drawChart("s-trend", {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "结案率 %", data: series("closure_rate"), borderColor: "#1c7ed6", backgroundColor: "#1c7ed6", yAxisID: "y" },
        { label: "按期结案率 %", data: series("on_time_closure_rate"), borderColor: "#37b24d", backgroundColor: "#37b24d", yAxisID: "y" },
        { label: "上报数", data: state.stats.trend.map((d) => d.counts.reported), type: "bar", backgroundColor: "rgba(247,103,7,0.35)", yAxisID: "y1" },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { title: { display: true, text: "近 12 个月趋势" } },
      scales: { y: { min: 0, max: 100, position: "left" }, y1: { min: 0, position: "right", grid: { drawOnChartArea: false } } },
    },
  });
}

function drawRanking(ranking, label) {
  const share = ranking.indicator !== "overdue" && SHARE_RATES.has(ranking.indicator);
  drawChart("s-ranking-chart", {
    type: "bar",
    data: {
      labels: ranking.items.map((i) => i.name),
      datasets: [
        {
          label,
          data: ranking.items.map((i) => (i.value === null ? null : share ? +(i.value * 100).toFixed(1) : i.value)),
          backgroundColor: "#4dabf7",
        },
      ],
    },
    options: { animation: false, maintainAspectRatio: false },
  });
}

function drawChart(containerId, config) {
  if (charts[containerId]) charts[containerId].destroy();
  const container = $(containerId);
  container.replaceChildren();
  const canvas = el("canvas");
  container.append(canvas);
  charts[containerId] = new window.Chart(canvas, config);
}

async function download(event, path, name) {
  event.preventDefault();
  const { response } = await call(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = disposition.match(/filename="?([^";]+)"?/);
  const link = el("a", { href: url, download: match ? match[1] : `${name}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  state.lastDownload = link.getAttribute("download");
}

// ---------------------------------------------------------------- patrols

let patrolMap = null;
const EMPTY = { type: "FeatureCollection", features: [] };

function chinaToday() {
  return new Date(Date.now() + 8 * 3600000).toISOString().slice(0, 10);
}

function setUpPatrols() {
  $("p-day").value = chinaToday();
  fillAreaChoices($("p-area"));
  for (const id of ["p-day", "p-area"]) {
    $(id).addEventListener("change", () => loadPatrols().catch((err) => recordError(err.message)));
  }
  state.patrolsSetUp = true;
}

async function loadPatrols() {
  if (!state.patrolsSetUp) setUpPatrols();
  const { data } = await call(`patrols/map?${query({ area: $("p-area").value, day: $("p-day").value })}`);
  state.patrols = {
    tracks: data.tracks.features.map((f) => f.properties),
    unpatrolled: data.unpatrolled.features.map((f) => f.properties.code),
    microgrids: data.microgrids,
  };
  const covered = data.microgrids - data.unpatrolled.features.length;
  $("p-summary").textContent =
    `${data.day} 共 ${data.tracks.features.length} 条轨迹；本周（${data.week.from} 起）` +
    `已巡查微网格 ${covered}/${data.microgrids}，未巡查 ${data.unpatrolled.features.length} 个。`;
  const list = $("p-tracks");
  list.replaceChildren();
  for (const t of state.patrols.tracks) {
    const length = t.length_m === null ? "进行中" : `${(t.length_m / 1000).toFixed(2)} 公里`;
    list.append(el("li", {}, `${t.worker} · ${formatTime(t.started_at)} · ${length} · ${t.points} 个点`));
  }
  if (!patrolMap) {
    patrolMap = new maplibregl.Map({
      container: "patrol-map",
      style: body.dataset.basemapStyle || {
        version: 8,
        sources: {},
        layers: [{ id: "background", type: "background", paint: { "background-color": "#eef2f6" } }],
      },
      center: [121.55, 29.82],
      zoom: 12,
      attributionControl: false,
    });
    await new Promise((resolve) => patrolMap.on("load", resolve));
    patrolMap.addSource("scope", { type: "geojson", data: EMPTY });
    patrolMap.addSource("unpatrolled", { type: "geojson", data: EMPTY });
    patrolMap.addSource("tracks", { type: "geojson", data: EMPTY });
    patrolMap.addLayer({ id: "scope-line", type: "line", source: "scope", paint: { "line-color": "#1864ab", "line-width": 2 } });
    patrolMap.addLayer({ id: "unpatrolled-fill", type: "fill", source: "unpatrolled", paint: { "fill-color": "#e03131", "fill-opacity": 0.25 } });
    patrolMap.addLayer({ id: "unpatrolled-line", type: "line", source: "unpatrolled", paint: { "line-color": "#c92a2a", "line-width": 1 } });
    patrolMap.addLayer({ id: "tracks-line", type: "line", source: "tracks", paint: { "line-color": "#7048e8", "line-width": 4 } });
    patrolMap.addLayer({ id: "tracks-point", type: "circle", source: "tracks", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-radius": 6, "circle-color": "#7048e8" } });
  }
  const { data: scope } = await call(`areas/${encodeURIComponent($("p-area").value)}?format=geojson`);
  patrolMap.getSource("scope").setData(scope);
  patrolMap.getSource("unpatrolled").setData(data.unpatrolled);
  patrolMap.getSource("tracks").setData(data.tracks);
  const bounds = new maplibregl.LngLatBounds();
  const walk = (coords) => (typeof coords[0] === "number" ? bounds.extend(coords) : coords.forEach(walk));
  walk(scope.geometry.coordinates);
  patrolMap.resize();
  patrolMap.fitBounds(bounds, { padding: 30, duration: 0 });
  await new Promise((resolve) => patrolMap.once("idle", resolve));
  state.patrolsShown = (state.patrolsShown || 0) + 1;
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("login-form").addEventListener("submit", submitLogin);
  $("logout").addEventListener("click", () => {
    session.logout();
    window.location.replace(window.location.pathname);
  });
  for (const tab of document.querySelectorAll(".tab[data-tab]")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  for (const id of ["f-category", "f-area", "f-level", "f-reporter", "f-overdue", "f-from", "f-to"]) {
    $(id).addEventListener("change", filtersChanged);
  }
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("case-duplicates").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-incident]");
    if (!link) return;
    event.preventDefault();
    openCase(Number(link.dataset.incident));
  });
  $("f-open").addEventListener("click", () => {
    renderStatusFilters(OPEN_STATUSES);
    filtersChanged();
  });
  $("f-reset").addEventListener("click", () => {
    $("filters").reset();
    renderStatusFilters(OPEN_STATUSES);
    filtersChanged();
  });
  $("page-next").addEventListener("click", () => {
    state.cursors.push(state.nextCursor);
    loadQueue().catch((err) => recordError(err.message));
  });
  $("page-prev").addEventListener("click", () => {
    state.cursors.pop();
    loadQueue().catch((err) => recordError(err.message));
  });
  $("case-close").addEventListener("click", () => {
    $("case").hidden = true;
    state.selected = null;
    renderQueue();
  });
  $("action-form").addEventListener("submit", (event) => submitAction(event).catch((err) => showCaseError(err.message)));
  $("action-cancel").addEventListener("click", () => {
    $("action-form").hidden = true;
  });
}

async function boot() {
  wire();
  const saved = session.store.load();
  if (!saved || !saved.user) {
    showLogin();
    return;
  }
  try {
    const { data } = await call("me");
    await start({ ...saved.user, ...data });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) recordError(err.message);
    showLogin();
  }
}

boot();
