// What the supervisors' pages share: labels of the closed loop, DOM helpers, China-time
// formatting, and the session (tokens in sessionStorage, never a cookie; the API called on this
// page's own origin only, with one refresh-and-retry on 401).
//
// The storage key is the map page's, so one login serves /map and /workbench in a tab.

export const STORAGE_KEY = "gridgov.map.auth";

// Every status of the closed loop (GB/T 30428), in the order of the loop (colours as on /map).
export const STATUSES = [
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
export const STATUS_BY_CODE = Object.fromEntries(STATUSES.map((s) => [s.code, s]));
export const OPEN_STATUSES = STATUSES.filter((s) => s.open).map((s) => s.code);
export const ACTION_LABELS = {
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
export const PRIORITY_LABELS = { urgent: "紧急", high: "高", normal: "一般", low: "低" };
export const ROLE_LABELS = { supervisor: "监督员", admin: "管理员", worker: "网格员" };
export const DUTY_LABELS = {
  grid_head: "网格长",
  full_time: "专职网格员",
  part_time: "兼职网格员",
  supervisor: "监督员",
};

export const $ = (id) => document.getElementById(id);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
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

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : timeFormat.format(date);
}

export function statusLabel(code) {
  return STATUS_BY_CODE[code] ? STATUS_BY_CODE[code].label : code || "—";
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// The session of one page: `onEnded` runs when the tokens can no longer be renewed.
export function createSession({ api, onEnded }) {
  const store = {
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

  const fresh = (s) => s && s.access && Date.now() < s.expiresAt - 30000;

  function refresh() {
    if (!refreshing) {
      refreshing = (async () => {
        const current = store.load();
        if (!current || !current.refresh) throw new Error("not logged in");
        const response = await fetch(`${api}/auth/refresh`, {
          method: "POST",
          headers: { Authorization: `Bearer ${current.refresh}`, Accept: "application/json" },
          credentials: "omit",
        });
        if (!response.ok) {
          store.clear();
          throw new Error("session expired");
        }
        const data = await response.json();
        store.save({
          ...current,
          access: data.access_token,
          refresh: data.refresh_token || current.refresh,
          expiresAt: Date.now() + data.expires_in * 1000,
        });
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function token() {
    if (!fresh(store.load())) await refresh();
    return store.load().access;
  }

  // One call to our own API: {status, data, headers}; ApiError when not 2xx (or `allow`ed).
  async function request(path, { method = "GET", json, headers = {}, allow = [], raw } = {}) {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      let access;
      try {
        access = await token();
      } catch {
        onEnded();
        throw new ApiError(401, { message: "登录已过期" });
      }
      const response = await fetch(path.startsWith("/") ? path : `${api}/${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${access}`,
          Accept: "application/json",
          ...(json === undefined ? {} : { "Content-Type": "application/json" }),
          ...headers,
        },
        body: json === undefined ? undefined : JSON.stringify(json),
        credentials: "omit",
      });
      if (response.status === 401 && attempt === 0) {
        await refresh().catch(() => {});
        continue;
      }
      if (raw && response.ok) return { status: response.status, response };
      const data = await response.json().catch(() => null);
      if (!response.ok && !allow.includes(response.status)) {
        if (response.status === 401) onEnded();
        throw new ApiError(response.status, data);
      }
      return { status: response.status, data, headers: response.headers };
    }
    throw new ApiError(401, null);
  }

  async function login(username, password) {
    const response = await fetch(`${api}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "omit",
      body: JSON.stringify({ username, password }),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    store.save({
      access: data.access_token,
      refresh: data.refresh_token,
      expiresAt: Date.now() + data.expires_in * 1000,
      user: data.user,
    });
    return data.user;
  }

  return { store, request, login, logout: () => store.clear() };
}
