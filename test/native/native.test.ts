import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { native, nativeLoadError, nativePath } from '../../src/native/index.js';
import { needsRoot } from '../helpers/root.js';
import { createNetns, deleteNetns, runInNetns } from './netns.js';

const CHILD = fileURLToPath(new URL('./child-net.js', import.meta.url));
const IO_GC_CHILD = fileURLToPath(new URL('./io-gc-child.js', import.meta.url));
/** The addon's C sources (this file runs from dist/test/native/). */
const NATIVE_SRC = fileURLToPath(new URL('../../../native/', import.meta.url));
const isRoot = process.getuid?.() === 0;
let ns = '';

before(() => { if (isRoot) ns = createNetns('wt-nat'); });
after(() => { if (ns !== '') deleteNetns(ns); });

/** An fd number nothing has open: if validation ever let a call through, it fails with EBADF, never blocks. */
const NO_FD = 1_000_000;

test('addon loads and exports the API and constants', () => {
  assert.equal(nativeLoadError, undefined);
  for (const f of ['tunOpen', 'tunName', 'tunRead', 'tunWrite', 'udpOpen', 'udpLocalPort',
    'sockBufSizes', 'udpRecv', 'udpSend', 'pollIn', 'ioBind', 'ioWait', 'ioSend', 'ioDeliver', 'close', 'eventfdOpen',
    'eventfdSignal'] as const) {
    assert.equal(typeof native[f], 'function', f);
  }
  assert.equal(native.MAX_BATCH, 256);
  assert.equal(native.TUN_VNET_HDR, 1);
});

test('bad arguments throw TypeError/RangeError before any system call', () => {
  const slab = new Uint8Array(4096);
  const offs = new Uint32Array(4);
  const lens = new Uint32Array(4);
  const a = new Uint32Array(4);
  const p = new Uint32Array(4);
  const big = native.MAX_BATCH + 1;
  const type = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
  const range = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' };

  // wrong kinds
  assert.throws(() => native.tunRead(NO_FD, 'x' as never, offs, 64, lens, 1), type);
  assert.throws(() => native.tunRead(NO_FD, slab, new Uint8Array(4) as never, 64, lens, 1), type);
  assert.throws(() => native.tunRead(NO_FD, slab, new Int32Array(4) as never, 64, lens, 1), type);
  assert.throws(() => native.tunRead(NO_FD, new Uint16Array(8) as never, offs, 64, lens, 1), type);
  assert.throws(() => native.tunWrite(NO_FD, slab, offs, [1, 2] as never, 1), type);
  assert.throws(() => (native.tunRead as (...a: unknown[]) => number)(), type);
  assert.throws(() => native.tunRead('3' as never, slab, offs, 64, lens, 1), type);
  assert.throws(() => native.udpOpen(0, 0, 1 as never, 0, 0), type);
  assert.throws(() => native.tunOpen(5 as never, 1, 0), type);

  // out of range: fd, cap, batch size vs MAX_BATCH and array lengths, slab bounds
  assert.throws(() => native.tunRead(-1, slab, offs, 64, lens, 1), range);
  assert.throws(() => native.tunRead(1.5, slab, offs, 64, lens, 1), range);
  assert.throws(() => native.tunRead(NO_FD, slab, offs, 0, lens, 1), range);
  assert.throws(() => native.tunRead(NO_FD, slab, new Uint32Array(big), 64, new Uint32Array(big), big), range);
  assert.throws(() => native.tunRead(NO_FD, slab, offs, 64, lens, 5), range);
  assert.throws(() => native.tunRead(NO_FD, slab, offs, 4097, lens, 1), range);
  assert.throws(() => native.tunRead(NO_FD, slab, new Uint32Array([0, 4000]), 97, lens, 2), range);
  assert.throws(() => native.tunRead(NO_FD, slab, new Uint32Array([0xffffffff]), 2, lens, 1), range);
  assert.throws(() => native.tunWrite(NO_FD, slab, new Uint32Array([4090]), new Uint32Array([7]), 1), range);
  assert.throws(() => native.udpRecv(NO_FD, slab, offs, 64, lens, a, new Uint32Array(2), 3), range);
  assert.throws(() => native.udpSend(NO_FD, slab, offs, lens, a, new Uint32Array([70000]), 1), range);
  assert.throws(() => native.udpSend(NO_FD, slab, offs, new Uint32Array([5000]), a, p, 1), range);
  assert.throws(() => native.udpOpen(-1, 0, false, 0, 0), range);
  assert.throws(() => native.udpOpen(2 ** 32, 0, false, 0, 0), range);
  assert.throws(() => native.udpOpen(0, 65536, false, 0, 0), range);
  assert.throws(() => native.tunOpen('x'.repeat(16), 1, 0), range);
  assert.throws(() => native.tunOpen('wtx', 0, 0), range);
  assert.throws(() => native.tunOpen('wtx', 257, 0), range);
  assert.throws(() => native.pollIn(NO_FD, -2, 0), range);
  assert.throws(() => native.pollIn(NO_FD, -1, -2), range);

  // A view over a slab at a non-zero byteOffset is bounded by the view.
  const view = new Uint8Array(new ArrayBuffer(4096), 1024, 1024);
  assert.throws(() => native.tunRead(NO_FD, view, new Uint32Array([1000]), 25, lens, 1), range);

  // Count 0 makes no system call; a real call on a bad fd is an errno error.
  assert.equal(native.tunWrite(NO_FD, slab, offs, lens, 0), 0);
  assert.equal(native.udpRecv(NO_FD, slab, offs, 64, lens, a, p, 0), 0);
  assert.throws(() => native.tunRead(NO_FD, slab, offs, 64, lens, 1),
    { code: 'EBADF', syscall: 'read', errno: 9 });
  assert.throws(() => native.udpSend(NO_FD, slab, offs, lens, a, p, 1),
    { code: 'EBADF', syscall: 'sendmmsg' });
  assert.throws(() => native.close(NO_FD), (e: Error & { code: string }) =>
    e.code === 'EBADF' && /^EBADF: .*, close$/.test(e.message));
});

test('addon loads and runs in worker threads (context-aware, per-thread scratch)', async () => {
  const url = new URL('../../src/native/index.js', import.meta.url).href;
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then(({ native }) => {
      let rangeError = '';
      try { native.tunRead(0, new Uint8Array(8), new Uint32Array(1), 64, new Uint32Array(1), 1); }
      catch (e) { rangeError = e.name; }
      const zero = native.tunWrite(1000000, new Uint8Array(8), new Uint32Array(1), new Uint32Array(1), 0);
      parentPort.postMessage({ max: native.MAX_BATCH, rangeError, zero });
    });`;
  const results = await Promise.all([0, 1].map(() => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.once('message', (m) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
  })));
  for (const r of results) assert.deepEqual(r, { max: 256, rangeError: 'RangeError', zero: 0 });
});

test('the addon links no allocator (no per-call malloc on the data path)', (t) => {
  const r = spawnSync('nm', ['-D', '--undefined-only', nativePath()], { encoding: 'utf8' });
  if (r.status !== 0) { t.skip('nm (binutils) not available'); return; }
  const imports = r.stdout.split('\n').map((l) => l.trim().split(/\s+/).pop()?.split('@')[0] ?? '');
  for (const f of ['malloc', 'calloc', 'realloc', 'free', 'strdup', 'posix_memalign', 'mmap',
    'napi_create_buffer', 'napi_create_external_buffer']) {
    assert.ok(!imports.includes(f), `weft.node imports ${f}`);
  }
  assert.ok(imports.includes('recvmmsg') && imports.includes('sendmmsg'));
  // The one allocation: ioBind's context, once per worker at start-up, in
  // a V8 ArrayBuffer that JS never sees. No other verb may make one.
  const calls: string[] = [];
  for (const f of readdirSync(NATIVE_SRC).filter((n) => n.endsWith('.c'))) {
    let fn = '';
    for (const line of readFileSync(join(NATIVE_SRC, f), 'utf8').split('\n')) {
      const def = /^static \w+ \*?(\w+)\(napi_env/.exec(line);
      if (def !== null) fn = def[1] as string;
      if (line.includes('napi_create_arraybuffer(')) calls.push(`${f}:${fn}`);
    }
  }
  assert.deepEqual(calls, ['io_wait.c:io_bind']);
});

test('TUN: 2 queues, kernel→TUN read in batches, TUN→kernel write skips a bad packet, ICMP echo', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{
    fds: number; names: string[]; goneAfterClose: boolean; writeAccepted: number; echoWritten: number;
    emptyReads: number[];
    toPeer: { got: Array<{ version: number; src: number; dst: number; dport: number; payload: string; queue: number }>;
      batchMax: number; others: number };
    received: Array<{ msg: string; from: string; port: number }>;
    echoReply: { got: Array<{ icmpType: number; src: number; dst: number; payload: string }> };
  }>(ns, CHILD, ['tun']);
  assert.equal(r.fds, 2);
  assert.deepEqual(r.names, ['wt0', 'wt0']);

  assert.equal(r.toPeer.got.length, 3, JSON.stringify(r.toPeer));
  for (const [i, p] of r.toPeer.got.entries()) {
    assert.equal(p.version, 4);
    assert.equal(p.dst, 0x0a630002); // 10.99.0.2
    assert.equal(p.src, 0x0a630001);
    assert.equal(p.payload, `to-peer-${i}`);
  }
  // One flow lands on one queue, and all three came back from a single read call.
  assert.equal(new Set(r.toPeer.got.map((p) => p.queue)).size, 1);
  assert.ok(r.toPeer.batchMax >= 3, `batchMax ${r.toPeer.batchMax}`);
  assert.deepEqual(r.emptyReads, [0, 0]);

  assert.equal(r.writeAccepted, 2);
  assert.deepEqual(r.received.map((m) => m.msg).sort(), ['hello-tun-0', 'hello-tun-1']);
  for (const m of r.received) assert.deepEqual([m.from, m.port], ['10.99.0.2', 7777]);

  assert.equal(r.echoWritten, 1);
  assert.equal(r.echoReply.got.length, 1);
  const reply = r.echoReply.got[0]!;
  assert.deepEqual([reply.icmpType, reply.src, reply.dst, reply.payload],
    [0, 0x0a630001, 0x0a630002, 'ping-weft']);
  assert.equal(r.goneAfterClose, true, 'closing every queue removes the device');
});

test('TUN errors carry errno names; VNET_HDR flag and kernel-chosen names work', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{
    existingSingleQueue: { threw: boolean; name: string; code: string; syscall: string; message: string };
    vnetOpened: number; vnetName: string; kernelNamed: string;
  }>(ns, CHILD, ['tun-errors']);
  assert.equal(r.existingSingleQueue.threw, true);
  assert.equal(r.existingSingleQueue.code, 'EINVAL');
  assert.equal(r.existingSingleQueue.syscall, 'ioctl TUNSETIFF');
  assert.match(r.existingSingleQueue.message, /^EINVAL: Invalid argument, ioctl TUNSETIFF$/);
  assert.equal(r.vnetOpened, 3);
  assert.equal(r.vnetName, 'wt2');
  assert.match(r.kernelNamed, /^tun\d+$/);
});

test('UDP: SO_REUSEPORT shares a port; without it EADDRINUSE', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<Record<string, { threw: boolean; code?: string; syscall?: string }> & { portA: number }>(
    ns, CHILD, ['udp-reuse']);
  assert.equal(r.reuseBoth!.threw, false);
  assert.equal(r.portA, 40000);
  assert.deepEqual([r.noReuseSecond!.code, r.noReuseSecond!.syscall], ['EADDRINUSE', 'bind']);
  assert.equal(r.noReuseOnReused!.code, 'EADDRINUSE');
  assert.equal(r.notLocal!.code, 'EADDRNOTAVAIL');
});

test('UDP: batch of 64 over loopback, truncation visible as lens > cap, bad messages skipped', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{
    bufSizes: [number, number]; sent: number; received: number; allOk: boolean; allFrom: boolean;
    bigLen: number; cap: number; guardOk: boolean; emptyRecv: number; calls: number[];
    skipSent: number; skipReceivedLens: number[];
  }>(ns, CHILD, ['udp-batch']);
  // SO_RCVBUFFORCE goes past rmem_max; the kernel reports twice the request.
  assert.ok(r.bufSizes[0] >= 4 << 20 && r.bufSizes[1] >= 4 << 20, JSON.stringify(r.bufSizes));
  assert.equal(r.sent, 64);
  assert.equal(r.received, 64, JSON.stringify(r.calls));
  assert.ok(r.allOk, 'payloads intact');
  assert.ok(r.allFrom, 'source address/port reported');
  assert.equal(r.bigLen, 1000);
  assert.ok(r.bigLen > r.cap);
  assert.ok(r.guardOk, 'nothing written past cap');
  assert.equal(r.emptyRecv, 0);
  assert.equal(r.skipSent, 3);
  assert.deepEqual(r.skipReceivedLens, [5, 6, 9]);
});

test('pollIn: timeout, readiness bits, closed fds; errors carry errno names', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<Record<string, number> & Record<string,
    { threw: boolean; code: string; syscall: string; name: string }>>(ns, CHILD, ['poll']);
  assert.equal(r.timeoutResult, 0);
  assert.ok((r.timeoutMs as number) >= 140 && (r.timeoutMs as number) < 600, `took ${r.timeoutMs} ms`);
  assert.equal(r.zeroResult, 0);
  assert.ok((r.zeroMs as number) < 50);
  assert.equal(r.bReady, 2);
  assert.equal(r.aReady, 1);
  assert.equal(r.closedPoll, 1);
  assert.deepEqual([r.closeTwice.code, r.closeTwice.syscall], ['EBADF', 'close']);
  assert.deepEqual([r.readClosed.code, r.readClosed.syscall], ['EBADF', 'read']);
  assert.deepEqual([r.recvClosed.code, r.recvClosed.syscall], ['EBADF', 'recvmmsg']);
  assert.deepEqual([r.portClosed.code, r.portClosed.syscall], ['EBADF', 'getsockname']);
  assert.equal(r.tunNameOnSocket.threw, true);
  assert.match(r.tunNameOnSocket.code, /^E[A-Z0-9]+$/);
  assert.equal(r.tunNameOnSocket.name, 'Error');
});

test('ioWait: waits, then reads both sides in one call; ioBind checks and copies the slots once; ioSend', (t) => {
  if (!needsRoot(t)) return;
  type E = { threw: boolean; code: string; syscall: string; name: string; message: string };
  const r = runInNetns<Record<string, number | number[] | boolean | E>>(ns, CHILD, ['io-wait']);
  assert.equal(r.timeout, 0);
  assert.ok((r.timeoutMs as number) >= 110 && (r.timeoutMs as number) < 600, `took ${String(r.timeoutMs)} ms`);
  assert.equal(r.woken, 0, 'woken: nothing read');
  assert.ok((r.wokenMs as number) < 1000, `a signalled wake fd ends a 5 s wait: took ${String(r.wokenMs)} ms`);
  assert.equal(r.drained, 0);
  assert.ok((r.drainedMs as number) >= 110, `the wake was drained: the next wait took ${String(r.drainedMs)} ms, not its 120`);
  assert.deepEqual([r.tunN, r.udpN], [3, 2]);
  assert.deepEqual(r.tunLens, [10, 20, 30]);
  assert.deepEqual(r.udpLens, [40, 150]);
  assert.equal(r.tunBytesOk, true);
  assert.equal(r.udpFrom, true);
  assert.equal(r.guardOk, true);
  assert.equal(r.udpOnly, 1 << 16);
  assert.equal(r.sent, 1);
  assert.deepEqual(r.sendRes, [1, 0, 0]);
  assert.deepEqual([r.echoed, r.echoLen, r.echoFrom], [1, 40, true]);
  const err = (k: string): E => r[k] as E;
  assert.deepEqual([err('sendBeyond').name, err('sendBeyond').code], ['RangeError', 'ERR_OUT_OF_RANGE']);
  assert.equal(err('sendTooMany').code, 'ERR_OUT_OF_RANGE');
  assert.deepEqual([err('shortArray').name, err('shortArray').code], ['RangeError', 'ERR_OUT_OF_RANGE']);
  assert.match(err('shortArray').message, /tunLens has 7 entries; the batch needs 8/);
  assert.equal(err('beyondSlab').code, 'ERR_OUT_OF_RANGE');
  assert.match(err('beyondSlab').message, /beyond the slab/);
  assert.deepEqual([err('notTyped').name, err('notTyped').code], ['TypeError', 'ERR_INVALID_ARG_TYPE']);
  assert.equal(err('badMax').code, 'ERR_OUT_OF_RANGE');
  assert.deepEqual([err('notObject').name, err('notObject').code], ['TypeError', 'ERR_INVALID_ARG_TYPE']);
  // Only what ioBind returned is a context, and it shows nothing to JS.
  for (const k of ['bufferCtx', 'objectCtx', 'numberCtx']) {
    assert.deepEqual([err(k).name, err(k).code], ['TypeError', 'ERR_INVALID_ARG_TYPE'], k);
    assert.match(err(k).message ?? '', /ctx must be a context returned by ioBind/, k);
  }
  assert.deepEqual(r.ctxShape, ['object', 0, 0]);
  for (const k of ['unbound', 'unboundSend', 'unboundTwice']) {
    assert.deepEqual([err(k).name, err(k).code], ['TypeError', 'ERR_INVALID_ARG_TYPE'], k);
    assert.match(err(k).message ?? '', /ended by ioUnbind/, k);
  }
  assert.deepEqual(err('movedOffset'), { threw: false, value: 1 });
  assert.deepEqual(r.movedRead, [3, 4, 4]);
  assert.deepEqual([err('closedTun').code, err('closedTun').syscall], ['EBADF', 'read']);
});

test('ioDeliver: merges the bound queue and writes it to the TUN in one call; checks queue and merge area', (t) => {
  if (!needsRoot(t)) return;
  type E = { threw: boolean; name?: string; code?: string; message?: string; syscall?: string; value?: unknown };
  const r = runInNetns<Record<string, number | number[] | string[] | E | Record<string, number>>>(ns, CHILD, ['io-deliver']);
  assert.equal(r.written, 2);
  assert.deepEqual(r.res, [2, 1], 'written, refused');
  assert.deepEqual(r.received, ['deliver-0', 'deliver-1']);
  assert.equal(r.mergedWritten, 0);
  assert.deepEqual(r.mergedRes, [0, 1], 'three datagrams merged into one packet, not written');
  // GSO_UDP_L4, segment size = the UDP payload (600 bytes), IP length 20 + 8 + 3 * 600.
  assert.deepEqual(r.mergedHdr, { gsoType: 5, gsoSize: 600, ipLen: 1828 });
  assert.deepEqual(r.loopRes, [0, 4], 'four packets through a merge area that holds one');
  const err = (k: string): E => r[k] as E;
  assert.equal(err('tooMany').code, 'ERR_OUT_OF_RANGE');
  assert.equal(err('overlap').code, 'ERR_OUT_OF_RANGE');
  assert.match(err('overlap').message ?? '', /overlaps the merge area/);
  assert.match(err('beyond').message ?? '', /beyond the slab/);
  assert.match(err('areaTooSmall').message ?? '', /mergeCap is too small/);
  assert.match(err('areaBeyond').message ?? '', /mergeOff \+ mergeCap .* beyond the slab/);
  assert.deepEqual([err('closedTun').code, err('closedTun').syscall], ['EBADF', 'write']);
});

test('ioBind contexts are freed once dropped, unbound or not (no leak per bind)', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', IO_GC_CHILD], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout) as { base: number; whileHeld: number; after: number };
  // 1 000 live contexts show (each holds its receive headers for MAX_BATCH
  // slots), so the measure can see a leak...
  const perCtx = (m.whileHeld - m.base) / 1000;
  assert.ok(perCtx > 4096, `1 000 held contexts added only ${m.whileHeld - m.base} bytes`);
  // ...and after 5 000 binds, dropped, collected, fewer than 50 remain.
  assert.ok(m.after - m.base < 50 * perCtx, `${((m.after - m.base) / perCtx).toFixed(0)} contexts' worth left after GC`);
});

test('a missing addon gives WeftError ENATIVE with the fix, on use rather than on import', () => {
  const url = new URL('../../src/native/index.js', import.meta.url).href;
  const code = `import(${JSON.stringify(url)}).then((m) => {
    let err; try { m.native.pollIn(0, -1, 0); } catch (e) { err = e; }
    let req; try { m.requireNative(); } catch (e) { req = e; }
    console.log(JSON.stringify({ code: err.code, name: err.name, message: err.message,
      loadError: m.nativeLoadError?.code, req: req?.code }));
  });`;
  const r = spawnSync(process.execPath, ['-e', code], {
    encoding: 'utf8', timeout: 10_000,
    env: { ...process.env, WEFT_NATIVE_PATH: '/nonexistent/weft.node' },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { code: string; name: string; message: string; loadError: string; req: string };
  assert.deepEqual([out.code, out.name, out.loadError, out.req], ['ENATIVE', 'WeftError', 'ENATIVE', 'ENATIVE']);
  assert.match(out.message, /\/nonexistent\/weft\.node/);
  assert.match(out.message, /npm ci/);
  assert.match(out.message, /node scripts\/build-native\.mjs/);
  assert.match(out.message, /make and python3/);
});
