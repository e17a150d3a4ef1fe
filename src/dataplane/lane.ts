/**
 * A worker's packet path, one batch at a time: the slab and slot arrays it
 * reads into (allocSlots) and the handlers for a batch read from the TUN or
 * the socket (makeLane). worker.ts waits and calls them; the warm-up drives
 * the same handlers dry (warmup.ts). See worker.ts for the two shapes
 * (plain and offload) of the path.
 */
import { native, type IoContext } from '../native/index.js';
import type { RouteTableReader } from '../route-table/index.js';
import { FlannelUdpPath } from '../encap/flannel-udp.js';
import { VXLAN_ENCAP_LEN, VxlanPath } from '../encap/vxlan.js';
import type { EncapPath } from '../encap/path.js';
import { PacketQueue, ReplyArea } from '../encap/queue.js';
import { ICMP_ERROR_MAX_LEN, IPPROTO_TCP } from '../wire/constants.js';
import { DropReason } from '../wire/drop-reason.js';
import { GRO_RECV_CAP, SEND_RES_DATAGRAMS, SEND_RES_EIO } from '../conn/gso.js';
import {
  csumBinding, offloadBinding, F_NEEDS_CSUM, GSO_TCPV4, VirtioNetHdr, SPLIT_COUNT, SPLIT_STRIDE, SPLIT_TOTAL, SPLIT_RES_LEN, udpGsoChunk,
  VIRTIO_NET_HDR_LEN, VNET_SPLIT_MAX_SEGS, VNET_SPLIT_PREFIX_MAX, vnetSplitOutMax,
} from '../offload/vnet.js';
import { BATCH, CTL, HEADROOM, PEER, SLOT_SIZE, STAT, WORKER_STRIDE, statsLayout } from './layout.js';

/** Which offloads this worker uses; all false is the plain path. */
export interface WorkerOffloads {
  /** The TUN was opened with IFF_VNET_HDR and TUNSETOFFLOAD accepted (super-packets in and out). */
  readonly vnet: boolean;
  /** Send split runs with UDP_SEGMENT. */
  readonly gso: boolean;
  /** The socket has UDP_GRO on: receives may hold runs of datagrams. */
  readonly gro: boolean;
  /** vnetCoalesce merge flags (MERGE_TCP | MERGE_UDP) for TUN writes; 0 = no merging. */
  readonly merge: number;
}

/** The backend whose wire format the worker speaks. */
export type WorkerBackend =
  | { readonly kind: 'udp' }
  | { readonly kind: 'vxlan'; readonly vni: number; readonly mac: readonly number[]; readonly port: number;
    readonly gbp: boolean };

export interface WorkerInit {
  readonly index: number;
  readonly tunFd: number;
  readonly udpFd: number;
  /** An eventfd that ends the worker's idle wait (a route commit waits for its ack); -1: none. */
  readonly wakeFd: number;
  readonly control: SharedArrayBuffer;
  readonly routes: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly maxPeers: number;
  readonly workers: number;
  readonly pathMtu: number;
  readonly offloads: WorkerOffloads;
  readonly backend: WorkerBackend;
  /** Keep-warm tick period while idle after traffic, in ms; 0 = off (see worker.ts). */
  readonly keepWarmMs: number;
}

/** Datagrams per GRO'd receive at most (the kernel's UDP GRO limit). */
const MAX_RUN = 64;
/** Entries one native batch call takes (the addon's MAX_BATCH). */
const CALL_MAX = 256;
/** Room for this many split super-packets before the egress area is flushed. */
const SPLIT_AREAS = 8;

/** The slab and the per-slot arrays the reads fill (slot i at tunOffs[i] / udpOffs[i]). */
export interface SlotArrays {
  readonly slab: Uint8Array;
  readonly tunOffs: Uint32Array;
  readonly tunLens: Uint32Array;
  readonly udpOffs: Uint32Array;
  readonly udpLens: Uint32Array;
  readonly udpSegs: Uint32Array;
  readonly udpAddrs: Uint32Array;
  readonly udpPorts: Uint32Array;
}

/** A worker's buffers, allocated once, and where each area of the slab starts. */
export interface Slots extends SlotArrays {
  /** Bytes each TUN or UDP slot takes. */
  readonly cap: number;
  readonly replyBase: number;
  readonly replySlot: number;
  readonly replySlots: number;
  readonly splitBase: number;
  readonly splitCap: number;
  readonly splitMax: number;
  readonly mergeBase: number;
  readonly mergeCap: number;
}

export function allocSlots(init: WorkerInit): Slots {
  const { vnet, gro } = init.offloads;
  // One slab: TUN read slots, UDP receive slots, ICMP reply slots, the area
  // split segments are written to (egress) and the area merged
  // super-packets are written to (ingress, offload only).
  const replySlot = ICMP_ERROR_MAX_LEN + 16;
  const replySlots = 2 * BATCH;
  const tunBase = 64;
  const udpBase = BATCH * SLOT_SIZE;
  const replyBase = 2 * BATCH * SLOT_SIZE;
  const splitBase = replyBase + replySlots * replySlot;
  const splitMax = vnetSplitOutMax(VNET_SPLIT_PREFIX_MAX);
  // The plain path needs one area too, for oversize TCP arriving whole (see splitOversize).
  const splitCap = vnet ? SPLIT_AREAS * splitMax : splitMax;
  const mergeBase = splitBase + splitCap;
  const mergeCap = vnet ? BATCH * SLOT_SIZE : 0;
  const tunOffs = new Uint32Array(BATCH);
  const udpOffs = new Uint32Array(BATCH);
  for (let i = 0; i < BATCH; i++) {
    tunOffs[i] = tunBase + i * SLOT_SIZE + HEADROOM;
    udpOffs[i] = udpBase + i * SLOT_SIZE + HEADROOM;
  }
  const cap = SLOT_SIZE - HEADROOM;
  if (gro && cap < GRO_RECV_CAP) throw new Error(`worker ${init.index}: UDP slots too small for GRO`);
  return {
    slab: new Uint8Array(mergeBase + mergeCap), tunOffs, tunLens: new Uint32Array(BATCH), udpOffs,
    udpLens: new Uint32Array(BATCH), udpSegs: new Uint32Array(BATCH), udpAddrs: new Uint32Array(BATCH),
    udpPorts: new Uint32Array(BATCH), cap, replyBase, replySlot, replySlots, splitBase, splitCap, splitMax,
    mergeBase, mergeCap,
  };
}

/**
 * The batch handlers of a worker, and what they forward with. The same
 * closures serve the JIT warm-up and then the real traffic: code V8
 * optimizes for one set of closures would be thrown away ("wrong call
 * target") by another set, even of the same source.
 */
export interface Lane {
  /**
   * One turn of the worker loop after a wait: picks up a new route-table
   * epoch, counts the turn (the heartbeat), obeys the control block, then handles what
   * the wait read — `got` as ioWait returns it (TUN packets in the low
   * half, datagrams from IO_WAIT_UDP_SHIFT up). Returns true when the
   * worker is to stop. The loop itself stays this small because it never
   * runs often enough for V8 to optimize it; this function is (warmup.ts).
   */
  step(got: number): boolean;
  /**
   * Switches the route table, counters and control block the handlers
   * use. Dry: every system call gets a count of zero, so nothing is read
   * or written.
   */
  use(rt: RouteTableReader, stats: Float64Array, ctl: Int32Array, dry: boolean): void;
  /**
   * Sets the side dryStep runs against: the warm-up's route table and
   * scratch counters and control block. Its encap path is built here,
   * once, so dryStep allocates nothing.
   */
  setDrySide(rt: RouteTableReader, stats: Float64Array, ctl: Int32Array): void;
  /**
   * One turn, dry, on the side setDrySide gave, then back to the side use()
   * gave: the keep-warm tick. `got` as for step. Counts itself in
   * STAT.KEEP_WARM_TURNS of the side use() gave.
   */
  dryStep(got: number): void;
  /** The bound I/O context (ioBind) the worker waits on. */
  readonly io: IoContext;
}

export function makeLane(init: WorkerInit, slots: Slots): Lane {
  // Set by use(); mutable, so V8 cannot fold them into the compiled code.
  let rt: RouteTableReader;
  let stats: Float64Array;
  let ctl: Int32Array;
  let dry = true;
  let path: EncapPath;
  const w = init.index;
  const base = w * WORKER_STRIDE;
  const drops = base + STAT.DROPS;
  const peerBase = statsLayout(init.workers, init.maxPeers).peerBase(w);
  const { vnet, gro, merge } = init.offloads;
  // Off for good once the kernel refuses a GSO send (EIO: a route whose device cannot take it).
  let gso = init.offloads.gso;
  const hdr = vnet ? VIRTIO_NET_HDR_LEN : 0;
  const { slab, tunOffs, tunLens, udpOffs, udpLens, udpSegs, udpAddrs, udpPorts, cap } = slots;
  const { replyBase, replySlot, replySlots, splitBase, splitCap, splitMax, mergeBase, mergeCap } = slots;
  const splitRes = new Uint32Array(SPLIT_RES_LEN);
  const sendRes = new Int32Array(4);
  const deliverRes = new Uint32Array(2);
  // The addon's functions, looked up once: its exports object is a
  // dictionary, so every property load on it is a hash lookup.
  const { tunWrite, ioSend, ioDeliver } = native;
  const { vnetSplit, vnetSplitPrefixed } = offloadBinding();
  const udpShift = native.IO_WAIT_UDP_SHIFT;
  const tunMask = (1 << udpShift) - 1;

  const replies = new ReplyArea(replyBase, replySlot, replySlots);
  // toPeer: forwarded packets or split runs, plus time-exceeded replies.
  // More than VNET_SPLIT_MAX_SEGS: one split's segments always fit after a flush.
  const toPeer = new PacketQueue(4 * BATCH);
  // inbound: accepted inner packets, plain IP, to be written (merged when vnet).
  const inbound = new PacketQueue(CALL_MAX);
  // The worker's waits, reads and sends go through this context (ioBind).
  const io = native.ioBind({
    tunFd: init.tunFd, udpFd: init.udpFd, wakeFd: init.wakeFd, slab, tunOffs, tunLens, tunCap: cap, udpOffs, udpLens, udpSegs,
    udpAddrs, udpPorts, udpCap: cap, max: BATCH, gro, sendOffs: toPeer.offs, sendLens: toPeer.lens,
    sendSegs: toPeer.segs, sendAddrs: toPeer.addrs, sendPorts: toPeer.ports, sendRes, sendMax: toPeer.capacity,
    deliverOffs: inbound.offs, deliverLens: inbound.lens, deliverMax: inbound.capacity, deliverRes,
    mergeOff: mergeBase, mergeCap, mergeFlags: merge, maxPktLen: init.pathMtu,
  });
  // icmpToTun: our own ICMP errors, ready to write (with a zeroed vnet header when vnet).
  const icmpToTun = new PacketQueue(2 * BATCH);
  const be = init.backend;
  const makePath = (table: RouteTableReader, counterArray: Float64Array): EncapPath => {
    const counters = { stats: counterArray, dropBase: drops, icmpSlot: base + STAT.ICMP_SENT, icmpLimitedSlot: base + STAT.ICMP_RATE_LIMITED };
    return be.kind === 'udp'
      ? new FlannelUdpPath(table, counters, init.pathMtu, replies, hdr)
      : new VxlanPath(table, counters, init.pathMtu, replies, {
        vni: be.vni, localMac: Uint8Array.from(be.mac), port: be.port, gbp: be.gbp,
        tunHdrLen: hdr,
      });
  };
  // flannel udp: none; VXLAN: the VXLAN header and inner Ethernet header.
  const prefixLen = be.kind === 'udp' ? 0 : VXLAN_ENCAP_LEN;
  // The per-peer prefix (VXLAN) is written here once per super-packet and
  // copied in front of every segment by the split.
  const prefixAt = 0;
  const tunFd = init.tunFd;
  const vh = new VirtioNetHdr();
  const plainOut = new PacketQueue(CALL_MAX);
  // A kernel VXLAN peer on a virtual link sends inner checksums unfinished
  // (CHECKSUM_PARTIAL); they are completed before the TUN write.
  const { csumComplete } = csumBinding();
  let splitUsed = 0;

  const flushToPeer = (): void => {
    const n = toPeer.count;
    if (n === 0) return;
    let datagrams = 0;
    // The bound send (ioBind): the queue's arrays are not re-read as
    // arguments; segs are 0 (no UDP_SEGMENT) unless gso queued runs.
    ioSend(io, dry ? 0 : n);
    if (sendRes[SEND_RES_EIO]! > 0) {
      stats[base + STAT.GSO_FALLBACKS] += sendRes[SEND_RES_EIO]!;
      gso = false;
    }
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const len = toPeer.lens[i]!;
      const seg = toPeer.segs[i]!;
      const count = seg > 0 ? Math.ceil(len / seg) : 1;
      datagrams += count;
      bytes += len;
      const p = toPeer.peers[i]!;
      if (p >= 0) {
        const pb = peerBase + p * PEER.STRIDE;
        stats[pb + PEER.TX_PKTS] += count;
        stats[pb + PEER.TX_BYTES] += len;
      }
    }
    const sentDatagrams = sendRes[SEND_RES_DATAGRAMS]!;
    stats[base + STAT.UDP_TX_PKTS] += sentDatagrams;
    // Which ones failed is not reported by sendmmsg; bytes are those offered.
    stats[base + STAT.UDP_TX_BYTES] += bytes;
    if (sentDatagrams < datagrams) stats[drops + DropReason.UDP_SEND_FAILED] += datagrams - sentDatagrams;
    toPeer.count = 0;
    splitUsed = 0;
  };

  const writeTun = (q: PacketQueue): void => {
    const n = q.count;
    if (n === 0) return;
    const written = tunWrite(tunFd, slab, q.offs, q.lens, dry ? 0 : n);
    if (written < n) stats[drops + DropReason.TUN_WRITE_FAILED] += n - written;
    q.count = 0;
  };

  /**
   * A TCP packet longer than the path MTU on the plain path: a kernel
   * VXLAN peer's TSO super-packet that crossed a virtual link whole (the
   * pod's MTU would drop it). Segments it through the addon, using the 10
   * bytes before the packet (the stripped outer headers) for the virtio
   * header the split reads; segments are queued on plainOut in order.
   * Returns false for anything else (written as it is).
   */
  const splitOversize = (at: number, len: number): boolean => {
    if (slab[at + 9] !== IPPROTO_TCP || at < VIRTIO_NET_HDR_LEN) return false;
    const ihl = (slab[at]! & 0x0f) << 2;
    const doff = (slab[at + ihl + 12]! >> 4) << 2;
    const h = at - VIRTIO_NET_HDR_LEN;
    // The split area is reused per packet: what is queued before goes out first.
    writeTun(plainOut);
    vh.reset(slab, h).zero();
    vh.flags = F_NEEDS_CSUM;
    vh.gsoType = GSO_TCPV4;
    vh.hdrLen = ihl + doff;
    vh.gsoSize = init.pathMtu - ihl - doff;
    vh.csumStart = ihl;
    vh.csumOffset = 16;
    const bad = vnetSplit(slab, h, len + VIRTIO_NET_HDR_LEN, splitBase, splitCap, init.pathMtu, splitRes);
    if (bad !== 0) {
      stats[drops + bad]++;
      return true;
    }
    const stride = splitRes[SPLIT_STRIDE]!;
    const total = splitRes[SPLIT_TOTAL]!;
    for (let o = 0; o < total; o += stride) {
      if (plainOut.full) writeTun(plainOut);
      plainOut.push(splitBase + o, Math.min(stride, total - o), 0, 0, -1);
    }
    return true;
  };

  /** Writes the accepted inbound packets, merged into super-packets when the TUN takes them. */
  const flushInbound = (): void => {
    const n = inbound.count;
    if (n === 0) return;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const len = inbound.lens[i]!;
      bytes += len;
      const p = inbound.peers[i]!;
      if (p >= 0) {
        const pb = peerBase + p * PEER.STRIDE;
        stats[pb + PEER.RX_PKTS]++;
        stats[pb + PEER.RX_BYTES] += len;
      }
    }
    stats[base + STAT.TUN_TX_PKTS] += n;
    stats[base + STAT.TUN_TX_BYTES] += bytes;
    if (!vnet) {
      csumComplete(slab, inbound.offs, inbound.lens, n);
      let oversize = false;
      for (let i = 0; i < n; i++) if (inbound.lens[i]! > init.pathMtu) oversize = true;
      if (!oversize) {
        writeTun(inbound);
        return;
      }
      // Rare: keep the order, replacing each oversize packet by its segments.
      for (let i = 0; i < n; i++) {
        const at = inbound.offs[i]!;
        const len = inbound.lens[i]!;
        if (len > init.pathMtu && splitOversize(at, len)) continue;
        if (plainOut.full) writeTun(plainOut);
        plainOut.push(at, len, 0, 0, -1);
      }
      writeTun(plainOut);
      inbound.count = 0;
      return;
    }
    // Merged into super-packets and written in one call (the bound queue is `inbound`).
    ioDeliver(io, n, !dry);
    const refused = deliverRes[1]!;
    if (refused > 0) stats[drops + DropReason.TUN_WRITE_FAILED] += refused;
    inbound.count = 0;
  };

  /** Egress of one read from an offloading TUN: route the (super-)packet once, split, queue the run. */
  const egressVnet = (at: number, len: number): void => {
    if (len <= VIRTIO_NET_HDR_LEN) {
      stats[drops + DropReason.TRUNCATED]++;
      return;
    }
    const flags = slab[at]!;
    const gsoType = slab[at + 1]!;
    const ipOff = at + VIRTIO_NET_HDR_LEN;
    const ipLen = len - VIRTIO_NET_HDR_LEN;
    const peer = path.route(slab, ipOff, ipLen, gsoType !== 0, icmpToTun);
    if (peer < 0) return;
    const addr = rt.peerAddr[peer]!;
    const port = path.dstPort(peer);
    if (gsoType === 0 && (flags & F_NEEDS_CSUM) === 0) {
      if (toPeer.full) flushToPeer();
      // The prefix goes into the headroom in front of the (vnet header and) packet.
      path.writePrefix(slab, ipOff - prefixLen, peer);
      toPeer.push(ipOff - prefixLen, ipLen + prefixLen, addr, port, peer);
      return;
    }
    // Room for the whole split in the queue: a few GSO runs, or one entry per segment without GSO.
    if (splitCap - splitUsed < splitMax || toPeer.count + (gso ? 4 : VNET_SPLIT_MAX_SEGS) > toPeer.capacity) flushToPeer();
    const at2 = splitBase + splitUsed;
    let bad: number;
    if (prefixLen === 0) {
      bad = vnetSplit(slab, at, len, at2, splitCap - splitUsed, init.pathMtu, splitRes);
    } else {
      path.writePrefix(slab, prefixAt, peer);
      bad = vnetSplitPrefixed(slab, at, len, at2, splitCap - splitUsed, init.pathMtu, prefixAt, prefixLen,
        splitRes);
    }
    if (bad !== 0) {
      stats[drops + bad]++;
      return;
    }
    const count = splitRes[SPLIT_COUNT]!;
    const stride = splitRes[SPLIT_STRIDE]!;
    const total = splitRes[SPLIT_TOTAL]!;
    splitUsed += total;
    if (count === 1) {
      toPeer.push(at2, total, addr, port, peer);
    } else if (gso) {
      // One UDP_SEGMENT message carries at most udpGsoChunk(stride) segments.
      const chunk = udpGsoChunk(stride) * stride;
      for (let o = 0; o < total; o += chunk) {
        toPeer.pushRun(at2 + o, Math.min(chunk, total - o), addr, port, peer, stride);
      }
    } else {
      for (let o = 0; o < total; o += stride) toPeer.push(at2 + o, Math.min(stride, total - o), addr, port, peer);
    }
  };

  const onTun = (n: number): void => {
    replies.reset();
    stats[base + STAT.TUN_READ_BATCHES]++;
    stats[base + STAT.TUN_RX_PKTS] += n;
    for (let i = 0; i < n; i++) {
      const len = tunLens[i]!;
      stats[base + STAT.TUN_RX_BYTES] += len - hdr;
      if (vnet) egressVnet(tunOffs[i]!, len);
      else path.egress(slab, tunOffs[i]!, len, toPeer, icmpToTun);
    }
    flushToPeer();
    writeTun(icmpToTun);
  };

  const onUdp = (n: number): void => {
    replies.reset();
    stats[base + STAT.UDP_RECV_BATCHES]++;
    for (let i = 0; i < n; i++) {
      const at = udpOffs[i]!;
      const len = udpLens[i]!;
      const src = udpAddrs[i]!;
      const sport = udpPorts[i]!;
      stats[base + STAT.UDP_RX_BYTES] += len;
      const seg = gro ? udpSegs[i]! : 0;
      // Keep a whole run's room so one TUN write call takes the lot.
      if (inbound.count + MAX_RUN > inbound.capacity) flushInbound();
      if (seg === 0 || len > cap) {
        stats[base + STAT.UDP_RX_PKTS]++;
        path.ingress(slab, at, len, cap, src, sport, inbound, toPeer);
        continue;
      }
      // A GRO run: datagrams of `seg` bytes back to back, the last shorter.
      for (let o = 0; o < len; o += seg) {
        stats[base + STAT.UDP_RX_PKTS]++;
        path.ingress(slab, at + o, Math.min(seg, len - o), cap, src, sport, inbound, toPeer);
      }
    }
    flushInbound();
    flushToPeer();
  };

  const step = (got: number): boolean => {
    rt.refresh();
    stats[base + STAT.HEARTBEAT]++;
    if (ctl[CTL.STOP] !== 0) return true;
    if (ctl[CTL.CRASH + w] !== 0) {
      Atomics.store(ctl, CTL.CRASH + w, 0);
      throw new Error(`worker ${w}: crashed on request (test hook)`);
    }
    if (got === 0) return false;
    const tunN = got & tunMask;
    const udpN = got >>> udpShift;
    if (tunN > 0) onTun(tunN);
    if (udpN > 0) onUdp(udpN);
    return false;
  };

  const use = (table: RouteTableReader, counters: Float64Array, control: Int32Array, noIo: boolean): void => {
    rt = table;
    stats = counters;
    ctl = control;
    dry = noIo;
    path = makePath(table, counters);
  };

  let dryRt: RouteTableReader | null = null;
  let dryStats: Float64Array;
  let dryCtl: Int32Array;
  let dryPath: EncapPath;
  const setDrySide = (table: RouteTableReader, counters: Float64Array, control: Int32Array): void => {
    dryRt = table;
    dryStats = counters;
    dryCtl = control;
    dryPath = makePath(table, counters);
  };

  const dryStep = (got: number): void => {
    if (dryRt === null) throw new Error(`worker ${w}: dryStep before setDrySide`);
    // Counted on the side in use: the real counters show the keep-warm's work.
    stats[base + STAT.KEEP_WARM_TURNS]++;
    const r = rt;
    const s = stats;
    const c = ctl;
    const d = dry;
    const p = path;
    rt = dryRt;
    stats = dryStats;
    ctl = dryCtl;
    dry = true;
    path = dryPath;
    try {
      step(got);
    } finally {
      rt = r;
      stats = s;
      ctl = c;
      dry = d;
      path = p;
    }
  };

  return { step, use, setDrySide, dryStep, io };
}
