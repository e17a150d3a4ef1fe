import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MERGE_TCP, MERGE_UDP, VNET_SPLIT_OUT_MAX, VirtioNetHdr, vnetCoalesce, vnetSplit,
} from '../../src/offload/vnet.js';
import {
  ACK, CWR, ECE, FIN, PSH, RST, SYN, UDP, URG, buildPacket, pattern, rd16, superPacket, sum16,
  tsOption, verifyPacket, wr16, type PktOpts,
} from './packets.js';

const OUT = 150_000;
const SLAB = 300_000;

interface Out {
  k: number;
  consumed: number;
  outs: Uint8Array[];
  s: Uint8Array;
}

/** Places pkts back to back (gap 3, so they are not contiguous) and coalesces them. */
function coalesce(pkts: Uint8Array[], flags: number, outCap = SLAB - OUT - 64, maxOut = 256): Out {
  const buf = new ArrayBuffer(SLAB + 8);
  const s = new Uint8Array(buf, 8, SLAB).fill(0xa5);
  const offs = new Uint32Array(256), lens = new Uint32Array(256);
  let o = 64;
  pkts.forEach((p, i) => { s.set(p, o); offs[i] = o; lens[i] = p.length; o += p.length + 3; });
  assert.ok(o < OUT);
  const before = s.slice(0, OUT);
  const outOffs = new Uint32Array(256), outLens = new Uint32Array(256), res = new Uint32Array(1);
  const k = vnetCoalesce(s, offs, lens, pkts.length, OUT, outCap, outOffs, outLens, maxOut, flags,
    res);
  assert.deepEqual(s.subarray(0, OUT), before, 'inputs untouched');
  const outs: Uint8Array[] = [];
  let end = OUT;
  for (let i = 0; i < k; i++) {
    assert.equal(outOffs[i], end, 'outputs back to back');
    outs.push(s.slice(outOffs[i]!, outOffs[i]! + outLens[i]!));
    end += outLens[i]!;
  }
  assert.ok(end <= OUT + outCap);
  assert.ok(s.subarray(end).every((b) => b === 0xa5), 'nothing written after the outputs');
  return { k, consumed: res[0]!, outs, s };
}

/** n consecutive segments of one flow, MSS bytes each (the last `lastLen`). */
function flow(n: number, mss: number, over: Partial<PktOpts> = {}, lastLen = mss,
  lastFlags = ACK): { pkts: Uint8Array[]; opts: PktOpts[] } {
  const pkts: Uint8Array[] = [], opts: PktOpts[] = [];
  const all = pattern((n - 1) * mss + lastLen, 5);
  const seq0 = over.seq ?? 0xfffff800;
  for (let i = 0; i < n; i++) {
    const len = i + 1 < n ? mss : lastLen;
    const o: PktOpts = { opts: tsOption(0xabcdef), id: 0xfffe + i, ...over,
      seq: (seq0 + i * mss) >>> 0, flags: i + 1 < n ? (over.flags ?? ACK) : lastFlags,
      payload: all.subarray(i * mss, i * mss + len) };
    opts.push(o);
    pkts.push(buildPacket(o));
  }
  return { pkts, opts };
}

function zeroHeader(b: Uint8Array): boolean { return b.subarray(0, 10).every((x) => x === 0); }

/** Each output is its input with a zero header in front. */
function passedThrough(r: Out, pkts: Uint8Array[]): void {
  assert.equal(r.k, pkts.length);
  assert.equal(r.consumed, pkts.length);
  r.outs.forEach((o, i) => {
    assert.ok(zeroHeader(o), `output ${i} has a zero header`);
    assert.deepEqual(o.subarray(10), pkts[i], `output ${i} is its input`);
  });
}

test('split -> coalesce round trip gives back the original super-packet', () => {
  // The original as the kernel builds it: IPv4 ID of the first segment,
  // checksum field = pseudo-header sum over the whole L4 length, hdr_len =
  // IP + TCP header. Documented differences: none for ACK|PSH super-packets;
  // FIN/SYN/CWR segments are never merged (they end or refuse a run).
  const o: PktOpts = { opts: tsOption(0x01020304), payload: pattern(15_000, 9), seq: 0xffffe000,
    id: 0xfff0, flags: ACK | PSH };
  const orig = superPacket(o, 1400);
  const s = new Uint8Array(200_000);
  s.set(orig, 0);
  const res = new Uint32Array(4);
  assert.equal(vnetSplit(s, 0, orig.length, 70_000, VNET_SPLIT_OUT_MAX, 1500, res), 0);
  const segs: Uint8Array[] = [];
  let off = 70_000;
  for (let i = 0; i < res[0]!; i++) {
    const len = i + 1 < res[0]! ? res[1]! : res[2]!;
    segs.push(s.slice(off, off + len));
    off += len;
  }
  assert.equal(segs.length, 11);
  const r = coalesce(segs, MERGE_TCP);
  assert.equal(r.k, 1);
  assert.equal(r.consumed, 11);
  assert.deepEqual(r.outs[0], orig);
  const h = new VirtioNetHdr().reset(r.outs[0]!, 0);
  assert.deepEqual([h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset],
    [1, 1, 52, 1400, 20, 16]);
});

test('merged super-packet fields: lengths, IP checksum, PSH from the last, partial checksum', () => {
  const { pkts, opts } = flow(5, 1000, {}, 700, ACK | PSH);
  const r = coalesce(pkts, MERGE_TCP);
  assert.equal(r.k, 1);
  const m = r.outs[0]!;
  const ip = m.subarray(10);
  const total = 20 + 32 + 4700;
  assert.equal(m.length, 10 + total);
  assert.equal(rd16(ip, 2), total);
  assert.equal(sum16(ip, 0, 20), 0xffff, 'IPv4 header checksum');
  assert.equal(rd16(ip, 4), 0xfffe, 'the first segment\'s ID');
  assert.equal(ip[33], ACK | PSH);
  // Partial checksum: pseudo-header (addresses, proto, merged L4 length), folded.
  assert.equal(rd16(ip, 36), sum16(ip, 12, 8, 6 + total - 20));
  const payload = new Uint8Array(4700);
  opts.forEach((o, i) => payload.set(o.payload, i * 1000));
  assert.deepEqual(ip.subarray(52), payload);
});

test('not merged: gap in seq, other flow between, SYN/FIN/RST/URG/ECE/CWR, options, TTL, TOS, DF, ack, window', () => {
  const two = (b: Partial<PktOpts>): Uint8Array[] => {
    const { pkts, opts } = flow(2, 800);
    return [pkts[0]!, buildPacket({ ...opts[1]!, ...b })];
  };
  const base = flow(2, 800).opts[1]!;
  const cases: [string, Uint8Array[]][] = [
    ['seq gap', two({ seq: (base.seq! + 1) >>> 0 })],
    ['seq overlap', two({ seq: (base.seq! - 1) >>> 0 })],
    ['options differ (TSval)', two({ opts: tsOption(0xabcdf0) })],
    ['no options on one', two({ opts: new Uint8Array(0) })],
    ['TTL', two({ ttl: 63 })],
    ['TOS', two({ tos: 2 })],
    ['DF', two({ df: false })],
    ['ack number', two({ ack: 0x55667789 })],
    ['window', two({ window: 503 })],
    ['port', two({ sport: 40001 })],
    ['address', two({ dst: 0x0a000003 })],
    ['longer second segment', two({ payload: pattern(801) })],
    ['pure ACK', two({ payload: new Uint8Array(0) })],
  ];
  for (const f of [SYN, FIN, RST, URG, ECE, CWR, 0]) {
    cases.push([`flags ${f | (f === 0 ? 0 : ACK)} on the second`, two({ flags: f === 0 ? PSH : ACK | f })]);
  }
  for (const [name, pkts] of cases) {
    const r = coalesce(pkts, MERGE_TCP);
    assert.equal(r.k, 2, name);
    passedThrough(r, pkts);
  }
  // A FIN/SYN first segment does not start a run either.
  const { opts } = flow(2, 800);
  const fin = [buildPacket({ ...opts[0]!, flags: ACK | FIN }), buildPacket(opts[1]!)];
  passedThrough(coalesce(fin, MERGE_TCP), fin);
  // Another flow in between: adjacent-only, never reordered.
  const a = flow(3, 800).pkts;
  const b = buildPacket({ sport: 1234, payload: pattern(800) });
  const mixed = [a[0]!, b, a[1]!];
  passedThrough(coalesce(mixed, MERGE_TCP), mixed);
  // IP options and fragments are never merged.
  const frag = flow(2, 800).pkts.map((p) => { const q = p.slice(); wr16(q, 6, 0x2000); wr16(q, 10, 0);
    wr16(q, 10, ~sum16(q, 0, 20) & 0xffff); return q; });
  passedThrough(coalesce(frag, MERGE_TCP), frag);
});

test('PSH or a short segment ends the run; the next packet starts a new one', () => {
  const { pkts } = flow(6, 1000);
  const p: Uint8Array[] = pkts.map((x) => x.slice());
  // Segment 2 with PSH: [0,1,2] merge with PSH, [3,4,5] merge.
  const o2 = flow(6, 1000).opts[2]!;
  p[2] = buildPacket({ ...o2, flags: ACK | PSH });
  const r = coalesce(p, MERGE_TCP);
  assert.equal(r.k, 2);
  assert.equal(r.outs[0]![10 + 33], ACK | PSH);
  assert.equal(rd16(r.outs[0]!, 10 + 2), 52 + 3000);
  assert.equal(rd16(r.outs[1]!, 10 + 2), 52 + 3000);
  // A short middle segment: [0,1(short)] then [2..].
  const o = flow(4, 1000).opts;
  const q = [buildPacket(o[0]!), buildPacket({ ...o[1]!, payload: pattern(500) }),
    buildPacket({ ...o[2]!, seq: (o[1]!.seq! + 500) >>> 0 }),
    buildPacket({ ...o[3]!, seq: (o[1]!.seq! + 1500) >>> 0 })];
  const r2 = coalesce(q, MERGE_TCP);
  assert.equal(r2.k, 2);
  assert.equal(rd16(r2.outs[0]!, 10 + 2), 52 + 1500);
});

test('a segment whose checksum fails is passed through unmerged with a zero header', () => {
  const { pkts } = flow(3, 900);
  const bad = pkts.map((x) => x.slice());
  bad[1]![100] = bad[1]![100]! ^ 0xff;
  passedThrough(coalesce(bad, MERGE_TCP), bad);
  const bad0 = pkts.map((x) => x.slice());
  bad0[0]![100] = bad0[0]![100]! ^ 0xff;
  const r = coalesce(bad0, MERGE_TCP);
  assert.equal(r.k, 2);
  assert.ok(zeroHeader(r.outs[0]!));
  assert.deepEqual(r.outs[0]!.subarray(10), bad0[0]);
  assert.equal(r.outs[1]![1], 1, 'the good pair behind it still merges');
});

test('flags 0: zero headers only; UDP merges only with MERGE_UDP', () => {
  const { pkts } = flow(4, 1000);
  passedThrough(coalesce(pkts, 0), pkts);
  const udp: Uint8Array[] = [];
  for (let i = 0; i < 4; i++) {
    udp.push(buildPacket({ proto: UDP, id: 7 + i, payload: pattern(i < 3 ? 1200 : 300, i) }));
  }
  passedThrough(coalesce(udp, MERGE_TCP), udp);
  const r = coalesce(udp, MERGE_UDP);
  assert.equal(r.k, 1);
  const h = new VirtioNetHdr().reset(r.outs[0]!, 0);
  assert.deepEqual([h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset],
    [1, 5, 28, 1200, 20, 6]);
  // Back through vnetSplit: the original datagrams (IDs were consecutive).
  const m = r.outs[0]!;
  const s = new Uint8Array(100_000);
  s.set(m, 0);
  const res = new Uint32Array(4);
  assert.equal(vnetSplit(s, 0, m.length, 10_000, VNET_SPLIT_OUT_MAX, 1500, res), 0);
  assert.equal(res[0], 4);
  let off = 10_000;
  for (let i = 0; i < 4; i++) {
    const len = i < 3 ? res[1]! : res[2]!;
    assert.deepEqual(s.subarray(off, off + len), udp[i], `datagram ${i}`);
    assert.deepEqual(verifyPacket(s, off, len), { ipOk: true, l4Ok: true });
    off += len;
  }
  // A UDP checksum of 0 (none) is accepted; a wrong one is not.
  const zero = udp.slice(0, 2).map((p) => { const q = p.slice(); wr16(q, 26, 0); return q; });
  assert.equal(coalesce(zero, MERGE_UDP).k, 1);
  const wrong = udp.slice(0, 2).map((p) => { const q = p.slice(); q[26] = q[26]! ^ 1; return q; });
  passedThrough(coalesce(wrong, MERGE_UDP), wrong);
});

test('limits: 64 segments, 65535 bytes; stops at outCap/maxOut and reports what it consumed', () => {
  const small = flow(70, 100, {}, 100);
  const r = coalesce(small.pkts, MERGE_TCP);
  assert.deepEqual([r.k, r.consumed], [2, 70]);
  assert.equal(rd16(r.outs[0]!, 10 + 2), 52 + 6400);
  const big = flow(50, 1400);
  const r2 = coalesce(big.pkts, MERGE_TCP);
  assert.equal(r2.k, 2);
  assert.ok(rd16(r2.outs[0]!, 12) <= 65535);
  assert.equal(rd16(r2.outs[0]!, 12), 52 + 46 * 1400);

  const { pkts } = flow(5, 1000);
  const len = pkts[0]!.length + 10;
  const r3 = coalesce(pkts, 0, 2 * len + 5);
  assert.deepEqual([r3.k, r3.consumed], [2, 2]);
  const r4 = coalesce(pkts, 0, 1_000_00, 3);
  assert.deepEqual([r4.k, r4.consumed], [3, 3]);
  // A merge is cut where outCap ends, not dropped.
  const r5 = coalesce(pkts, MERGE_TCP, len + 2500);
  assert.deepEqual([r5.k, r5.consumed], [1, 3]);
  assert.throws(() => coalesce(pkts, 0, 100), /outCap is too small/);
});

test('argument errors: regions beyond the slab, input overlapping output', () => {
  const s = new Uint8Array(10_000);
  const offs = Uint32Array.of(0), lens = Uint32Array.of(100);
  const oo = new Uint32Array(4), ol = new Uint32Array(4), res = new Uint32Array(1);
  assert.throws(() => vnetCoalesce(s, offs, lens, 1, 50, 1000, oo, ol, 4, 1, res),
    { code: 'ERR_OUT_OF_RANGE', message: /packet 0 \(offs\[0\] \+ lens\[0\]\) overlaps the output region/ });
  // The packet at fault is named: here the second one.
  const two = Uint32Array.of(0, 4950), twoLens = Uint32Array.of(100, 100);
  assert.throws(() => vnetCoalesce(s, two, twoLens, 2, 5000, 1000, oo, ol, 4, 1, res),
    { code: 'ERR_OUT_OF_RANGE', message: /packet 1 \(offs\[1\] \+ lens\[1\]\) overlaps the output region/ });
  assert.throws(() => vnetCoalesce(s, two, Uint32Array.of(100, 9_000), 2, 0, 0, oo, ol, 4, 1, res),
    { code: 'ERR_OUT_OF_RANGE', message: /offs\[1\] \+ lens\[1\] \(4950 \+ 9000\) is beyond the slab/ });
  assert.throws(() => vnetCoalesce(s, offs, lens, 1, 9_500, 1000, oo, ol, 4, 1, res),
    { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => vnetCoalesce(s, offs, Uint32Array.of(20_000), 1, 5000, 1000, oo, ol, 4, 1, res),
    { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => vnetCoalesce(s, offs, lens, 2, 5000, 1000, oo, ol, 4, 1, res), /n exceeds/);
  assert.throws(() => vnetCoalesce(s, offs, lens, 1, 5000, 1000, oo, ol, 5, 1, res), /maxOut/);
  assert.throws(() => vnetCoalesce(s, offs, lens, 1, 5000, 1000, oo, ol, 4, 4, res),
    { code: 'ERR_OUT_OF_RANGE' });
  void verifyPacket;
});
