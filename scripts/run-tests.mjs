// Runs the compiled tests with node's test runner: unit tests in parallel,
// then integration tests (root, network namespaces) one file at a time.
// Prints one closing line "tests: N passed, N failed, N skipped" and exits
// non-zero when anything failed or when no test ran at all.
//   node scripts/run-tests.mjs [--unit | --integration] [files...]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const args = process.argv.slice(2);
const only = args.find((a) => a === '--unit' || a === '--integration');
const explicit = args.filter((a) => !a.startsWith('--'));

function find(dir) {
  const out = [];
  let names;
  try { names = readdirSync(dir); } catch { return out; }
  for (const n of names.sort()) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (n.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const all = explicit.length > 0 ? explicit : find('dist/test');
const isIntegration = (f) => f.includes(`${join('test', 'integration')}`);
const phases = [];
if (only !== '--integration') phases.push(['unit', all.filter((f) => !isIntegration(f)), []]);
if (only !== '--unit') phases.push(['integration', all.filter(isIntegration), ['--test-concurrency=1']]);

const totals = { pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };

function runPhase(name, files, extra) {
  return new Promise((resolve) => {
    if (files.length === 0) { resolve(0); return; }
    console.log(`\n== ${name} tests (${files.length} files) ==`);
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', ...extra, ...files], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      buf += d.toString();
    });
    child.on('close', (code) => {
      // The top-level summary lines are the last "# pass N" etc. of the stream.
      for (const key of Object.keys(totals)) {
        const m = [...buf.matchAll(new RegExp(`^# ${key} (\\d+)$`, 'gm'))].pop();
        if (m) totals[key] += Number(m[1]);
      }
      resolve(code ?? 1);
    });
  });
}

let worst = 0;
for (const [name, files, extra] of phases) {
  const code = await runPhase(name, files, extra);
  if (code !== 0) worst = code;
}
const failed = totals.fail + totals.cancelled;
console.log(`\ntests: ${totals.pass} passed, ${failed} failed, ${totals.skipped} skipped`);
if (totals.pass === 0) {
  console.error(`no test ran (looked in ${relative('.', 'dist/test')}); did the TypeScript build run?`);
  process.exit(1);
}
process.exit(failed > 0 || worst !== 0 ? 1 : 0);
