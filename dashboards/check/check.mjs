// The dashboard checks that dashboards/check.sh runs, after it has installed the pinned npm
// packages and started a throwaway Prometheus:
//
//   1. schema: every dashboard is valid against the JSON Schema generated from @grafana/schema's
//      dashboard model (with the relaxations in schema.mjs), and every panel's options and
//      field config against its plugin's types; Prometheus targets against our strict query type;
//   2. lint: the project's own rules (datasource variable, instance/target variables, no
//      hard-coded data source, unique ids, a sane grid, known $variables, units, thresholds);
//   3. promql: every PromQL expression (panels, variables, annotations) with its $variables
//      substituted, twice (All selected, and two concrete values), is sent to a real Prometheus
//      through /api/v1/query: a parse or evaluation error fails, an empty result is fine;
//   4. scrape (with --scrape FILE): every mailpulse_* metric name an expression uses is present
//      in the scrape (recording-rule names mailpulse:* are exempt: Prometheus makes them).
//
// With --with-data, Prometheus is scraping the --scrape file (check.sh arranges it as job
// "mailpulse"): the queries then also run against real series, which catches vector-matching
// errors an empty TSDB cannot show, and the queries that return nothing are listed as notes.
//
// Usage: node check.mjs --cache DIR [--prometheus URL] [--scrape FILE [--with-data]] DASHBOARD.json...
// Every failure is printed with the dashboard, the panel and what is wrong; exit code 1 if any.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { loadGenerated, dashboardSchema } from './schema.mjs';

// How long one query to the throwaway Prometheus may take.
const QUERY_TIMEOUT_MS = 10_000;
// Queries in flight at once.
const QUERY_CONCURRENCY = 8;
// The data source every panel, target, variable and annotation must use.
const DATASOURCE_REF = { type: 'prometheus', uid: '${datasource}' };
// The Grafana built-in data source, allowed for annotations only (org annotations by tag).
const GRAFANA_REF = { type: 'grafana', uid: '-- Grafana --' };
// Variables every dashboard must have, with the properties they must have.
const REQUIRED_VARIABLES = {
  datasource: { type: 'datasource', query: 'prometheus' },
  instance: { type: 'query', multi: true, includeAll: true },
  target: { type: 'query', multi: true, includeAll: true },
};
// Grafana's global variables, by name, with the values substituted for them in each of the
// two passes (a short and a long dashboard time range).
const NOW_MS = Date.now();
const BUILTINS = [
  {
    __rate_interval: '1m', __interval: '15s', __interval_ms: '15000', __range: '1h', __range_s: '3600',
    __range_ms: '3600000', __from: String(NOW_MS - 3_600_000), __to: String(NOW_MS),
  },
  {
    __rate_interval: '4m', __interval: '2m', __interval_ms: '120000', __range: '7d', __range_s: '604800',
    __range_ms: '604800000', __from: String(NOW_MS - 604_800_000), __to: String(NOW_MS),
  },
];
// Grafana built-ins that may appear in titles, links and legends but never in PromQL.
const DISPLAY_BUILTINS = new Set([
  '__all', '__data', '__field', '__series', '__value', '__url_time_range', '__dashboard', '__org',
  '__user', '__name', '__timeFilter', '__timezone', '__cell', '__auto',
]);
// Example values per variable name, used for the "two concrete values" pass. Dots and colons
// make sure regex escaping inside PromQL strings is exercised.
const SAMPLE_VALUES = {
  instance: ['cas01.example.org:9717', 'cas02.example.org:9717'],
  target: ['owa', 'imap.cas01'],
  job: ['mailpulse'],
  phase: ['total', 'first_byte'],
  kind: ['http', 'smtp'],
};

// ---------------------------------------------------------------------------------------------
// Arguments and reporting

function parseArgs(argv) {
  const args = { cache: null, prometheus: null, scrape: null, withData: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--cache' || a === '--prometheus' || a === '--scrape') {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      args[a.slice(2)] = argv[++i];
    } else if (a === '--with-data') {
      args.withData = true;
    } else if (a.startsWith('--')) {
      throw new Error(`unknown option ${a}`);
    } else {
      args.files.push(a);
    }
  }
  if (!args.cache) throw new Error('--cache DIR is required');
  args.cache = path.resolve(args.cache);
  if (args.files.length === 0) throw new Error('no dashboard files given');
  return args;
}

let failures = [];
function fail(stage, where, message) {
  failures.push({ stage, where, message });
}
// Runs `fn` with a fresh failure list and returns what it collected.
async function collecting(fn) {
  const saved = failures;
  failures = [];
  try {
    await fn();
    return failures;
  } finally {
    failures = saved;
  }
}
function say(line) {
  process.stdout.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Walking a dashboard

// Every panel, the panels nested in rows included.
function allPanels(dash) {
  const out = [];
  for (const p of dash.panels ?? []) {
    out.push(p);
    if (p.type === 'row') out.push(...(p.panels ?? []));
  }
  return out;
}

function panelName(p) {
  return `panel "${p.title ?? '(untitled)'}" (id ${p.id}, ${p.type})`;
}

// Every place a PromQL expression lives, as `{ where, expr, kind }`; kind is `panel`,
// `annotation` or `variable` (a variable query may be a Grafana function, not PromQL).
function expressions(file, dash) {
  const out = [];
  for (const p of allPanels(dash)) {
    for (const t of p.targets ?? []) {
      if (typeof t.expr === 'string') {
        out.push({ where: `${file}: ${panelName(p)} query ${t.refId}`, expr: t.expr, kind: 'panel' });
      }
    }
  }
  for (const a of dash.annotations?.list ?? []) {
    const expr = a.target?.expr ?? a.expr;
    if (typeof expr === 'string') {
      out.push({ where: `${file}: annotation "${a.name}"`, expr, kind: 'annotation' });
    }
  }
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (typeof q === 'string') {
      out.push({ where: `${file}: variable "${v.name}"`, expr: q, kind: 'variable' });
    }
  }
  return out;
}

// The PromQL that a Grafana variable query runs, or null for queries that are not PromQL
// (`label_names()`, `metrics(regex)`, `label_values(label)`).
function variablePromql(q) {
  const s = q.trim();
  let m = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/s.exec(s);
  if (m) return m[1];
  if (/^label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$/.test(s)) return null;
  m = /^query_result\((.*)\)$/s.exec(s);
  if (m) return m[1];
  if (/^(label_names|metrics)\(/.test(s)) return null;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Variables

// Names referenced as $name, ${name}, ${name:format} or [[name]].
function referencedVariables(text) {
  const names = [];
  const re = /\$([a-zA-Z_][a-zA-Z0-9_]*)|\$\{([a-zA-Z_][a-zA-Z0-9_.]*)(?::[^}]*)?\}|\[\[([a-zA-Z_][a-zA-Z0-9_]*)(?::[^\]]*)?\]\]/g;
  for (const m of text.matchAll(re)) {
    names.push((m[1] ?? m[2] ?? m[3]).split('.')[0]);
  }
  return names;
}

// Grafana's escaping of one value for a Prometheus regex matcher inside a PromQL string.
function promRegexEscape(v) {
  return v.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
}

// The two substitution passes for one dashboard: `[{ name: text }]`.
function substitutionSets(dash) {
  const sets = [{}, {}];
  for (const v of dash.templating?.list ?? []) {
    const samples = SAMPLE_VALUES[v.name] ?? ['value-1', 'value.2'];
    if (v.type === 'datasource') {
      sets[0][v.name] = sets[1][v.name] = 'prometheus';
    } else if (v.type === 'query' || v.type === 'custom') {
      const multi = v.multi || v.includeAll;
      // Pass 1: "All" (Grafana sends allValue, else every value as a regex alternation).
      sets[0][v.name] = v.includeAll
        ? (v.allValue ?? `(${samples.map(promRegexEscape).join('|')})`)
        : promRegexEscape(samples[0]);
      // Pass 2: two concrete values (or one, for a single-value variable).
      sets[1][v.name] = multi ? `(${samples.map(promRegexEscape).join('|')})` : promRegexEscape(samples[0]);
    } else {
      const text = typeof v.query === 'string' ? v.query.split(',')[0] : samples[0];
      sets[0][v.name] = sets[1][v.name] = text;
    }
  }
  return sets.map((s, i) => ({ ...BUILTINS[i], ...s }));
}

function substitute(expr, values) {
  const unknown = [];
  const get = (name) => {
    if (name in values) return values[name];
    unknown.push(name);
    return 'unknown';
  };
  const text = expr
    .replace(/\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::([^}]*))?\}/g, (_, n, fmt) => {
      if ((n === '__from' || n === '__to') && fmt && fmt.includes('seconds')) {
        return String(Math.floor(Number(get(n)) / 1000));
      }
      return get(n);
    })
    .replace(/\[\[([a-zA-Z_][a-zA-Z0-9_]*)(?::[^\]]*)?\]\]/g, (_, n) => get(n))
    .replace(/\$([a-zA-Z_][a-zA-Z0-9_]*)/g, (_, n) => get(n));
  return { text, unknown };
}

// ---------------------------------------------------------------------------------------------
// Stage 1: schema

// ajv errors as `<prefix><path> <message>` lines, duplicates removed.
function formatAjvErrors(errors, prefix = '') {
  const seen = new Set();
  return errors.map((e) => {
    let msg = `${prefix}${e.instancePath}`.trim() || '(top level)';
    msg += ` ${e.message}`;
    if (e.params?.additionalProperty) msg += ` ("${e.params.additionalProperty}")`;
    if (e.params?.allowedValues) msg += ` (${e.params.allowedValues.map((v) => JSON.stringify(v)).join(', ')})`;
    return msg;
  }).filter((m) => !seen.has(m) && seen.add(m));
}

// Compiles every validator once.
function buildValidators(ajv, generated) {
  const dashSchema = dashboardSchema(generated);
  ajv.addSchema(dashSchema, 'dashboard');
  const validateDashboard = ajv.getSchema('dashboard');
  const validatePanel = ajv.getSchema('dashboard#/definitions/Panel');
  const validateRow = ajv.getSchema('dashboard#/definitions/RowPanel');
  const validatePromQuery = ajv.getSchema('dashboard#/definitions/MailpulsePrometheusQuery');
  // For readable messages only: an annotation's target is an anyOf (Grafana tag filter |
  // Prometheus query), so a failing annotation is re-validated against the branch it means.
  const annotationBranch = (target) => {
    const a = structuredClone(dashSchema.definitions.AnnotationQuery);
    a.properties.target = { $ref: `#/definitions/${target}` };
    return ajv.compile({ definitions: dashSchema.definitions, ...a });
  };
  const validateAnnotation = {
    grafana: annotationBranch('AnnotationTarget'),
    prometheus: annotationBranch('MailpulsePrometheusQuery'),
  };
  const validateVarQuery = ajv.getSchema('dashboard#/definitions/MailpulsePrometheusVariableQuery');
  const fieldConfigProps = dashSchema.definitions.FieldConfig.properties;

  // Per-plugin validators: options, custom field config, and one per custom property (for
  // overrides, which set `custom.<property>` one at a time).
  const plugin = {};
  for (const [id, g] of Object.entries(generated.panels)) {
    const entry = { options: null, custom: null, customProps: {} };
    if (g.options) entry.options = ajv.compile(g.options);
    if (g.fieldConfig) {
      entry.custom = ajv.compile(g.fieldConfig);
      const def = g.fieldConfig.definitions.FieldConfig;
      for (const prop of Object.keys(def.properties ?? {})) {
        entry.customProps[prop] = ajv.compile({
          definitions: g.fieldConfig.definitions,
          ...def.properties[prop],
        });
      }
    }
    plugin[id] = entry;
  }
  const fieldProp = {};
  for (const prop of Object.keys(fieldConfigProps)) {
    fieldProp[prop] = ajv.compile({ definitions: dashSchema.definitions, ...fieldConfigProps[prop] });
  }
  return { validateDashboard, validatePanel, validateRow, validatePromQuery, validateVarQuery, validateAnnotation, plugin, fieldProp };
}

function checkSchemas(validators, docs) {
  const { validateDashboard, validatePanel, validateRow, validatePromQuery, validateVarQuery, validateAnnotation, plugin, fieldProp } = validators;
  let panelCount = 0;
  for (const { file, dash } of docs) {
    if (!validateDashboard(dash)) {
      // The panels array is an anyOf (Panel | RowPanel): re-validate failing panels against
      // the branch they mean to be, for a readable message.
      const other = [];
      const badPanels = new Set();
      const badAnnotations = new Set();
      for (const e of validateDashboard.errors) {
        const m = /^\/panels\/(\d+)(?:\/panels\/(\d+))?/.exec(e.instancePath);
        const a = /^\/annotations\/list\/(\d+)/.exec(e.instancePath);
        if (m) badPanels.add(e.instancePath.slice(0, m[0].length));
        else if (a) badAnnotations.add(Number(a[1]));
        else other.push(e);
      }
      for (const msg of formatAjvErrors(other)) fail('schema', file, msg);
      for (const i of badAnnotations) {
        const a = dash.annotations.list[i];
        const v = a?.datasource?.type === 'prometheus' ? validateAnnotation.prometheus : validateAnnotation.grafana;
        const where = `${file}: annotation "${a?.name}"`;
        if (!v(a)) for (const msg of formatAjvErrors(v.errors)) fail('schema', where, msg);
        else fail('schema', where, 'invalid (see the dashboard schema)');
      }
      for (const ptr of badPanels) {
        const parts = ptr.split('/').filter(Boolean);
        let p = dash;
        for (const k of parts) p = p[k];
        const v = p?.type === 'row' ? validateRow : validatePanel;
        if (!v(p)) {
          for (const msg of formatAjvErrors(v.errors)) fail('schema', `${file}: ${panelName(p)}`, msg);
        } else {
          fail('schema', `${file}: ${panelName(p)}`, `${ptr}: invalid (see the dashboard schema)`);
        }
      }
    }

    for (const p of allPanels(dash)) {
      if (p.type === 'row') continue;
      panelCount++;
      const where = `${file}: ${panelName(p)}`;
      const pl = plugin[p.type];
      if (!pl) {
        fail('schema', where, `panel type "${p.type}" has no schema here; add it to PANEL_TYPES in check/schema.mjs`);
        continue;
      }
      if (pl.options) {
        if (!pl.options(p.options ?? {})) {
          for (const msg of formatAjvErrors(pl.options.errors, 'options')) fail('schema', where, msg);
        }
      } else if (p.options && Object.keys(p.options).length) {
        fail('schema', where, `options given, but the ${p.type} plugin has none`);
      }
      const custom = p.fieldConfig?.defaults?.custom;
      if (pl.custom) {
        if (custom && !pl.custom(custom)) {
          for (const msg of formatAjvErrors(pl.custom.errors, 'fieldConfig.defaults.custom')) fail('schema', where, msg);
        }
      } else if (custom && Object.keys(custom).length) {
        fail('schema', where, `fieldConfig.defaults.custom given, but the ${p.type} plugin has no custom field config`);
      }
      for (const [i, o] of (p.fieldConfig?.overrides ?? []).entries()) {
        for (const prop of o.properties ?? []) {
          const at = `fieldConfig.overrides[${i}] property "${prop.id}"`;
          let v;
          if (prop.id.startsWith('custom.')) {
            v = pl.customProps[prop.id.slice('custom.'.length)];
            if (!v) {
              fail('schema', where, `${at}: the ${p.type} plugin has no such custom field option`);
              continue;
            }
          } else {
            v = fieldProp[prop.id];
            if (!v) {
              fail('schema', where, `${at}: not a field config property`);
              continue;
            }
          }
          if (!v(prop.value)) {
            for (const msg of formatAjvErrors(v.errors, `${at}: value`)) fail('schema', where, msg);
          }
        }
      }
      for (const t of p.targets ?? []) {
        if (!validatePromQuery(t)) {
          for (const msg of formatAjvErrors(validatePromQuery.errors, 'Prometheus query')) {
            fail('schema', `${where} query ${t.refId ?? '?'}`, msg);
          }
        }
      }
    }
    for (const v of dash.templating?.list ?? []) {
      if (v.type === 'query' && typeof v.query === 'object' && !validateVarQuery(v.query)) {
        for (const msg of formatAjvErrors(validateVarQuery.errors, 'query')) {
          fail('schema', `${file}: variable "${v.name}"`, msg);
        }
      }
    }
  }
  return panelCount;
}

// ---------------------------------------------------------------------------------------------
// Stage 2: lint

function sameRef(a, b) {
  return a && typeof a === 'object' && a.type === b.type && a.uid === b.uid && Object.keys(a).length === 2;
}

function lint(docs) {
  const uids = new Map();
  for (const { file, dash } of docs) {
    const base = path.basename(file, '.json');
    for (const key of ['__inputs', '__requires', '__elements']) {
      if (key in dash) fail('lint', file, `"${key}" present: dashboards must use the datasource variable, not import-time inputs`);
    }
    if (dash.uid !== base) fail('lint', file, `uid is "${dash.uid}"; keep it stable and equal to the file name "${base}"`);
    if (uids.has(dash.uid)) fail('lint', file, `uid "${dash.uid}" also used by ${uids.get(dash.uid)}`);
    uids.set(dash.uid, file);
    if (!(dash.tags ?? []).includes('mailpulse')) fail('lint', file, 'tags must include "mailpulse"');
    if (!Number.isInteger(dash.schemaVersion) || dash.schemaVersion < 39) {
      fail('lint', file, `schemaVersion ${dash.schemaVersion}: expected the current model (39 or later)`);
    }

    // Variables.
    const vars = new Map((dash.templating?.list ?? []).map((v) => [v.name, v]));
    for (const [name, want] of Object.entries(REQUIRED_VARIABLES)) {
      const v = vars.get(name);
      if (!v) {
        fail('lint', file, `variable "${name}" missing`);
        continue;
      }
      for (const [k, val] of Object.entries(want)) {
        if (v[k] !== val) fail('lint', file, `variable "${name}": ${k} must be ${JSON.stringify(val)}, is ${JSON.stringify(v[k])}`);
      }
    }
    for (const v of vars.values()) {
      if (v.type === 'query' && !sameRef(v.datasource, DATASOURCE_REF)) {
        fail('lint', file, `variable "${v.name}": datasource must be ${JSON.stringify(DATASOURCE_REF)}`);
      }
    }

    // Data sources.
    for (const a of dash.annotations?.list ?? []) {
      if (!sameRef(a.datasource, DATASOURCE_REF) && !sameRef(a.datasource, GRAFANA_REF)) {
        fail('lint', file, `annotation "${a.name}": datasource must be ${JSON.stringify(DATASOURCE_REF)} or the Grafana built-in ${JSON.stringify(GRAFANA_REF)}`);
      }
    }
    const ids = new Map();
    const panels = allPanels(dash);
    for (const p of panels) {
      const where = `${file}: ${panelName(p)}`;
      if (!Number.isInteger(p.id)) fail('lint', where, 'panel id missing');
      else if (ids.has(p.id)) fail('lint', where, `panel id ${p.id} also used by "${ids.get(p.id)}"`);
      else ids.set(p.id, p.title);
      if (p.type === 'row') continue;
      if (!p.title) fail('lint', where, 'panel has no title');
      if (p.type !== 'text') {
        if (!sameRef(p.datasource, DATASOURCE_REF)) fail('lint', where, `datasource must be ${JSON.stringify(DATASOURCE_REF)}`);
        const refIds = new Set();
        if (!(p.targets ?? []).length) fail('lint', where, 'panel has no queries');
        for (const t of p.targets ?? []) {
          if (!sameRef(t.datasource, DATASOURCE_REF)) fail('lint', `${where} query ${t.refId}`, `datasource must be ${JSON.stringify(DATASOURCE_REF)}`);
          if (refIds.has(t.refId)) fail('lint', where, `refId ${t.refId} used twice`);
          refIds.add(t.refId);
        }
      }
      // Units and thresholds where a number is shown.
      const d = p.fieldConfig?.defaults ?? {};
      if (['timeseries', 'stat', 'bargauge', 'gauge'].includes(p.type) && !d.unit) {
        fail('lint', where, 'fieldConfig.defaults.unit missing: say what the numbers are (s, percentunit, bytes, short, ...)');
      }
      const steps = [d.thresholds?.steps ?? [], ...(p.fieldConfig?.overrides ?? [])
        .flatMap((o) => o.properties ?? []).filter((x) => x.id === 'thresholds').map((x) => x.value?.steps ?? [])];
      for (const s of steps) {
        if (s.length && s[0].value !== null) fail('lint', where, 'the first threshold step must be the base (value null)');
        for (let i = 2; i < s.length; i++) {
          if (!(s[i].value > s[i - 1].value)) fail('lint', where, 'threshold steps must be in ascending order');
        }
      }
    }

    // The grid: 24 columns, no two panels overlapping. Panels inside a collapsed row are laid
    // out when the row opens, so they are checked among themselves.
    const groups = [panels.filter((p) => !(dash.panels ?? []).some((r) => r.type === 'row' && r.collapsed && (r.panels ?? []).includes(p)))];
    for (const r of dash.panels ?? []) if (r.type === 'row' && r.collapsed) groups.push(r.panels ?? []);
    for (const group of groups) {
      for (const [i, p] of group.entries()) {
        const g = p.gridPos;
        if (!g) {
          fail('lint', `${file}: ${panelName(p)}`, 'gridPos missing');
          continue;
        }
        if (!['x', 'y', 'w', 'h'].every((k) => Number.isInteger(g[k]))) continue; // The schema stage reports it.
        if (g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1 || g.y < 0) {
          fail('lint', `${file}: ${panelName(p)}`, `gridPos ${JSON.stringify(g)} is outside the 24-column grid`);
        }
        for (const q of group.slice(i + 1)) {
          const h = q.gridPos;
          if (h && ['x', 'y', 'w', 'h'].every((k) => Number.isInteger(h[k])) && g.x < h.x + h.w && h.x < g.x + g.w && g.y < h.y + h.h && h.y < g.y + g.h) {
            fail('lint', `${file}: ${panelName(p)}`, `overlaps ${panelName(q)}`);
          }
        }
      }
    }

    // Every $variable used anywhere is defined (or a Grafana built-in).
    const known = new Set([...vars.keys(), ...Object.keys(BUILTINS[0]), ...DISPLAY_BUILTINS]);
    const text = JSON.stringify(dash);
    for (const name of new Set(referencedVariables(text))) {
      if (!known.has(name)) fail('lint', file, `$${name} is used but is neither a variable of this dashboard nor a Grafana built-in`);
    }
    for (const { where, expr } of expressions(file, dash)) {
      for (const name of referencedVariables(expr)) {
        if (DISPLAY_BUILTINS.has(name)) fail('lint', where, `$${name} has no meaning inside PromQL`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Stage 3: PromQL through a real Prometheus

// Sends one instant query; returns `{ error }` or `{ series }` (how many results came back).
async function queryPrometheus(base, expr) {
  const url = `${base}/api/v1/query?${new URLSearchParams({ query: expr })}`;
  let res;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(QUERY_TIMEOUT_MS) });
  } catch (e) {
    return { error: `no answer from Prometheus: ${e.message}` };
  }
  let body;
  try {
    body = await res.json();
  } catch {
    return { error: `HTTP ${res.status} without a JSON body` };
  }
  if (body.status !== 'success') return { error: `${body.errorType ?? `HTTP ${res.status}`}: ${body.error ?? 'unknown error'}` };
  const r = body.data?.result;
  return { series: Array.isArray(r) ? r.length : 1 };
}

// Waits until Prometheus holds a few scrapes of job "mailpulse" (rate() needs two samples).
async function waitForData(base, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = await queryPrometheus(base, 'min(count_over_time(up{job="mailpulse"}[1m])) >= 4 and min(up{job="mailpulse"}) == 1');
    if (r.series) return true;
    await new Promise((ok) => setTimeout(ok, 500));
  }
  return false;
}

async function checkPromql(base, docs, notes = null) {
  const jobs = [];
  for (const { file, dash } of docs) {
    const sets = substitutionSets(dash);
    for (const e of expressions(file, dash)) {
      const promql = e.kind === 'variable' ? variablePromql(e.expr) : e.expr;
      if (promql === null) continue;
      sets.forEach((values, i) => {
        const { text, unknown } = substitute(promql, values);
        if (unknown.length) return; // Reported by the lint stage.
        jobs.push({ where: e.where, pass: i === 0 ? 'All selected' : 'two values selected', text, original: e.expr });
      });
    }
  }
  let next = 0;
  const reported = new Set();
  async function worker() {
    while (next < jobs.length) {
      const j = jobs[next++];
      const { error, series } = await queryPrometheus(base, j.text);
      if (error && !reported.has(j.where + error)) {
        reported.add(j.where + error);
        fail('promql', j.where, `${error}\n      with ${j.pass}: ${j.text}`);
      } else if (notes && !error && series === 0 && j.pass === 'All selected') {
        notes.push(j.where);
      }
    }
  }
  await Promise.all(Array.from({ length: QUERY_CONCURRENCY }, worker));
  return jobs.length;
}

// ---------------------------------------------------------------------------------------------
// Stage 4: metric names against a scrape

// Metric names in a Prometheus text or OpenMetrics exposition.
function scrapeNames(text) {
  const names = new Set();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

// mailpulse_* metric names an expression uses. String literals are removed first, so label
// values and regexes do not count; mailpulse:* recording rules never match.
function usedNames(expr) {
  const code = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  return [...code.matchAll(/(?<![a-zA-Z0-9_:])mailpulse_[a-zA-Z0-9_]+/g)].map((m) => m[0]);
}

function checkScrape(file, docs) {
  return checkScrapeText(fs.readFileSync(file, 'utf8'), file, docs);
}

function checkScrapeText(text, file, docs) {
  const have = scrapeNames(text);
  const used = new Map();
  // A histogram's own name is its native series (Prometheus with native histograms scrapes the
  // protobuf format, which the text scrape cannot show): allowed in an expression that also
  // reads its classic _bucket series, the fallback for a Prometheus without them.
  for (const { file: f, dash } of docs) {
    for (const e of expressions(f, dash)) {
      const names = usedNames(e.expr);
      for (const n of names) {
        if (!have.has(n) && have.has(`${n}_bucket`) && names.includes(`${n}_bucket`)) continue;
        if (!used.has(n)) used.set(n, []);
        used.get(n).push(e.where);
      }
    }
  }
  for (const [name, wheres] of [...used].sort()) {
    if (have.has(name)) continue;
    let hint = '';
    if (have.has(`${name}_bucket`)) hint = ` (a histogram: use ${name}_bucket, _sum or _count, or its native series beside ${name}_bucket)`;
    fail('scrape', name, `not in ${file}${hint}; used by ${wheres.length} quer${wheres.length === 1 ? 'y' : 'ies'}:\n      ${[...new Set(wheres)].join('\n      ')}`);
  }
  return used.size;
}

// ---------------------------------------------------------------------------------------------
// Self-test: faults planted in a copy of a dashboard must each be caught by the stage named.
// It keeps the checks honest: a validator that accepts everything would fail here.

const firstOf = (d, type) => allPanels(d).find((p) => p.type === type);
const PLANTED = [
  ['schema', 'an unknown dashboard key', (d) => { d.refreshEvery = '1m'; }],
  ['schema', 'no schemaVersion', (d) => { delete d.schemaVersion; }],
  ['schema', 'a panel height as a string', (d) => { firstOf(d, 'timeseries').gridPos.h = '8'; }],
  ['schema', 'a misspelt legend option', (d) => { firstOf(d, 'timeseries').options.legend.placment = 'bottom'; }],
  ['schema', 'a misspelt custom field option', (d) => { firstOf(d, 'timeseries').fieldConfig.defaults.custom.lineWidht = 2; }],
  ['schema', 'a misspelt query key', (d) => { firstOf(d, 'timeseries').targets[0].legendFromat = '{{target}}'; }],
  ['schema', 'a stat colour mode that does not exist', (d) => { firstOf(d, 'stat').options.colorMode = 'rainbow'; }],
  ['schema', 'an override of an unknown custom option', (d) => {
    firstOf(d, 'timeseries').fieldConfig.overrides.push({ matcher: { id: 'byName', options: 'x' }, properties: [{ id: 'custom.nope', value: 1 }] });
  }],
  ['schema', 'an annotation with an unknown key', (d) => { d.annotations.list[0].colour = 'red'; }],
  ['lint', 'import-time __inputs', (d) => { d.__inputs = []; }],
  ['lint', 'a hard-coded data source uid', (d) => { firstOf(d, 'timeseries').datasource = { type: 'prometheus', uid: 'P1809F7CD0C75ACF3' }; }],
  ['lint', 'a misspelt variable', (d) => { const t = firstOf(d, 'timeseries').targets[0]; t.expr = t.expr.replace('$instance', '$instanse'); }],
  ['lint', 'two panels on the same spot', (d) => { const [a, b] = allPanels(d).filter((p) => p.type !== 'row'); b.gridPos = { ...a.gridPos }; }],
  ['lint', 'a duplicate panel id', (d) => { const [a, b] = allPanels(d).filter((p) => p.type !== 'row'); b.id = a.id; }],
  ['lint', 'a panel without a unit', (d) => { delete firstOf(d, 'timeseries').fieldConfig.defaults.unit; }],
  ['promql', 'a PromQL syntax error', (d) => { firstOf(d, 'timeseries').targets[0].expr += ' +'; }],
  ['promql', 'a multi-value variable outside a string', (d) => {
    firstOf(d, 'timeseries').targets[0].expr = 'sum by ($target) (mailpulse_probe_success)';
  }],
  ['promql', 'a broken annotation query', (d) => {
    const a = d.annotations.list.find((x) => x.target?.expr);
    a.target.expr = 'max by (instance) (mailpulse_target_down';
  }],
  // Only with real series: an empty TSDB cannot show a matching error.
  ['data', 'many-to-one matching without group_left', (d) => {
    firstOf(d, 'timeseries').targets[0].expr =
      'mailpulse_host_cpu_mode_ratio{job=~"$job"} / on (instance) mailpulse_host_cpu_usage_ratio{job=~"$job"}';
  }],
  ['promql', 'a broken variable query', (d) => {
    d.templating.list.find((v) => v.name === 'target').query.query = 'label_values(mailpulse_probe_success{instance=~"$instance"}}, target)';
  }],
];

async function selfTest(validators, prometheus, withData, sample) {
  const key = (f) => `${f.stage}|${f.where}|${f.message}`;
  const run = (dash, promql) => collecting(async () => {
    const docs = [{ file: sample.file, dash }];
    checkSchemas(validators, docs);
    lint(docs);
    if (promql) await checkPromql(prometheus, docs);
  });
  // What the unplanted copy already fails with does not count as catching a planted fault.
  const baseline = new Set((await run(structuredClone(sample.dash), Boolean(prometheus))).map(key));
  let caught = 0;
  for (const [plantedIn, what, plant] of PLANTED) {
    if (plantedIn === 'promql' && !prometheus) continue;
    if (plantedIn === 'data' && !withData) continue;
    const stage = plantedIn === 'data' ? 'promql' : plantedIn;
    const dash = structuredClone(sample.dash);
    plant(dash);
    const got = await run(dash, stage === 'promql');
    if (got.some((f) => f.stage === stage && !baseline.has(key(f)))) caught++;
    else fail('self-test', sample.file, `${what} was planted but the ${stage} stage did not catch it`);
  }
  // The scrape stage: a scrape without one of the names used must be reported.
  const names = [...new Set(expressions(sample.file, sample.dash).flatMap((e) => usedNames(e.expr)))];
  if (names.length) {
    const text = names.slice(1).map((n) => `${n}{a="b"} 1`).join('\n');
    const got = await collecting(() => checkScrapeText(text, 'a planted scrape', [sample]));
    if (got.length === 1 && got[0].where === names[0]) caught++;
    else fail('self-test', sample.file, `a scrape without ${names[0]} was not reported exactly once`);
  }
  return caught;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const require = createRequire(path.join(args.cache, 'package.json'));
  const Ajv = require('ajv');
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });

  const docs = [];
  for (const file of args.files) {
    try {
      docs.push({ file: path.basename(file), dash: JSON.parse(fs.readFileSync(file, 'utf8')) });
    } catch (e) {
      fail('json', file, e.message);
    }
  }

  const generated = loadGenerated(args.cache);
  const validators = buildValidators(ajv, generated);
  const count = (stage) => failures.filter((f) => f.stage === stage).length;
  const verdict = (stage, word) => (count(stage) ? `${count(stage)} ${word}` : 'ok');

  const panels = checkSchemas(validators, docs);
  say(`schema: ${docs.length} dashboards, ${panels} panels against @grafana/schema ${generated.grafanaSchemaVersion}: ${verdict('schema', 'problems')}`);
  lint(docs);
  say(`lint: ${verdict('lint', 'problems')}`);
  if (args.prometheus) {
    let notes = null;
    if (args.withData) {
      if (await waitForData(args.prometheus)) notes = [];
      else fail('promql', args.prometheus, 'Prometheus did not scrape the served --scrape file within 30 s');
    }
    const n = await checkPromql(args.prometheus, docs, notes);
    const against = notes ? 'evaluated against the scrape' : 'parsed and evaluated on an empty TSDB';
    say(`promql: ${n} queries (each expression with All and with two values selected) ${against}: ${verdict('promql', 'failed')}`);
    if (notes?.length) {
      say(`note: ${notes.length} queries returned no series with All selected (missing metrics, or only rates of a static scrape):`);
      for (const w of notes.sort()) say(`  ${w}`);
    }
  }
  if (args.scrape) {
    const n = checkScrape(args.scrape, docs);
    say(`scrape: ${n} mailpulse_* metric names looked up in ${args.scrape}: ${verdict('scrape', 'missing')}`);
  }
  // The planted faults need a dashboard with time series and stat panels and a Prometheus
  // annotation: the soak-test one has them all.
  const sample = docs.find(({ dash }) => firstOf(dash, 'timeseries') && firstOf(dash, 'stat')
    && (dash.annotations?.list ?? []).some((a) => a.target?.expr));
  if (sample) {
    const caught = await selfTest(validators, args.prometheus, args.withData, sample);
    say(`self-test: ${caught} faults planted in a copy of ${sample.file} caught: ${verdict('self-test', 'missed')}`);
  } else {
    fail('self-test', 'dashboards', 'no dashboard has time series and stat panels and a Prometheus annotation to plant faults in');
  }

  if (failures.length) {
    say('');
    for (const f of failures) say(`FAIL [${f.stage}] ${f.where}: ${f.message}`);
    say(`\ndashboard check failed: ${failures.length} problem${failures.length === 1 ? '' : 's'}`);
    process.exit(1);
  }
}

main().catch((e) => {
  process.stderr.write(`dashboard check crashed: ${e.stack ?? e}\n`);
  process.exit(2);
});

