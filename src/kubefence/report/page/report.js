// kubefence report page: draws the data of kubefence.report._data (inlined as #kf-data).
// Why this file exists: the page's behaviour in one place, inlined by _html.render_html.
// Scale (issue 17, 10,000 pods in 1,000 namespaces): the matrices arrive zlib-compressed
// and are inflated with DecompressionStream; the graph lays out large clusters on a grid per
// tenant (no force layout) and draws the paths of the selected namespace only when there are
// too many to draw; the heat map shows groups of namespaces (tenants, split into blocks) with
// a drill-down when there are too many namespaces for one table, and a canvas when a view has
// too many cells for a table.
// Longer than our 400-line guide: it is one page's script, inlined as one script element;
// its sections (matrices, graph, heat map views, findings, diff) share the decoded data.
(async function () {
  "use strict";
  const LIMITS = {graphForce: 150, edges: 3000, heatNamespaces: 60, tableCells: 6400,
                  findings: 500};
  const times = window.kfTimes = {};  // ms since navigation start at each phase's end
  const mark = phase => { times[phase] = Math.round(performance.now()); };
  mark("start");
  const data = JSON.parse(document.getElementById("kf-data").textContent);
  if (data.findings && !Array.isArray(data.findings)) {
    // a table (render_html's _table): a string is [its index]; "#L<line>" was cut off hrefs
    const t = data.findings;
    data.findings = t.rows.map(row => {
      const f = {};
      t.fields.forEach((k, x) => {
        const v = row[x];
        f[k] = Array.isArray(v) ? t.strings[v[0]] : v;
      });
      if (f.hrefLine) f.href += "#L" + f.line;
      return f;
    });
  }
  const names = data.namespaces.map(n => n.name);
  const n = names.length;
  const index = new Map(names.map((name, i) => [name, i]));
  const sizes = data.sizes || names.map(() => 0);
  const colours = {error: "#c62828", warning: "#ef6c00", info: "#1565c0"};
  const el = (tag, text, attrs) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  };
  const plural = (k, word) => `${k} ${word}${k === 1 ? "" : "s"}`;

  // --- matrices: base64 -> inflate -> typed arrays; later ones are stored as differences --
  async function decodeMatrices(enc) {
    if (!enc || !enc.count) return [];
    const bytes = Uint8Array.from(atob(enc.deflate), c => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    const buffer = await new Response(stream).arrayBuffer();
    const Type = {uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array}[enc.dtype];
    const cells = enc.size * enc.size;
    const out = [];
    for (let k = 0; k < enc.count; k++) {
      const m = new Type(buffer, k * cells * Type.BYTES_PER_ELEMENT, cells);
      if (k > 0) for (let x = 0; x < cells; x++) m[x] += out[0][x];  // wraps around
      out.push(m);
    }
    return out;
  }
  const matrices = await decodeMatrices(data.matrices);
  mark("decoded");
  const allowedOf = (pc, i, j) => matrices[pc.matrix][i * n + j];
  const pairsOf = (i, j) => sizes[i] * sizes[j] - (i === j ? sizes[i] : 0);

  // cross-namespace paths: some port class allows some pod pair
  const reach = new Uint8Array(n * n);
  for (const m of matrices) for (let x = 0; x < n * n; x++) if (m[x]) reach[x] = 1;
  for (let i = 0; i < n; i++) reach[i * n + i] = 0;
  let pathCount = 0;
  for (let x = 0; x < n * n; x++) pathCount += reach[x];
  const tenantOf = data.namespaces.map(ns => ns.tenant || null);
  const crosses = (i, j) => Boolean(data.tenantLabel && tenantOf[i] && tenantOf[j] &&
                                    tenantOf[i] !== tenantOf[j]);
  const portsOf = (i, j) => data.portClasses.filter(pc => allowedOf(pc, i, j) > 0)
                                            .map(pc => pc.label);

  document.getElementById("summary").textContent =
    `${data.pods} pods in ${n} namespaces, ${data.policies} policies; ` +
    `${data.findings.length} findings; ${pathCount} cross-namespace paths` +
    (data.tenantLabel ? `; tenants by label ${data.tenantLabel}` : "");

  // --- graph -----------------------------------------------------------------------------
  const large = n > LIMITS.graphForce || pathCount > LIMITS.edges;
  const tenants = [...new Set(tenantOf.filter(t => t))].sort();
  // a small graph boxes each tenant's namespaces (compound nodes); a large one (compound
  // bounds cost seconds at 1,000 namespaces) writes the tenant's name above its block
  const positions = large ? gridPositions() : null;
  const elements = tenants.map(t => (
    {group: "nodes", data: {id: "tenant:" + t, label: t}, classes: "tenant",
     position: positions ? positions.tenants.get(t) : undefined}));
  data.namespaces.forEach((ns, i) => {
    const node = {
      group: "nodes",
      data: {id: "ns:" + ns.name, name: ns.name, label: ns.name,
             colour: colours[ns.severity] || "#2e7d32",
             size: 18 + Math.min(30, 3 * Math.sqrt(ns.pods))},
      classes: "namespace",
    };
    if (ns.tenant && !large) node.data.parent = "tenant:" + ns.tenant;
    if (positions) node.position = positions[i];
    elements.push(node);
  });
  const edge = (i, j) => ({
    group: "edges",
    data: {id: `e${i}-${j}`, source: "ns:" + names[i], target: "ns:" + names[j],
           ports: portsOf(i, j).join(", ")},
    classes: crosses(i, j) ? "cross" : "",
  });
  if (!large) {
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (reach[i * n + j]) {
      elements.push(edge(i, j));
    }
  }

  function gridPositions() {
    // one block per tenant (namespaces without one together), blocks on a grid: no layout
    // iterations, and tenants stay apart
    const blocks = new Map();
    tenantOf.forEach((t, i) => {
      const key = t || "";
      if (!blocks.has(key)) blocks.set(key, []);
      blocks.get(key).push(i);
    });
    const spacing = 70;
    const widest = Math.max(1, ...[...blocks.values()].map(b => Math.ceil(Math.sqrt(b.length))));
    const perRow = Math.max(1, Math.ceil(Math.sqrt(blocks.size)));
    const cell = (widest + 1.5) * spacing;
    const out = new Array(n);
    out.tenants = new Map();
    [...blocks.keys()].sort().forEach((key, b) => {
      const members = blocks.get(key);
      const cols = Math.ceil(Math.sqrt(members.length));
      const x0 = (b % perRow) * cell, y0 = Math.floor(b / perRow) * cell;
      if (key) out.tenants.set(key, {x: x0 + (cols - 1) * spacing / 2, y: y0 - spacing});
      members.forEach((i, k) => {
        out[i] = {x: x0 + (k % cols) * spacing, y: y0 + Math.floor(k / cols) * spacing};
      });
    });
    return out;
  }

  // the force layout may leave two namespaces on top of each other, and an edge between
  // them cannot be drawn: push such pairs apart before the first paint
  function separateOverlaps(event) {
    const nodes = event.cy.nodes(".namespace").toArray();
    for (let pass = 0; pass < 5; pass++) {
      let moved = false;
      for (let i = 0; i < nodes.length; i++) {
        for (let j = i + 1; j < nodes.length; j++) {
          const a = nodes[i].position(), b = nodes[j].position();
          const need = (nodes[i].width() + nodes[j].width()) / 2 + 4;
          const dx = b.x - a.x, dy = b.y - a.y, d = Math.hypot(dx, dy);
          if (d >= need) continue;
          const ux = d > 0 ? dx / d : 1, uy = d > 0 ? dy / d : 0, push = (need - d) / 2;
          nodes[i].position({x: a.x - ux * push, y: a.y - uy * push});
          nodes[j].position({x: b.x + ux * push, y: b.y + uy * push});
          moved = true;
        }
      }
      if (!moved) break;
    }
  }

  const cy = cytoscape({
    container: document.getElementById("graph"),
    elements: elements,
    style: [
      {selector: "node.namespace", style: {
        "background-color": "data(colour)", "label": "data(label)", "font-size": 10,
        "width": "data(size)", "height": "data(size)", "text-valign": "bottom",
        "min-zoomed-font-size": 7}},
      {selector: "node.tenant", style: {
        "label": "data(label)", "background-color": "#eef2f7", "border-color": "#90a4ae",
        "text-valign": "top", "font-weight": "bold", "font-size": 12}},
      {selector: "node.tenant:childless", style: {
        "background-opacity": 0, "border-width": 0, "font-size": 48, "text-valign": "center",
        "color": "#607d8b", "events": "no"}},
      {selector: "edge", style: {
        "width": 1, "line-color": "#9aa5b1", "target-arrow-color": "#9aa5b1",
        "target-arrow-shape": "triangle", "curve-style": large ? "straight" : "bezier",
        "arrow-scale": 0.7, "opacity": 0.7}},
      {selector: "edge.cross", style: {
        "line-color": "#c62828", "target-arrow-color": "#c62828", "width": 2,
        "line-style": "dashed", "opacity": 0.9}},
      {selector: "node.namespace:selected", style: {
        "border-width": 3, "border-color": "#0d47a1"}},
    ],
    layout: large ? {name: "preset", fit: true, padding: 20}
      : {name: "cose", animate: false, randomize: false, nodeDimensionsIncludeLabels: true,
         stop: separateOverlaps},
    hideEdgesOnViewport: large,
    textureOnViewport: large,
  });
  cy.nodes(".namespace").forEach(node => {
    const ns = data.namespaces[index.get(node.data("name"))];
    node.scratch("title", `${ns.name}: ${ns.pods} pods, ingress isolated ` +
      `${ns.ingressIsolated}, egress isolated ${ns.egressIsolated}, ${ns.findings} findings`);
  });
  const graphNote = document.getElementById("graph-note");
  if (large && pathCount) {
    graphNote.textContent = `${plural(pathCount, "path")}: too many to draw at once; ` +
      "click a namespace to draw the paths from and to it.";
  }
  function showPathsOf(name) {
    if (!large) return;
    cy.batch(() => {
      cy.edges().remove();
      if (name === null) return;
      const f = index.get(name), added = [];
      for (let k = 0; k < n && added.length < LIMITS.edges; k++) {
        if (reach[f * n + k]) added.push(edge(f, k));
        if (reach[k * n + f]) added.push(edge(k, f));
      }
      cy.add(added);
    });
  }
  window.kfGraph = cy;
  mark("graph");

  // --- heat map ----------------------------------------------------------------------------
  const select = document.getElementById("port-class");
  data.portClasses.forEach((pc, k) => {
    select.appendChild(el("option", `${pc.label} (${pc.ports})`, {value: String(k)}));
  });
  const firstTcp = data.portClasses.findIndex(pc => pc.label.endsWith("/TCP"));
  if (firstTcp >= 0) select.value = String(firstTcp);

  // groups of namespaces for the overview of a large cluster: tenants, split into blocks
  const groups = [];
  if (n > LIMITS.heatNamespaces) {
    const per = Math.max(10, Math.ceil(Math.sqrt(n)));
    const byTenant = new Map();
    names.forEach((_, i) => {
      const key = data.tenantLabel ? (tenantOf[i] || "(no tenant)") : "";
      if (!byTenant.has(key)) byTenant.set(key, []);
      byTenant.get(key).push(i);
    });
    for (const key of [...byTenant.keys()].sort()) {
      const members = byTenant.get(key);
      const parts = Math.ceil(members.length / per);
      for (let p = 0; p < parts; p++) {
        const part = members.slice(p * per, (p + 1) * per);
        const range = `${names[part[0]]} … ${names[part[part.length - 1]]}`;
        const label = key === "" ? range : parts > 1 ? `${key} ${p + 1}/${parts}` : key;
        groups.push({label, members: part,
                     title: `${label}: ${plural(part.length, "namespace")}, ${range}`});
      }
    }
  }
  let view = {mode: groups.length ? "groups" : "all"};

  function describe(pc, rows, cols, a, p, why) {
    let text = `${rows} -> ${cols} on ${pc.label}: ${a} of ${p} pod pairs allowed`;
    if (why) text += `\n${why}`;
    return text;
  }
  function whyOf(pc, i, j, a) {
    if (i === j || !a) return null;
    const why = pc.why[`${i},${j}`];
    if (why) return why;
    return "(not explained: more than the report explains; use kubefence explain)";
  }

  // a view: row and column keys, their labels, and a cell -> {a, p, title}
  function namespaceView(pc, rows, cols) {
    return {
      kind: "ns", rows, cols, label: i => names[i],
      cell: (i, j) => {
        const a = allowedOf(pc, i, j), p = pairsOf(i, j);
        return {a, p, title: describe(pc, names[i], names[j], a, p, whyOf(pc, i, j, a))};
      },
    };
  }
  function groupView(pc) {
    const k = groups.length, a = new Float64Array(k * k), p = new Float64Array(k * k);
    const m = matrices[pc.matrix], groupOf = new Int32Array(n);
    groups.forEach((g, gi) => { for (const i of g.members) groupOf[i] = gi; });
    for (let i = 0; i < n; i++) {
      const gi = groupOf[i] * k;
      for (let j = 0; j < n; j++) {
        a[gi + groupOf[j]] += m[i * n + j];
        p[gi + groupOf[j]] += pairsOf(i, j);
      }
    }
    const all = groups.map((_, gi) => gi);
    return {
      kind: "group", rows: all, cols: all, label: gi => groups[gi].label,
      title: gi => groups[gi].title,
      cell: (gi, gj) => ({a: a[gi * k + gj], p: p[gi * k + gj],
        title: describe(pc, groups[gi].label, groups[gj].label, a[gi * k + gj], p[gi * k + gj],
                        "click to see these namespaces")}),
    };
  }
  function currentView(pc) {
    if (view.mode === "groups") return groupView(pc);
    if (view.mode === "block") {
      return namespaceView(pc, groups[view.src].members, groups[view.dst].members);
    }
    const everyone = names.map((_, i) => i);
    if (view.mode === "focus") {
      const f = index.get(view.name), rows = [], cols = [];
      for (const i of everyone) {
        if (i === f || allowedOf(pc, i, f) > 0) rows.push(i);
        if (i === f || allowedOf(pc, f, i) > 0) cols.push(i);
      }
      return namespaceView(pc, rows, cols);
    }
    return namespaceView(pc, everyone, everyone);
  }
  const shade = (a, p) => p === 0 ? "#fafafa" : `rgba(198, 40, 40, ${a ? 0.15 + 0.85 * a / p : 0})`;
  const selectedName = () => view.mode === "focus" ? view.name : null;

  function drawTable(v, host) {
    const table = host.appendChild(el("table", null, {id: "heatmap"}));
    const attr = v.kind === "group" ? "data-group" : "data-ns";
    const head = el("tr");
    head.appendChild(el("th", "from \\ to"));
    for (const j of v.cols) {
      const label = v.label(j);
      head.appendChild(el("th", label, {[attr]: label, title: v.title ? v.title(j) : label,
        class: label === selectedName() ? "selected" : ""}));
    }
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const i of v.rows) {
      const label = v.label(i);
      const tr = el("tr", null, {[attr]: label});
      tr.appendChild(el("th", label, {class: label === selectedName() ? "selected" : "",
                                      title: v.title ? v.title(i) : label}));
      for (const j of v.cols) {
        const c = v.cell(i, j);
        const td = el("td", null, {title: c.title, "data-src": label, "data-dst": v.label(j),
                                   "data-allowed": String(c.a)});
        if (v.kind === "group") {
          td.dataset.row = String(i);
          td.dataset.col = String(j);
        }
        td.style.background = shade(c.a, c.p);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function drawCanvas(v, host) {
    // too many cells for a table: one canvas, the cell under the mouse explained in a tip
    const cell = Math.max(2, Math.min(14, Math.floor(1100 / Math.max(v.cols.length, 1))));
    const margin = cell >= 10 ? 120 : 0;
    const canvas = host.appendChild(el("canvas", null, {id: "heatmap-canvas"}));
    canvas.width = margin + cell * v.cols.length;
    canvas.height = margin + cell * v.rows.length;
    const g = canvas.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, canvas.width, canvas.height);
    v.rows.forEach((i, r) => v.cols.forEach((j, c) => {
      const x = v.cell(i, j);
      g.fillStyle = shade(x.a, x.p);
      g.fillRect(margin + c * cell, margin + r * cell, cell - (cell > 3), cell - (cell > 3));
    }));
    if (margin) {
      g.fillStyle = "#1d232a";
      g.font = `${Math.min(11, cell)}px system-ui, sans-serif`;
      v.rows.forEach((i, r) => g.fillText(v.label(i).slice(0, 18), 2, margin + (r + 0.8) * cell));
    }
    const at = evt => {
      const box = canvas.getBoundingClientRect();
      const c = Math.floor((evt.clientX - box.left - margin) / cell);
      const r = Math.floor((evt.clientY - box.top - margin) / cell);
      return r >= 0 && c >= 0 && r < v.rows.length && c < v.cols.length ? [r, c] : null;
    };
    const tip = document.getElementById("heat-tip");
    canvas.addEventListener("mousemove", evt => {
      const rc = at(evt);
      tip.hidden = rc === null;
      if (rc === null) return;
      tip.textContent = v.cell(v.rows[rc[0]], v.cols[rc[1]]).title;
      tip.style.left = `${evt.pageX + 12}px`;
      tip.style.top = `${evt.pageY + 12}px`;
    });
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    canvas.addEventListener("click", evt => {
      const rc = at(evt);
      if (rc !== null) setFocus(names[v.rows[rc[0]]]);
    });
  }

  function drawHeat() {
    const host = document.getElementById("heat-host");
    host.textContent = "";
    const pc = data.portClasses[Number(select.value)];
    window.kfHeat = null;
    if (!pc) return;
    const v = currentView(pc);
    window.kfHeat = {mode: view.mode, rows: v.rows.map(v.label), cols: v.cols.map(v.label)};
    (v.rows.length * v.cols.length <= LIMITS.tableCells ? drawTable : drawCanvas)(v, host);
    const label = document.getElementById("filter");
    label.textContent = view.mode === "focus" ? `namespace ${view.name} and its peers`
      : view.mode === "block"
        ? `namespaces of ${groups[view.src].label} -> ${groups[view.dst].label}`
        : view.mode === "groups"
          ? `${n} namespaces in ${groups.length} groups: click a cell to see its namespaces`
          : "";
    document.getElementById("clear-filter").hidden = !["focus", "block"].includes(view.mode);
  }

  function setFocus(name) {
    view = name !== null ? {mode: "focus", name} : {mode: groups.length ? "groups" : "all"};
    showPathsOf(name);
    drawHeat();
  }
  select.addEventListener("change", drawHeat);
  document.getElementById("clear-filter").addEventListener("click", () => setFocus(null));
  document.getElementById("heat-host").addEventListener("click", evt => {
    const td = evt.target.closest("td[data-row]");
    if (td === null) return;
    view = {mode: "block", src: Number(td.dataset.row), dst: Number(td.dataset.col)};
    drawHeat();
  });
  cy.on("tap", "node.namespace", evt => setFocus(evt.target.data("name")));
  cy.on("tap", evt => { if (evt.target === cy) setFocus(null); });
  window.kfFocus = setFocus;
  drawHeat();
  mark("heat");

  // --- findings ----------------------------------------------------------------------------
  const fbody = document.querySelector("#findings tbody");
  function findingRows(from, to) {
    const rows = document.createDocumentFragment();
    for (const f of data.findings.slice(from, to)) {
      const tr = el("tr", null, {"data-rule": f.rule, "data-namespace": f.namespace || ""});
      tr.appendChild(el("td")).appendChild(el("span", f.severity, {class: "sev " + f.severity}));
      tr.appendChild(el("td", f.rule));
      const where = tr.appendChild(el("td"));
      if (f.file) {
        const text = f.line ? `${f.file}:${f.line}` : f.file;
        where.appendChild(el("a", text, {href: f.href, class: "location"}));
      }
      tr.appendChild(el("td", (f.object || "") + (f.path ? " " + f.path : "")));
      tr.appendChild(el("td", f.message));
      tr.appendChild(el("td", f.fix));
      rows.appendChild(tr);
    }
    fbody.appendChild(rows);
  }
  findingRows(0, LIMITS.findings);
  const more = document.getElementById("more-findings");
  if (data.findings.length > LIMITS.findings) {
    more.hidden = false;
    more.textContent = `show all ${data.findings.length} findings`;
    more.addEventListener("click", () => {
      more.hidden = true;
      findingRows(LIMITS.findings, data.findings.length);
    });
  }

  // --- diff --------------------------------------------------------------------------------
  if (data.diff !== null && data.diff !== undefined) {
    document.getElementById("diff-section").hidden = false;
    const dbody = document.querySelector("#diff tbody");
    for (const d of data.diff) {
      const tr = el("tr", null, {class: d.type});
      for (const v of [d.type, d.source, d.destination, d.before, d.after, d.info]) {
        tr.appendChild(el("td", v));
      }
      dbody.appendChild(tr);
    }
    if (!data.diff.length) {
      dbody.appendChild(el("tr")).appendChild(el("td", "no change", {colspan: "6"}));
    }
  }
  mark("tables");
  // ready once the graph and the heat map have been painted: the open time benchmarks report
  await new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 0)));
  window.kfReadyMs = performance.now();  // since navigation start
  window.__kfReady = window.kfReadyMs;
  document.body.setAttribute("data-ready", "true");
})().catch(err => {
  document.body.setAttribute("data-ready", "error");
  console.error("kubefence report: " + err);
});
