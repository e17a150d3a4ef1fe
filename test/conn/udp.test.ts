import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { needsRoot } from '../helpers/root.js';
import { WITHOUT_NET_CAPS, createNetns, deleteNetns, runInNetns } from '../native/netns.js';

const CHILD = fileURLToPath(new URL('./child-udp.js', import.meta.url));
type Err = { threw: boolean; weft: boolean; code: string; causeCode: string; message: string };
let ns = '';

before(() => { if (process.getuid?.() === 0) ns = createNetns('wt-udp'); });
after(() => { if (ns !== '') deleteNetns(ns); });

test('openUdp: reusePort shares a port; EADDRINUSE/EADDRNOTAVAIL explain the fix', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{
    ports: number[]; bufs: [number, number]; ephemeral: number;
    inUse: Err; inUseAny: Err; notLocal: Err; badPort: Err;
  }>(ns, CHILD, ['bind']);
  assert.deepEqual(r.ports, [40000, 40000]);
  assert.ok(r.bufs[0] >= 1 << 20 && r.bufs[1] >= 1 << 20);
  assert.ok(r.ephemeral > 0);

  for (const e of [r.inUse, r.inUseAny]) {
    assert.deepEqual([e.weft, e.code, e.causeCode], [true, 'EADDRINUSE', 'EADDRINUSE']);
    assert.match(e.message, /another process \(flanneld\?\) owns UDP port 40001/);
    assert.match(e.message, /Backend\.Port/);
  }
  assert.match(r.inUse.message, /on 127\.0\.0\.1 \(or on 0\.0\.0\.0\)/);
  assert.deepEqual([r.notLocal.weft, r.notLocal.code], [true, 'EADDRNOTAVAIL']);
  assert.match(r.notLocal.message, /10\.1\.2\.3 is not an address of this host/);
  // Programming errors stay RangeErrors from the addon, not WeftErrors.
  assert.deepEqual([r.badPort.weft, r.badPort.code], [false, 'ERR_OUT_OF_RANGE']);
});

test('openUdp on a privileged port without CAP_NET_BIND_SERVICE: EACCES explained', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{ err: Err }>(ns, CHILD, ['eacces'], 15_000, WITHOUT_NET_CAPS);
  assert.deepEqual([r.err.weft, r.err.code], [true, 'EACCES']);
  assert.match(r.err.message, /CAP_NET_BIND_SERVICE/);
});
