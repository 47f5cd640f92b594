// The street office's map (docs/MAP.md): the region tree as the basemap, cells coloured by
// their cases' lights, incidents and clusters from /api/v1/map/tiles, the overdue and
// supervised cases beside it, an incident's detail and timeline, live through
// /api/v1/map/stream; an inspection campaign's progress per cell from its cells.geojson; for the
// city's command centre, citizens' requests sent with an address only, to place on the map.
// Everything comes from this server: no basemap, no CDN.
"use strict";

const TEXT = {
  zh: {
    title: "枫桥 · 网格地图", username: "用户名", password: "密码", signin: "登录", signout: "退出",
    open: "未结案", closed: "已结案", all: "全部", all_categories: "全部分类",
    red: "超时", yellow: "预警", green: "正常", overdue: "超时案件", supervised: "督办案件",
    none: "无", bad_login: "用户名或密码不对", failed: "请求失败", category: "分类", status: "状态",
    level: "层级", light: "信号灯", due: "办结时限", reported: "上报时间", address: "地址",
    timeline: "流转记录", close: "关闭", cases_open: "未结案件", empty: "暂无",
    accept: "立案", verify: "核查结案", dispatch: "派遣", dispatch_to: "派遣给", note: "说明",
    worker: "网格员", department: "部门", hotspots: "风险点", hotspot_reports: "近期上报", usual: "以往",
    campaign: "排查", no_campaign: "排查：不显示", done: "已完成", deadline: "截止",
    unlocated: "待定位市民上报", place: "在地图上定位", dismiss: "不予受理", place_here: "定位到此处",
    click_map: "请在地图上点击事发位置", dismiss_reason: "不予受理的理由", received: "收到", via: "来自",
  },
  en: {
    title: "Fengqiao · grid map", username: "User name", password: "Password", signin: "Sign in",
    signout: "Sign out", open: "Open", closed: "Closed", all: "All", all_categories: "All categories",
    red: "Overdue", yellow: "Due soon", green: "On time", overdue: "Overdue cases",
    supervised: "Under supervision", none: "None", bad_login: "Wrong user name or password",
    failed: "The request failed", category: "Category", status: "Status", level: "Level",
    light: "Light", due: "Due", reported: "Reported", address: "Address", timeline: "Timeline",
    close: "Close", cases_open: "Open cases", empty: "None", accept: "Accept", verify: "Verify and close",
    dispatch: "Dispatch", dispatch_to: "Dispatch to", note: "Note", worker: "Grid worker",
    department: "Department", hotspots: "Hotspots", hotspot_reports: "Reports lately", usual: "usually",
    campaign: "Inspection", no_campaign: "Inspection: none shown", done: "done", deadline: "due",
    unlocated: "Citizens' requests to place", place: "Place on the map", dismiss: "Dismiss",
    place_here: "Place it here", click_map: "Click the map where it is", dismiss_reason: "Why is it dismissed?",
    received: "Received", via: "via",
  },
};
const LIGHT_COLOURS = ["match", ["get", "light"], "red", "#d73027", "yellow", "#fdae61", "green", "#1a9850", "#d9d9d9"];
const QUICK_ACTIONS = ["accept", "verify"]; // actions that need nothing but the version (dispatch has a form)

let lang = localStorage.getItem("fq.lang") || "zh";
let token = sessionStorage.getItem("fq.token");
let map = null;
let tilesVersion = 0;
let streamAbort = null;

// GCJ-02 (国测局) offsets, for a basemap from a Chinese provider (docs/MAP.md): the same
// formula as geo/crs.py, on the Krasovsky ellipsoid; unchanged outside China's box.
const KRASOVSKY_A = 6378245.0, KRASOVSKY_EE = 0.00669342162296594323;
function wgs84ToGcj02([lon, lat]) {
  if (lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271) return [lon, lat];
  const x = lon - 105.0, y = lat - 35.0, pi = Math.PI;
  const common = (20 * Math.sin(6 * x * pi) + 20 * Math.sin(2 * x * pi)) * 2 / 3;
  let dlat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) + common +
    (20 * Math.sin(y * pi) + 40 * Math.sin(y / 3 * pi)) * 2 / 3 +
    (160 * Math.sin(y / 12 * pi) + 320 * Math.sin(y * pi / 30)) * 2 / 3;
  let dlon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) + common +
    (20 * Math.sin(x * pi) + 40 * Math.sin(x / 3 * pi)) * 2 / 3 +
    (150 * Math.sin(x / 12 * pi) + 300 * Math.sin(x / 30 * pi)) * 2 / 3;
  const radLat = lat * pi / 180, w = 1 - KRASOVSKY_EE * Math.sin(radLat) ** 2, sqrtW = Math.sqrt(w);
  dlat = dlat * 180 / (KRASOVSKY_A * (1 - KRASOVSKY_EE) / (w * sqrtW) * pi);
  dlon = dlon * 180 / (KRASOVSKY_A / sqrtW * Math.cos(radLat) * pi);
  return [lon + dlon, lat + dlat];
}
window.fengqiaoWgs84ToGcj02 = wgs84ToGcj02; // for the browser test, against geo/crs.py

let basemapCrs = "wgs84";
// where a WGS84 position is drawn: on a GCJ-02 basemap, where the basemap has it
const placed = (lngLat) => (basemapCrs === "gcj02" ? wgs84ToGcj02(lngLat) : lngLat);

// Web Mercator metres of a position
const EARTH_RADIUS = 6378137.0;
const mercator = ([lon, lat]) => [lon * Math.PI / 180 * EARTH_RADIUS,
  Math.log(Math.tan(Math.PI / 4 + lat * Math.PI / 360)) * EARTH_RADIUS];

// On a GCJ-02 basemap the tiles' layers are translated by the offset at the view's centre
// (recomputed as the map moves: exact at the centre, within metres across a street's view);
// the translation in pixels doubles with each zoom level.
const SHIFTED = { regions: "fill-translate", "regions-line": "line-translate", clusters: "circle-translate",
  incidents: "circle-translate", hotspots: "circle-translate", "campaign-cells": "fill-translate",
  "campaign-lines": "line-translate" };
function shiftToBasemap() {
  if (basemapCrs !== "gcj02") return;
  const centre = map.getCenter().toArray();
  const [x0, y0] = mercator(centre), [x1, y1] = mercator(wgs84ToGcj02(centre));
  const metresPerPixel = 2 * Math.PI * EARTH_RADIUS / 512; // at zoom 0 (MapLibre's 512-pixel world)
  const atZero = [(x1 - x0) / metresPerPixel, -(y1 - y0) / metresPerPixel]; // screen y points down
  const translate = ["interpolate", ["exponential", 2], ["zoom"], 0, ["literal", atZero], 24,
    ["literal", atZero.map((d) => d * 2 ** 24)]];
  for (const [layer, property] of Object.entries(SHIFTED)) map.setPaintProperty(layer, property, translate);
}

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] || key;
const label = (pair) => (pair ? pair[lang] || pair.zh : "");

function translate() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("lang").textContent = lang === "zh" ? "EN" : "中文";
  document.title = t("title");
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { signOut(); throw new Error("signed out"); }
  if (!response.ok) {
    let message = t("failed");
    try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

function signOut() {
  token = null;
  sessionStorage.removeItem("fq.token");
  if (streamAbort) streamAbort.abort();
  $("app").hidden = true;
  $("login").hidden = false;
}

async function signIn(event) {
  event.preventDefault();
  const form = new FormData($("login"));
  const response = await fetch("/api/v1/auth/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  if (!response.ok) { $("login-error").textContent = t("bad_login"); return; }
  token = (await response.json()).access_token;
  sessionStorage.setItem("fq.token", token);
  start();
}

function filters() {
  const params = new URLSearchParams();
  params.set("status_group", $("f-status").value);
  if ($("f-category").value) params.set("category", $("f-category").value);
  document.querySelectorAll("input[name=light]:checked").forEach((box) => params.append("light", box.value));
  return params;
}

function tileUrl() {
  const params = filters();
  params.set("v", String(tilesVersion));
  return `${location.origin}/api/v1/map/tiles/{z}/{x}/{y}.mvt?${params}`;
}

function refreshTiles() {
  tilesVersion += 1;
  const source = map && map.getSource("fq");
  if (source) source.setTiles([tileUrl()]);
}

function bounds(geometry) {
  let west = 180, south = 90, east = -180, north = -90;
  const walk = (c) => {
    if (typeof c[0] === "number") {
      west = Math.min(west, c[0]); east = Math.max(east, c[0]);
      south = Math.min(south, c[1]); north = Math.max(north, c[1]);
    } else c.forEach(walk);
  };
  walk(geometry.coordinates);
  return [[west, south], [east, north]];
}

function buildMap(scope, config) {
  const basemap = config.basemap;
  basemapCrs = basemap ? basemap.crs : "wgs84";
  const [southWest, northEast] = bounds(scope.geometry);
  const sources = { fq: { type: "vector", tiles: [tileUrl()], minzoom: 0, maxzoom: 22 },
    hotspots: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
    campaign: { type: "geojson", data: { type: "FeatureCollection", features: [] } } };
  const under = [{ id: "background", type: "background", paint: { "background-color": "#f4f1ea" } }];
  if (basemap) {
    sources.basemap = { type: "raster", tiles: [basemap.url], tileSize: 256, attribution: basemap.attribution };
    under.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  map = new maplibregl.Map({
    container: "map",
    bounds: [placed(southWest), placed(northEast)],
    fitBoundsOptions: { padding: 20 },
    canvasContextAttributes: { preserveDrawingBuffer: true }, // so that a screenshot shows the map
    transformRequest: (url) => (url.startsWith(`${location.origin}/api/`)
      ? { url, headers: { Authorization: `Bearer ${token}` } } : { url }),
    style: {
      version: 8,
      sources,
      layers: [
        ...under,
        { id: "regions", type: "fill", source: "fq", "source-layer": "regions",
          paint: { "fill-color": LIGHT_COLOURS, "fill-opacity": basemap ? 0.3 : 0.45 } },
        { id: "regions-line", type: "line", source: "fq", "source-layer": "regions",
          paint: { "line-color": "#4d4d4d", "line-width": 0.7 } },
        // an inspection campaign's cells (排查), coloured by their task's state (cells.geojson)
        { id: "campaign-cells", type: "fill", source: "campaign",
          paint: { "fill-color": ["get", "colour"], "fill-opacity": 0.65 } },
        { id: "campaign-lines", type: "line", source: "campaign",
          paint: { "line-color": "#333", "line-width": 1.2 } },
        { id: "clusters", type: "circle", source: "fq", "source-layer": "clusters",
          paint: {
            "circle-color": ["case", [">", ["get", "red"], 0], "#d73027", "#2b6cb0"],
            "circle-radius": ["interpolate", ["linear"], ["sqrt", ["get", "count"]], 1, 5, 30, 24],
            "circle-opacity": 0.75, "circle-stroke-color": "#fff", "circle-stroke-width": 1,
          } },
        { id: "incidents", type: "circle", source: "fq", "source-layer": "incidents",
          paint: { "circle-color": LIGHT_COLOURS, "circle-radius": 6, "circle-stroke-color": "#fff",
                   "circle-stroke-width": 1.5 } },
        { id: "hotspots", type: "circle", source: "hotspots",
          paint: { "circle-color": "rgba(118, 42, 131, 0.15)", "circle-radius": 18, "circle-stroke-color": "#762a83",
                   "circle-stroke-width": 2.5 } },
      ],
    },
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  map.on("click", "incidents", (e) => showIncident(e.features[0].id || e.features[0].properties.id));
  map.on("click", "clusters", (e) => map.easeTo({ center: e.lngLat, zoom: map.getZoom() + 2 }));
  map.on("click", "campaign-cells", (e) => {
    if (map.queryRenderedFeatures(e.point, { layers: ["incidents", "clusters"] }).length) return;
    const p = e.features[0].properties;
    new maplibregl.Popup().setLngLat(e.lngLat).setHTML(
      `<strong>${escapeHtml(lang === "zh" ? p.name : p.name_en || p.name)}</strong><br>` +
      `${escapeHtml(lang === "zh" ? p.label : p.label_en)}`).addTo(map);
  });
  map.on("click", "regions", (e) => {
    if (placing) return;
    if (map.queryRenderedFeatures(e.point, { layers: ["incidents", "clusters", "campaign-cells"] }).length) return;
    const p = e.features[0].properties;
    new maplibregl.Popup().setLngLat(e.lngLat).setHTML(
      `<strong>${escapeHtml(lang === "zh" ? p.name : p.name_en || p.name)}</strong><br>` +
      `${t("cases_open")}: ${p.open} · ${t("yellow")} ${p.yellow} · ${t("red")} ${p.red}`).addTo(map);
  });
  ["incidents", "clusters"].forEach((layer) => {
    map.on("mouseenter", layer, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", layer, () => { map.getCanvas().style.cursor = ""; });
  });
  map.on("idle", drawLabels);
  map.on("click", "hotspots", (e) => {
    const p = e.features[0].properties;
    const group = JSON.parse(p.category_group), region = JSON.parse(p.region);
    new maplibregl.Popup().setLngLat(e.lngLat).setHTML(
      `<strong>${escapeHtml(lang === "zh" ? region.name : region.name_en || region.name)}</strong><br>` +
      `${escapeHtml(lang === "zh" ? group.name : group.name_en)} · ${t("hotspot_reports")} ${p.reports}` +
      ` (${t("usual")} ${p.baseline_mean}) · p = ${Number(p.p_value).toPrecision(2)}`).addTo(map);
  });
  map.on("click", (e) => { if (placing) offerPlace(e.lngLat); });
  map.on("load", shiftToBasemap);
  map.on("moveend", shiftToBasemap);
  window.fengqiaoMap = map; // for the browser test: the rendered features
}

// Region names: the tiles' "labels" layer holds a point inside each region drawn; they are
// written as HTML over the map (MapLibre's own text needs glyph files this server does not
// have), most open cases first, skipping any that would overlap one already written.
let labelMarkers = [];
function drawLabels() {
  labelMarkers.forEach((marker) => marker.remove());
  labelMarkers = [];
  const width = map.getContainer().clientWidth, height = map.getContainer().clientHeight;
  const seen = new Set(), boxes = [];
  const features = map.querySourceFeatures("fq", { sourceLayer: "labels" })
    .sort((a, b) => (b.properties.open || 0) - (a.properties.open || 0));
  for (const feature of features) {
    if (seen.has(feature.id) || labelMarkers.length >= 150) continue;
    seen.add(feature.id);
    const p = feature.properties;
    const where = placed(feature.geometry.coordinates);
    const at = map.project(where);
    if (at.x < 0 || at.y < 0 || at.x > width || at.y > height) continue;
    const name = lang === "zh" ? p.name : p.name_en || p.name;
    const half = (name.length * (lang === "zh" ? 12 : 7) + (p.open ? 24 : 0)) / 2 + 2;
    const box = [at.x - half, at.y - 9, at.x + half, at.y + 9];
    if (boxes.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) continue;
    boxes.push(box);
    const element = document.createElement("div");
    element.className = "region-label";
    element.dataset.regionId = feature.id;
    element.innerHTML = escapeHtml(name) + (p.open ? `<b>${p.open}</b>` : "");
    labelMarkers.push(new maplibregl.Marker({ element }).setLngLat(where).addTo(map));
  }
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : "";
}

function caseItem(incident) {
  const li = document.createElement("li");
  li.dataset.id = incident.id;
  li.innerHTML = `<span class="light ${incident.light || "none"}"></span>#${incident.id} ` +
    `${escapeHtml(lang === "zh" ? incident.category.name : incident.category.name_en)} · ` +
    `${escapeHtml(label(incident.level_label))}`;
  li.addEventListener("click", () => showIncident(incident.id, true));
  return li;
}

async function loadLists() {
  const lists = { overdue: "overdue=true", supervised: "supervised=true" };
  for (const [id, query] of Object.entries(lists)) {
    const page = await api(`/api/v1/incidents?status_group=open&${query}&sort=due_at&page_size=50`);
    const list = $(id);
    list.replaceChildren(...page.items.map(caseItem));
    if (!page.items.length) list.innerHTML = `<li class="empty">${t("empty")}</li>`;
  }
}

async function showIncident(id, fly) {
  const incident = await api(`/api/v1/incidents/${id}`);
  if (fly && incident.location) {
    map.flyTo({ center: placed(incident.location.coordinates), zoom: Math.max(map.getZoom(), 15) });
  }
  const rows = [
    [t("category"), lang === "zh" ? incident.category.name : incident.category.name_en],
    [t("status"), label(incident.status_label)], [t("level"), label(incident.level_label)],
    [t("light"), label(incident.light_label) || t("none")], [t("due"), when(incident.due_at)],
    [t("reported"), when(incident.reported_at)], [t("address"), incident.address || ""],
  ];
  const detail = $("detail");
  detail.hidden = false;
  detail.innerHTML = `<h2>#${incident.id} <button type="button" id="detail-close">${t("close")}</button></h2>` +
    `<p>${escapeHtml(incident.description)}</p>` +
    `<dl>${rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join("")}</dl>` +
    `<div class="photos"></div><div class="actions"></div><h3>${t("timeline")}</h3><ol>` +
    incident.timeline.map((e) => `<li>${when(e.at)} ${escapeHtml(label(e.action_label))}` +
      `${e.actor ? " · " + escapeHtml(e.actor.display_name) : ""}` +
      `${e.note ? " — " + escapeHtml(e.note) : ""}</li>`).join("") + "</ol>";
  $("detail-close").addEventListener("click", () => { detail.hidden = true; });
  const actions = detail.querySelector(".actions");
  for (const name of incident.actions.filter((a) => QUICK_ACTIONS.includes(a))) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = name;
    button.textContent = t(name);
    button.addEventListener("click", () => act(incident, name, {}).catch((error) => alert(error.message)));
    actions.appendChild(button);
  }
  if (incident.actions.includes("dispatch")) {
    actions.appendChild(dispatchForm(incident, await api(`/api/v1/incidents/${incident.id}/dispatch-targets`)));
  }
  showPhotos(incident, detail.querySelector(".photos"));
}

// Photos need the bearer token: fetched as blobs and shown from object URLs.
async function showPhotos(incident, box) {
  for (const photo of incident.photos || []) {
    const response = await fetch(`/api/v1/incidents/${incident.id}/photos/${photo.id}`,
      { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) continue;
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = URL.createObjectURL(await response.blob());
    img.alt = label(photo.kind_label);
    img.addEventListener("click", () => window.open(img.src, "_blank"));
    const caption = document.createElement("figcaption");
    caption.textContent = label(photo.kind_label);
    figure.append(img, caption);
    box.appendChild(figure);
  }
}

async function act(incident, name, body) {
  await api(`/api/v1/incidents/${incident.id}/actions/${name}`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(Object.assign({ version: incident.version }, body)),
  });
  showIncident(incident.id);
  refreshTiles();
  loadLists();
}

function dispatchForm(incident, targets) {
  const form = document.createElement("form");
  form.className = "dispatch";
  const select = document.createElement("select");
  select.name = "assignee";
  select.setAttribute("aria-label", t("dispatch_to"));
  const area = (region) => (region ? ` (${lang === "zh" ? region.name : region.name_en || region.name})` : "");
  for (const w of targets.workers) {
    select.add(new Option(`${t("worker")} · ${w.display_name}${area(w.region)}`, `user:${w.id}`));
  }
  for (const d of targets.departments) {
    select.add(new Option(`${t("department")} · ${lang === "zh" ? d.name : d.name_en || d.name}${area(d.region)}`,
      `department:${d.id}`));
  }
  const note = document.createElement("input");
  note.name = "note";
  note.placeholder = t("note");
  const button = document.createElement("button");
  button.type = "submit";
  button.dataset.action = "dispatch";
  button.textContent = t("dispatch");
  form.append(select, note, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [kind, id] = select.value.split(":");
    const body = kind === "user" ? { assignee_id: Number(id) } : { department_id: Number(id) };
    if (note.value) body.note = note.value;
    try { await act(incident, "dispatch", body); } catch (error) { alert(error.message); }
  });
  return form;
}

// Hotspots (风险研判) of the user's region, for the managers who may read them: the cells
// whose reports this week exceed their own past (docs/STATS.md), as rings over the map.
const MANAGERS = ["admin", "city", "district", "street", "community"];
async function loadHotspots(me) {
  if (!MANAGERS.includes(me.role)) return;
  $("hotspots-toggle").hidden = false;
  const found = await api(`/api/v1/stats/regions/${me.region.id}/hotspots`);
  if (!map.getSource("hotspots")) await new Promise((resolve) => map.once("load", resolve));
  map.getSource("hotspots").setData(found.hotspots);
}

// Inspection campaigns (排查, docs/FIELD.md): the one chosen is drawn over the regions, each
// cell coloured by its task's state, with a legend in both languages and the counts.
let campaignCells = null;
async function loadCampaigns(me) {
  if (me.role === "department") return;
  const page = await api("/api/v1/campaigns?page_size=100");
  const select = $("f-campaign");
  const chosen = select.value;
  select.replaceChildren(select.options[0]);
  for (const c of page.items) select.add(new Option(`${c.title} (${label(c.state_label)})`, String(c.id)));
  select.value = page.items.some((c) => String(c.id) === chosen) ? chosen : "";
  select.hidden = !page.items.length;
}

async function showCampaign() {
  const id = $("f-campaign").value;
  campaignCells = id ? await api(`/api/v1/campaigns/${id}/cells.geojson`) : null;
  if (!map.getSource("campaign")) await new Promise((resolve) => map.once("load", resolve));
  map.getSource("campaign").setData(campaignCells || { type: "FeatureCollection", features: [] });
  drawCampaignLegend();
}

function drawCampaignLegend() {
  const box = $("campaign");
  box.hidden = !campaignCells;
  if (!campaignCells) return;
  const counts = {};
  for (const f of campaignCells.features) counts[f.properties.state] = (counts[f.properties.state] || 0) + 1;
  const total = campaignCells.features.length;
  const done = (counts.found || 0) + (counts.nothing_found || 0);
  $("campaign-title").textContent = campaignCells.campaign.title;
  const share = total ? ` (${Math.round(1000 * done / total) / 10}%)` : "";
  $("campaign-progress").textContent = `${t("done")} ${done}/${total}${share} · ` +
    `${t("deadline")} ${when(campaignCells.campaign.deadline)}`;
  const shown = campaignCells.legend.filter((item) => item.state !== "cancelled" || counts.cancelled);
  $("campaign-legend").replaceChildren(...shown.map((item) => {
    const li = document.createElement("li");
    li.dataset.state = item.state;
    const [first, second] = lang === "zh" ? [item.label, item.label_en] : [item.label_en, item.label];
    li.innerHTML = `<span class="swatch" style="background:${escapeHtml(item.colour)}"></span>` +
      `${escapeHtml(first)} <small>${escapeHtml(second)}</small><b>${counts[item.state] || 0}</b>`;
    return li;
  }));
}

// Citizens' requests that came through Open311 with an address only (docs/OPEN311.md): the
// city's command centre reads the address, clicks the spot on the map and the case is opened
// in the grid cell there; or dismisses the request. The click is in the basemap's
// coordinates (GCJ-02 on a Chinese basemap), sent with its crs.
let placing = null;
let placePopup = null;
async function loadUnlocated(me) {
  if (!["admin", "city"].includes(me.role)) return;
  await refreshUnlocated();
}

async function refreshUnlocated() {
  const page = await api("/api/v1/open311/unlocated?page_size=50");
  $("unlocated").hidden = false;
  $("unlocated-list").replaceChildren(...page.items.map(unlocatedItem));
  if (!page.items.length) $("unlocated-list").innerHTML = `<li>${t("empty")}</li>`;
}

function unlocatedItem(request) {
  const li = document.createElement("li");
  li.dataset.id = request.id;
  li.innerHTML = `<b>${escapeHtml(lang === "zh" ? request.category.name : request.category.name_en)}</b> · ` +
    `${escapeHtml(request.address_string)}<p>${escapeHtml(request.description || "")}</p>` +
    `<small>${t("received")} ${when(request.received_at)} · ${t("via")} ${escapeHtml(request.client)}</small><br>`;
  const place = document.createElement("button");
  place.type = "button";
  place.className = "place";
  place.textContent = t("place");
  place.addEventListener("click", () => startPlacing(request, li));
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "dismiss";
  dismiss.textContent = t("dismiss");
  dismiss.addEventListener("click", async () => {
    const reason = prompt(t("dismiss_reason"));
    if (!reason) return;
    try {
      await api(`/api/v1/open311/unlocated/${request.id}/dismiss`, { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ reason }) });
    } catch (error) { alert(error.message); }
    stopPlacing();
    refreshUnlocated();
  });
  li.append(place, dismiss);
  return li;
}

function startPlacing(request, li) {
  placing = request;
  document.querySelectorAll("#unlocated-list li").forEach((item) => item.classList.toggle("placing", item === li));
  $("unlocated-hint").textContent = `${t("click_map")}: ${request.address_string}`;
  map.getCanvas().style.cursor = "crosshair";
}

function stopPlacing() {
  placing = null;
  if (placePopup) placePopup.remove();
  $("unlocated-hint").textContent = "";
  document.querySelectorAll("#unlocated-list li.placing").forEach((item) => item.classList.remove("placing"));
  if (map) map.getCanvas().style.cursor = "";
}

function offerPlace(lngLat) {
  const request = placing;
  if (placePopup) placePopup.remove();
  const box = document.createElement("div");
  box.innerHTML = `<strong>${escapeHtml(request.address_string)}</strong><br>`;
  const confirm = document.createElement("button");
  confirm.type = "button";
  confirm.id = "place-here";
  confirm.textContent = t("place_here");
  confirm.addEventListener("click", async () => {
    try {
      const placed = await api(`/api/v1/open311/unlocated/${request.id}/place`, { method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ location: { type: "Point", coordinates: [lngLat.lng, lngLat.lat] }, crs: basemapCrs }) });
      stopPlacing();
      await refreshUnlocated();
      refreshTiles();
      showIncident(placed.incident_id);
    } catch (error) { $("unlocated-hint").textContent = error.message; }
  });
  box.append(confirm);
  placePopup = new maplibregl.Popup().setLngLat(lngLat).setDOMContent(box).addTo(map);
}

async function loadCategories() {
  const page = await api("/api/v1/categories?page_size=500");
  const select = $("f-category");
  select.replaceChildren(select.options[0]);
  for (const c of page.items) {
    const option = new Option(`${c.code} ${lang === "zh" ? c.name : c.name_en}`, c.code);
    select.add(option);
  }
}

// Server-sent events through fetch (EventSource cannot send the bearer token); when the
// server serves as many streams as it may, poll /map/changes instead.
// A busy street changes every few seconds; reloading every tile in view and both lists each
// time was most of the server's work at a morning peak (docs/BENCHMARKS.md, the load test).
// So a quiet map shows a change half a second after it happens, a busy one at most once every
// REFRESH_EVERY_MS, and the tiles only reload when a change falls in view.
const REFRESH_EVERY_MS = 15000;
const VIEW_MARGIN_DEGREES = 0.01; // ~1 km: more than a GCJ-02 basemap's shift, and a point at the edge

function inView(feature) {
  const c = feature && feature.geometry && feature.geometry.coordinates;
  if (!map || !c) return true;
  const b = map.getBounds();
  return c[0] >= b.getWest() - VIEW_MARGIN_DEGREES && c[0] <= b.getEast() + VIEW_MARGIN_DEGREES
    && c[1] >= b.getSouth() - VIEW_MARGIN_DEGREES && c[1] <= b.getNorth() + VIEW_MARGIN_DEGREES;
}

async function follow(cursor) {
  streamAbort = new AbortController();
  let pending = null, tilesToo = false, last = 0;
  const refresh = () => {
    pending = null;
    last = Date.now();
    if (tilesToo) refreshTiles();
    tilesToo = false;
    loadLists();
    if (campaignCells) showCampaign();
  };
  const onChange = (features) => {
    tilesToo = tilesToo || !features || features.some(inView);
    if (pending) return; // already due
    pending = setTimeout(refresh, Math.max(500, last + REFRESH_EVERY_MS - Date.now()));
  };
  while (token) {
    try {
      const headers = { Authorization: `Bearer ${token}` };
      if (cursor) headers["Last-Event-ID"] = cursor;
      const response = await fetch("/api/v1/map/stream", { headers, signal: streamAbort.signal });
      if (response.status === 503) {
        const page = await api(`/api/v1/map/changes${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`);
        if (cursor && page.features.length) onChange(page.features);
        cursor = page.cursor;
        await new Promise((resolve) => setTimeout(resolve, 5000));
        continue;
      }
      if (!response.ok) throw new Error(String(response.status));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block);
          const kind = /^event: (.*)$/m.exec(block);
          const data = /^data: (.*)$/m.exec(block);
          if (id) cursor = id[1];
          if (kind && kind[1] === "incidents") onChange(data ? JSON.parse(data[1]).features : null);
        }
      }
    } catch (error) {
      if (streamAbort.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
}

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  translate();
  try {
    const me = await api("/api/v1/me");
    const [scope, config] = await Promise.all([api(`/api/v1/regions/${me.region.id}?format=geojson`),
      api("/api/v1/map/config")]);
    if (map) map.remove();
    buildMap(scope, config);
    await Promise.all([loadCategories(), loadLists(), loadHotspots(me), loadCampaigns(me), loadUnlocated(me)]);
    follow(null);
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  translate();
  $("login").addEventListener("submit", signIn);
  $("logout").addEventListener("click", signOut);
  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("fq.lang", lang);
    translate();
    loadCategories();
    loadLists();
    drawCampaignLegend();
    if (!$("unlocated").hidden) refreshUnlocated();
    if (map) drawLabels();
  });
  $("f-campaign").addEventListener("change", () => showCampaign().catch((error) => alert(error.message)));
  ["f-status", "f-category"].forEach((id) => $(id).addEventListener("change", refreshTiles));
  $("f-hotspots").addEventListener("change", (e) => {
    if (map) map.setLayoutProperty("hotspots", "visibility", e.target.checked ? "visible" : "none");
  });
  document.querySelectorAll("input[name=light]").forEach((box) => box.addEventListener("change", refreshTiles));
  if (token) start(); else signOut();
});
