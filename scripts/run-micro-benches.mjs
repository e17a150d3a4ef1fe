// Runs every compiled micro-benchmark (dist/bench/micro/*.bench.js) in turn,
// each in its own process so one bench's JIT state does not colour the next.
//   node scripts/run-micro-benches.mjs [name-filter]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = 'dist/bench/micro';
const filter = process.argv[2] ?? '';
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.js') && f.includes(filter)).sort();
if (files.length === 0) {
  console.error(`no micro-benchmarks in ${dir} matching "${filter}"; run \`npx tsc -p .\` first`);
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  const r = spawnSync(process.execPath, [join(dir, f)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
