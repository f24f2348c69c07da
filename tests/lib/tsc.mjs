// Runs the TypeScript compiler over a directory of generated files and returns its errors, for
// the checks that type-check JSON against a package's interfaces (tests/dashboards/check.mjs:
// dashboards against @grafana/schema; tests/deploy/k8s_check.mjs: Kubernetes objects against
// kubernetes-models).
//
//   tscErrors(tsDir, modulesDir, describe) -> null when tsc passes, else a list of messages:
//   describe(file, line, code, message) for each error (file resolved to an absolute path, line
//   1-based), followed by tsc's continuation lines, indented; other output as "tsc: ...".
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export function tscErrors(tsDir, modulesDir, describe) {
  const tsc = path.join(modulesDir, 'typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', '.', '--pretty', 'false'], {
    cwd: tsDir,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.error) return [`tsc: ${r.error.message}`];
  if (r.status === 0) return null;
  const errors = [];
  let current = null;
  const flush = () => current && errors.push(current.join('\n'));
  for (const line of `${r.stdout}${r.stderr}`.split('\n')) {
    const m = /^(.*?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line);
    if (m) {
      flush();
      current = [describe(path.resolve(tsDir, m[1]), Number(m[2]), m[4], m[5])];
    } else if (line.trim() && current) {
      current.push(`    ${line.trim()}`);
    } else if (line.trim()) {
      errors.push(`tsc: ${line}`);
    }
  }
  flush();
  return errors;
}
