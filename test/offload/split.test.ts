import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DropReason } from '../../src/wire/drop-reason.js';
import {
  VIRTIO_NET_HDR_LEN, VNET_SPLIT_OUT_MAX, VirtioNetHdr, udpGsoChunk, vnetSplit,
} from '../../src/offload/vnet.js';
import {
  ACK, CWR, FIN, PSH, TCP, UDP, buildPacket, concat, l3Len, pattern, rd16, rd32, superPacket,
  tsOption, verifyPacket, withVnet, wr16, type PktOpts,
} from './packets.js';

/** A slab at a non-zero byteOffset, 0xa5 everywhere, input at IN, output at OUT. */
const IN = 100;
const OUT = 80_000;
const SLAB = 200_000;
function slab(): Uint8Array {
  const buf = new ArrayBuffer(SLAB + 16);
  const s = new Uint8Array(buf, 16, SLAB);
  s.fill(0xa5);
  return s;
}

interface Split {
  r: number;
  res: Uint32Array;
  s: Uint8Array;
  pkts: Uint8Array[];
}

/** Runs vnetSplit and checks that nothing outside the written output changed. */
function split(input: Uint8Array, maxPkt: number, outCap = VNET_SPLIT_OUT_MAX): Split {
  const s = slab();
  s.set(input, IN);
  const res = new Uint32Array(4).fill(0xdeadbeef);
  const r = vnetSplit(s, IN, input.length, OUT, outCap, maxPkt, res);
  const written = r === 0 ? res[3]! : 0;
  // The input is untouched, and every byte outside it and the written output is still 0xa5.
  assert.deepEqual(s.subarray(IN, IN + input.length), input, 'input untouched');
  for (let i = 0; i < SLAB; i++) {
    if (i >= IN && i < IN + input.length) { i = IN + input.length - 1; continue; }
    if (i >= OUT && i < OUT + written) { i = OUT + written - 1; continue; }
    if (s[i] !== 0xa5) assert.fail(`byte ${i} outside the regions was written`);
  }
  const pkts: Uint8Array[] = [];
  if (r === 0) {
    let o = OUT;
    for (let k = 0; k < res[0]!; k++) {
      const len = k + 1 < res[0]! ? res[1]! : res[2]!;
      pkts.push(s.slice(o, o + len));
      o += len;
    }
    assert.equal(o - OUT, res[3]);
  }
  return { r, res, s, pkts };
}

interface Seg { ipOk: boolean; l4Ok: boolean; }

function checkTcpRun(o: PktOpts, sp: Split, mss: number, maxPkt: number): void {
  const v6 = o.v6 ?? false;
  const l3 = l3Len(v6);
  const opts = o.opts ?? new Uint8Array(0);
  const hl = l3 + 20 + opts.length;
  const n = Math.ceil(o.payload.length / mss);
  assert.equal(sp.r, 0);
  assert.equal(sp.res[0], n);
  assert.equal(sp.res[1], n > 1 ? hl + mss : hl + o.payload.length);
  assert.equal(sp.res[2], hl + o.payload.length - (n - 1) * mss);
  const payloads: Uint8Array[] = [];
  sp.pkts.forEach((p, i) => {
    assert.ok(p.length <= maxPkt, `segment ${i} (${p.length}) ≤ maxPktLen`);
    const v: Seg = verifyPacket(p, 0, p.length);
    assert.deepEqual(v, { ipOk: true, l4Ok: true }, `segment ${i} checksums`);
    if (!v6) assert.equal(rd16(p, 4), ((o.id ?? 0x1000) + i) & 0xffff, `segment ${i} IPv4 ID`);
    assert.equal(rd32(p, l3 + 4), ((o.seq ?? 1000) + i * mss) >>> 0, `segment ${i} seq`);
    const f = o.flags ?? ACK;
    let want = f;
    if (i + 1 < n) want &= ~(FIN | PSH);
    if (i > 0) want &= ~CWR;
    assert.equal(p[l3 + 13], want, `segment ${i} flags`);
    assert.deepEqual(p.subarray(l3 + 20, hl), opts, `segment ${i} options copied`);
    payloads.push(p.subarray(hl));
  });
  assert.deepEqual(concat(payloads), o.payload, 'payload reassembles');
}

test('TCPv4 with timestamps, odd MSS 1001, short last segment; FIN/PSH last, CWR first', () => {
  const o: PktOpts = { opts: tsOption(0x11223344), payload: pattern(20_000), seq: 0xfffff000,
    flags: ACK | PSH | FIN | CWR, id: 0x2000 };
  const sp = split(superPacket(o, 1001), 1500);
  checkTcpRun(o, sp, 1001, 1500);
  assert.equal(sp.res[0], 20); // 19 x 1001 + 981
});

test('TCPv4 exact multiple of the MSS: all segments equal, last = stride', () => {
  const o: PktOpts = { payload: pattern(4004), flags: ACK | PSH };
  const sp = split(superPacket(o, 1001), 1500);
  checkTcpRun(o, sp, 1001, 1500);
  assert.equal(sp.res[1], sp.res[2]);
  assert.equal(sp.res[3], 4 * (40 + 1001));
});

test('MSS is cut down to maxPktLen − headers (hdr_len in the virtio header is ignored)', () => {
  const o: PktOpts = { opts: tsOption(1), payload: pattern(10_000) };
  const input = superPacket(o, 1448);
  input[2] = 7; // a wrong hdr_len, as on forwarded GRO traffic
  const sp = split(input, 1000);
  checkTcpRun(o, sp, 1000 - 52, 1000);
  assert.equal(sp.res[1], 1000);
});

test('IPv4 ID wraps 0xffff -> 0', () => {
  const o: PktOpts = { payload: pattern(4000), id: 0xfffe };
  const sp = split(superPacket(o, 1000), 1500);
  checkTcpRun(o, sp, 1000, 1500);
  assert.deepEqual(sp.pkts.map((p) => rd16(p, 4)), [0xfffe, 0xffff, 0, 1]);
});

test('TCPv6 with options', () => {
  const o: PktOpts = { v6: true, opts: tsOption(99), payload: pattern(9000, 3), flags: ACK | PSH };
  const sp = split(superPacket(o, 1200), 1400);
  checkTcpRun(o, sp, 1200, 1400);
  assert.equal(sp.pkts[0]![0]! >> 4, 6);
});

test('UDP USO (IPv4 and IPv6): gso_size datagrams, each with its own length and checksum', () => {
  for (const v6 of [false, true]) {
    const o: PktOpts = { v6, proto: UDP, payload: pattern(3500, 11), id: 0xffff };
    const sp = split(superPacket(o, 1000), 1500);
    assert.equal(sp.r, 0);
    const l3 = l3Len(v6);
    assert.deepEqual([...sp.res], [4, l3 + 8 + 1000, l3 + 8 + 500, 3 * (l3 + 1008) + l3 + 508]);
    const payloads: Uint8Array[] = [];
    sp.pkts.forEach((p, i) => {
      assert.deepEqual(verifyPacket(p, 0, p.length), { ipOk: true, l4Ok: true });
      assert.equal(rd16(p, l3 + 4), p.length - l3, 'UDP length');
      if (!v6) assert.equal(rd16(p, 4), (0xffff + i) & 0xffff);
      payloads.push(p.subarray(l3 + 8));
    });
    assert.deepEqual(concat(payloads), o.payload);
  }
});

test('gso NONE: copied; NEEDS_CSUM completes the partial checksum', () => {
  const o: PktOpts = { payload: pattern(333), opts: tsOption(5) };
  const partial = buildPacket(o, true);
  const sp = split(withVnet(partial, { flags: 1, csumStart: 20, csumOffset: 16 }), 1500);
  assert.equal(sp.r, 0);
  assert.deepEqual([...sp.res], [1, partial.length, partial.length, partial.length]);
  assert.deepEqual(sp.pkts[0], buildPacket(o));

  const full = buildPacket({ proto: UDP, payload: pattern(77) });
  const sp2 = split(withVnet(full, {}), 1500);
  assert.equal(sp2.r, 0);
  assert.deepEqual(sp2.pkts[0], full);
  // Larger than maxPktLen: the caller's PMTU business.
  assert.equal(split(withVnet(full, {}), 100).r, DropReason.TOO_BIG);
});

test('bad input returns the drop reason and writes nothing', () => {
  const o: PktOpts = { opts: tsOption(1), payload: pattern(5000) };
  const good = superPacket(o, 1000);
  const bad = (mut: (b: Uint8Array) => void): Uint8Array => {
    const b = good.slice();
    mut(b);
    return b;
  };
  const cases: [string, Uint8Array, number][] = [
    ['csum_start not at the L4 header', bad((b) => { b[6] = 24; }), DropReason.BAD_GSO],
    ['csum_offset not 16', bad((b) => { b[8] = 6; }), DropReason.BAD_GSO],
    ['no NEEDS_CSUM', bad((b) => { b[0] = 0; }), DropReason.BAD_GSO],
    ['gso_size 0', bad((b) => { b[4] = 0; b[5] = 0; }), DropReason.BAD_GSO],
    ['UFO', bad((b) => { b[1] = 3; }), DropReason.BAD_GSO],
    ['TCPV6 on IPv4', bad((b) => { b[1] = 4; }), DropReason.BAD_GSO],
    ['IPv4 total length mismatch', bad((b) => { wr16(b, 12, 4000); }), DropReason.BAD_TOTAL_LENGTH],
    ['a fragment', bad((b) => { b[16] = 0x20; }), DropReason.BAD_GSO],
    ['protocol UDP under TCPV4', bad((b) => { b[19] = UDP; }), DropReason.BAD_GSO],
    ['TCP data offset below 5 words', bad((b) => { b[10 + 32] = 0x40; }), DropReason.BAD_GSO],
    ['IP version 5', bad((b) => { b[10] = 0x55; }), DropReason.BAD_VERSION],
    ['IHL 4', bad((b) => { b[10] = 0x44; }), DropReason.BAD_HEADER_LENGTH],
    ['truncated below an IP header', good.slice(0, 25), DropReason.TRUNCATED],
    ['truncated packet', good.slice(0, 2000), DropReason.BAD_TOTAL_LENGTH],
    ['empty', new Uint8Array(0), DropReason.TRUNCATED],
    ['too many segments (gso_size 30)', bad((b) => { b[4] = 30; b[5] = 0; }), DropReason.BAD_GSO],
  ];
  for (const [name, input, want] of cases) {
    assert.equal(split(input, 1500).r, want, name);
  }
  // The TCP data offset beyond the packet with a short packet: TRUNCATED.
  const tiny = superPacket({ payload: new Uint8Array(0) }, 1000);
  tiny[10 + 32] = 0xf0;
  assert.equal(split(tiny, 1500).r, DropReason.TRUNCATED);
  // Output that does not fit outCap, and a UDP gso_size above maxPktLen.
  assert.equal(split(good, 1500, 4000).r, DropReason.TOO_BIG);
  const udp = superPacket({ proto: UDP, payload: pattern(3000) }, 1400);
  assert.equal(split(udp, 1000).r, DropReason.TOO_BIG);
  // IPv6 with a hop-by-hop header (next header 0) is not split.
  const v6 = superPacket({ v6: true, payload: pattern(3000) }, 1000);
  v6[10 + 6] = 0;
  assert.equal(split(v6, 1500).r, DropReason.BAD_GSO);
});

test('random gso sizes and lengths: every segment verifies and the payload reassembles', () => {
  let seed = 12345;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  for (let k = 0; k < 60; k++) {
    const v6 = rnd(2) === 1;
    const o: PktOpts = { v6, opts: rnd(2) ? tsOption(rnd(1e9)) : new Uint8Array(0),
      payload: pattern(1 + rnd(60_000), k), seq: rnd(2 ** 32), id: rnd(65536), flags: ACK | PSH };
    const mss = 536 + rnd(1500);
    const maxPkt = 576 + rnd(1000);
    const hl = l3Len(v6) + 20 + o.opts!.length;
    const eff = Math.min(mss, maxPkt - hl);
    const sp = split(superPacket(o, mss), maxPkt);
    if (Math.ceil(o.payload.length / eff) > 128) { assert.equal(sp.r, DropReason.BAD_GSO); continue; }
    checkTcpRun(o, sp, eff, maxPkt);
  }
});

test('argument errors throw before touching memory', () => {
  const s = slab();
  const res = new Uint32Array(4);
  assert.throws(() => vnetSplit(s, SLAB - 10, 20, 0, 10, 1500, res), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => vnetSplit(s, 0, 100, SLAB - 10, 20, 1500, res), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => vnetSplit(s, 0, 100, 50, 100, 1500, res), /overlap/);
  assert.throws(() => vnetSplit(s, 0, 100, 200, 100, 1500, new Uint32Array(3)), /res/);
  assert.throws(() => vnetSplit(s, 0, 100, 200, 100, 0, res), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => vnetSplit(s, 0.5, 100, 200, 100, 1500, res), { code: 'ERR_OUT_OF_RANGE' });
  assert.ok(s.every((b) => b === 0xa5));
});

test('VirtioNetHdr view reads and writes little-endian fields at an offset', () => {
  const b = new Uint8Array(20).fill(0xa5);
  const h = new VirtioNetHdr().reset(b, 3).zero();
  h.flags = 1; h.gsoType = 1; h.hdrLen = 0x0134; h.gsoSize = 1448; h.csumStart = 20; h.csumOffset = 16;
  assert.deepEqual([...b], [0xa5, 0xa5, 0xa5, 1, 1, 0x34, 0x01, 0xa8, 0x05, 20, 0, 16, 0,
    0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5]);
  assert.deepEqual([h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset],
    [1, 1, 0x134, 1448, 20, 16]);
  assert.equal(VIRTIO_NET_HDR_LEN, 10);
  assert.equal(VirtioNetHdr.check(9), DropReason.TRUNCATED);
  assert.equal(udpGsoChunk(1472), 44, 'the udp and vxlan strides at a 1500-byte underlay');
  assert.equal(udpGsoChunk(1450), 44, '45 would be 65 250 bytes, over the 65 000 a run may take');
  assert.equal(udpGsoChunk(500), 64);
  for (let s = 1; s <= 9000; s++) assert.ok(udpGsoChunk(s) * s <= 65_000 || udpGsoChunk(s) === 1, `stride ${s}`);
  void TCP;
});

test('the addon\'s constants match the TypeScript ones', async () => {
  const { native } = await import('../../src/native/index.js');
  const vnet = await import('../../src/offload/vnet.js');
  const n = native as unknown as Record<string, number>;
  for (const k of ['TUN_F_CSUM', 'TUN_F_TSO4', 'TUN_F_TSO6', 'TUN_F_TSO_ECN', 'TUN_F_USO4',
    'TUN_F_USO6', 'VNET_SPLIT_MAX_SEGS', 'VNET_SPLIT_OUT_MAX', 'VNET_COALESCE_MAX_SEGS'] as const) {
    assert.equal(n[k], vnet[k], k);
  }
  assert.equal(n.VNET_HDR_LEN, vnet.VIRTIO_NET_HDR_LEN);
});
