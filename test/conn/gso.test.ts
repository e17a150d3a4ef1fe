import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { needsRoot } from '../helpers/root.js';
import { createNetns, deleteNetns, runInNetns } from '../native/netns.js';
import { gso, judgeUdpOffloadProbe } from '../../src/conn/gso.js';
import { UDP_GSO_MAX_BYTES as GSO_MAX_BYTES, UDP_GSO_MAX_SEGS } from '../../src/offload/vnet.js';
import { patternBytes } from './gso-pattern.js';
import { buildEioPreload } from '../helpers/eio-preload.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHILD = fileURLToPath(new URL('./child-gso.js', import.meta.url));
// Sender side (ns A) and receiver side (ns B) of one veth; B has two addresses.
const A_IP = '10.99.0.1';
const B1 = '10.99.0.2';
const B2 = '10.99.0.3';
let nsA = '';
let nsB = '';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr}`);
}

before(() => {
  if (process.getuid?.() !== 0) return;
  nsA = createNetns('wt-gsoa');
  nsB = createNetns('wt-gsob');
  ip(['-n', nsA, 'link', 'add', 'ga', 'type', 'veth', 'peer', 'name', 'gb', 'netns', nsB]);
  ip(['-n', nsA, 'addr', 'add', `${A_IP}/24`, 'dev', 'ga']);
  ip(['-n', nsB, 'addr', 'add', `${B1}/24`, 'dev', 'gb']);
  ip(['-n', nsB, 'addr', 'add', `${B2}/24`, 'dev', 'gb']);
  ip(['-n', nsA, 'link', 'set', 'ga', 'up']);
  ip(['-n', nsB, 'link', 'set', 'gb', 'up']);
  // Resolve ARP first so the first burst is not parked in the neighbour queue.
  for (const dst of [B1, B2]) {
    spawnSync('ip', ['netns', 'exec', nsA, 'ping', '-c1', '-W2', dst], { timeout: 5_000 });
  }
});

after(() => {
  if (nsA !== '') deleteNetns(nsA);
  if (nsB !== '') deleteNetns(nsB);
});

interface RecvSocket { lens: number[]; segs: number[]; calls: number; data: string }

/** Starts `child-gso recv` in ns; resolves `ready` once it is bound, `done` with its result. */
function startRecv<T>(ns: string, args: string[], killAfterMs = 15_000) {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CHILD, 'recv', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines = createInterface({ input: child.stdout });
  let readyResolve: () => void = () => {};
  const ready = new Promise<void>((r) => { readyResolve = r; });
  let lastLine = '';
  lines.on('line', (l) => {
    if (l.includes('"ready":true')) readyResolve();
    else lastLine = l;
  });
  const done = new Promise<T>((resolve, reject) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      readyResolve();
      if (code !== 0 || !lastLine.startsWith('{')) {
        reject(new Error(`receiver exited ${code}: ${stderr}`));
      } else {
        resolve(JSON.parse(lastLine) as T);
      }
    });
  });
  return { ready, done };
}

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

test('udpSendSeg: 65507 bytes in 1400-byte segments reach a plain receiver as 47 exact datagrams',
  async (t) => {
    if (!needsRoot(t)) return;
    const rx = startRecv<{ sockets: RecvSocket[] }>(nsB, ['0', String(GSO_MAX_BYTES), '5000',
      `${B1}:7001`]);
    await rx.ready;
    const tx = runInNetns<{ sent: number; res: number[] }>(nsA, CHILD,
      ['send', JSON.stringify([{ to: `${B1}:7001`, len: GSO_MAX_BYTES, seg: 1400 }])]);
    assert.deepEqual(tx, { sent: 1, res: [47, 0, 0] });
    const [s] = (await rx.done).sockets;
    assert.equal(s!.lens.length, 47);
    assert.deepEqual(s!.lens, [...Array<number>(46).fill(1400), GSO_MAX_BYTES - 46 * 1400]);
    assert.ok(s!.segs.every((x) => x === 0));
    assert.ok(Buffer.from(s!.data, 'base64').equals(concat([patternBytes(0, GSO_MAX_BYTES)])));
  });

test('udpSendSeg: a GSO message the kernel refuses with EIO goes out as single datagrams, counted apart',
  async (t) => {
    if (!needsRoot(t)) return;
    // This kernel takes GSO on any device (no xfrm here): EIO is injected (test/helpers/eio-preload.c).
    const dir = mkdtempSync(join(tmpdir(), 'weft-eio-'));
    try {
      const so = buildEioPreload(dir);
      const rx = startRecv<{ sockets: RecvSocket[] }>(nsB, ['0', String(GSO_MAX_BYTES), '5000', `${B1}:7005`]);
      await rx.ready;
      const tx = runInNetns<{ sent: number; res: number[] }>(nsA, CHILD,
        ['send', JSON.stringify([{ to: `${B1}:7005`, len: GSO_MAX_BYTES, seg: 1400 }])], 15_000, ['env', `LD_PRELOAD=${so}`]);
      // No message went out whole; its 47 datagrams did; EIO (5) is the first errno; one GSO message refused.
      assert.deepEqual(tx, { sent: 0, res: [47, 5, 1] });
      const [s] = (await rx.done).sockets;
      assert.deepEqual(s!.lens, [...Array<number>(46).fill(1400), GSO_MAX_BYTES - 46 * 1400]);
      assert.ok(Buffer.from(s!.data, 'base64').equals(concat([patternBytes(0, GSO_MAX_BYTES)])));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

// 65000 bytes, not 65507: a GSO skb whose length with the Ethernet header
// reaches gso_max_size (65536) is segmented in software before the veth, so a
// 65507-byte message arrives as 47 plain datagrams even at a GRO socket
// (measured on 6.18 over veth: 65493 bytes stays one run, 65494 does not).
// 65000 is still 47 datagrams of 1400 (the last 600).
test('udpRecvGro: 65000 bytes in 1400-byte segments arrive in a few receives with segs = 1400',
  async (t) => {
    if (!needsRoot(t)) return;
    const LEN = 65_000;
    const rx = startRecv<{ sockets: RecvSocket[] }>(nsB, ['1', String(LEN), '5000', `${B1}:7001`]);
    await rx.ready;
    const tx = runInNetns<{ sent: number; res: number[] }>(nsA, CHILD,
      ['send', JSON.stringify([{ to: `${B1}:7001`, len: LEN, seg: 1400 }])]);
    assert.deepEqual(tx, { sent: 1, res: [47, 0, 0] });
    const [s] = (await rx.done).sockets;
    t.diagnostic(`GRO receive: lens ${JSON.stringify(s!.lens)} segs ${JSON.stringify(s!.segs)}`);
    assert.ok(s!.calls <= 3 && s!.lens.length <= 3, `${s!.lens.length} messages in ${s!.calls} calls`);
    assert.ok(s!.segs.every((x) => x === 1400));
    assert.equal(s!.lens.reduce((a, b) => a + b, 0), LEN);
    assert.ok(Buffer.from(s!.data, 'base64').equals(concat([patternBytes(0, LEN)])));
  });

test('udpSendSeg: a mixed batch (GSO and plain, two destinations) in one call', async (t) => {
  if (!needsRoot(t)) return;
  const d1 = `${B1}:7001`;
  const d2 = `${B2}:7002`;
  const spec = [
    { to: d1, len: 4200, seg: 1400 }, // 3 datagrams
    { to: d2, len: 500, seg: 0 }, // plain
    { to: d1, len: 1000, seg: 1400 }, // seg >= len: one datagram, no cmsg
    { to: d2, len: 2900, seg: 1000 }, // 1000, 1000, 900
    { to: d1, len: 1400, seg: 700 }, // 2 datagrams
  ];
  const rx = startRecv<{ sockets: RecvSocket[] }>(nsB, ['0', '10000', '5000', d1, d2]);
  await rx.ready;
  const tx = runInNetns<{ sent: number; res: number[] }>(nsA, CHILD, ['send', JSON.stringify(spec)]);
  assert.deepEqual(tx, { sent: 5, res: [10, 0, 0] });
  const [s1, s2] = (await rx.done).sockets;
  assert.deepEqual(s1!.lens, [1400, 1400, 1400, 1000, 700, 700]);
  assert.deepEqual(s2!.lens, [500, 1000, 1000, 900]);
  assert.ok(Buffer.from(s1!.data, 'base64').equals(
    concat([patternBytes(0, 4200), patternBytes(2, 1000), patternBytes(4, 1400)])));
  assert.ok(Buffer.from(s2!.data, 'base64').equals(
    concat([patternBytes(1, 500), patternBytes(3, 2900)])));
});

test('the GSO limits the lane chunks by are the ones the addon enforces', () => {
  assert.equal(UDP_GSO_MAX_SEGS, gso.GSO_MAX_SEGMENTS);
  assert.equal(GSO_MAX_BYTES, gso.GSO_MAX_BYTES);
});

test('udpSendSeg/udpRecvGro: bad arguments are RangeErrors before any syscall', () => {
  // fd 999999 is never opened: a syscall would say EBADF, so a RangeError proves none ran.
  const fd = 999_999;
  const slab = new Uint8Array(70_000);
  const one = (v: number) => new Uint32Array([v]);
  const dst = one(0x7f000001);
  const port = one(9);
  const send = (off: number, len: number, seg: number) =>
    gso.udpSendSeg(fd, slab, one(off), one(len), one(seg), dst, port, 1);
  const range = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: Error & { code?: string }) =>
      e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE' && re.test(e.message));
  range(() => send(0, 65 * 1000, 1000), /65 segments; at most 64/);
  range(() => send(0, 65_508, 0), /lens\[0\] must be at most 65507/);
  range(() => send(0, 65_508, 1400), /lens\[0\] must be at most 65507/);
  range(() => send(69_000, 1001, 0), /beyond the slab/);
  range(() => send(0xffffffff, 2, 0), /beyond the slab/);
  range(() => gso.udpSendSeg(fd, slab, one(0), one(10), one(0), dst, one(70_000), 1),
    /ports\[0\]/);
  range(() => gso.udpSendSeg(fd, slab, one(0), one(10), new Uint32Array(0), dst, port, 1),
    /exceeds the length/);
  range(() => gso.udpRecvGro(fd, slab, one(10_000), 65_535, one(0), one(0), one(0), one(0), 1),
    /beyond the slab/);
  range(() => gso.udpSendSeg(fd, slab, one(0), one(10), one(0), dst, port, 1, new Int32Array(2)),
    /res must have at least 3/);
  assert.throws(() => gso.udpSendSeg(fd, slab, one(0), one(10), one(0), dst, port, 1,
    new Uint32Array(3) as unknown as Int32Array), TypeError);
  // 64 segments exactly is fine up to the syscall, which then reports the bad fd.
  assert.throws(() => send(0, 64 * 1000, 1000), { code: 'EBADF' });
});

test('a closed fd gives EBADF with code and syscall', (t) => {
  if (!needsRoot(t)) return;
  type E = { threw: boolean; code: string; errno: number; syscall: string };
  const r = runInNetns<{ send: E; recv: E; gro: E }>(nsA, CHILD, ['ebadf']);
  assert.deepEqual([r.send.threw, r.send.code, r.send.syscall], [true, 'EBADF', 'sendmmsg']);
  assert.deepEqual([r.recv.threw, r.recv.code, r.recv.syscall], [true, 'EBADF', 'recvmmsg']);
  assert.deepEqual([r.gro.threw, r.gro.code, r.gro.syscall],
    [true, 'EBADF', 'setsockopt UDP_GRO']);
  assert.equal(r.send.errno, 9);
});

test('probeUdpOffload: gso and gro true with lo up, within 200 ms', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{ gso: boolean; gro: boolean; detail: string; ms: number;
    fdsLeaked: number }>(nsA, CHILD, ['probe']);
  t.diagnostic(`probe: ${JSON.stringify(r)}`);
  assert.deepEqual([r.gso, r.gro], [true, true], r.detail);
  assert.ok(r.ms < 200, `${r.ms} ms`);
  assert.equal(r.fdsLeaked, 0);
});

test('probeUdpOffload: lo down gives false with the reason, and closes its fds', (t) => {
  if (!needsRoot(t)) return;
  const ns = `wt-gsolo-${process.pid}`;
  deleteNetns(ns);
  ip(['netns', 'add', ns]); // lo stays down
  try {
    const r = runInNetns<{ gso: boolean; gro: boolean; detail: string; fdsLeaked: number }>(ns,
      CHILD, ['probe']);
    t.diagnostic(`probe with lo down: ${r.detail}`);
    assert.deepEqual([r.gso, r.gro, r.fdsLeaked], [false, false, 0]);
    assert.match(r.detail, /lo is down/);
  } finally {
    deleteNetns(ns);
  }
});

test('probe verdict: wrong sizes or bytes give false and say what was seen', () => {
  const seen = (lens: number[], segs: number[], badAt = -1) =>
    ({ lens, segs, bytes: lens.reduce((a, b) => a + b, 0), badAt });
  const right = seen([1000, 1000, 1000, 300], [0, 0, 0, 0]);
  const run = seen([3300], [1000]);
  assert.deepEqual(judgeUdpOffloadProbe(right, run, true).gso, true);
  assert.deepEqual(judgeUdpOffloadProbe(right, run, true).gro, true);

  // A kernel that sends the short tail as a full segment.
  let r = judgeUdpOffloadProbe(seen([1000, 1000, 1000, 1000], [0, 0, 0, 0]), run, true);
  assert.deepEqual([r.gso, r.gro], [false, false]);
  assert.match(r.detail, /plain receiver .* saw lens \[1000,1000,1000,1000\]/);
  // Right sizes, mangled payload (e.g. a segment's bytes repeated).
  r = judgeUdpOffloadProbe(seen([1000, 1000, 1000, 300], [0, 0, 0, 0], 1000), run, true);
  assert.deepEqual([r.gso, r.gro], [false, false]);
  assert.match(r.detail, /wrong byte at 1000/);
  // One unsplit 3300-byte datagram: GSO ignored.
  r = judgeUdpOffloadProbe(seen([3300], [0]), run, true);
  assert.equal(r.gso, false);
  // GSO right, GRO did not coalesce / mangled / absent.
  r = judgeUdpOffloadProbe(right, right, true);
  assert.deepEqual([r.gso, r.gro], [true, false]);
  assert.match(r.detail, /did not coalesce/);
  r = judgeUdpOffloadProbe(right, seen([3300], [1100]), true);
  assert.deepEqual([r.gso, r.gro], [true, false]);
  assert.match(r.detail, /segs \[1100\]/);
  r = judgeUdpOffloadProbe(right, seen([3300], [1000], 2999), true);
  assert.deepEqual([r.gso, r.gro], [true, false]);
  assert.match(r.detail, /wrong byte at 2999/);
  r = judgeUdpOffloadProbe(right, right, false);
  assert.deepEqual([r.gso, r.gro], [true, false]);
  assert.match(r.detail, /no UDP_GRO/);
});
