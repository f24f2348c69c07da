// Checks Kubernetes manifests rendered from deploy/k8s (tests/deploy/k8s_manifests_test.sh runs
// it on `kubectl kustomize` of the base and of each overlay):
//
//  1. schema: every object validates with the kubernetes-models class of its apiVersion and kind
//     (an unknown apiVersion/kind fails); the package's validators let unknown fields through,
//     so every object is also type-checked, as an object literal, against the package's
//     TypeScript interface of its kind (tsc --strict): an unknown field anywhere is an excess
//     property, a wrong type a type error;
//  2. flags: every container's command line (command + args; the Dockerfile's ENTRYPOINT when
//     the container has no command) runs an sgt executable, its $(VAR) references name the
//     container's env and are replaced by plausible values (a node name, a pod IP), and the
//     executable built here accepts it: `BIN/sgt-x --check-args ARGS` exits 0;
//  3. shape: what docs/clusters.md promises of each target (the coordinator one replica with a
//     volume claim template, the worker's GPU selector, toleration and limit, or none on cpu,
//     --name from the node name, a ReadWriteMany checkpoint claim, Prometheus annotations on the
//     --metrics-listen port, the Grafana ConfigMaps, TLS flags on tls).
//
//   node k8s_check.mjs SOURCE_DIR SCRATCH_DIR NODE_MODULES BIN_DIR TARGET=rendered.yaml...
//   node k8s_check.mjs --selftest SOURCE_DIR SCRATCH_DIR NODE_MODULES BIN_DIR base=rendered.yaml
//
// --selftest breaks the rendered base in the ways the checks must catch (an unknown field, a
// wrong type, an unknown kind, a flag the worker lacks, a bad flag value, an undefined $(VAR)) and
// fails unless each is caught. Exit status 0 when everything passed, 1 otherwise.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { tscErrors } from '../lib/tsc.mjs';

const selftest = process.argv[2] === '--selftest';
const [srcDir, scratchDir, modulesDir, binDir, ...targetArgs] = process.argv.slice(selftest ? 3 : 2);
const require = createRequire(path.join(modulesDir, 'x.js'));
const YAML = require('yaml');
const modelsVersion = require('kubernetes-models/package.json').version;

// ---------------------------------------------------------------------------------------------
// Loading.

function loadTarget(name, file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  const objects = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const o = d.toJSON();
    if (o != null) objects.push(o);
  }
  return { name, objects };
}

const where = (t, o) => `${t.name}: ${o?.kind ?? '?'}/${o?.metadata?.name ?? '?'}`;

// "apps/v1" + "DaemonSet" -> the module kubernetes-models/apps/v1/DaemonSet; "v1" -> v1/...
function modelModule(o) {
  if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') return null;
  const file = path.join(modulesDir, 'kubernetes-models', o.apiVersion, `${o.kind}.js`);
  return fs.existsSync(file) ? `kubernetes-models/${o.apiVersion}/${o.kind}` : null;
}

// ---------------------------------------------------------------------------------------------
// 1. Schema.

function checkModels(t, errors) {
  for (const o of t.objects) {
    const mod = modelModule(o);
    if (!mod) {
      errors.push(`${where(t, o)}: no kubernetes-models class for apiVersion ${o.apiVersion} kind ${o.kind}`);
      continue;
    }
    const Model = require(mod)[o.kind];
    try {
      new Model(o).validate();
    } catch (e) {
      errors.push(`${where(t, o)}: schema: ${e.message.split('\n').slice(0, 4).join('; ')}`);
    }
  }
}

// Every object as a TypeScript object literal typed with its kind's interface; errors are mapped
// back to the object and the JSON path of the line they point at.
function checkTypes(targets, errors) {
  const tsDir = path.join(scratchDir, 'ts');
  fs.rmSync(tsDir, { recursive: true, force: true });
  fs.mkdirSync(tsDir, { recursive: true });
  fs.symlinkSync(modulesDir, path.join(tsDir, 'node_modules'), 'dir');
  fs.writeFileSync(
    path.join(tsDir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'ES2020', module: 'commonjs', moduleResolution: 'node',
        skipLibCheck: true, types: [], lib: ['ES2020'], noErrorTruncation: true,
      },
      include: ['*.ts'],
    })
  );
  const lineMaps = new Map();
  for (const [ti, t] of targets.entries()) {
    const lines = [], paths = [];
    const emit = (text, p) => { lines.push(text); paths.push(p); };
    t.objects.forEach((o, i) => {
      const mod = modelModule(o);
      if (!mod) return;  // reported by checkModels
      emit(`import type { I${o.kind} as T${i} } from "${mod}";`, '');
      emitValue(o, `${o.kind}/${o.metadata?.name}`, '', `export const o${i}: T${i} = `, ';', emit);
    });
    const file = path.join(tsDir, `t${ti}.ts`);
    fs.writeFileSync(file, lines.join('\n') + '\n');
    lineMaps.set(path.resolve(file), { t, paths });
  }
  const found = tscErrors(tsDir, modulesDir, (file, line, code, message) => {
    const map = lineMaps.get(file);
    const p = map?.paths[line - 1] ?? '';
    return `${map ? map.t.name : file}: ${p || `line ${line}`}: unknown field or wrong type (${code}): ${message}`;
  });
  if (found) errors.push(...found);
}

// `v` as a TypeScript literal, one property per line, each line's JSON path recorded (after the
// object's kind/name) so that tsc's line numbers say where.
function emitValue(v, p, indent, prefix, suffix, emit) {
  if (v === null || typeof v !== 'object') return emit(`${indent}${prefix}${JSON.stringify(v)}${suffix}`, p);
  const isArray = Array.isArray(v);
  const entries = isArray ? v.map((x, i) => [i, x]) : Object.entries(v);
  if (!entries.length) return emit(`${indent}${prefix}${isArray ? '[]' : '{}'}${suffix}`, p);
  emit(`${indent}${prefix}${isArray ? '[' : '{'}`, p);
  for (const [k, x] of entries) {
    const cp = isArray ? `${p}[${k}]` : `${p}.${k}`;
    emitValue(x, cp, `${indent}  `, isArray ? '' : `${JSON.stringify(k)}: `, ',', emit);
  }
  emit(`${indent}${isArray ? ']' : '}'}${suffix}`, p);
}

// ---------------------------------------------------------------------------------------------
// 2. Flags.

const podSpecOf = (o) =>
  o.kind === 'Pod' ? o.spec : o.kind === 'CronJob' ? o.spec?.jobTemplate?.spec?.template?.spec : o.spec?.template?.spec;

function dockerEntrypoint() {
  const text = fs.readFileSync(path.join(srcDir, 'deploy/k8s/Dockerfile'), 'utf8');
  const m = [...text.matchAll(/^ENTRYPOINT\s+(\[.*\])\s*$/gm)].pop();
  return m ? JSON.parse(m[1]) : null;
}

// Plausible values for the downward API's fields.
const fieldValues = {
  'spec.nodeName': 'node-1', 'status.podIP': '10.244.1.7', 'status.hostIP': '192.168.1.7',
  'metadata.name': 'sgt-worker-x7k2p', 'metadata.namespace': 'sgt', 'spec.serviceAccountName': 'default',
};

function checkFlags(t, errors, passed) {
  for (const o of t.objects) {
    const spec = podSpecOf(o);
    if (!spec) continue;
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      const at = `${where(t, o)} container ${c.name}`;
      const argv = [...(c.command ?? dockerEntrypoint() ?? []), ...(c.args ?? [])];
      const exe = path.basename(String(argv[0] ?? ''));
      if (!/^sgt-(coordinator|worker)$/.test(exe)) {
        errors.push(`${at}: runs '${argv[0]}', not sgt-coordinator or sgt-worker: nothing to check it with`);
        continue;
      }
      const env = new Map();
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.fieldRef?.fieldPath;
        env.set(e.name, e.value ?? (ref ? fieldValues[ref] : undefined) ?? `value-of-${e.name}`);
      }
      let bad = false;
      const args = argv.slice(1).map((a) =>
        String(a).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name) => {
          if (m === '$$') return '$';
          if (!env.has(name)) {
            errors.push(`${at}: $(${name}) in its arguments is not in its env (Kubernetes would pass it literally)`);
            bad = true;
          }
          return env.get(name);
        })
      );
      if (bad) continue;
      const r = spawnSync(path.join(binDir, exe), ['--check-args', ...args], { encoding: 'utf8', timeout: 20000 });
      if (r.status !== 0) {
        errors.push(`${at}: ${exe} --check-args ${args.join(' ')}: exit ${r.status ?? r.signal}: ${(r.stderr || '').split('\n')[0]}`);
      } else {
        passed.push(`${at}: ${exe} accepts ${args.join(' ')}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Shape.

function checkShape(t, errors) {
  const find = (kind, name) => t.objects.find((o) => o.kind === kind && o.metadata?.name === name);
  const need = (cond, what) => cond || errors.push(`${t.name}: ${what}`);
  const coord = find('StatefulSet', 'sgt-coordinator');
  const worker = find('DaemonSet', 'sgt-worker');
  const svc = find('Service', 'sgt-coordinator');
  const pvc = find('PersistentVolumeClaim', 'sgt-checkpoints');
  if (!need(coord, 'no StatefulSet sgt-coordinator') || !need(worker, 'no DaemonSet sgt-worker')) return;
  need(coord.spec.replicas === 1, 'the coordinator must have exactly one replica (one per store)');
  need(coord.spec.volumeClaimTemplates?.length === 1, 'the coordinator has no volume claim template for its store');
  const cArgs = coord.spec.template.spec.containers[0].args ?? [];
  const dbDir = path.dirname(cArgs[cArgs.indexOf('--db') + 1] ?? '');
  need(coord.spec.template.spec.containers[0].volumeMounts?.some((m) => m.mountPath === dbDir &&
    m.name === coord.spec.volumeClaimTemplates?.[0]?.metadata?.name), `--db's directory ${dbDir} is not the claimed volume`);
  need(svc && [7070, 9464].every((p) => svc.spec.ports.some((x) => x.port === p)), 'Service sgt-coordinator lacks port 7070 or 9464');
  need(pvc?.spec?.accessModes?.includes('ReadWriteMany'), 'no ReadWriteMany claim sgt-checkpoints');
  const tokenSecret = (o) => podSpecOf(o).volumes?.some((v) => v.secret?.secretName === 'sgt-tokens');
  need(tokenSecret(coord) && tokenSecret(worker), 'the daemons do not both mount the Secret sgt-tokens');
  for (const name of ['sgt-grafana-provisioning', 'sgt-dashboard-entropy', 'sgt-dashboard-fleet', 'sgt-dashboard-sweep-analysis']) {
    need(find('ConfigMap', name), `no ConfigMap ${name}`);
  }
  // Prometheus annotations name the port --metrics-listen serves on.
  for (const o of [coord, worker]) {
    const a = o.spec.template.metadata?.annotations ?? {};
    const args = o.spec.template.spec.containers[0].args ?? [];
    const listen = args[args.indexOf('--metrics-listen') + 1] ?? '';
    need(a['prometheus.io/scrape'] === 'true' && listen.endsWith(`:${a['prometheus.io/port']}`),
      `${o.kind}/${o.metadata.name}: prometheus.io annotations do not match --metrics-listen ${listen}`);
  }
  const ws = worker.spec.template.spec;
  const wc = ws.containers[0];
  const wArgs = wc.args ?? [];
  const nameArg = wArgs[wArgs.indexOf('--name') + 1];
  const nameVar = /^\$\((\w+)\)$/.exec(nameArg ?? '')?.[1];
  need(wc.env?.find((e) => e.name === nameVar)?.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName',
    'the worker\'s --name is not the node name (downward API spec.nodeName)');
  const shared = ws.volumes?.find((v) => v.persistentVolumeClaim?.claimName === 'sgt-checkpoints');
  const ckpt = wArgs[wArgs.indexOf('--checkpoint-root') + 1] ?? '';
  need(shared && wc.volumeMounts?.some((m) => m.name === shared.name && (ckpt + '/').startsWith(m.mountPath + '/') && !m.readOnly),
    `--checkpoint-root ${ckpt} is not on the shared claim, read-write`);
  const devices = wArgs[wArgs.indexOf('--devices') + 1] ?? '';
  const gpu = wc.resources?.limits?.['nvidia.com/gpu'];
  if (t.name.startsWith('cpu')) {
    need(/^cpu:\d+$/.test(devices), `cpu: --devices is ${devices}, want cpu:N`);
    need(!JSON.stringify(worker).includes('nvidia'), 'cpu: the worker still mentions nvidia (selector, toleration or limit)');
    const n = Number(devices.split(':')[1]);
    need(Number(wc.resources?.requests?.cpu) >= n, `cpu: the worker requests ${wc.resources?.requests?.cpu} CPUs for ${n} slots`);
  } else {
    need(/^cuda(:[\d,]+)?$/.test(devices), `--devices is ${devices}, want cuda`);
    need(Number(gpu) >= 1, 'the worker has no nvidia.com/gpu limit');
    need(Object.keys(ws.nodeSelector ?? {}).some((k) => k.startsWith('nvidia.com/')), 'the worker has no GPU node selector');
    need(ws.tolerations?.some((x) => x.key === 'nvidia.com/gpu' && x.operator === 'Exists'), 'the worker does not tolerate the nvidia.com/gpu taint');
  }
  if (t.name.startsWith('tls')) {
    need(cArgs.includes('--tls-cert') && cArgs.includes('--tls-key'), 'tls: the coordinator has no --tls-cert/--tls-key');
    need(wArgs.includes('--tls-ca'), 'tls: the worker has no --tls-ca');
  }
}

// ---------------------------------------------------------------------------------------------

function checkAll(targets) {
  const errors = [], passed = [];
  for (const t of targets) {
    checkModels(t, errors);
    checkFlags(t, errors, passed);
    checkShape(t, errors);
  }
  checkTypes(targets, errors);
  return { errors, passed };
}

function main() {
  const targets = targetArgs.map((a) => {
    const i = a.indexOf('=');
    return loadTarget(a.slice(0, i), a.slice(i + 1));
  });
  if (!selftest) {
    const { errors, passed } = checkAll(targets);
    for (const p of passed) console.log(`ok: ${p}`);
    const n = targets.reduce((s, t) => s + t.objects.length, 0);
    if (errors.length) {
      for (const e of errors) console.error(`FAIL: ${e}`);
      process.exit(1);
    }
    console.log(`k8s_check: ${n} objects in ${targets.map((t) => t.name).join(', ')} valid (kubernetes-models ${modelsVersion}, no unknown fields); every daemon command line accepted`);
    return;
  }
  // Self-test: each mutation of the base must be caught, with a message matching `want`.
  const base = targets[0];
  const clone = () => ({ name: 'base', objects: JSON.parse(JSON.stringify(base.objects)) });
  const get = (t, kind) => t.objects.find((o) => o.kind === kind);
  const cases = [
    ['an unknown field in a container', (t) => { get(t, 'DaemonSet').spec.template.spec.containers[0].imagePullPolicyy = 'Always'; }, /imagePullPolicyy/],
    ['an unknown field in the metadata', (t) => { get(t, 'Service').metadata.lables = { a: 'b' }; }, /lables/],
    ['a wrong type (replicas: "one")', (t) => { get(t, 'StatefulSet').spec.replicas = 'one'; }, /replicas|schema/],
    ['a wrong type (containerPort: "7070")', (t) => { get(t, 'StatefulSet').spec.template.spec.containers[0].ports[0].containerPort = '7070'; }, /containerPort/],
    ['a missing required field', (t) => { delete get(t, 'DaemonSet').spec.selector; }, /selector/],
    ['an unknown kind', (t) => { get(t, 'Service').kind = 'Servise'; }, /no kubernetes-models class/],
    ['a flag the worker lacks', (t) => { get(t, 'DaemonSet').spec.template.spec.containers[0].args.push('--devicez', 'cuda'); }, /unknown argument '--devicez'/],
    ['a bad flag value', (t) => { get(t, 'StatefulSet').spec.template.spec.containers[0].args.push('--lease-seconds', '0'); }, /--lease-seconds needs/],
    ['an undefined $(VAR)', (t) => { get(t, 'DaemonSet').spec.template.spec.containers[0].args.push('--name', '$(NODE)'); }, /\$\(NODE\) in its arguments is not in its env/],
    ['a command that is not a daemon', (t) => { get(t, 'StatefulSet').spec.template.spec.containers[0].command = ['/bin/sh']; }, /not sgt-coordinator or sgt-worker/],
    ['two coordinators', (t) => { get(t, 'StatefulSet').spec.replicas = 2; }, /exactly one replica/],
  ];
  let failed = 0;
  const original = checkAll([clone()]);
  if (original.errors.length) {
    console.error(`FAIL: selftest: the unbroken base does not pass:\n${original.errors.join('\n')}`);
    process.exit(1);
  }
  // Each broken copy is its own target, named by its case; one tsc run checks them all.
  const broken = cases.map(([what, mutate], i) => {
    const t = clone();
    t.name = `case${i}`;
    mutate(t);
    return t;
  });
  const typeErrors = [];
  checkTypes(broken, typeErrors);
  for (const [i, [what, , want]] of cases.entries()) {
    const t = broken[i];
    const errors = typeErrors.filter((e) => e.startsWith(`${t.name}: `));
    checkModels(t, errors);
    checkFlags(t, errors, []);
    checkShape(t, errors);
    if (!errors.some((e) => want.test(e))) {
      failed++;
      console.error(`FAIL: selftest: ${what} was not caught (want /${want.source}/); errors: ${errors.join(' | ') || 'none'}`);
    } else {
      console.log(`ok: selftest: ${what} caught: ${errors.find((e) => want.test(e)).split('\n')[0]}`);
    }
  }
  if (failed) process.exit(1);
  console.log(`k8s_check --selftest: all ${cases.length} broken manifests caught`);
}

main();
