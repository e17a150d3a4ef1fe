// Builds the C addon with node-gyp against the headers of the Node that runs
// this script (never downloads headers). Run by `npm ci` (install script).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const nodedir = dirname(dirname(process.execPath));
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`weft: Node headers not found under ${nodedir}/include/node; ` +
    'install the Node.js development headers for this Node build (node-gyp must not download them).');
  process.exit(1);
}
// Prefer the node-gyp that ships with npm; it needs no install of its own.
const require = createRequire(import.meta.url);
let gyp;
for (const candidate of [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
]) {
  if (candidate && existsSync(candidate)) { gyp = candidate; break; }
}
if (!gyp) {
  try { gyp = require.resolve('node-gyp/bin/node-gyp.js'); } catch { /* handled below */ }
}
if (!gyp) {
  console.error('weft: node-gyp not found (it ships with npm); reinstall npm or add node-gyp@12 as a devDependency.');
  process.exit(1);
}
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--directory=native'], {
  cwd: root, stdio: 'inherit',
});
process.exit(r.status ?? 1);
