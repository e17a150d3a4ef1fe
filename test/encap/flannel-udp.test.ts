import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlannelUdpPath } from '../../src/encap/flannel-udp.js';
import { PacketQueue, ReplyArea } from '../../src/encap/queue.js';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import { emitIpv4, parseIpv4 as parseIpv4Packet, Ipv4Header } from '../../src/wire/ipv4.js';
import { IcmpHeader } from '../../src/wire/icmp.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';

const LOCAL = parseIpv4('10.244.1.0');
const PEER_NET = parseIpv4('10.244.2.0');
const PEER_IP = parseIpv4('192.168.100.2');
const POD_A = parseIpv4('10.244.1.2');
const POD_B = parseIpv4('10.244.2.2');
const PATH_MTU = 1472;

async function setup(tunHdrLen = 0) {
  const w = RouteTableWriter.create({ maxRoutes: 64, maxPeers: 16 });
  w.setLocalSubnet(LOCAL, 24);
  const slot = w.upsertPeer('10.244.2.0/24', { addr: PEER_IP, port: 8285, subnet: PEER_NET, prefixLen: 24 });
  const rt = new RouteTableReader(w.buffer, 0);
  await w.commit();
  rt.refresh();
  const stats = new Float64Array(64);
  const buf = new Uint8Array(128 * 1024);
  const replies = new ReplyArea(96 * 1024, 576, 8);
  const path = new FlannelUdpPath(rt, { stats, dropBase: 16, icmpSlot: 1, icmpLimitedSlot: 2 }, PATH_MTU, replies, tunHdrLen);
  const out = new PacketQueue(8);
  const toTun = new PacketQueue(8);
  return { w, rt, slot, stats, buf, path, out, toTun, replies };
}

interface Pkt { src: number; dst: number; ttl?: number; len?: number; df?: boolean; protocol?: number }

function packet(buf: Uint8Array, off: number, p: Pkt): number {
  const total = p.len ?? 84;
  buf.fill(0x5a, off, off + total);
  emitIpv4({
    src: p.src, dst: p.dst, protocol: p.protocol ?? 17, ttl: p.ttl ?? 64, tos: 0, ident: 7,
    dontFrag: p.df ?? false, payloadLen: total - 20,
  }, buf, off);
  return total;
}

const drops = (stats: Float64Array, r: number) => stats[16 + r];

test('egress: a packet for a peer subnet is queued to the peer with TTL decremented', async () => {
  const { buf, path, out, toTun, slot, stats } = await setup();
  const len = packet(buf, 100, { src: POD_A, dst: POD_B, ttl: 63 });
  assert.equal(path.egress(buf, 100, len, out, toTun), slot);
  assert.equal(out.count, 1);
  assert.equal(out.addrs[0], PEER_IP);
  assert.equal(out.ports[0], 8285);
  assert.equal(out.offs[0], 100);
  assert.equal(out.lens[0], len);
  const h = new Ipv4Header().reset(buf, 100);
  assert.equal(h.ttl, 62);
  assert.ok(h.verifyChecksum(), 'checksum still valid after the TTL change');
  assert.equal(toTun.count, 0);
  assert.equal(stats.reduce((a, b) => a + b, 0), 0, 'nothing counted as dropped');
});

test('egress: unrouted destination → ICMP net-unreachable into the TUN, from our tunnel address', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const len = packet(buf, 0, { src: POD_A, dst: parseIpv4('10.9.9.9') });
  assert.equal(path.egress(buf, 0, len, out, toTun), -1);
  assert.equal(out.count, 0);
  assert.equal(drops(stats, DropReason.NO_ROUTE), 1);
  assert.equal(toTun.count, 1);
  const r = parseIpv4Packet(buf, toTun.offs[0]!, toTun.lens[0]!);
  assert.equal(r.src, LOCAL);
  assert.equal(r.dst, POD_A);
  assert.equal(r.protocol, 1);
  const icmp = new IcmpHeader().reset(buf, toTun.offs[0]! + 20);
  assert.equal(icmp.type, 3);
  assert.equal(icmp.code, 0);
  assert.equal(stats[1], 1, 'ICMP sent counter');
});

test('egress: no ICMP error about an ICMP packet (flannel rule), still dropped', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const len = packet(buf, 0, { src: POD_A, dst: parseIpv4('10.9.9.9'), protocol: 1 });
  path.egress(buf, 0, len, out, toTun);
  assert.equal(toTun.count, 0);
  assert.equal(drops(stats, DropReason.NO_ROUTE), 1);
});

test('egress: TTL 1 → time-exceeded into the TUN', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const len = packet(buf, 0, { src: POD_A, dst: POD_B, ttl: 1 });
  assert.equal(path.egress(buf, 0, len, out, toTun), -1);
  assert.equal(drops(stats, DropReason.TTL_EXCEEDED), 1);
  assert.equal(toTun.count, 1);
  const icmp = new IcmpHeader().reset(buf, toTun.offs[0]! + 20);
  assert.equal(icmp.type, 11);
  assert.equal(icmp.code, 0);
});

test('egress: oversize DF packet → frag-needed with the path MTU; without DF it is sent', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  let len = packet(buf, 0, { src: POD_A, dst: POD_B, len: 4000, df: true });
  assert.equal(path.egress(buf, 0, len, out, toTun), -1);
  assert.equal(drops(stats, DropReason.TOO_BIG), 1);
  const icmp = new IcmpHeader().reset(buf, toTun.offs[0]! + 20);
  assert.equal(icmp.type, 3);
  assert.equal(icmp.code, 4);
  assert.equal(icmp.mtu, PATH_MTU);
  len = packet(buf, 8192, { src: POD_A, dst: POD_B, len: 4000, df: false });
  assert.ok(path.egress(buf, 8192, len, out, toTun) >= 0);
  assert.equal(out.count, 1);
});

test('egress: malformed and IPv6 packets are dropped under their reasons', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  assert.equal(path.egress(buf, 0, 10, out, toTun), -1);
  assert.equal(drops(stats, DropReason.TRUNCATED), 1);
  const len = packet(buf, 0, { src: POD_A, dst: POD_B });
  assert.equal(path.egress(buf, 0, len - 1, out, toTun), -1);
  assert.equal(drops(stats, DropReason.BAD_TOTAL_LENGTH), 1);
  buf[0] = 0x60;
  assert.equal(path.egress(buf, 0, 40, out, toTun), -1);
  assert.equal(drops(stats, DropReason.NOT_IPV4), 1);
  assert.equal(out.count + toTun.count, 0);
});

test('ingress: a datagram from the peer for our subnet goes to the TUN', async () => {
  const { buf, path, toTun, out, slot, stats } = await setup();
  const len = packet(buf, 64, { src: POD_B, dst: POD_A, ttl: 62 });
  assert.equal(path.ingress(buf, 64, len, 65536, PEER_IP, 8285, toTun, out), slot);
  assert.equal(toTun.count, 1);
  assert.equal(new Ipv4Header().reset(buf, 64).ttl, 61);
  assert.equal(stats.reduce((a, b) => a + b, 0), 0);
});

test('ingress: unknown peer, spoofed inner source, foreign destination, bad checksum, oversize', async () => {
  const { buf, path, toTun, out, stats } = await setup();
  let len = packet(buf, 0, { src: POD_B, dst: POD_A });
  path.ingress(buf, 0, len, 65536, parseIpv4('192.168.100.99'), 8285, toTun, out);
  assert.equal(drops(stats, DropReason.UNKNOWN_PEER), 1);
  len = packet(buf, 0, { src: parseIpv4('10.244.3.2'), dst: POD_A });
  path.ingress(buf, 0, len, 65536, PEER_IP, 8285, toTun, out);
  assert.equal(drops(stats, DropReason.SPOOFED_SOURCE), 1);
  len = packet(buf, 0, { src: POD_B, dst: parseIpv4('10.244.7.7') });
  path.ingress(buf, 0, len, 65536, PEER_IP, 8285, toTun, out);
  assert.equal(drops(stats, DropReason.NOT_FOR_US), 1);
  len = packet(buf, 0, { src: POD_B, dst: POD_A });
  buf[10] = buf[10]! ^ 0xff;
  path.ingress(buf, 0, len, 65536, PEER_IP, 8285, toTun, out);
  assert.equal(drops(stats, DropReason.BAD_CHECKSUM), 1);
  path.ingress(buf, 0, 70000, 65536, PEER_IP, 8285, toTun, out);
  assert.equal(drops(stats, DropReason.OVERSIZE_DATAGRAM), 1);
  assert.equal(toTun.count, 0);
});

test('ingress: inner source = the peer\'s own PublicIP (ping -I <node IP> on the peer host) is accepted', async () => {
  const { w, rt, buf, path, toTun, out, slot, stats } = await setup();
  const OTHER_IP = parseIpv4('192.168.100.3');
  w.upsertPeer('10.244.3.0/24', { addr: OTHER_IP, port: 8285, subnet: parseIpv4('10.244.3.0'), prefixLen: 24 });
  await w.commit();
  rt.refresh();
  let len = packet(buf, 0, { src: PEER_IP, dst: POD_A });
  assert.equal(path.ingress(buf, 0, len, 65536, PEER_IP, 8285, toTun, out), slot, 'counted to the sending peer');
  assert.equal(toTun.count, 1);
  // Another node's address, or any address outside the peer's subnet, is still spoofed.
  for (const src of [OTHER_IP, parseIpv4('192.168.100.77'), parseIpv4('10.244.3.2')]) {
    len = packet(buf, 0, { src, dst: POD_A });
    assert.equal(path.ingress(buf, 0, len, 65536, PEER_IP, 8285, toTun, out), -1);
  }
  assert.equal(drops(stats, DropReason.SPOOFED_SOURCE), 3);
  assert.equal(toTun.count, 1);
});

test('ingress: TTL 1 → time-exceeded sent back to the peer', async () => {
  const { buf, path, toTun, out, stats } = await setup();
  const len = packet(buf, 0, { src: POD_B, dst: POD_A, ttl: 1 });
  assert.equal(path.ingress(buf, 0, len, 65536, PEER_IP, 8285, toTun, out), -1);
  assert.equal(drops(stats, DropReason.TTL_EXCEEDED), 1);
  assert.equal(out.count, 1);
  assert.equal(out.addrs[0], PEER_IP);
  assert.equal(out.ports[0], 8285);
  const r = parseIpv4Packet(buf, out.offs[0]!, out.lens[0]!);
  assert.equal(r.dst, POD_B);
  assert.equal(r.src, LOCAL);
});

test('ICMP replies stop when the reply area is full (no overrun)', async () => {
  const { buf, path, out, toTun, replies } = await setup();
  const q = new PacketQueue(64);
  // Frag-needed: the one error the rate limit lets through unlimited.
  for (let i = 0; i < 20; i++) {
    const len = packet(buf, 0, { src: POD_A, dst: POD_B, len: PATH_MTU + 100, df: true });
    path.egress(buf, 0, len, out, q);
  }
  assert.equal(q.count, replies.slots);
  assert.equal(toTun.count, 0);
});

test('with a virtio_net_hdr on the TUN, ICMP errors into the TUN carry a zeroed 10-byte header', async () => {
  const { buf, path, out, toTun } = await setup(10);
  buf.fill(0xa5, 96 * 1024, 97 * 1024);
  const len = packet(buf, 0, { src: POD_A, dst: POD_B, ttl: 1 });
  path.egress(buf, 0, len, out, toTun);
  assert.equal(toTun.count, 1);
  const at = toTun.offs[0]!;
  assert.deepEqual([...buf.subarray(at, at + 10)], new Array(10).fill(0));
  const r = parseIpv4Packet(buf, at + 10, toTun.lens[0]! - 10);
  assert.equal(r.dst, POD_A);
  assert.equal(new IcmpHeader().reset(buf, at + 30).type, 11);
});

test('route(): a GSO super-packet larger than the path MTU with DF is routed, not refused', async () => {
  const { buf, path, toTun, slot, stats } = await setup();
  const len = packet(buf, 0, { src: POD_A, dst: POD_B, len: 30000, df: true });
  assert.equal(path.route(buf, 0, len, true, toTun), slot);
  assert.equal(toTun.count, 0);
  assert.equal(stats.reduce((a, b) => a + b, 0), 0);
  assert.equal(new Ipv4Header().reset(buf, 0).ttl, 63);
});

test('ICMP errors are rate-limited per destination and type (burst 6, then 1 per second); frag-needed is not', async () => {
  const { buf, path, out, replies, stats } = await setup();
  const NOWHERE = parseIpv4('10.9.9.9');
  const POD_C = parseIpv4('10.244.1.3');
  /** `n` packets from `src` through egress, each in a fresh turn; the errors queued. */
  const errors = (n: number, p: Pkt): number => {
    let sent = 0;
    for (let i = 0; i < n; i++) {
      replies.reset();
      const toTun = new PacketQueue(8);
      path.egress(buf, 0, packet(buf, 0, p), out, toTun);
      out.count = 0;
      sent += toTun.count;
    }
    return sent;
  };
  assert.equal(errors(20, { src: POD_A, dst: NOWHERE }), 6, 'net-unreachable to pod A: the burst');
  assert.equal(stats[2], 14, 'held back, counted');
  assert.equal(errors(20, { src: POD_C, dst: NOWHERE }), 6, 'another destination has its own budget');
  assert.equal(errors(20, { src: POD_A, dst: POD_B, ttl: 1 }), 6, 'time-exceeded to pod A: its own budget');
  assert.equal(errors(20, { src: POD_A, dst: POD_B, len: PATH_MTU + 100, df: true }), 20, 'frag-needed: not limited');
  assert.equal(stats[1], 38, 'ICMP sent counter');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(errors(5, { src: POD_A, dst: NOWHERE }), 1, 'one more per second');
});
