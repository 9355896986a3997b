// JSON Schemas for the dashboard checks, generated from the Grafana dashboard model that the npm
// package @grafana/schema ships as TypeScript types, plus the few documented relaxations and
// tightenings this project applies on top of them.
//
// Generation is slow (about a second per type), so the generated schemas are cached under the
// cache directory, keyed by the versions of @grafana/schema and ts-json-schema-generator.
// Relaxations are applied in memory on every run, so editing them needs no cache flush.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

// Panel plugins whose options and field config are validated, by plugin id. The directory is
// where @grafana/schema keeps that plugin's `panelcfg` types. A panel of a type missing here
// fails the check, so that no panel escapes validation.
export const PANEL_TYPES = {
  timeseries: 'timeseries',
  stat: 'stat',
  'state-timeline': 'statetimeline',
  'status-history': 'statushistory',
  table: 'table',
  bargauge: 'bargauge',
  gauge: 'gauge',
  heatmap: 'heatmap',
  text: 'text',
  piechart: 'piechart',
  barchart: 'barchart',
  histogram: 'histogram',
};

const TYPES_ROOT = '@grafana/schema/dist/types/raw';

// Generates (or reads from the cache) the dashboard schema and every panel plugin's `Options`
// and `FieldConfig` schemas. Returns `{ dashboard, panels: { [pluginId]: { options, fieldConfig } } }`;
// `fieldConfig` is null for plugins without custom field options (stat, bargauge, ...).
export function loadGenerated(cacheDir) {
  const require = createRequire(path.join(cacheDir, 'package.json'));
  const modules = path.join(cacheDir, 'node_modules');
  const readPkg = (name) => JSON.parse(fs.readFileSync(path.join(modules, name, 'package.json'), 'utf8'));
  const schemaPkg = readPkg('@grafana/schema');
  const genPkg = readPkg('ts-json-schema-generator');
  const key = `grafana-schema-${schemaPkg.version}_tsjsg-${genPkg.version}_${Object.keys(PANEL_TYPES).join('.')}`;
  const file = path.join(cacheDir, 'schema', `${key}.json`);
  if (fs.existsSync(file)) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  }

  const { createGenerator } = require('ts-json-schema-generator');
  // By path: the package's "exports" map does not expose its .d.ts files to require.resolve.
  const typesFile = (dir) => path.join(modules, TYPES_ROOT, dir, 'types.gen.d.ts');
  const generate = (file, type) =>
    createGenerator({ path: file, type, skipTypeCheck: true }).createSchema(type);

  process.stdout.write(`schema: generating JSON Schemas from @grafana/schema ${schemaPkg.version} (once, cached)\n`);
  const out = { grafanaSchemaVersion: schemaPkg.version, dashboard: null, panels: {} };
  out.dashboard = generate(typesFile('dashboard/x'), 'Dashboard');
  for (const [plugin, dir] of Object.entries(PANEL_TYPES)) {
    const f = typesFile(`composable/${dir}/panelcfg/x`);
    const text = fs.readFileSync(f, 'utf8');
    // Only types the plugin's own file declares: an undeclared name would resolve to some
    // other `FieldConfig` among the imported common types.
    const declares = (t) => new RegExp(`export interface ${t}\\b`).test(text);
    out.panels[plugin] = {
      options: declares('Options') ? generate(f, 'Options') : null,
      fieldConfig: declares('FieldConfig') ? generate(f, 'FieldConfig') : null,
    };
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(out));
  fs.renameSync(`${file}.tmp`, file);
  return out;
}

// A Prometheus query as a panel target or annotation target. @grafana/schema types panel
// targets as open objects (`Record<string, unknown>`), so this is our own tightening, written
// from the Prometheus plugin's `Prometheus`/`PromQuery` types (npm @grafana/prometheus,
// dataquery.d.ts and types.d.ts) plus the common `DataQuery` fields. Unknown keys fail, so a
// misspelt `legendFormat` does not silently fall back to the default legend.
export const PROMETHEUS_QUERY = {
  type: 'object',
  additionalProperties: false,
  required: ['refId', 'expr'],
  properties: {
    refId: { type: 'string', minLength: 1 },
    datasource: { $ref: '#/definitions/DataSourceRef' },
    hide: { type: 'boolean' },
    editorMode: { enum: ['code', 'builder'] },
    exemplar: { type: 'boolean' },
    expr: { type: 'string', minLength: 1 },
    format: { enum: ['time_series', 'table', 'heatmap'] },
    instant: { type: 'boolean' },
    range: { type: 'boolean' },
    interval: { type: 'string' },
    intervalFactor: { type: 'number' },
    legendFormat: { type: 'string' },
  },
};

// A Prometheus variable query as Grafana's variable editor stores it.
export const PROMETHEUS_VARIABLE_QUERY = {
  type: 'object',
  additionalProperties: false,
  required: ['query', 'refId'],
  properties: {
    query: { type: 'string', minLength: 1 },
    refId: { type: 'string' },
    qryType: { type: 'number' },
  },
};

// The relaxations applied to the generated dashboard schema. Each one names the definition it
// touches and why the TypeScript types are narrower than what current Grafana reads and
// writes. README.md ("Schema quirks") repeats this list for humans.
export const RELAXATIONS = [
  {
    what: 'AnnotationQuery.target may also be a data-source query (here: a Prometheus query)',
    why:
      'the types only describe the built-in Grafana source\'s tag filter (their own comment: ' +
      '"TODO.. this should just be a normal query target"); the Prometheus plugin keeps ' +
      'expr/refId/interval in target and moves legacy expr/step there when it loads a dashboard',
    apply(s) {
      const q = s.definitions.AnnotationQuery.properties;
      q.target = {
        anyOf: [{ $ref: '#/definitions/AnnotationTarget' }, { $ref: '#/definitions/MailpulsePrometheusQuery' }],
        description: q.target.description,
      };
    },
  },
  {
    what: 'AnnotationQuery may carry tagKeys, titleFormat, textFormat (strings) and useValueForTime (boolean)',
    why:
      'the Prometheus plugin reads these from the annotation itself, not from its target, when ' +
      'it turns series into annotation events (PrometheusAnnotationSupport.processEvents); the ' +
      'Grafana Foundation SDK declares them on AnnotationQuery too',
    apply(s) {
      Object.assign(s.definitions.AnnotationQuery.properties, {
        tagKeys: { type: 'string', description: 'Comma-separated label names that become annotation tags' },
        titleFormat: { type: 'string', description: 'Annotation title; {{label}} is replaced' },
        textFormat: { type: 'string', description: 'Annotation text; {{label}} is replaced' },
        useValueForTime: { type: 'boolean', description: 'Use the sample value as the event time' },
      });
    },
  },
  {
    what: 'VariableModel may carry definition (string)',
    why:
      'Grafana\'s variable editor writes the query\'s display text there, so a dashboard saved ' +
      'or exported from the Grafana UI has it; the types do not list it',
    apply(s) {
      s.definitions.VariableModel.properties.definition = {
        type: 'string',
        description: 'Display text of the variable query, written by the Grafana UI',
      };
    },
  },
];

// Returns the dashboard schema with the relaxations applied and our Prometheus definitions
// added (as `MailpulsePrometheusQuery` and `MailpulsePrometheusVariableQuery`).
export function dashboardSchema(generated) {
  const s = structuredClone(generated.dashboard);
  s.definitions.MailpulsePrometheusQuery = PROMETHEUS_QUERY;
  s.definitions.MailpulsePrometheusVariableQuery = PROMETHEUS_VARIABLE_QUERY;
  for (const r of RELAXATIONS) {
    r.apply(s);
  }
  return s;
}
