import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBounded } from '../src/child.js';

const node = process.execPath;

test('runBounded: exit code, stdout, stderr and stdin', async () => {
  const r = await runBounded([node, '-e', `
    let s = ''; process.stdin.on('data', (d) => { s += d; });
    process.stdin.on('end', () => { process.stdout.write(s.toUpperCase()); process.stderr.write('err'); process.exit(3); });`],
  { timeoutMs: 10_000, input: 'hello' });
  assert.deepEqual(r, { code: 3, stdout: 'HELLO', stderr: 'err', timedOut: false });
});

test('runBounded: output past the cap is dropped, the run still ends', async () => {
  const r = await runBounded([node, '-e', `process.stdout.write('x'.repeat(1 << 20))`], { timeoutMs: 10_000, outputCap: 1000 });
  assert.equal(r.code, 0);
  // The cap stops appending once reached: at most one chunk beyond it.
  assert.ok(r.stdout.length >= 1000 && r.stdout.length < 1 << 20, `kept ${r.stdout.length} characters`);
});

test('runBounded: a run past its time is killed and says so', async () => {
  const t0 = Date.now();
  const r = await runBounded([node, '-e', 'setTimeout(() => {}, 60_000)'], { timeoutMs: 300 });
  assert.equal(r.timedOut, true);
  assert.equal(r.code, 128, 'ended by a signal');
  assert.ok(Date.now() - t0 < 5_000, 'did not wait for the child');
});

test('runBounded: a custom kill and tracking see the child', async () => {
  const seen: string[] = [];
  const r = await runBounded([node, '-e', 'setTimeout(() => {}, 60_000)'], {
    timeoutMs: 200,
    kill: (c) => { seen.push('kill'); c.kill('SIGTERM'); },
    track: (c, gone) => { seen.push(`${gone ? 'gone' : 'spawned'} ${typeof c.pid}`); },
  });
  assert.deepEqual(seen, ['spawned number', 'kill', 'gone number']);
  assert.equal(r.timedOut, true);
});

test('runBounded: a command that cannot start rejects with its errno', async () => {
  await assert.rejects(runBounded(['/nonexistent/weft-no-such-tool'], { timeoutMs: 1000 }), { code: 'ENOENT' });
});
