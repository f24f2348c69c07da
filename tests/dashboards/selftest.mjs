// Makes sure check.mjs still rejects what it must: copies dashboards/sgt-entropy.json into a
// scratch source tree once untouched and once per kind of mistake (an unknown property, a wrong
// datasource uid, a misspelt panel type, ...), runs check.mjs on that tree and expects the
// untouched copy to pass and every broken copy to fail with its own message. Without this a
// change of the pinned packages that turned the schema types into `any`, or a checker bug, would
// let every dashboard pass. Nothing broken is written outside SCRATCH_DIR.
//
//   node selftest.mjs SOURCE_DIR SCRATCH_DIR NODE_MODULES_DIR

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [srcDir, scratchDir, modulesDir] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const base = JSON.parse(fs.readFileSync(path.join(srcDir, 'dashboards/sgt-entropy.json'), 'utf8'));

const panelsOf = (d) => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const firstOfType = (d, type) => panelsOf(d).find((p) => p.type === type);

// name -> [mutation, regex the FAIL line for dashboards/<name>.json must match]
const cases = {
  'unknown-dashboard-property': [(d) => (d.refreshRate = '5s'), /'"?refreshRate"?' does not exist/],
  'unknown-panel-option': [(d) => (firstOfType(d, 'timeseries').options.legend.colour = 'red'), /panels\[\d+\]\.options\.legend\.colour.*'"?colour"?' does not exist/],
  'wrong-option-value': [(d) => (firstOfType(d, 'timeseries').options.legend.displayMode = 'lists'), /options\.legend\.displayMode.*"lists"/],
  'unknown-custom-field-config': [(d) => (firstOfType(d, 'timeseries').fieldConfig.defaults.custom.lineWidht = 2), /'"?lineWidht"?' does not exist/],
  'unknown-override-property': [(d) => firstOfType(d, 'xychart').fieldConfig.overrides[0].properties.push({ id: 'custom.colour', value: 1 }), /"custom\.colour"/],
  'misspelt-panel-type': [(d) => (firstOfType(d, 'stat').type = 'stats'), /'"stats"' does not exist on type 'PanelTypes'|Property '"?stats"?' does not exist/],
  'unknown-query-property': [(d) => (firstOfType(d, 'timeseries').targets[0].legendFromat = 'x'), /targets\[0\].*'"?legendFromat"?' does not exist/],
  'unknown-annotation-property': [(d) => (d.annotations.list[0].colour = 'red'), /annotations\.list\[0\].*'"?colour"?' does not exist/],
  'unknown-variable-property': [(d) => (d.templating.list[0].allowAll = true), /templating\.list\[0\].*'"?allowAll"?' does not exist/],
  'wrong-datasource-uid': [(d) => (firstOfType(d, 'timeseries').datasource = { type: 'prometheus', uid: 'prometheus' }), /datasource uid "prometheus" is not provisioned/],
  'wrong-datasource-type': [(d) => (d.templating.list[0].datasource = { type: 'loki', uid: 'sgt-prometheus' }), /has type prometheus in the provisioning file, not loki/],
  'default-datasource': [(d) => delete firstOfType(d, 'timeseries').targets[0].datasource, /no datasource/],
  'datasource-input': [(d) => (firstOfType(d, 'heatmap').datasource = { type: 'prometheus', uid: '${DS_PROMETHEUS}' }), /\$\{DS_\.\.\.\}/],
  'duplicate-panel-id': [(d) => (d.panels.at(-1).panels[0].id = d.panels[1].id), /panel id \d+ is also/],
  'undefined-variable': [(d) => (firstOfType(d, 'timeseries').targets[0].expr += ' and on(run) sgt_run_info{run=~"$runs"}'), /\$runs, which is not a variable/],
  'promql-syntax': [(d) => (firstOfType(d, 'timeseries').targets[0].expr = 'sum by (run) (sgt_run_loss'), /PromQL does not parse/],
  'wrong-schema-version': [(d) => (d.schemaVersion = 1), /schemaVersion is 1/],
  'xychart-without-plugin-version': [(d) => delete firstOfType(d, 'xychart').pluginVersion, /an xychart needs pluginVersion/],
  'overlapping-panels': [(d) => (d.panels[2].gridPos = { ...d.panels[1].gridPos }), /overlaps/],
};

const root = path.join(scratchDir, 'selftest');
const src = path.join(root, 'src');
fs.rmSync(root, { recursive: true, force: true });
fs.mkdirSync(path.join(src, 'dashboards'), { recursive: true });
fs.mkdirSync(path.join(src, 'tests/dashboards'), { recursive: true });
fs.cpSync(path.join(srcDir, 'deploy'), path.join(src, 'deploy'), { recursive: true });
fs.copyFileSync(path.join(here, 'schema.ts'), path.join(src, 'tests/dashboards/schema.ts'));

const write = (name, d, i) => {
  d.uid = `selftest-${i}`;
  d.title = `selftest ${name}`;
  fs.writeFileSync(path.join(src, 'dashboards', `${name}.json`), JSON.stringify(d, null, 2));
};
write('untouched', structuredClone(base), 0);
Object.entries(cases).forEach(([name, [mutate]], i) => {
  const d = structuredClone(base);
  mutate(d);
  write(name, d, i + 1);
});

const r = spawnSync(process.execPath, [path.join(here, 'check.mjs'), src, path.join(root, 'scratch'), modulesDir], {
  encoding: 'utf8',
  maxBuffer: 64 << 20,
});
const out = `${r.stdout}${r.stderr}`;
// A FAIL message with its continuation lines, keyed by the dashboard it names first.
const failures = out.split(/\n(?=FAIL |ok |note |dashboards: )/).filter((b) => b.startsWith('FAIL '));
const problems = [];
if (r.status !== 1) problems.push(`check.mjs exited ${r.status} (expected 1)`);
const about = (name) => failures.filter((f) => f.includes(`dashboards/${name}.json`));
if (about('untouched').length) problems.push(`the untouched copy failed:\n${about('untouched').join('\n')}`);
for (const [name, [, expect]] of Object.entries(cases)) {
  const mine = about(name);
  if (!mine.some((f) => expect.test(f))) {
    problems.push(`${name}: no failure matching ${expect}${mine.length ? `; got:\n${mine.join('\n')}` : ''}`);
  }
}
if (problems.length) {
  console.log(`selftest: check.mjs did not reject what it must:\n${problems.join('\n')}\n--- its output:\n${out}`);
  process.exit(1);
}
console.log(`ok   selftest: ${Object.keys(cases).length} broken copies of sgt-entropy.json rejected, each for its own reason; the untouched copy passes`);
