/**
 * JIT warm-up for a worker's packet path, run once before its first wait.
 *
 * V8 compiles a function with TurboFan only after it has run often, and it
 * compiles only the branches that ran: a fresh daemon therefore forwards
 * its first few thousand packets with baseline code, which after an idle
 * sleep costs tens of microseconds per packet (a 10 ms ping took 0.55 ms on
 * the bench testbed, against 0.38 ms once the same daemon had carried a
 * ping flood). The warm-up drives the worker's own lane — Lane.use() points
 * it at a synthetic peer's route table, scratch counters and control block,
 * dry: every system call gets a count of zero, yet the call sites run and
 * so have feedback too — then the worker points the same closures, with
 * their optimized code, at the real ones.
 *
 * The packets use the benchmarking range 198.18.0.0/15 (RFC 2544) and never
 * leave the process: no descriptor is read or written.
 */
import { VXLAN_ENCAP_LEN } from '../encap/vxlan.js';
import { native } from '../native/index.js';
import type { SlotArrays } from './lane.js';
import { RouteTableReader, RouteTableWriter } from '../route-table/index.js';
import { ipv4HeaderChecksum, foldChecksum, onesSum, pseudoHeaderSum } from '../wire/checksum.js';
import { IPPROTO_ICMP, IPPROTO_TCP } from '../wire/constants.js';
import { F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, VIRTIO_NET_HDR_LEN, VirtioNetHdr } from '../offload/vnet.js';

/** This node's pod subnet, a pod in it, the peer's subnet and pod, the peer's underlay address. */
export const WARM_LOCAL_NET = 0xc6120100; // 198.18.1.0/24
export const WARM_LOCAL_POD = 0xc6120102; // 198.18.1.2
export const WARM_PEER_NET = 0xc6120200; // 198.18.2.0/24
export const WARM_PEER_POD = 0xc6120202; // 198.18.2.2
export const WARM_PEER_ADDR = 0xc6120002; // 198.18.0.2
/** No route leads here: egress answers net-unreachable. */
export const WARM_NOWHERE = 0xc6130001; // 198.19.0.1
export const WARM_PEER_MAC: readonly number[] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x02];

/**
 * Warm-up rounds. About 600 get TurboFan to compile every handler of the
 * path on the machine this was measured on; twice that for margin (tens of
 * milliseconds per worker).
 */
export const WARM_ROUNDS = 1200;
/**
 * TurboFan compiles on a background thread; after the rounds the worker
 * waits this long, then runs WARM_SETTLE_ROUNDS more so the finished code
 * is installed before the first real packet rather than on it.
 */
export const WARM_SETTLE_MS = 20;
export const WARM_SETTLE_ROUNDS = 50;

/**
 * A route table holding only the synthetic peer, for the warm-up lane.
 * `port` is the backend's port (the peer's lease would carry it).
 */
export async function warmRoutes(maxPeers: number, port: number): Promise<{ reader: RouteTableReader }> {
  const writer = RouteTableWriter.create({ maxRoutes: 4, maxPeers });
  writer.setLocalSubnet(WARM_LOCAL_NET, 24);
  writer.upsertPeer('warm-up', {
    addr: WARM_PEER_ADDR, port, subnet: WARM_PEER_NET, prefixLen: 24, mac: Uint8Array.from(WARM_PEER_MAC),
  });
  await writer.commit();
  const reader = new RouteTableReader(writer.buffer, 0);
  reader.refresh();
  return { reader };
}

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function put32(b: Uint8Array, at: number, v: number): void {
  put16(b, at, v >>> 16);
  put16(b, at + 2, v & 0xffff);
}

/** An IPv4 header (20 bytes, DF) with its checksum. */
export function writeIpv4(b: Uint8Array, at: number, total: number, proto: number, src: number, dst: number,
  ttl: number, id: number): void {
  b.fill(0, at, at + 20);
  b[at] = 0x45;
  put16(b, at + 2, total);
  put16(b, at + 4, id & 0xffff);
  b[at + 6] = 0x40;
  b[at + 8] = ttl;
  b[at + 9] = proto;
  put32(b, at + 12, src);
  put32(b, at + 16, dst);
  put16(b, at + 10, ipv4HeaderChecksum(b, at, 20));
}

/** An ICMP echo (type 8) or echo reply (type 0) with `data` bytes of payload; returns the packet length. */
export function writeEcho(b: Uint8Array, at: number, type: number, src: number, dst: number, ttl: number,
  seq: number, data: number): number {
  const total = 28 + data;
  writeIpv4(b, at, total, IPPROTO_ICMP, src, dst, ttl, seq);
  const i = at + 20;
  b.fill(0, i, i + 8);
  b[i] = type;
  put16(b, i + 4, 0x7765);
  put16(b, i + 6, seq);
  for (let k = 0; k < data; k++) b[i + 8 + k] = k & 0xff;
  put16(b, i + 2, foldChecksum(onesSum(b, i, 8 + data)));
  return total;
}

/**
 * A TCP segment (20-byte header, ACK, PSH when `psh`) with `data` bytes of
 * payload. With `partial` the checksum field holds only the pseudo-header
 * sum, as the kernel hands over a NEEDS_CSUM packet; else it is complete.
 * Returns the packet length.
 */
export function writeTcp(b: Uint8Array, at: number, src: number, dst: number, seq: number, data: number,
  psh: boolean, partial: boolean): number {
  const tcpLen = 20 + data;
  const total = 20 + tcpLen;
  writeIpv4(b, at, total, IPPROTO_TCP, src, dst, 64, seq);
  const t = at + 20;
  b.fill(0, t, t + 20);
  put16(b, t, 40000);
  put16(b, t + 2, 5201);
  put32(b, t + 4, seq);
  put32(b, t + 8, 1);
  b[t + 12] = 5 << 4;
  b[t + 13] = psh ? 0x18 : 0x10;
  put16(b, t + 14, 65535);
  for (let k = 0; k < data; k++) b[t + 20 + k] = (seq + k) & 0xff;
  const pseudo = pseudoHeaderSum(src, dst, IPPROTO_TCP, tcpLen);
  // foldChecksum complements; complementing back gives the folded sum itself.
  put16(b, t + 16, partial ? ~foldChecksum(pseudo) & 0xffff : foldChecksum(onesSum(b, t, tcpLen, pseudo)));
  return total;
}

/** The 22 bytes a VXLAN peer puts before the inner packet: VXLAN header (I flag) and Ethernet to `dstMac`. */
export function writeVxlanPrefix(b: Uint8Array, at: number, vni: number, dstMac: ArrayLike<number>,
  srcMac: ArrayLike<number>): number {
  b.fill(0, at, at + 8);
  b[at] = 0x08;
  put32(b, at + 4, (vni << 8) >>> 0);
  for (let k = 0; k < 6; k++) {
    b[at + 8 + k] = dstMac[k]!;
    b[at + 14 + k] = srcMac[k]!;
  }
  put16(b, at + 20, 0x0800);
  return 22;
}

/** The slots and lane the warm-up drives; layouts as the worker allocates them. */
export interface WarmTarget extends SlotArrays {
  /** IFF_VNET_HDR: TUN reads start with a virtio header and may be super-packets. */
  readonly vnet: boolean;
  /** UDP_GRO: receives may be runs. */
  readonly gro: boolean;
  readonly pathMtu: number;
  /** The peer's port, and the VXLAN prefix parameters (vni < 0: flannel udp, no prefix). */
  readonly port: number;
  readonly vni: number;
  readonly localMac: ArrayLike<number>;
  /** The lane's turn (Lane.step), fed ioWait-style counts. */
  step(got: number): boolean;
}

/** Fills the TUN slots with one egress batch; returns its size. */
function egressBatch(t: WarmTarget): number {
  const h = t.vnet ? VIRTIO_NET_HDR_LEN : 0;
  const vh = new VirtioNetHdr();
  let n = 0;
  const slot = (len: number, gsoType: number, csum: boolean, gsoSize: number): void => {
    const at = t.tunOffs[n]!;
    if (h > 0) {
      vh.reset(t.slab, at).zero();
      vh.gsoType = gsoType;
      if (csum) {
        vh.flags = F_NEEDS_CSUM;
        vh.csumStart = 20;
        vh.csumOffset = 16;
        vh.hdrLen = 40;
        vh.gsoSize = gsoSize;
      }
    }
    t.tunLens[n++] = len + h;
  };
  const ip = (): number => t.tunOffs[n]! + h;
  // A ping (first: the keep-warm tick's packet, see makeTick), a TCP
  // segment, a TCP segment without a route (net-unreachable) and a ping
  // with TTL 1 (time-exceeded where the backend is a routed hop).
  slot(writeEcho(t.slab, ip(), 8, WARM_LOCAL_POD, WARM_PEER_POD, 64, 1, 56), GSO_NONE, false, 0);
  slot(writeTcp(t.slab, ip(), WARM_LOCAL_POD, WARM_PEER_POD, 1000, 1400, true, t.vnet), GSO_NONE, t.vnet, 0);
  slot(writeTcp(t.slab, ip(), WARM_LOCAL_POD, WARM_NOWHERE, 1000, 64, true, false), GSO_NONE, false, 0);
  slot(writeEcho(t.slab, ip(), 8, WARM_LOCAL_POD, WARM_PEER_POD, 1, 2, 56), GSO_NONE, false, 0);
  if (t.vnet) {
    // A TSO super-packet of 16 segments.
    const mss = t.pathMtu - 40;
    slot(writeTcp(t.slab, ip(), WARM_LOCAL_POD, WARM_PEER_POD, 2400, 16 * mss, true, true), GSO_TCPV4,
      true, mss);
  }
  return n;
}

/** Fills the UDP slots with one ingress batch from the peer; returns its size. */
function ingressBatch(t: WarmTarget): number {
  const pre = t.vni >= 0 ? VXLAN_ENCAP_LEN : 0;
  let n = 0;
  const add = (len: number, segs: number): void => {
    t.udpLens[n] = len;
    t.udpSegs[n] = segs;
    t.udpAddrs[n] = WARM_PEER_ADDR;
    t.udpPorts[n] = t.port;
    n++;
  };
  // The inner packet's offset in a datagram starting at `at`, after the VXLAN prefix if any.
  const inner = (at: number): number => {
    if (pre > 0) writeVxlanPrefix(t.slab, at, t.vni, t.localMac, WARM_PEER_MAC);
    return at + pre;
  };
  const mss = 1400;
  // The ping's reply first: the keep-warm tick's packet (see makeTick).
  add(pre + writeEcho(t.slab, inner(t.udpOffs[n]!), 0, WARM_PEER_POD, WARM_LOCAL_POD, 64, 1, 56), 0);
  // Eight adjacent segments of one flow as separate datagrams, then as one GRO run.
  for (let k = 0; k < 8; k++) {
    const seq = 1000 + k * mss;
    add(pre + writeTcp(t.slab, inner(t.udpOffs[n]!), WARM_PEER_POD, WARM_LOCAL_POD, seq, mss, k === 7, false), 0);
  }
  if (t.gro) {
    const at = t.udpOffs[n]!;
    const stride = pre + 40 + mss;
    for (let k = 0; k < 8; k++) {
      const seq = 1000 + k * mss;
      writeTcp(t.slab, inner(at + k * stride), WARM_PEER_POD, WARM_LOCAL_POD, seq, mss, k === 7, false);
    }
    add(8 * stride, stride);
  }
  return n;
}

/** The bytes of slots [0, n) (at offs[i], lens[i] long), to be put back before each round. */
function snapshot(slab: Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(slab.slice(offs[i]!, offs[i]! + lens[i]!));
  return out;
}

function restore(slab: Uint8Array, offs: Uint32Array, lens: Uint32Array, saved: readonly Uint8Array[]): void {
  for (let i = 0; i < saved.length; i++) {
    slab.set(saved[i]!, offs[i]!);
    lens[i] = saved[i]!.length;
  }
}

/**
 * Runs `rounds` egress and ingress batches through the target's lane. The
 * batches are built once and copied back into the slots before each round,
 * since forwarding rewrites them (TTL, checksums) in place.
 */
export function warmUp(t: WarmTarget, rounds = WARM_ROUNDS): void {
  const tunN = egressBatch(t);
  const tunSaved = snapshot(t.slab, t.tunOffs, t.tunLens, tunN);
  const udpN = ingressBatch(t);
  const udpSaved = snapshot(t.slab, t.udpOffs, t.udpLens, udpN);
  const segs = t.udpSegs.slice(0, udpN);
  for (let r = 0; r < rounds; r++) {
    restore(t.slab, t.tunOffs, t.tunLens, tunSaved);
    t.step(tunN);
    restore(t.slab, t.udpOffs, t.udpLens, udpSaved);
    t.udpSegs.set(segs);
    t.udpAddrs.fill(WARM_PEER_ADDR, 0, udpN);
    t.udpPorts.fill(t.port, 0, udpN);
    t.step(udpN << native.IO_WAIT_UDP_SHIFT);
  }
}

/** What the keep-warm tick drives: the slots, and the lane's dry turn (Lane.dryStep). */
export interface TickTarget extends WarmTarget {
  dryStep(got: number): void;
}

/**
 * The keep-warm tick (worker.ts): one dry turn for a lone ping to the
 * synthetic peer and one for its reply — the path a packet after a pause
 * takes, so its code and data stay in the CPU caches. The two packets are
 * built here, once; each tick copies them into slot 0 of the TUN and UDP
 * areas (the slots are free between turns) and allocates nothing.
 */
export function makeTick(t: TickTarget): () => void {
  // The warm-up batches' first packets are exactly these: built by the
  // same builders, kept from slot 0 of each.
  const tunAt = t.tunOffs[0]!;
  const udpAt = t.udpOffs[0]!;
  egressBatch(t);
  const egress = t.slab.slice(tunAt, tunAt + t.tunLens[0]!);
  ingressBatch(t);
  const ingress = t.slab.slice(udpAt, udpAt + t.udpLens[0]!);
  const udpGot = 1 << native.IO_WAIT_UDP_SHIFT;
  return () => {
    t.slab.set(egress, tunAt);
    t.tunLens[0] = egress.length;
    t.dryStep(1);
    t.slab.set(ingress, udpAt);
    t.udpLens[0] = ingress.length;
    t.udpSegs[0] = 0;
    t.udpAddrs[0] = WARM_PEER_ADDR;
    t.udpPorts[0] = t.port;
    t.dryStep(udpGot);
  };
}
