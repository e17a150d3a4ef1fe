/**
 * The bench's CPU accounting from /proc: the schedstat nanoseconds agree
 * with getrusage for this process, include a live child's threads, and
 * say null for a process that is gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpuNanos, cpuNanosAll, cpuSeconds } from '../../bench/e2e/proc.js';

const usageNanos = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1e3;
};

test('cpuNanos of this process follows getrusage over a busy spell', () => {
  const n0 = cpuNanos(process.pid);
  const u0 = usageNanos();
  assert.ok(n0 !== null && n0 > 0);
  // Spin until getrusage has seen 40 ms more CPU (or 5 s passed).
  const end = Date.now() + 5_000;
  let x = 0;
  while (usageNanos() - u0 < 40e6 && Date.now() < end) x += Math.sqrt(x + 1);
  const dn = (cpuNanos(process.pid) as number) - n0;
  const du = usageNanos() - u0;
  assert.ok(du >= 40e6, `the spin used ${du / 1e6} ms of CPU`);
  // Two counts of the same threads; other threads of this process (GC,
  // the test runner's) add a little to both.
  assert.ok(Math.abs(dn - du) < 0.1 * du + 5e6, `schedstat ${dn / 1e6} ms against getrusage ${du / 1e6} ms`);
});

test('cpuNanos counts a live child; null once a process is gone', async () => {
  const child = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
  try {
    const pid = child.pid as number;
    const end = Date.now() + 10_000;
    let own: number | null = 0;
    while (Date.now() < end) {
      own = cpuNanos(pid);
      if (own !== null && own > 50e6) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(own !== null && own > 50e6, `the child used ${String(own)} ns`);
    const withChild = cpuNanos(process.pid) as number;
    const self = usageNanos();
    assert.ok(withChild >= own, 'the parent total includes the child');
    assert.ok(withChild - self > 0.5 * own, `parent ${withChild / 1e6} ms, own getrusage ${self / 1e6} ms, child ${own / 1e6} ms`);
    const later = cpuNanosAll([pid]);
    assert.ok(later !== null && later >= own, 'a live child keeps counting');
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  const gone = child.pid as number;
  assert.equal(cpuNanos(gone), null);
  assert.equal(cpuNanosAll([process.pid, gone]), null);
  assert.equal(cpuSeconds(gone), null);
});
