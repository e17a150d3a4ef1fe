import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VxlanPath, VXLAN_ENCAP_LEN } from '../../src/encap/vxlan.js';
import { PacketQueue, ReplyArea } from '../../src/encap/queue.js';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import { emitIpv4, parseIpv4 as parseIpv4Packet, Ipv4Header } from '../../src/wire/ipv4.js';
import { IcmpHeader } from '../../src/wire/icmp.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';
import { parseMac } from '../../src/wire/ethernet.js';
import { isWeftError } from '../../src/errors.js';
import { hex } from '../helpers/hex.js';

// Captured from two kernel vxlan devices configured as flannel does (see
// test/wire/vxlan.test.ts for the setup): UDP payloads (VXLAN header
// onwards) of a ping A → B, its reply B → A, and two UDP flows A → B.
// The outer UDP source ports the kernel chose are noted: the ping and its
// reply left on the same port (the flow hash is symmetric), the two UDP
// flows on different ones.
const VX_ETH_A_TO_B = '0800 0000 0000 0100 9a3b 1102 7e5c c6d2 326f 8f44 0800';
const VX_ETH_B_TO_A = '0800 0000 0000 0100 c6d2 326f 8f44 9a3b 1102 7e5c 0800';
const INNER_PING = // 10.244.1.0 → 10.244.2.0, sport 52624
  '4500 002c 1c30 4000 4001 05ba 0af4 0100 0af4 0200 0800 ae40 721e 0001 1988 026b 0000 0000 b5ac 0600 0000 0000';
const INNER_REPLY = // 10.244.2.0 → 10.244.1.0, sport 52624
  '4500 002c 5b80 0000 4001 066a 0af4 0200 0af4 0100 0000 b640 721e 0001 1988 026b 0000 0000 b5ac 0600 0000 0000';
const INNER_UDP_1 = // 10.244.1.0:40001 → 10.244.2.0:7000, sport 44367
  '4500 0020 87b1 4000 4011 9a34 0af4 0100 0af4 0200 9c41 1b58 000c 1905 666c 6f77';

const MAC_A = parseMac('c6:d2:32:6f:8f:44');
const MAC_B = parseMac('9a:3b:11:02:7e:5c');
const LOCAL = parseIpv4('10.244.1.0');
const PEER_NET = parseIpv4('10.244.2.0');
const PEER_IP = parseIpv4('192.168.100.2');
const PATH_MTU = 1450;
const H = 64; // worker headroom

async function setup(gbp = false) {
  const w = RouteTableWriter.create({ maxRoutes: 64, maxPeers: 16 });
  w.setLocalSubnet(LOCAL, 24);
  const slot = w.upsertPeer('10.244.2.0/24', { addr: PEER_IP, port: 8472, subnet: PEER_NET, prefixLen: 24, mac: MAC_B });
  w.upsertPeer('10.244.3.0/24', { addr: parseIpv4('192.168.100.3'), port: 8472, subnet: parseIpv4('10.244.3.0'), prefixLen: 24 });
  const rt = new RouteTableReader(w.buffer, 0);
  await w.commit();
  rt.refresh();
  const stats = new Float64Array(64);
  const buf = new Uint8Array(128 * 1024).fill(0xa5);
  const replies = new ReplyArea(96 * 1024, 576, 8);
  const path = new VxlanPath(rt, { stats, dropBase: 16, icmpSlot: 1, icmpLimitedSlot: 2 }, PATH_MTU, replies,
    { vni: 1, localMac: MAC_A, port: 8472, gbp });
  const out = new PacketQueue(8);
  const toTun = new PacketQueue(8);
  return { w, rt, slot, stats, buf, path, out, toTun, replies };
}

const drops = (stats: Float64Array, r: number) => stats[16 + r];
const total = (stats: Float64Array) => stats.reduce((a, b) => a + b, 0);

function place(buf: Uint8Array, off: number, h: string): number {
  const b = hex(h);
  buf.set(b, off);
  return b.length;
}

test('egress: output equals the kernel-produced VXLAN payload for the same inner packet', async () => {
  const { buf, path, out, toTun, slot, stats } = await setup();
  const len = place(buf, H, INNER_PING);
  assert.equal(path.egress(buf, H, len, out, toTun), slot);
  assert.equal(out.count, 1);
  assert.equal(out.offs[0], H - VXLAN_ENCAP_LEN);
  assert.equal(out.lens[0], len + 22);
  assert.equal(out.addrs[0], PEER_IP);
  assert.equal(out.ports[0], 8472);
  assert.equal(out.peers[0], slot);
  assert.deepEqual(buf.subarray(out.offs[0]!, out.offs[0]! + out.lens[0]!), hex(VX_ETH_A_TO_B + INNER_PING));
  assert.equal(buf[H - 23], 0xa5, 'nothing written before the VXLAN header');
  assert.equal(toTun.count, 0);
  assert.equal(total(stats), 0);
});

test('egress: the reply direction\'s bytes equal the kernel\'s too (B → A)', async () => {
  const { buf, toTun } = await setup();
  const w = RouteTableWriter.create({ maxRoutes: 8, maxPeers: 4 });
  w.setLocalSubnet(PEER_NET, 24);
  w.upsertPeer('a', { addr: parseIpv4('192.168.100.1'), port: 8472, subnet: LOCAL, prefixLen: 24, mac: MAC_A });
  const rtB = new RouteTableReader(w.buffer, 0);
  await w.commit();
  rtB.refresh();
  const pathB = new VxlanPath(rtB, { stats: new Float64Array(64), dropBase: 16, icmpSlot: 1, icmpLimitedSlot: 2 }, PATH_MTU,
    new ReplyArea(96 * 1024, 576, 8), { vni: 1, localMac: MAC_B, port: 8472, gbp: false });
  const q = new PacketQueue(4);
  const len = place(buf, H, INNER_REPLY);
  pathB.egress(buf, H, len, q, toTun);
  assert.deepEqual(buf.subarray(H - 22, H + len), hex(VX_ETH_B_TO_A + INNER_REPLY), 'kernel bytes B → A');
});

test('egress: the inner TTL is left alone, as the kernel device does', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const len = place(buf, H, INNER_PING);
  buf[H + 8] = 1; // TTL 1 from a local sender: the kernel sends it on, so do we
  path.egress(buf, H, len, out, toTun);
  assert.equal(out.count, 1);
  assert.equal(buf[H + 8], 1);
  assert.equal(total(stats), 0);
});

test('egress: unrouted, MAC-less peer, oversize DF, malformed, IPv6 → dropped under their reasons', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const mk = (dst: string, len = 84, df = false, protocol = 17): number => {
    buf.fill(0x5a, H, H + len);
    emitIpv4({ src: parseIpv4('10.244.1.2'), dst: parseIpv4(dst), protocol, ttl: 64, tos: 0, ident: 7, dontFrag: df, payloadLen: len - 20 }, buf, H);
    return len;
  };
  assert.equal(path.egress(buf, H, mk('10.9.9.9'), out, toTun), -1);
  assert.equal(drops(stats, DropReason.NO_ROUTE), 1);
  assert.equal(toTun.count, 1, 'net-unreachable into the TUN');
  const icmp = new IcmpHeader().reset(buf, toTun.offs[0]! + 20);
  assert.equal(icmp.type, 3);
  assert.equal(icmp.code, 0);
  assert.equal(parseIpv4Packet(buf, toTun.offs[0]!, toTun.lens[0]!).src, LOCAL);
  assert.equal(path.egress(buf, H, mk('10.9.9.9', 84, false, 1), out, toTun), -1);
  assert.equal(toTun.count, 1, 'no net-unreachable about ICMP (flannel rule)');
  assert.equal(path.egress(buf, H, mk('10.244.3.5'), out, toTun), -1);
  assert.equal(drops(stats, DropReason.NO_ROUTE), 3, 'a peer without a VtepMAC cannot be addressed');
  assert.equal(path.egress(buf, H, mk('10.244.2.7', 1451, true), out, toTun), -1);
  assert.equal(drops(stats, DropReason.TOO_BIG), 1);
  const fn = new IcmpHeader().reset(buf, toTun.offs[toTun.count - 1]! + 20);
  assert.equal(fn.code, 4);
  assert.equal(fn.mtu, PATH_MTU);
  assert.ok(path.egress(buf, H, mk('10.244.2.7', 1451, false), out, toTun) >= 0, 'no DF: sent whole');
  out.count = 0;
  assert.equal(path.egress(buf, H, 10, out, toTun), -1);
  assert.equal(drops(stats, DropReason.TRUNCATED), 1);
  const len = mk('10.244.2.7');
  assert.equal(path.egress(buf, H, len - 1, out, toTun), -1);
  assert.equal(drops(stats, DropReason.BAD_TOTAL_LENGTH), 1);
  buf[H] = 0x60;
  assert.equal(path.egress(buf, H, 40, out, toTun), -1);
  assert.equal(drops(stats, DropReason.NOT_IPV4), 1);
  assert.equal(out.count, 0);
});

test('egress: missing headroom is a caller bug and throws', async () => {
  const { buf, path, out, toTun } = await setup();
  const len = place(buf, 10, INNER_PING);
  assert.throws(() => path.egress(buf, 10, len, out, toTun), (e) => isWeftError(e, 'EINTERNAL'));
});

test('egress: a queue larger than 64 takes every packet', async () => {
  const { buf, path, toTun } = await setup();
  const big = new PacketQueue(100);
  for (let i = 0; i < 100; i++) {
    const len = place(buf, H + i * 128, INNER_UDP_1);
    path.egress(buf, H + i * 128, len, big, toTun);
  }
  assert.equal(big.count, 100);
});

test('ingress: a kernel-produced frame yields the inner packet for the TUN, untouched', async () => {
  const { buf, path, out, toTun, slot, stats } = await setup();
  const len = place(buf, 100, VX_ETH_B_TO_A + INNER_REPLY);
  assert.equal(path.ingress(buf, 100, len, 65536, PEER_IP, 52624, toTun, out), slot);
  assert.equal(toTun.count, 1);
  assert.equal(toTun.offs[0], 122);
  assert.equal(toTun.lens[0], len - 22);
  assert.equal(toTun.peers[0], slot);
  assert.deepEqual(buf.subarray(122, 122 + toTun.lens[0]!), hex(INNER_REPLY));
  assert.equal(out.count, 0);
  assert.equal(total(stats), 0);
});

test('ingress: VXLAN/Ethernet faults are dropped under the right reason', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const frame = VX_ETH_B_TO_A + INNER_REPLY;
  const cases: [string, (b: Uint8Array) => void, number][] = [
    ['wrong VNI', (b) => { b[6] = 2; }, DropReason.WRONG_VNI],
    ['wrong dst MAC', (b) => { b[13] ^= 1; }, DropReason.WRONG_DST_MAC],
    ['broadcast dst', (b) => { b.fill(0xff, 8, 14); }, DropReason.WRONG_DST_MAC],
    ['I flag clear', (b) => { b[0] = 0; }, DropReason.BAD_VXLAN_FLAGS],
    ['reserved bits', (b) => { b[2] = 1; }, DropReason.BAD_VXLAN_FLAGS],
    ['reserved last byte', (b) => { b[7] = 1; }, DropReason.BAD_VXLAN_FLAGS],
    ['GBP without gbp', (b) => { b[0] = 0x88; b[3] = 0x34; }, DropReason.BAD_VXLAN_FLAGS],
    ['ARP ethertype', (b) => { b[20] = 0x08; b[21] = 0x06; }, DropReason.BAD_ETHERTYPE],
    ['IPv6 ethertype', (b) => { b[20] = 0x86; b[21] = 0xdd; }, DropReason.BAD_ETHERTYPE],
    ['inner checksum', (b) => { b[22 + 10] ^= 0xff; }, DropReason.BAD_CHECKSUM],
  ];
  for (const [name, mutate, reason] of cases) {
    const len = place(buf, 0, frame);
    mutate(buf);
    const before = drops(stats, reason)!;
    assert.equal(path.ingress(buf, 0, len, 65536, PEER_IP, 52624, toTun, out), -1, name);
    assert.equal(drops(stats, reason), before + 1, name);
  }
  assert.equal(toTun.count, 0);
});

test('ingress: short frames (< 8 + 14 + 20) and oversize are dropped', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const len = place(buf, 0, VX_ETH_B_TO_A + INNER_REPLY);
  for (const n of [0, 7, 8, 21, 22, 41]) {
    assert.equal(path.ingress(buf, 0, n, 65536, PEER_IP, 1, toTun, out), -1, `${n} bytes`);
  }
  assert.equal(drops(stats, DropReason.TRUNCATED), 6);
  assert.equal(path.ingress(buf, 0, len, len - 1, PEER_IP, 1, toTun, out), -1);
  assert.equal(drops(stats, DropReason.OVERSIZE_DATAGRAM), 1);
  assert.equal(path.ingress(buf, 0, len - 1, 65536, PEER_IP, 1, toTun, out), -1);
  assert.equal(drops(stats, DropReason.BAD_TOTAL_LENGTH), 1, 'inner total length must match');
  assert.equal(toTun.count, 0);
});

test('ingress: unknown peer, spoofed inner source, foreign destination (shared with flannel-udp)', async () => {
  const { buf, path, out, toTun, stats } = await setup();
  const frame = VX_ETH_B_TO_A + INNER_REPLY;
  let len = place(buf, 0, frame);
  path.ingress(buf, 0, len, 65536, parseIpv4('192.168.100.99'), 1, toTun, out);
  assert.equal(drops(stats, DropReason.UNKNOWN_PEER), 1);
  len = place(buf, 0, frame);
  path.ingress(buf, 0, len, 65536, parseIpv4('192.168.100.3'), 1, toTun, out);
  assert.equal(drops(stats, DropReason.SPOOFED_SOURCE), 1, 'inner source belongs to another peer');
  len = place(buf, 0, frame);
  const ip = new Ipv4Header().reset(buf, 22);
  ip.dst = parseIpv4('10.244.7.7');
  ip.fillChecksum();
  path.ingress(buf, 0, len, 65536, PEER_IP, 1, toTun, out);
  assert.equal(drops(stats, DropReason.NOT_FOR_US), 1);
  assert.equal(toTun.count, 0);
});

test('ingress: GBP header accepted with gbp=true, rejected with gbp=false', async () => {
  const frame = '8800 1234' + VX_ETH_B_TO_A.slice(9) + INNER_REPLY;
  {
    const { buf, path, out, toTun, slot, stats } = await setup(true);
    const len = place(buf, 0, frame);
    assert.equal(path.ingress(buf, 0, len, 65536, PEER_IP, 1, toTun, out), slot);
    assert.deepEqual(buf.subarray(22, len), hex(INNER_REPLY));
    const plain = place(buf, 4096, VX_ETH_B_TO_A + INNER_REPLY);
    assert.equal(path.ingress(buf, 4096, plain, 65536, PEER_IP, 1, toTun, out), slot, 'plain still fine');
    assert.equal(total(stats), 0);
  }
  {
    const { buf, path, out, toTun, stats } = await setup(false);
    const len = place(buf, 0, frame);
    assert.equal(path.ingress(buf, 0, len, 65536, PEER_IP, 1, toTun, out), -1);
    assert.equal(drops(stats, DropReason.BAD_VXLAN_FLAGS), 1);
  }
});

test('ingress: the TTL is left to the kernel (no decrement, no time-exceeded to the peer)', async () => {
  const { buf, path, out, toTun, slot } = await setup();
  const len = place(buf, 0, VX_ETH_B_TO_A + INNER_REPLY);
  const ip = new Ipv4Header().reset(buf, 22);
  ip.ttl = 1;
  ip.fillChecksum();
  assert.equal(path.ingress(buf, 0, len, 65536, PEER_IP, 1, toTun, out), slot);
  assert.equal(ip.ttl, 1);
  assert.equal(out.count, 0);
});

test('constructor rejects a bad VNI, a multicast MAC, a bad port', async () => {
  const { rt, replies } = await setup();
  const c = { stats: new Float64Array(64), dropBase: 16, icmpSlot: 1, icmpLimitedSlot: 2 };
  const ok = { vni: 1, localMac: MAC_A, port: 8472, gbp: false };
  assert.throws(() => new VxlanPath(rt, c, 1450, replies, { ...ok, vni: 1 << 24 }), (e) => isWeftError(e, 'ECONFIG'));
  assert.throws(() => new VxlanPath(rt, c, 1450, replies, { ...ok, localMac: parseMac('01:00:5e:00:00:01') }), (e) => isWeftError(e, 'ECONFIG'));
  assert.throws(() => new VxlanPath(rt, c, 1450, replies, { ...ok, port: 0 }), (e) => isWeftError(e, 'ECONFIG'));
});
