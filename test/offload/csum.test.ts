/**
 * Partial inner checksums from a kernel VTEP on a virtual underlay (issue
 * 5): csumComplete (plain TUN path) and vnetCoalesce (offload path)
 * complete a TCP/UDP checksum whose field holds only the pseudo-header sum
 * (CHECKSUM_PARTIAL never finished) and leave every other packet alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MERGE_TCP, MERGE_UDP, VNET_SPLIT_OUT_MAX, csumBinding, csumComplete, vnetCoalesce, vnetSplit } from '../../src/offload/vnet.js';
import { ACK, PSH, TCP, UDP, buildPacket, pattern, rd16, sum16, tsOption, verifyPacket, wr16, type PktOpts } from './packets.js';

const SLAB = 200_000;
const OUT = 100_000;

/** The L4 checksum field's offset in a 20-byte-IP-header packet. */
function csumAt(p: Uint8Array): number { return 20 + (p[9] === TCP ? 16 : 6); }

/** Pseudo-header sum (folded, not complemented) of an IPv4 packet for its L4 length. */
function pseudo(p: Uint8Array): number { return sum16(p, 12, 8, p[9]! + rd16(p, 2) - 20); }

interface Run { done: number; outs: Uint8Array[]; s: Uint8Array }

/**
 * Places pkts in a 0xa5-filled slab (at a non-zero byteOffset, gap 3) and
 * completes them; checks that nothing outside the packets changed.
 */
function complete(pkts: Uint8Array[]): Run {
  const buf = new ArrayBuffer(SLAB + 16);
  const s = new Uint8Array(buf, 16, SLAB).fill(0xa5);
  const offs = new Uint32Array(256), lens = new Uint32Array(256);
  let o = 40;
  pkts.forEach((p, i) => { s.set(p, o); offs[i] = o; lens[i] = p.length; o += p.length + 3; });
  const done = csumComplete(s, offs, lens, pkts.length);
  const outs = pkts.map((_, i) => s.slice(offs[i]!, offs[i]! + lens[i]!));
  // Outside the packets: the prefill, untouched.
  const inside = new Uint8Array(SLAB);
  pkts.forEach((_, i) => inside.fill(1, offs[i]!, offs[i]! + lens[i]!));
  for (let i = 0; i < SLAB; i++) if (!inside[i]) assert.equal(s[i], 0xa5, `byte ${i} outside the packets`);
  return { done, outs, s };
}

const tcpOpts = (over: Partial<PktOpts> = {}): PktOpts =>
  ({ opts: tsOption(0x11223344), seq: 0xfffff000, payload: pattern(1337, 3), ...over });
const udpOpts = (over: Partial<PktOpts> = {}): PktOpts => ({ proto: UDP, payload: pattern(999, 5), ...over });

/**
 * A packet whose L4 checksum field, once complete, holds `want` (a
 * 2-byte slot at the start of the payload is set to get there).
 */
function withChecksum(o: PktOpts, want: number): Uint8Array {
  const p = buildPacket({ ...o, payload: o.payload.slice() });
  const l4h = p[9] === TCP ? 20 + (o.opts?.length ?? 0) : 8;
  const slot = 20 + l4h;
  wr16(p, slot, 0);
  wr16(p, csumAt(p), 0);
  // Complete checksum c = ~(pseudo + bytes); want it = `want`: bytes must add up to ~want − pseudo − rest.
  const rest = sum16(p, 20, p.length - 20, pseudo(p));
  wr16(p, slot, sum16(new Uint8Array([(~want >> 8) & 0xff, ~want & 0xff, (~rest >> 8) & 0xff, ~rest & 0xff]), 0, 4));
  wr16(p, csumAt(p), want);
  assert.ok(verifyPacket(p, 0, p.length).l4Ok, `built with checksum ${want.toString(16)}`);
  return p;
}

test('TCP and UDP with a partial checksum: completed, verifying, equal to the complete packet', () => {
  for (const o of [tcpOpts(), udpOpts(), tcpOpts({ payload: pattern(1, 1) }), udpOpts({ payload: pattern(0) })]) {
    const partial = buildPacket(o, true);
    assert.equal(rd16(partial, csumAt(partial)), pseudo(partial));
    assert.ok(!verifyPacket(partial, 0, partial.length).l4Ok);
    const r = complete([partial]);
    assert.equal(r.done, 1);
    assert.deepEqual(r.outs[0], buildPacket(o), 'the complete packet, byte for byte');
    assert.ok(verifyPacket(r.outs[0]!, 0, partial.length).l4Ok);
  }
});

test('complete, corrupt, UDP checksum 0, fragments, other protocols: untouched byte for byte', () => {
  const good = [buildPacket(tcpOpts()), buildPacket(udpOpts())];
  // Corrupt: the field is neither the checksum nor the pseudo-header sum.
  const corrupt = good.map((p) => { const q = p.slice(); q[60] = q[60]! ^ 0x5a; return q; });
  const badField = good.map((p) => { const q = p.slice(); wr16(q, csumAt(q), pseudo(q) ^ 1); return q; });
  // UDP 0 = "no checksum", even with a payload that would not verify.
  const udp0 = buildPacket(udpOpts()); wr16(udp0, 26, 0); udp0[40] = udp0[40]! ^ 1;
  // A fragment with a pseudo-sum field: its checksum covers bytes not here.
  const frag = buildPacket(tcpOpts(), true); wr16(frag, 6, 0x2000); wr16(frag, 10, 0);
  wr16(frag, 10, ~sum16(frag, 0, 20) & 0xffff);
  const later = frag.slice(); wr16(later, 6, 0x00b9); wr16(later, 10, 0); wr16(later, 10, ~sum16(later, 0, 20) & 0xffff);
  // ICMP, and a truncated packet (IP length larger than the bytes).
  const icmp = buildPacket(udpOpts(), true); icmp[9] = 1;
  const short = buildPacket(tcpOpts(), true).subarray(0, 500);
  const tiny = Uint8Array.of(0x45, 0, 0, 20);
  const pkts = [...good, ...corrupt, ...badField, udp0, frag, later, icmp, short, tiny];
  const r = complete(pkts);
  assert.equal(r.done, 0);
  r.outs.forEach((o, i) => assert.deepEqual(o, pkts[i], `packet ${i}`));
});

test('a complete checksum that happens to equal the pseudo-header sum is left alone', () => {
  for (const o of [tcpOpts(), udpOpts()]) {
    const p0 = buildPacket(o);
    const p = withChecksum(o, pseudo(p0));
    assert.equal(rd16(p, csumAt(p)), pseudo(p));
    const r = complete([p]);
    assert.equal(r.done, 0);
    assert.deepEqual(r.outs[0], p);
  }
});

test('0 / 0xffff: a checksum completing to 0 (UDP sends 0xffff); a 0xffff pseudo sum in a TCP field of 0', () => {
  // Completes to 0: TCP keeps 0, UDP sends 0xffff (0 would mean "none").
  for (const [o, want] of [[tcpOpts(), 0], [udpOpts(), 0xffff]] as const) {
    const full = withChecksum(o, want);
    const partial = full.slice();
    wr16(partial, csumAt(partial), pseudo(partial));
    const r = complete([partial]);
    assert.equal(r.done, 1);
    assert.deepEqual(r.outs[0], full);
  }
  // A pseudo-header sum of 0xffff: pick the destination address to get it.
  const base = buildPacket(tcpOpts({ dst: 0x0a000000 }), true);
  const lo = 0xffff - sum16(base, 12, 8, TCP + base.length - 20);
  const o = tcpOpts({ dst: 0x0a000000 + lo });
  const partial = buildPacket(o, true);
  assert.equal(pseudo(partial), 0xffff);
  assert.equal(rd16(partial, 36), 0xffff);
  const zero = partial.slice(); wr16(zero, 36, 0);
  const r = complete([partial, zero]);
  assert.equal(r.done, 2);
  assert.deepEqual(r.outs[0], buildPacket(o));
  assert.deepEqual(r.outs[1], buildPacket(o));
  // The same for UDP: a field of 0 is "no checksum", never completed.
  const ubase = buildPacket(udpOpts({ dst: 0x0a000000 }), true);
  const ulo = 0xffff - sum16(ubase, 12, 8, UDP + ubase.length - 20);
  const u = buildPacket(udpOpts({ dst: 0x0a000000 + ulo }), true);
  assert.equal(rd16(u, 26), 0xffff);
  const u0 = u.slice(); wr16(u0, 26, 0);
  const ru = complete([u, u0]);
  assert.equal(ru.done, 1);
  assert.deepEqual(ru.outs[0], buildPacket(udpOpts({ dst: 0x0a000000 + ulo })));
  assert.deepEqual(ru.outs[1], u0);
});

test('IP options, bytes after the IP length; a mixed batch counts only the completed ones', () => {
  // IPv4 with 4 bytes of options (NOP NOP NOP EOL): L4 from byte 24.
  const plain = buildPacket(tcpOpts(), true);
  const opt = new Uint8Array(plain.length + 4);
  opt.set(plain.subarray(0, 20), 0);
  opt.set([1, 1, 1, 0], 20);
  opt.set(plain.subarray(20), 24);
  opt[0] = 0x46;
  wr16(opt, 2, opt.length);
  wr16(opt, 10, 0); wr16(opt, 10, ~sum16(opt, 0, 24) & 0xffff);
  wr16(opt, 24 + 16, sum16(opt, 12, 8, TCP + opt.length - 24));
  // Trailing bytes (Ethernet padding) after the IP total length are not summed.
  const padded = new Uint8Array(plain.length + 6).fill(0x77);
  padded.set(plain, 0);
  const good = buildPacket(udpOpts());
  const r = complete([opt, good, padded]);
  assert.equal(r.done, 2);
  const o = r.outs[0]!;
  assert.equal(sum16(o, 24, o.length - 24, sum16(o, 12, 8, TCP + o.length - 24)), 0xffff, 'options packet verifies');
  assert.deepEqual(r.outs[1], good);
  assert.deepEqual(r.outs[2]!.subarray(0, plain.length), buildPacket(tcpOpts()));
  assert.ok(r.outs[2]!.subarray(plain.length).every((b) => b === 0x77));
});

test('csumBinding works without the rest of the offload path; argument errors', () => {
  const { csumComplete: raw } = csumBinding();
  const s = new Uint8Array(4000).fill(0xa5);
  const p = buildPacket(udpOpts({ payload: pattern(100) }), true);
  s.set(p, 1000);
  assert.equal(raw(s, Uint32Array.of(1000), Uint32Array.of(p.length), 1), 1);
  assert.deepEqual(s.subarray(1000, 1000 + p.length), buildPacket(udpOpts({ payload: pattern(100) })));
  assert.equal(raw(s, Uint32Array.of(1000), Uint32Array.of(p.length), 0), 0);
  assert.throws(() => csumComplete(s, Uint32Array.of(3990), Uint32Array.of(20), 1), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => csumComplete(s, Uint32Array.of(0), Uint32Array.of(20), 2), /n exceeds/);
  assert.throws(() => csumComplete(s, new Uint32Array(300), new Uint32Array(300), 257), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => csumComplete(s, [0] as unknown as Uint32Array, Uint32Array.of(20), 1), { code: 'ERR_INVALID_ARG_TYPE' });
});

// ---- vnetCoalesce -----------------------------------------------------------

function coalesce(pkts: Uint8Array[], flags: number): Uint8Array[] {
  const s = new Uint8Array(new ArrayBuffer(SLAB + 8), 8, SLAB).fill(0xa5);
  const offs = new Uint32Array(256), lens = new Uint32Array(256);
  let o = 64;
  pkts.forEach((p, i) => { s.set(p, o); offs[i] = o; lens[i] = p.length; o += p.length + 3; });
  const before = s.slice(0, OUT);
  const oo = new Uint32Array(256), ol = new Uint32Array(256), res = new Uint32Array(1);
  const k = vnetCoalesce(s, offs, lens, pkts.length, OUT, SLAB - OUT, oo, ol, 256, flags, res);
  assert.equal(res[0], pkts.length);
  assert.deepEqual(s.subarray(0, OUT), before, 'inputs untouched');
  const outs: Uint8Array[] = [];
  for (let i = 0; i < k; i++) outs.push(s.slice(oo[i]!, oo[i]! + ol[i]!));
  const end = k === 0 ? OUT : oo[k - 1]! + ol[k - 1]!;
  assert.ok(s.subarray(end).every((b) => b === 0xa5), 'nothing written after the outputs');
  return outs;
}

function flowOpts(n: number, mss: number, proto = TCP): PktOpts[] {
  const all = pattern(n * mss, 11);
  return Array.from({ length: n }, (_, i) => ({
    proto, opts: proto === TCP ? tsOption(0xabcdef) : undefined, id: 0x100 + i, seq: (0xfffff800 + i * mss) >>> 0,
    flags: i + 1 < n ? ACK : ACK | PSH, payload: all.subarray(i * mss, (i + 1) * mss),
  } as PktOpts));
}

test('vnetCoalesce: partial segments merge like complete ones (TCP and UDP, mixed too)', () => {
  for (const [proto, flags] of [[TCP, MERGE_TCP], [UDP, MERGE_UDP]] as const) {
    const opts = flowOpts(5, 1200, proto);
    const complete5 = opts.map((o) => buildPacket(o));
    const want = coalesce(complete5, flags);
    assert.equal(want.length, 1);
    const partial5 = opts.map((o) => buildPacket(o, true));
    assert.deepEqual(coalesce(partial5, flags), want, 'all partial');
    const mixed = opts.map((o, i) => buildPacket(o, i % 2 === 0));
    assert.deepEqual(coalesce(mixed, flags), want, 'partial head, partial and complete followers');
    const mixed2 = opts.map((o, i) => buildPacket(o, i % 2 === 1));
    assert.deepEqual(coalesce(mixed2, flags), want, 'complete head, partial followers');
  }
});

test('vnetCoalesce: outputs not merged leave with complete checksums; corrupt ones stay as they are', () => {
  const zero = (b: Uint8Array): boolean => b.subarray(0, 10).every((x) => x === 0);
  const opts = flowOpts(3, 900);
  // flags 0: every partial packet completed, each alone with a zero header.
  const partial = opts.map((o) => buildPacket(o, true));
  const outs0 = coalesce(partial, 0);
  assert.equal(outs0.length, 3);
  outs0.forEach((o, i) => { assert.ok(zero(o)); assert.deepEqual(o.subarray(10), buildPacket(opts[i]!)); });
  // A lone partial UDP datagram and a partial SYN under MERGE_TCP|MERGE_UDP.
  const syn = buildPacket({ ...opts[0]!, flags: 0x02, payload: new Uint8Array(0) }, true);
  const udp = buildPacket(udpOpts(), true);
  const outs1 = coalesce([syn, udp], MERGE_TCP | MERGE_UDP);
  assert.deepEqual(outs1.map((o) => o.subarray(10)), [buildPacket({ ...opts[0]!, flags: 0x02, payload: new Uint8Array(0) }),
    buildPacket(udpOpts())]);
  // A corrupt segment between partial ones: not merged, not "completed".
  const bad = partial.map((p) => p.slice());
  bad[1]![100] = bad[1]![100]! ^ 0xff;
  wr16(bad[1]!, 36, pseudo(bad[1]!) ^ 0x100);
  const outs2 = coalesce(bad, MERGE_TCP);
  assert.equal(outs2.length, 3);
  assert.deepEqual(outs2[0]!.subarray(10), buildPacket(opts[0]!), 'head completed, alone');
  assert.deepEqual(outs2[1]!.subarray(10), bad[1], 'corrupt: byte for byte');
  assert.deepEqual(outs2[2]!.subarray(10), buildPacket(opts[2]!), 'tail completed');
  outs2.forEach((o) => assert.ok(zero(o)));
  void PSH;
});

test('vnetCoalesce with maxPktLen: a TCP packet longer than it leaves as a GSO_TCPV4 super-packet cut there', () => {
  const o: PktOpts = { ...tcpOpts({ payload: pattern(4194, 9) }), flags: ACK | PSH };
  const big = buildPacket(o, true); // 20 + 32 + 4194 = 4246, partial as a kernel TSO packet
  const run = (pkts: Uint8Array[], flags: number, maxPkt: number): Uint8Array[] => {
    const s = new Uint8Array(new ArrayBuffer(SLAB + 8), 8, SLAB).fill(0xa5);
    const offs = new Uint32Array(8), lens = new Uint32Array(8);
    let at = 64;
    pkts.forEach((p, i) => { s.set(p, at); offs[i] = at; lens[i] = p.length; at += p.length + 3; });
    const oo = new Uint32Array(8), ol = new Uint32Array(8), res = new Uint32Array(1);
    const k = vnetCoalesce(s, offs, lens, pkts.length, OUT, SLAB - OUT, oo, ol, 8, flags, res, maxPkt);
    assert.equal(res[0], pkts.length);
    const end = oo[k - 1]! + ol[k - 1]!;
    assert.ok(s.subarray(end).every((b) => b === 0xa5), 'nothing written after the outputs');
    return Array.from({ length: k }, (_, i) => s.slice(oo[i]!, oo[i]! + ol[i]!));
  };
  const [g] = run([big], MERGE_TCP, 1450);
  const le = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
  assert.deepEqual([g![0], g![1], le(g!, 2), le(g!, 4), le(g!, 6), le(g!, 8)], [1, 1, 52, 1398, 20, 16]);
  assert.deepEqual(g!.subarray(10), big, 'the packet as it came, field = pseudo-header sum over its length');
  // Back through vnetSplit at the same MTU: MTU-sized segments that verify.
  const s = new Uint8Array(100_000);
  s.set(g!, 0);
  const res = new Uint32Array(4);
  assert.equal(vnetSplit(s, 0, g!.length, 10_000, VNET_SPLIT_OUT_MAX, 1450, res), 0);
  assert.deepEqual([res[0], res[1], res[2]], [3, 1450, 52 + 4194 - 2 * 1398]);
  for (let i = 0, off = 10_000; i < 3; off += i < 2 ? 1450 : 0, i++) {
    assert.deepEqual(verifyPacket(s, off, i < 2 ? 1450 : res[2]!), { ipOk: true, l4Ok: true });
  }
  // The same packet complete: also GSO. Without maxPktLen or with flags 0: plain, completed.
  assert.deepEqual(run([buildPacket(o)], MERGE_TCP, 1450)[0], g);
  for (const [flags, max] of [[MERGE_TCP, 0], [0, 1450]] as const) {
    const [p] = run([big], flags, max);
    assert.ok(p!.subarray(0, 10).every((b) => b === 0));
    assert.deepEqual(p!.subarray(10), buildPacket(o));
  }
  // Corrupt (not partial): plain, byte for byte. UDP longer than maxPktLen: plain.
  const bad = buildPacket(o); bad[100] = bad[100]! ^ 1;
  const u = buildPacket(udpOpts({ payload: pattern(3000) }));
  const outs = run([bad, u], MERGE_TCP | MERGE_UDP, 1450);
  assert.deepEqual(outs.map((x) => x.subarray(10)), [bad, u]);
  outs.forEach((x) => assert.ok(x.subarray(0, 10).every((b) => b === 0)));
});
