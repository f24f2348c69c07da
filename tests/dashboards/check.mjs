// Checks the Grafana dashboards, the Grafana provisioning files and the Prometheus configuration
// of this repository. Run through validate.sh, which installs the pinned npm packages first:
//
//   node check.mjs SOURCE_DIR SCRATCH_DIR NODE_MODULES_DIR
//
// What it checks (every failure is printed with the file and the JSON path it is about):
//  1. deploy/grafana/provisioning/datasources/*.yaml and dashboards/*.yaml parse and have the
//     fields Grafana needs; datasource uids are unique; the Prometheus (sgt-prometheus) and SQLite
//     (sgt-sqlite) datasources the dashboards use are defined.
//  2. Every dashboards/*.json: parses; has a title and a uid (unique across dashboards, a valid
//     Grafana uid); has the schemaVersion of the pinned @grafana/schema; no import-only parts
//     (__inputs, ${DS_...}); panel ids unique, nested rows included; grid positions inside the
//     24-column grid and not overlapping; xycharts have a pluginVersion; every datasource
//     reference (panels, queries, variables, annotations) is an object {type, uid} naming a
//     provisioned datasource with its type; no panel or query relies on a default datasource; refIds unique per panel;
//     every $variable used in a query, title or repeat is defined (Prometheus queries may use
//     only the dashboard's variables and $__rate_interval, $__interval, $__range).
//  3. Every Prometheus expression (panels, annotations, and the selectors of label_values()
//     variables), with variables replaced by sample values, parses: `promtool check rules`.
//  4. Every dashboard against the TypeScript types of @grafana/schema (schema.ts): one generated
//     .ts file per dashboard, `tsc --strict --noEmit`.
//  5. `promtool check config deploy/prometheus/prometheus.yml` (it also reads the file_sd
//     target files), its jobs are sgt-coordinator and sgt-worker, and its global scrape
//     interval is on the one line tests rewrite, which still passes rewritten to 1s.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { tscErrors } from '../lib/tsc.mjs';

const [srcDir, scratchDir, modulesDir] = process.argv.slice(2);
if (!srcDir || !scratchDir || !modulesDir) {
  console.error('usage: node check.mjs SOURCE_DIR SCRATCH_DIR NODE_MODULES_DIR');
  process.exit(2);
}
const require = createRequire(path.join(modulesDir, 'index.js'));
const YAML = require('yaml');
const { defaultDashboard } = require('@grafana/schema');
const schemaVersion = defaultDashboard.schemaVersion;
const schemaPackageVersion = require('@grafana/schema/package.json').version;

const rel = (p) => path.relative(srcDir, p);
const errors = [];
const fail = (where, message) => errors.push(`${where}: ${message}`);
const passed = [];
const notes = [];

const UID_RE = /^[a-zA-Z0-9_-]{1,40}$/;
const GRID_COLUMNS = 24;
// Grafana's own variables that Prometheus queries here may use (a live test substitutes them).
const PROM_BUILTINS = new Set(['__rate_interval', '__interval', '__range']);
// Grafana's global variables, allowed in titles and non-Prometheus queries.
const GLOBAL_VARS = new Set([
  ...PROM_BUILTINS,
  '__interval_ms', '__range_s', '__range_ms', '__rate_interval_ms', '__from', '__to',
  '__dashboard', '__org', '__user', '__name', '__timezone', '__all_variables',
  '__url_time_range', '__timeFilter', '__field', '__series', '__value', '__data', '__cell',
]);
const VAR_RE = /\$(\w+)|\$\{(\w+)(?:[:.][^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]/g;

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail(rel(file), `cannot read: ${e.message}`);
    return null;
  }
}

function readYaml(file) {
  const text = readText(file);
  if (text == null) return null;
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    for (const e of doc.errors) fail(rel(file), `YAML: ${e.message}`);
    return null;
  }
  return doc.toJS();
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// 1. Provisioning.

const provDir = path.join(srcDir, 'deploy/grafana/provisioning');
const datasources = new Map(); // uid -> {type, name, file}

// Calls fn(entry, where) for every entry of the list `key` in each provisioning file
// deploy/grafana/provisioning/<sub>/*.yaml, after checking the file's shape. Returns the directory.
function forEachProvisioned(sub, key, what, fn) {
  const dir = path.join(provDir, sub);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort() : [];
  if (!files.length) fail(rel(dir), `no ${what} file (*.yaml)`);
  for (const f of files) {
    const where = rel(path.join(dir, f));
    const doc = readYaml(path.join(dir, f));
    if (!doc) continue;
    if (doc.apiVersion !== 1) fail(where, `apiVersion must be 1, is ${JSON.stringify(doc.apiVersion)}`);
    if (!Array.isArray(doc[key]) || !doc[key].length) {
      fail(where, `${key} must be a non-empty list`);
      continue;
    }
    doc[key].forEach((entry, i) => {
      const w = `${where} ${key}[${i}]`;
      if (!isObject(entry)) return fail(w, 'not a mapping');
      fn(entry, w);
    });
  }
  return dir;
}

function checkDatasourceProvisioning() {
  const names = new Set();
  const dir = forEachProvisioned('datasources', 'datasources', 'datasource provisioning', (ds, w) => {
    for (const key of ['name', 'type', 'uid']) {
      if (typeof ds[key] !== 'string' || !ds[key]) fail(w, `${key} must be a non-empty string`);
    }
    if (typeof ds.uid === 'string' && !UID_RE.test(ds.uid)) fail(w, `uid ${JSON.stringify(ds.uid)} is not a valid Grafana uid`);
    if (ds.access !== undefined && ds.access !== 'proxy') fail(w, `access must be proxy (server side), is ${JSON.stringify(ds.access)}`);
    if (ds.jsonData !== undefined && !isObject(ds.jsonData)) fail(w, 'jsonData must be a mapping');
    if (names.has(ds.name)) fail(w, `duplicate datasource name ${JSON.stringify(ds.name)}`);
    names.add(ds.name);
    if (datasources.has(ds.uid)) fail(w, `duplicate datasource uid ${JSON.stringify(ds.uid)}`);
    else if (typeof ds.uid === 'string') datasources.set(ds.uid, { type: ds.type, name: ds.name, ds, where: w });
  });
  // The datasources the project's dashboards are written against (docs/dashboards.md).
  const prom = datasources.get('sgt-prometheus');
  if (!prom) fail(rel(dir), 'no datasource with uid sgt-prometheus');
  else {
    if (prom.type !== 'prometheus') fail(prom.where, `sgt-prometheus must have type prometheus, has ${prom.type}`);
    if (typeof prom.ds.url !== 'string' || !/^https?:\/\/[^/]+/.test(prom.ds.url)) fail(prom.where, 'url must be the Prometheus http(s) URL');
  }
  const sqlite = datasources.get('sgt-sqlite');
  if (!sqlite) fail(rel(dir), 'no datasource with uid sgt-sqlite');
  else {
    if (sqlite.type !== 'frser-sqlite-datasource') fail(sqlite.where, `sgt-sqlite must have type frser-sqlite-datasource, has ${sqlite.type}`);
    const p = sqlite.ds.jsonData?.path;
    if (typeof p !== 'string' || !path.isAbsolute(p)) fail(sqlite.where, 'jsonData.path must be the absolute path of the SQLite file');
  }
  passed.push(`datasource provisioning: ${datasources.size} datasources (${[...datasources.keys()].join(', ')})`);
}

function checkDashboardProvisioning() {
  let providers = 0;
  forEachProvisioned('dashboards', 'providers', 'dashboard provider', (p, w) => {
    if (typeof p.name !== 'string' || !p.name) fail(w, 'name must be a non-empty string');
    if (p.type !== 'file') fail(w, `type must be file, is ${JSON.stringify(p.type)}`);
    const dirPath = p.options?.path;
    if (typeof dirPath !== 'string' || !path.isAbsolute(dirPath)) fail(w, 'options.path must be an absolute directory');
    providers++;
  });
  passed.push(`dashboard provisioning: ${providers} provider(s)`);
}

// ---------------------------------------------------------------------------------------------
// 2. Dashboards.

const dashboardsDir = path.join(srcDir, 'dashboards');
const dashboards = []; // {file, name, json}

function loadDashboards() {
  const files = fs.existsSync(dashboardsDir)
    ? fs.readdirSync(dashboardsDir).filter((f) => f.endsWith('.json')).sort()
    : [];
  if (!files.length) fail('dashboards', 'no dashboards/*.json');
  for (const f of files) {
    const file = path.join(dashboardsDir, f);
    const text = readText(file);
    if (text == null) continue;
    try {
      dashboards.push({ file, where: rel(file), name: f.replace(/\.json$/, ''), json: JSON.parse(text), text });
    } catch (e) {
      fail(rel(file), `invalid JSON: ${e.message}`);
    }
  }
}

function checkRef(ref, where, { required = true } = {}) {
  if (ref === undefined || ref === null) {
    if (required) fail(where, 'no datasource: name the datasource ({"type": ..., "uid": ...}), never rely on the default one');
    return null;
  }
  if (typeof ref === 'string') {
    fail(where, `datasource ${JSON.stringify(ref)} is a name or variable; use {"type": ..., "uid": ...} of a provisioned datasource`);
    return null;
  }
  if (!isObject(ref) || typeof ref.uid !== 'string' || typeof ref.type !== 'string') {
    fail(where, `datasource ${JSON.stringify(ref)} must be {"type": ..., "uid": ...}`);
    return null;
  }
  const ds = datasources.get(ref.uid);
  if (!ds) {
    fail(where, `datasource uid ${JSON.stringify(ref.uid)} is not provisioned (deploy/grafana/provisioning/datasources: ${[...datasources.keys()].join(', ')})`);
    return null;
  }
  if (ds.type !== ref.type) {
    fail(where, `datasource ${ref.uid} has type ${ds.type} in the provisioning file, not ${ref.type}`);
    return null;
  }
  return ds;
}

function variableRefs(text) {
  const names = [];
  for (const m of String(text).matchAll(VAR_RE)) names.push(m[1] ?? m[2] ?? m[3]);
  return names;
}

function checkVariables(text, where, defined, allowedBuiltins) {
  for (const name of variableRefs(text)) {
    if (defined.has(name)) continue;
    if (name.startsWith('__') && allowedBuiltins.has(name)) continue;
    if (name.startsWith('__')) fail(where, `uses $${name}: only ${[...allowedBuiltins].map((b) => '$' + b).join(', ')} are allowed here`);
    else fail(where, `uses $${name}, which is not a variable of this dashboard (${[...defined].map((v) => '$' + v).join(', ') || 'none'})`);
  }
}

// Sample values for promtool's parser: a regex alternation for dashboard variables (they are only
// used as =~ matchers), durations for the interval variables.
function substituteForParse(expr) {
  return expr.replace(VAR_RE, (_, a, b, c) => {
    const name = a ?? b ?? c;
    if (name === '__rate_interval' || name === '__interval') return '1m';
    if (name === '__range') return '1h';
    return 'a|b';
  });
}

const promExprs = []; // {where, expr}

function checkDashboard(d, uids, titles) {
  const { json, where } = d;
  if (!isObject(json)) return fail(where, 'the dashboard must be a JSON object');
  if (typeof json.title !== 'string' || !json.title.trim()) fail(where, 'title must be a non-empty string');
  else if (titles.has(json.title)) fail(where, `title ${JSON.stringify(json.title)} is also ${titles.get(json.title)}'s`);
  else titles.set(json.title, where);
  if (typeof json.uid !== 'string' || !UID_RE.test(json.uid)) fail(where, `uid ${JSON.stringify(json.uid)} must be 1-40 characters of a-z, A-Z, 0-9, - and _`);
  else if (uids.has(json.uid)) fail(where, `uid ${JSON.stringify(json.uid)} is also ${uids.get(json.uid)}'s`);
  else uids.set(json.uid, where);
  if (json.id !== undefined && json.id !== null) fail(where, 'id must be null or absent: Grafana assigns it, provisioned dashboards are found by uid');
  if (json.schemaVersion !== schemaVersion) {
    fail(where, `schemaVersion is ${json.schemaVersion}; the pinned @grafana/schema ${schemaPackageVersion} is version ${schemaVersion} (tests/dashboards/package.json)`);
  }
  for (const key of ['__inputs', '__requires', '__elements']) {
    if (key in json) fail(where, `${key}: export "for sharing externally" makes an import template; provisioned dashboards must not have it`);
  }
  if (d.text.includes('${DS_')) fail(where, 'contains a ${DS_...} datasource input; reference the provisioned datasource uid instead');

  // Variables.
  const defined = new Set();
  const list = json.templating?.list ?? [];
  if (!Array.isArray(list)) fail(`${where} templating.list`, 'must be a list');
  (Array.isArray(list) ? list : []).forEach((v, i) => {
    const w = `${where} templating.list[${i}]${v?.name ? ` ($${v.name})` : ''}`;
    if (!isObject(v)) return fail(w, 'not an object');
    if (typeof v.name !== 'string' || !/^\w+$/.test(v.name)) fail(w, 'name must be a word');
    else if (defined.has(v.name)) fail(w, `duplicate variable ${v.name}`);
    else defined.add(v.name);
  });
  (Array.isArray(list) ? list : []).forEach((v, i) => {
    if (!isObject(v)) return;
    const w = `${where} templating.list[${i}] ($${v.name})`;
    if (v.type === 'query') {
      const ds = checkRef(v.datasource, w);
      const query = typeof v.query === 'string' ? v.query : v.query?.query;
      if (typeof query !== 'string' || !query.trim()) fail(w, 'a query variable needs a query');
      else if (ds?.type === 'prometheus') {
        checkVariables(query, w, new Set([...defined].filter((n) => n !== v.name)), PROM_BUILTINS);
        const m = /^\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*$/s.exec(query);
        const q = /^\s*query_result\(\s*(.*)\)\s*$/s.exec(query);
        if (m) promExprs.push({ where: w, expr: m[1] });
        else if (q) promExprs.push({ where: w, expr: q[1] });
        else if (!/^\s*(label_names|metrics)\(/.test(query)) fail(w, `unsupported Prometheus variable query ${JSON.stringify(query)}`);
      }
    } else if (v.type === 'custom') {
      const values = String(v.query ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      if (!values.length) fail(w, 'a custom variable needs a comma-separated list of values in query');
      const current = v.current?.value;
      for (const c of [current].flat().filter((c) => c !== undefined && c !== '$__all')) {
        if (!values.includes(c)) fail(w, `current value ${JSON.stringify(c)} is not one of ${values.join(',')}`);
      }
    } else if (v.datasource !== undefined) {
      checkRef(v.datasource, w);
    }
  });

  // Annotations.
  const annos = json.annotations?.list ?? [];
  const annoNames = new Set();
  annos.forEach((a, i) => {
    const w = `${where} annotations.list[${i}]${a?.name ? ` (${a.name})` : ''}`;
    if (!isObject(a)) return fail(w, 'not an object');
    if (annoNames.has(a.name)) fail(w, `duplicate annotation name ${a.name}`);
    annoNames.add(a.name);
    const ds = checkRef(a.datasource, w);
    if (a.target?.datasource !== undefined) checkRef(a.target.datasource, `${w} target`);
    if (ds?.type === 'prometheus') {
      const expr = a.target?.expr;
      if (typeof expr !== 'string' || !expr.trim()) fail(w, 'a Prometheus annotation needs target.expr');
      else {
        checkVariables(expr, w, defined, PROM_BUILTINS);
        promExprs.push({ where: w, expr });
      }
    }
  });

  // Panels.
  const ids = new Map();
  const topLevel = [];
  const visit = (p, w, nested) => {
    if (!isObject(p)) return fail(w, 'not an object');
    const title = typeof p.title === 'string' ? p.title : '';
    const wt = `${w}${title ? ` "${title}"` : ''}`;
    if (!Number.isInteger(p.id) || p.id < 1) fail(wt, 'id must be a positive integer');
    else if (ids.has(p.id)) fail(wt, `panel id ${p.id} is also ${ids.get(p.id)}'s`);
    else ids.set(p.id, wt);
    checkGridPos(p, wt);
    if (!nested) topLevel.push({ p, w: wt });
    checkVariables(title, `${wt} title`, defined, GLOBAL_VARS);
    if (p.repeat !== undefined && !defined.has(p.repeat)) fail(wt, `repeat names ${JSON.stringify(p.repeat)}, which is not a variable`);
    if (p.type === 'row') {
      if (p.targets !== undefined) fail(wt, 'a row has no queries');
      if (!Array.isArray(p.panels)) fail(wt, 'a row needs a panels list');
      else {
        if (nested) fail(wt, 'a row inside a row');
        if (!p.collapsed && p.panels.length) fail(wt, 'an expanded row keeps its panels at the top level (its panels list must be empty)');
        p.panels.forEach((c, j) => visit(c, `${w}.panels[${j}]`, true));
      }
      return;
    }
    // Grafana migrates a panel's options when its pluginVersion differs from the plugin's; the
    // xychart takes a panel without one for a pre-11 save and rewrites its series mapping.
    if (p.type === 'xychart' && (typeof p.pluginVersion !== 'string' || !p.pluginVersion)) {
      fail(wt, 'an xychart needs pluginVersion (e.g. "13.2.2"): without it Grafana migrates its options as the pre-11 format and loses the series mapping');
    }
    checkPanelQueries(p, wt, defined);
  };
  const panels = json.panels ?? [];
  if (!Array.isArray(panels) || !panels.length) fail(where, 'no panels');
  (Array.isArray(panels) ? panels : []).forEach((p, i) => visit(p, `${where} panels[${i}]`, false));
  checkOverlaps(topLevel);
  return { panels: ids.size };
}

function checkGridPos(p, w) {
  const g = p.gridPos;
  if (!isObject(g)) return fail(w, 'gridPos {x, y, w, h} is missing');
  for (const k of ['x', 'y', 'w', 'h']) {
    if (!Number.isInteger(g[k]) || g[k] < 0) return fail(w, `gridPos.${k} must be an integer >= 0`);
  }
  if (g.w < 1 || g.h < 1) fail(w, 'gridPos.w and gridPos.h must be >= 1');
  if (g.x + g.w > GRID_COLUMNS) fail(w, `gridPos x + w = ${g.x + g.w} is wider than the ${GRID_COLUMNS}-column grid`);
}

function checkOverlaps(items) {
  const boxes = items.filter(({ p }) => isObject(p.gridPos));
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i].p.gridPos;
      const b = boxes[j].p.gridPos;
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) {
        fail(boxes[j].w, `overlaps ${boxes[i].w} on the grid`);
      }
    }
  }
}

function checkPanelQueries(p, w, defined) {
  const targets = p.targets;
  if (targets === undefined || (Array.isArray(targets) && !targets.length)) {
    if (p.type !== 'text') fail(w, 'has no queries');
    if (p.datasource !== undefined) checkRef(p.datasource, w);
    return;
  }
  if (!Array.isArray(targets)) return fail(w, 'targets must be a list');
  const panelDs = checkRef(p.datasource, w);
  const refIds = new Set();
  targets.forEach((t, i) => {
    const wt = `${w} targets[${i}]${t?.refId ? ` (${t.refId})` : ''}`;
    if (!isObject(t)) return fail(wt, 'not an object');
    if (typeof t.refId !== 'string' || !t.refId) fail(wt, 'refId must be a non-empty string');
    else if (refIds.has(t.refId)) fail(wt, `duplicate refId ${t.refId}`);
    refIds.add(t.refId);
    const ds = checkRef(t.datasource, wt);
    if (ds && panelDs && ds !== panelDs) fail(wt, `queries ${t.datasource.uid} but the panel's datasource is ${p.datasource.uid}`);
    const type = (ds ?? panelDs)?.type;
    if (type === 'prometheus') {
      if (typeof t.expr !== 'string' || !t.expr.trim()) fail(wt, 'a Prometheus query needs expr');
      else {
        checkVariables(t.expr, wt, defined, PROM_BUILTINS);
        promExprs.push({ where: wt, expr: t.expr });
      }
      if (t.legendFormat !== undefined) checkVariables(t.legendFormat, `${wt} legendFormat`, defined, GLOBAL_VARS);
    } else if (type === 'frser-sqlite-datasource') {
      if (typeof t.rawQueryText !== 'string' || !t.rawQueryText.trim()) fail(wt, 'an SQLite query needs rawQueryText');
      else {
        // The plugin's own macros ($__unixEpochFrom() ...) are functions; dashboard variables
        // must exist.
        const names = variableRefs(t.rawQueryText).filter((n) => !n.startsWith('__'));
        checkVariables(names.map((n) => '$' + n).join(' '), wt, defined, GLOBAL_VARS);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 3. PromQL syntax, through promtool's rule parser.

function checkPromql() {
  if (!promExprs.length) return;
  const groups = [{ name: 'dashboard-expressions', rules: [] }];
  promExprs.forEach(({ expr }, i) => groups[0].rules.push({ record: `dashboard_expr_${i}`, expr: substituteForParse(expr) }));
  const file = path.join(scratchDir, 'dashboard-exprs.rules.yml');
  fs.writeFileSync(file, YAML.stringify({ groups }));
  const r = spawnSync('promtool', ['check', 'rules', '--lint=none', file], { encoding: 'utf8' });
  if (r.error) return fail('promtool', `cannot run promtool (install the prometheus package): ${r.error.message}`);
  if (r.status !== 0) {
    const out = `${r.stdout}\n${r.stderr}`;
    // promtool names the rule (or the group) whose expression does not parse.
    const bad = new Set();
    for (const m of out.matchAll(/dashboard_expr_(\d+)/g)) bad.add(Number(m[1]));
    for (const m of out.matchAll(/rule (\d+)/g)) bad.add(Number(m[1]) - 1);
    if (!bad.size) fail('PromQL', out.trim());
    const lines = out.split('\n');
    for (const i of bad) {
      if (!promExprs[i]) continue;
      const why = lines.filter((l) => l.includes(`"dashboard_expr_${i}"`)).map((l) => l.replace(/^.*?could not parse expression: /, ''));
      fail(promExprs[i].where, `PromQL does not parse: ${promExprs[i].expr}${why.length ? `\n    ${why.join('\n    ')}` : ''}`);
    }
    return;
  }
  passed.push(`PromQL: ${promExprs.length} expressions parse (promtool check rules)`);
}

// ---------------------------------------------------------------------------------------------
// 4. TypeScript check against @grafana/schema.

// Serializes like JSON.stringify(v, null, 2) and records the JSON path that each line is about.
function serialize(value, basePath) {
  const lines = [];
  const paths = [];
  const emit = (text, p) => {
    lines.push(text);
    paths.push(p);
  };
  const walk = (v, p, indent, prefix, suffix) => {
    const pad = '  '.repeat(indent);
    if (Array.isArray(v) && v.length) {
      emit(`${pad}${prefix}[`, p);
      v.forEach((x, i) => walk(x, `${p}[${i}]`, indent + 1, '', i < v.length - 1 ? ',' : ''));
      emit(`${pad}]${suffix}`, p);
    } else if (isObject(v) && Object.keys(v).length) {
      emit(`${pad}${prefix}{`, p);
      const keys = Object.keys(v);
      keys.forEach((k, i) => {
        const kp = /^[A-Za-z_$][\w$]*$/.test(k) ? (p ? `${p}.${k}` : k) : `${p}[${JSON.stringify(k)}]`;
        walk(v[k], kp, indent + 1, `${JSON.stringify(k)}: `, i < keys.length - 1 ? ',' : '');
      });
      emit(`${pad}}${suffix}`, p);
    } else {
      emit(`${pad}${prefix}${JSON.stringify(v)}${suffix}`, p);
    }
  };
  walk(value, basePath, 0, '', '');
  return { lines, paths };
}

function targetType(t, panel) {
  const type = t?.datasource?.type ?? panel?.datasource?.type;
  if (type === 'prometheus') return 'S.PrometheusTarget';
  if (type === 'frser-sqlite-datasource') return 'S.SqliteTarget';
  return null;
}

function generateTs(tsDir) {
  const lineMaps = new Map(); // ts file -> {paths, where}
  for (const d of dashboards) {
    if (!isObject(d.json)) continue;
    const out = [
      `// Generated from ${d.where} by tests/dashboards/check.mjs.`,
      "import type * as S from './schema';",
      '',
    ];
    const paths = out.map(() => '');
    const add = (decl, type, value, jsonPath) => {
      const { lines, paths: p } = serialize(value, jsonPath);
      lines[0] = `export const ${decl}: ${type} = ${lines[0]}`;
      lines[lines.length - 1] += ';';
      out.push(...lines);
      paths.push(...p);
    };
    add('dashboard', 'S.DashboardJson', d.json, '');
    let n = 0;
    const visitPanel = (p, jsonPath) => {
      if (!isObject(p)) return;
      n++;
      if (p.type === 'row') {
        add(`row_${n}`, 'S.RowPanelJson', p, jsonPath);
        (Array.isArray(p.panels) ? p.panels : []).forEach((c, j) => visitPanel(c, `${jsonPath}.panels[${j}]`));
        return;
      }
      add(`panel_${n}`, `S.PanelTypes[${JSON.stringify(String(p.type))}]`, p, jsonPath);
      (Array.isArray(p.targets) ? p.targets : []).forEach((t, j) => {
        const type = targetType(t, p);
        if (type) add(`panel_${n}_target_${j}`, type, t, `${jsonPath}.targets[${j}]`);
      });
    };
    (Array.isArray(d.json.panels) ? d.json.panels : []).forEach((p, i) => visitPanel(p, `panels[${i}]`));
    (d.json.annotations?.list ?? []).forEach((a, i) => {
      if (a?.datasource?.type === 'prometheus') add(`annotation_${i}`, 'S.PrometheusAnnotation', a, `annotations.list[${i}]`);
    });
    const tsFile = path.join(tsDir, `${d.name.replace(/[^\w-]/g, '_')}.ts`);
    fs.writeFileSync(tsFile, out.join('\n') + '\n');
    lineMaps.set(path.resolve(tsFile), { paths, where: d.where });
  }
  return lineMaps;
}

function checkTypes() {
  const tsDir = path.join(scratchDir, 'ts');
  fs.rmSync(tsDir, { recursive: true, force: true });
  fs.mkdirSync(tsDir, { recursive: true });
  fs.copyFileSync(path.join(srcDir, 'tests/dashboards/schema.ts'), path.join(tsDir, 'schema.ts'));
  fs.symlinkSync(modulesDir, path.join(tsDir, 'node_modules'), 'dir');
  fs.writeFileSync(
    path.join(tsDir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'bundler',
          skipLibCheck: true,
          types: [],
          lib: ['ES2022'],
          noErrorTruncation: true,
        },
        include: ['*.ts'],
      },
      null,
      2
    )
  );
  const lineMaps = generateTs(tsDir);
  // Each error is mapped back to the dashboard file and the JSON path of the line it points at.
  const tscErrorList = tscErrors(tsDir, modulesDir, (file, line, code, message) => {
    const map = lineMaps.get(file);
    const jsonPath = map?.paths[line - 1];
    const where = map ? `${map.where} ${jsonPath || '(top level)'}` : `${file}:${line}`;
    return `${where}: schema (${code}): ${message}`;
  });
  if (tscErrorList === null) {
    const version = require('typescript/package.json').version;
    passed.push(`schema: ${dashboards.length} dashboards type-check against @grafana/schema ${schemaPackageVersion} (tsc ${version} --strict)`);
    return;
  }
  errors.push(...tscErrorList);
  notes.push(`the generated TypeScript is in ${tsDir}`);
}

// ---------------------------------------------------------------------------------------------
// 5. Prometheus configuration.

function checkPrometheusConfig() {
  const file = path.join(srcDir, 'deploy/prometheus/prometheus.yml');
  const text = readText(file);
  if (text == null) return;
  if (!/^  scrape_interval: \S+$/m.test(text)) {
    fail(rel(file), 'the global scrape interval must be one line "  scrape_interval: <duration>" (tests rewrite it with sed)');
  }
  // The dashboards select the daemons by these job names; file_sd paths are relative to the
  // config file, and promtool only warns when a target file is missing.
  const config = readYaml(file);
  const jobs = new Map((config?.scrape_configs ?? []).map((c) => [c?.job_name, c]));
  for (const job of ['sgt-coordinator', 'sgt-worker']) {
    const c = jobs.get(job);
    if (!c) {
      fail(rel(file), `no scrape config with job_name ${job} (the dashboards select the daemons by it)`);
      continue;
    }
    const files = (c.file_sd_configs ?? []).flatMap((sd) => sd?.files ?? []);
    if (!files.length) fail(rel(file), `job ${job} has no file_sd_configs files`);
    for (const f of files) {
      if (path.isAbsolute(f) || f.includes('*')) continue;
      const target = path.join(path.dirname(file), f);
      if (!fs.existsSync(target)) fail(rel(file), `job ${job}: target file ${f} (${rel(target)}) does not exist`);
    }
  }
  const r = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').join('\n    ');
  if (r.error) fail('promtool', `cannot run promtool (install the prometheus package): ${r.error.message}`);
  else if (r.status !== 0) fail(rel(file), `promtool check config failed:\n    ${out}`);
  else if (/WARNING/.test(out)) fail(rel(file), `promtool check config warns:\n    ${out}`);
  else passed.push(`${rel(file)}: promtool check config passes (target files included)`);

  // Tests run Prometheus on a copy of this file with a short interval written into that line:
  // nothing else in it may then contradict (a scrape_timeout longer than the interval would).
  const copyDir = path.join(scratchDir, 'prometheus-1s');
  fs.rmSync(copyDir, { recursive: true, force: true });
  fs.cpSync(path.dirname(file), copyDir, { recursive: true });
  const copy = path.join(copyDir, path.basename(file));
  fs.writeFileSync(copy, text.replace(/^  scrape_interval: \S+$/m, '  scrape_interval: 1s'));
  const r1 = spawnSync('promtool', ['check', 'config', copy], { encoding: 'utf8' });
  if (!r1.error && r1.status !== 0) {
    fail(rel(file), `with "  scrape_interval: 1s" it no longer passes promtool check config:\n    ${`${r1.stdout}${r1.stderr}`.trim().split('\n').join('\n    ')}`);
  }
}

// ---------------------------------------------------------------------------------------------

fs.mkdirSync(scratchDir, { recursive: true });
checkDatasourceProvisioning();
checkDashboardProvisioning();
loadDashboards();
const uids = new Map();
const titles = new Map();
for (const d of dashboards) {
  const before = errors.length;
  const r = checkDashboard(d, uids, titles);
  if (errors.length === before) passed.push(`${d.where}: uid ${d.json.uid}, ${r.panels} panels, references consistent`);
}
checkPromql();
checkTypes();
checkPrometheusConfig();

for (const p of passed) console.log(`ok   ${p}`);
for (const e of errors) console.log(`FAIL ${e}`);
for (const n of notes) console.log(`note ${n}`);
if (errors.length) {
  console.log(`dashboards: ${errors.length} problem(s)`);
  process.exit(1);
}
console.log(`dashboards: all checks passed (${dashboards.length} dashboards)`);
