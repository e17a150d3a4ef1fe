import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { controlRequest, startControlServer } from '../../src/control/control-server.js';
import { Supervisor } from '../../src/dataplane/supervisor.js';
import { createControlBlock } from '../../src/dataplane/layout.js';
import { SILENT } from '../../src/log.js';
import { withTmpDir } from '../helpers/tmp.js';

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTmpDir('weft-ctl-', fn);

test('control socket: a mistyped --control-socket naming a file deletes nothing, and says why', () => withDir(async (dir) => {
  const path = join(dir, 'net-conf.json');
  await writeFile(path, '{"Network":"10.244.0.0/16"}');
  await assert.rejects(startControlServer(path, { status: () => ({}), crashWorker: null }),
    { code: 'EEXIST', message: /--control-socket \S+net-conf\.json exists and is not a socket: weft does not delete it/ });
  assert.equal(await readFile(path, 'utf8'), '{"Network":"10.244.0.0/16"}');
}));

test('control socket: in a directory weft makes 0700; the socket 0600 whatever the umask, which is restored', () => withDir(async (dir) => {
  const path = join(dir, 'run', 'weft', 'weft.sock');
  const old = process.umask(0);
  try {
    const server = await startControlServer(path, { status: () => ({ ok: true }), crashWorker: null });
    try {
      assert.equal(process.umask(), 0, 'umask restored');
      assert.equal((await stat(join(dir, 'run', 'weft'))).mode & 0o777, 0o700);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.deepEqual(await controlRequest(path, 'GET', '/status'), { ok: true });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  } finally {
    process.umask(old);
  }
}));

test('control socket: a socket left by a daemon that is gone is replaced', () => withDir(async (dir) => {
  const path = join(dir, 'weft.sock');
  // A bound socket file whose process is gone, as after a SIGKILL (node would unlink it on close).
  execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  assert.ok((await lstat(path)).isSocket());
  const server = await startControlServer(path, { status: () => ({ fresh: 1 }), crashWorker: null });
  try {
    assert.deepEqual(await controlRequest(path, 'GET', '/status'), { fresh: 1 });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}));

test('crash-worker?worker=x: 400 naming the problem, and no worker is touched (x was NaN, which stopped every worker)', () => withDir(async (dir) => {
  const path = join(dir, 'weft.sock');
  const asked: number[] = [];
  const server = await startControlServer(path, { status: () => ({}), crashWorker: (i) => { asked.push(i); return true; } });
  try {
    await assert.rejects(controlRequest(path, 'POST', '/test/crash-worker?worker=x'), /answered 400: .*worker must be a worker index such as 0, got \\"x\\"/);
    await assert.rejects(controlRequest(path, 'POST', '/test/crash-worker?worker=-1'), /answered 400/);
    assert.deepEqual(await controlRequest(path, 'POST', '/test/crash-worker?worker=1'), { worker: 1 });
    assert.deepEqual(asked, [1]);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  // The supervisor refuses what is not an index, before touching the control block.
  const control = createControlBlock();
  const sup = new Supervisor({
    tunFds: [-1, -1], udpFds: [-1, -1], wakeFds: [-1, -1], control, routes: new SharedArrayBuffer(8), stats: new SharedArrayBuffer(8),
    maxPeers: 1, pathMtu: 1472, offloads: { vnet: false, gso: false, gro: false, merge: 0 }, backend: { kind: 'udp' },
    keepWarmMs: 0, onWorkerGone: () => undefined, log: SILENT,
  });
  for (const i of [Number.NaN, 0.5, -1, 2]) assert.equal(sup.crash(i), false, String(i));
  assert.ok(control.every((v) => v === 0), 'the control block is untouched');
}));
