import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { needsRoot } from '../helpers/root.js';
import {
  WITHOUT_DEV_NET_TUN, WITHOUT_NET_CAPS, createNetns, deleteNetns, runInNetns,
} from '../native/netns.js';

const CHILD = fileURLToPath(new URL('./child-tun.js', import.meta.url));
type Err = { threw: boolean; weft: boolean; code: string; causeCode: string; message: string };
let ns = '';

before(() => { if (process.getuid?.() === 0) ns = createNetns('wt-tun'); });
after(() => { if (ns !== '') deleteNetns(ns); });

test('openTun opens a multi-queue device, closeTun is idempotent, errors explain the fix', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{
    name: string; fds: number; link: boolean; closeAgain: Err; autoName: string;
    existing: Err; badQueues: Err; longName: Err;
  }>(ns, CHILD, ['open']);
  assert.deepEqual([r.name, r.fds, r.link], ['wt0', 2, true]);
  assert.equal(r.closeAgain.threw, false, 'EBADF on an already-closed queue is not an error');
  assert.match(r.autoName, /^tun\d+$/);

  assert.ok(r.existing.weft);
  assert.equal(r.existing.code, 'EINVAL');
  assert.equal(r.existing.causeCode, 'EINVAL');
  assert.match(r.existing.message, /wt1 already exists and is not a multi-queue TUN/);
  assert.match(r.existing.message, /ip link del wt1/);

  assert.deepEqual([r.badQueues.weft, r.badQueues.code], [true, 'EINVAL']);
  assert.match(r.badQueues.message, /queue count/);
  assert.deepEqual([r.longName.weft, r.longName.code], [true, 'EINVAL']);
});

test('openTun without CAP_NET_ADMIN: EPERM says root/CAP_NET_ADMIN', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{ err: Err }>(ns, CHILD, ['eperm'], 15_000, WITHOUT_NET_CAPS);
  assert.deepEqual([r.err.weft, r.err.code], [true, 'EPERM']);
  assert.match(r.err.message, /root or CAP_NET_ADMIN/);
});

test('openTun without /dev/net/tun: ENOENT says to load the module or mount the device', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{ err: Err }>(ns, CHILD, ['enoent'], 15_000, WITHOUT_DEV_NET_TUN);
  assert.deepEqual([r.err.weft, r.err.code], [true, 'ENOENT']);
  assert.match(r.err.message, /modprobe tun/);
  assert.match(r.err.message, /\/dev\/net\/tun/);
});
