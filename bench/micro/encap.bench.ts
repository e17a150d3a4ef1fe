/**
 * Per-packet decisions of the two backends on a batch of 64 valid
 * 1400-byte packets, each for a different one of 1 000 peers in a real
 * route table: flannel-udp egress/ingress and VXLAN encap/decap.
 * Run: node dist/bench/micro/encap.bench.js
 *
 * The udp path decrements the TTL in place, so its cases put the saved TTL
 * and checksum bytes back after each packet (3 byte stores; the "restore
 * only" case shows what that costs). The VXLAN path rewrites the same
 * header bytes each time and leaves the inner packet alone.
 */
import { runSuite } from './harness.js';
import { FlannelUdpPath } from '../../src/encap/flannel-udp.js';
import { VxlanPath } from '../../src/encap/vxlan.js';
import { PacketQueue, ReplyArea } from '../../src/encap/queue.js';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { emitIpv4 } from '../../src/wire/ipv4.js';
import { emitUdp } from '../../src/wire/udp.js';
import { emitVxlan } from '../../src/wire/vxlan.js';
import { emitEthernet } from '../../src/wire/ethernet.js';
import { ETHERTYPE_IPV4, IPPROTO_UDP } from '../../src/wire/constants.js';

const BATCH = 64;
const PKT = 1400;
const SLOT = 2048;
const HEAD = 64;
const PEERS = 1000;
const LOCAL_NET = 0x0a000100; // 10.0.1.0/24
const LOCAL_MAC = Uint8Array.of(0xc6, 0xd2, 0x32, 0x6f, 0x8f, 0x44);

const subnetOf = (i: number): number => (0x0a000000 + ((i + 2) << 8)) >>> 0; // 10.0.2.0/24 …
const addrOf = (i: number): number => (0xac100000 + i + 1) >>> 0; // 172.16.0.1 …
const macOf = (i: number): Uint8Array => Uint8Array.of(0x9a, 0x3b, 0x11, 0x02, i >> 8, i & 0xff);

const w = RouteTableWriter.create({ maxRoutes: 4096, maxPeers: 2048 });
w.setLocalSubnet(LOCAL_NET, 24);
for (let i = 0; i < PEERS; i++) {
  w.upsertPeer(`p${i}`, { addr: addrOf(i), port: 8285, subnet: subnetOf(i), prefixLen: 24, mac: macOf(i) });
}
const rt = new RouteTableReader(w.buffer, 0);
await w.commit();
rt.refresh();

// Slab: BATCH egress slots, BATCH udp-ingress slots, BATCH vxlan-ingress slots, replies.
const slab = new Uint8Array(3 * BATCH * SLOT + 16 * 576);
const replies = new ReplyArea(3 * BATCH * SLOT, 576, 16);
const stats = new Float64Array(64);
const counters = { stats, dropBase: 16, icmpSlot: 1, icmpLimitedSlot: 2 };
const udp = new FlannelUdpPath(rt, counters, 1472, replies);
const vx = new VxlanPath(rt, counters, 1450, replies, { vni: 1, localMac: LOCAL_MAC, port: 8472, gbp: false });
const out = new PacketQueue(BATCH);
const toTun = new PacketQueue(BATCH);

const egOff = new Uint32Array(BATCH);
const inOff = new Uint32Array(BATCH);
const vxOff = new Uint32Array(BATCH);
const peerAddr = new Uint32Array(BATCH);
const saved = new Uint8Array(BATCH * 6); // TTL + checksum of the egress and ingress packets

function inner(off: number, src: number, dst: number, i: number): void {
  for (let k = 0; k < PKT; k++) slab[off + k] = (k * 31 + i) & 0xff;
  emitIpv4({ src, dst, protocol: IPPROTO_UDP, ttl: 64, tos: 0, ident: i, dontFrag: true, payloadLen: PKT - 20 }, slab, off);
  emitUdp({ srcPort: 40000 + i, dstPort: 5201, payloadLen: PKT - 28 }, slab, off + 20);
}

for (let i = 0; i < BATCH; i++) {
  const p = (i * 997) % PEERS; // spread over the table
  const pod = (LOCAL_NET + 2 + i) >>> 0;
  const remote = (subnetOf(p) + 2) >>> 0;
  peerAddr[i] = addrOf(p);
  egOff[i] = i * SLOT + HEAD;
  inner(egOff[i]!, pod, remote, i);
  inOff[i] = (BATCH + i) * SLOT + HEAD;
  inner(inOff[i]!, remote, pod, i);
  vxOff[i] = (2 * BATCH + i) * SLOT + HEAD;
  emitVxlan({ vni: 1, gbp: null }, slab, vxOff[i]!);
  emitEthernet({ dst: LOCAL_MAC, src: macOf(p), ethertype: ETHERTYPE_IPV4 }, slab, vxOff[i]! + 8);
  inner(vxOff[i]! + 22, remote, pod, i);
  for (let k = 0; k < 3; k++) {
    saved[i * 6 + k] = slab[egOff[i]! + 8 + (k === 0 ? 0 : k + 1)]!;
    saved[i * 6 + 3 + k] = slab[inOff[i]! + 8 + (k === 0 ? 0 : k + 1)]!;
  }
}

function restore(offs: Uint32Array, s: number): void {
  for (let i = 0; i < BATCH; i++) {
    const o = offs[i]!;
    slab[o + 8] = saved[i * 6 + s]!;
    slab[o + 10] = saved[i * 6 + s + 1]!;
    slab[o + 11] = saved[i * 6 + s + 2]!;
  }
}

function reset(): void {
  out.count = 0;
  toTun.count = 0;
  replies.reset();
}

// Sanity: every case forwards all 64 packets, nothing dropped.
function verify(name: string, q: PacketQueue): void {
  if (q.count !== BATCH || stats.reduce((a, b) => a + b, 0) !== 0) {
    throw new Error(`${name}: forwarded ${q.count}/${BATCH}, drops/ICMP ${stats.join(',')}`);
  }
}

const cases = [
  {
    name: 'restore only (udp cases include this)',
    perIteration: BATCH,
    fn: (): void => restore(egOff, 0),
  },
  {
    name: 'FlannelUdpPath.egress',
    perIteration: BATCH,
    fn: (): void => {
      reset();
      for (let i = 0; i < BATCH; i++) udp.egress(slab, egOff[i]!, PKT, out, toTun);
      restore(egOff, 0);
    },
  },
  {
    name: 'FlannelUdpPath.ingress',
    perIteration: BATCH,
    fn: (): void => {
      reset();
      for (let i = 0; i < BATCH; i++) udp.ingress(slab, inOff[i]!, PKT, 65536, peerAddr[i]!, 8285, toTun, out);
      restore(inOff, 3);
    },
  },
  {
    name: 'VxlanPath.egress (encap)',
    perIteration: BATCH,
    fn: (): void => {
      reset();
      for (let i = 0; i < BATCH; i++) vx.egress(slab, egOff[i]!, PKT, out, toTun);
    },
  },
  {
    name: 'VxlanPath.ingress (decap)',
    perIteration: BATCH,
    fn: (): void => {
      reset();
      for (let i = 0; i < BATCH; i++) vx.ingress(slab, vxOff[i]!, PKT + 22, 65536, peerAddr[i]!, 8472, toTun, out);
    },
  },
];

cases[1]!.fn();
verify('FlannelUdpPath.egress', out);
cases[2]!.fn();
verify('FlannelUdpPath.ingress', toTun);
cases[4]!.fn();
verify('VxlanPath.ingress', toTun);
cases[3]!.fn();
verify('VxlanPath.egress', out);

runSuite('encap: per-packet decisions, batch of 64 × 1400 B, 1 000 peers', cases);
rt.release();
