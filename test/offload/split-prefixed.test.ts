import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DropReason } from '../../src/wire/drop-reason.js';
import {
  VNET_SPLIT_MAX_SEGS, VNET_SPLIT_OUT_MAX, VNET_SPLIT_PREFIX_MAX, vnetSplit, vnetSplitOutMax,
  vnetSplitPrefixed,
} from '../../src/offload/vnet.js';
import {
  ACK, CWR, FIN, PSH, UDP, buildPacket, pattern, superPacket, tsOption, verifyPacket, withVnet,
  wr16, type PktOpts,
} from './packets.js';

/*
 * vnetSplitPrefixed is checked against vnetSplit (itself checked against
 * independent builders in split.test.ts): every output datagram must be
 * the exact prefix bytes followed by vnetSplit's segment, byte for byte.
 *
 * Slab layout (non-zero byteOffset, 0xa5 everywhere else):
 *   prefix at PFX (≤ 64 bytes), input at IN, output at OUT.
 */
const PFX = 10;
const IN = 100;
const OUT = 80_000;
const SLAB = 200_000;
function slab(): Uint8Array {
  const s = new Uint8Array(new ArrayBuffer(SLAB + 16), 16, SLAB);
  s.fill(0xa5);
  return s;
}

/**
 * A VXLAN prefix as VxlanPath writes it: flags I, VNI 1, inner Ethernet
 * dst/src MAC and ethertype IPv4 (22 bytes); other lengths repeat a
 * pattern so each byte position is distinct.
 */
function prefix(len: number): Uint8Array {
  if (len === 22) {
    return Uint8Array.from([0x08, 0, 0, 0, 0, 0, 1, 0,
      0x0e, 0x11, 0x22, 0x33, 0x44, 0x55, 0x0e, 0x66, 0x77, 0x88, 0x99, 0xaa, 0x08, 0x00]);
  }
  return pattern(len, 200);
}

/** vnetSplit's segments for `input`, in a slab of their own. */
function plain(input: Uint8Array, maxPkt: number, outCap = VNET_SPLIT_OUT_MAX): { r: number;
  res: number[]; pkts: Uint8Array[]; } {
  const s = slab();
  s.set(input, IN);
  const res = new Uint32Array(4);
  const r = vnetSplit(s, IN, input.length, OUT, outCap, maxPkt, res);
  const pkts: Uint8Array[] = [];
  if (r === 0) {
    let o = OUT;
    for (let k = 0; k < res[0]!; k++) {
      const len = k + 1 < res[0]! ? res[1]! : res[2]!;
      pkts.push(s.slice(o, o + len));
      o += len;
    }
  }
  return { r, res: [...res], pkts };
}

interface Run { r: number; res: number[]; dgrams: Uint8Array[]; }

/**
 * Runs vnetSplitPrefixed; checks the input and prefix are untouched and
 * every byte outside input, prefix and written output is still 0xa5.
 */
function prefixed(input: Uint8Array, pfx: Uint8Array, maxPkt: number,
  outCap = vnetSplitOutMax(pfx.length)): Run {
  const s = slab();
  s.set(input, IN);
  s.set(pfx, PFX);
  const res = new Uint32Array(4).fill(0xdeadbeef);
  const r = vnetSplitPrefixed(s, IN, input.length, OUT, outCap, maxPkt, PFX, pfx.length, res);
  const written = r === 0 ? res[3]! : 0;
  assert.deepEqual(s.subarray(IN, IN + input.length), input, 'input untouched');
  assert.deepEqual(s.subarray(PFX, PFX + pfx.length), pfx, 'prefix untouched');
  const inside = (i: number, a: number, n: number): boolean => i >= a && i < a + n;
  for (let i = 0; i < SLAB; i++) {
    if (inside(i, PFX, pfx.length) || inside(i, IN, input.length) || inside(i, OUT, written)) {
      continue;
    }
    if (s[i] !== 0xa5) assert.fail(`byte ${i} outside the regions was written`);
  }
  const dgrams: Uint8Array[] = [];
  if (r === 0) {
    let o = OUT;
    for (let k = 0; k < res[0]!; k++) {
      const len = k + 1 < res[0]! ? res[1]! : res[2]!;
      dgrams.push(s.slice(o, o + len));
      o += len;
    }
    assert.equal(o - OUT, res[3], 'total = sum of datagrams');
  }
  return { r, res: [...res], dgrams };
}

/** The prefixed run equals prefix + vnetSplit's run, segment by segment. */
function same(input: Uint8Array, pfx: Uint8Array, maxPkt: number): Run {
  const p = plain(input, maxPkt);
  const q = prefixed(input, pfx, maxPkt);
  assert.equal(q.r, p.r, 'same drop reason');
  if (p.r !== 0) return q;
  const n = p.res[0]!;
  const P = pfx.length;
  assert.deepEqual(q.res, [n, p.res[1]! + P, p.res[2]! + P, p.res[3]! + n * P], 'res counts the prefix');
  assert.equal(q.dgrams.length, p.pkts.length);
  q.dgrams.forEach((d, i) => {
    assert.deepEqual(d.subarray(0, P), pfx, `datagram ${i} starts with the prefix`);
    assert.deepEqual(d.subarray(P), p.pkts[i], `datagram ${i} = vnetSplit's segment ${i}`);
    assert.ok(d.length - P <= maxPkt, `datagram ${i}: IP packet ≤ maxPktLen`);
    assert.deepEqual(verifyPacket(d, P, d.length - P), { ipOk: true, l4Ok: true });
  });
  return q;
}

const VX = prefix(22);

test('TCPv4 with timestamps, odd MSS 1001, short last segment: prefix + vnetSplit segment each', () => {
  const o: PktOpts = { opts: tsOption(0x11223344), payload: pattern(20_000), seq: 0xfffff000,
    flags: ACK | PSH | FIN | CWR, id: 0x2000 };
  const q = same(superPacket(o, 1001), VX, 1450);
  assert.deepEqual(q.res, [20, 22 + 52 + 1001, 22 + 52 + 981, 20 * (22 + 52) + 20_000]);
});

test('TCPv4 exact multiple of the MSS, and an MSS cut down to maxPktLen (not counting the prefix)', () => {
  same(superPacket({ payload: pattern(4004), flags: ACK | PSH }, 1001), VX, 1500);
  const input = superPacket({ opts: tsOption(1), payload: pattern(10_000) }, 1448);
  input[2] = 7; // a wrong hdr_len, as on forwarded GRO traffic
  const q = same(input, VX, 1000);
  assert.equal(q.res[1], 22 + 1000, 'stride = prefix + maxPktLen');
});

test('TCPv6 with options', () => {
  same(superPacket({ v6: true, opts: tsOption(99), payload: pattern(9000, 3), flags: ACK | PSH },
    1200), VX, 1400);
});

test('UDP USO (IPv4 and IPv6)', () => {
  for (const v6 of [false, true]) {
    const q = same(superPacket({ v6, proto: UDP, payload: pattern(3500, 11), id: 0xffff }, 1000),
      VX, 1450);
    assert.equal(q.res[0], 4);
  }
});

test('gso NONE + NEEDS_CSUM and a plain packet: one prefixed output', () => {
  const o: PktOpts = { payload: pattern(333), opts: tsOption(5) };
  const partial = buildPacket(o, true);
  const q = same(withVnet(partial, { flags: 1, csumStart: 20, csumOffset: 16 }), VX, 1500);
  assert.deepEqual(q.dgrams[0]!.subarray(22), buildPacket(o));
  const full = buildPacket({ proto: UDP, payload: pattern(77) });
  const q2 = same(withVnet(full, {}), VX, 1500);
  assert.deepEqual(q2.res, [1, 22 + full.length, 22 + full.length, 22 + full.length]);
  assert.deepEqual(q2.dgrams[0]!.subarray(22), full);
  // maxPktLen bounds the IP packet: exactly its length passes, one less is TOO_BIG.
  assert.equal(prefixed(withVnet(full, {}), VX, full.length).r, 0);
  assert.equal(prefixed(withVnet(full, {}), VX, full.length - 1).r, DropReason.TOO_BIG);
});

test('prefix lengths 0, 1, 14, 64: 0 is exactly vnetSplit', () => {
  const input = superPacket({ opts: tsOption(7), payload: pattern(7777, 5) }, 999);
  for (const n of [0, 1, 14, VNET_SPLIT_PREFIX_MAX]) same(input, prefix(n), 1400);
});

test('outCap: exactly the prefixed total fits, one byte less is TOO_BIG and writes nothing', () => {
  const input = superPacket({ payload: pattern(5000) }, 1000);
  const total = prefixed(input, VX, 1500).res[3]!;
  assert.equal(total, 5 * (22 + 40) + 5000);
  assert.equal(prefixed(input, VX, 1500, total).r, 0);
  assert.equal(prefixed(input, VX, 1500, total - 1).r, DropReason.TOO_BIG);
  const one = withVnet(buildPacket({ payload: pattern(100) }), {});
  assert.equal(prefixed(one, VX, 1500, 22 + 140).r, 0);
  assert.equal(prefixed(one, VX, 1500, 22 + 139).r, DropReason.TOO_BIG);
});

test('vnetSplitOutMax covers 128 segments of the largest headers built here', () => {
  // IPv6 + TCP with 40 option bytes, 128 segments of 500: near the worst case.
  const o: PktOpts = { v6: true, opts: new Uint8Array(40).fill(1), payload: pattern(64_000) };
  const q = prefixed(superPacket(o, 500), prefix(64), 600, vnetSplitOutMax(64));
  assert.equal(q.r, 0);
  assert.equal(q.res[0], VNET_SPLIT_MAX_SEGS);
  assert.ok(q.res[3]! <= vnetSplitOutMax(64));
  assert.equal(vnetSplitOutMax(0), VNET_SPLIT_OUT_MAX);
  assert.equal(vnetSplitOutMax(22), VNET_SPLIT_OUT_MAX + 128 * 22);
});

test('bad input: the same drop reason as vnetSplit, nothing written', () => {
  const good = superPacket({ opts: tsOption(1), payload: pattern(5000) }, 1000);
  const bad = (mut: (b: Uint8Array) => void): Uint8Array => {
    const b = good.slice();
    mut(b);
    return b;
  };
  const cases: [string, Uint8Array, number][] = [
    ['csum_start not at the L4 header', bad((b) => { b[6] = 24; }), DropReason.BAD_GSO],
    ['no NEEDS_CSUM', bad((b) => { b[0] = 0; }), DropReason.BAD_GSO],
    ['UFO', bad((b) => { b[1] = 3; }), DropReason.BAD_GSO],
    ['IPv4 total length mismatch', bad((b) => { wr16(b, 12, 4000); }), DropReason.BAD_TOTAL_LENGTH],
    ['IP version 5', bad((b) => { b[10] = 0x55; }), DropReason.BAD_VERSION],
    ['IHL 4', bad((b) => { b[10] = 0x44; }), DropReason.BAD_HEADER_LENGTH],
    ['empty', new Uint8Array(0), DropReason.TRUNCATED],
    ['too many segments (gso_size 30)', bad((b) => { b[4] = 30; b[5] = 0; }), DropReason.BAD_GSO],
    ['UDP gso_size above maxPktLen',
      superPacket({ proto: UDP, payload: pattern(3000) }, 1480), DropReason.TOO_BIG],
  ];
  for (const [name, input, want] of cases) {
    assert.equal(same(input, VX, 1450).r, want, name);
  }
});

test('random sizes: prefixed output = prefix + vnetSplit output', () => {
  let seed = 4242;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  for (let k = 0; k < 30; k++) {
    const v6 = rnd(2) === 1;
    const udp = rnd(3) === 0;
    const o: PktOpts = { v6, proto: udp ? UDP : 6, opts: rnd(2) ? tsOption(rnd(1e9)) : new Uint8Array(0),
      payload: pattern(1 + rnd(60_000), k), seq: rnd(2 ** 32), id: rnd(65536), flags: ACK | PSH };
    same(superPacket(o, 536 + rnd(1000)), prefix(rnd(VNET_SPLIT_PREFIX_MAX + 1)), 1100 + rnd(400));
  }
});

test('argument errors throw RangeError before touching memory', () => {
  const s = slab();
  const res = new Uint32Array(4);
  const call = (pOff: number, pLen: number, inOff = 100, outOff = 1000): number =>
    vnetSplitPrefixed(s, inOff, 100, outOff, 500, 1500, pOff, pLen, res);
  const range = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' };
  assert.throws(() => call(150, 10), { ...range, message: /prefix region overlaps/ }, 'inside the input');
  assert.throws(() => call(90, 22), { ...range, message: /prefix region overlaps/ }, 'into the input');
  assert.throws(() => call(1400, 22), { ...range, message: /prefix region overlaps/ }, 'into the output');
  assert.throws(() => call(990, 22), { ...range, message: /prefix region overlaps/ }, 'output start');
  assert.throws(() => call(0, VNET_SPLIT_PREFIX_MAX + 1), range, 'prefixLen 65');
  assert.throws(() => call(0, -1), range, 'prefixLen −1');
  assert.throws(() => call(SLAB - 10, 22), range, 'prefix beyond the slab');
  assert.throws(() => call(0, 22, 100, 150), { ...range, message: /input and output/ });
  assert.throws(() => vnetSplitPrefixed(s, 100, 100, 1000, 500, 1500, 0, 22, new Uint32Array(3)),
    /res/);
  assert.ok(s.every((b) => b === 0xa5));
  // Adjacent regions are not overlapping; a 0-byte prefix may sit anywhere in the slab.
  assert.equal(call(78, 22), DropReason.BAD_VERSION); // 0xa5 input: version 10
  assert.equal(call(150, 0), DropReason.BAD_VERSION);
});

test('the addon\'s VNET_SPLIT_PREFIX_MAX matches', async () => {
  const { native } = await import('../../src/native/index.js');
  assert.equal((native as unknown as Record<string, number>).VNET_SPLIT_PREFIX_MAX,
    VNET_SPLIT_PREFIX_MAX);
});
