/**
 * Worker entry: one long-lived thread per TUN queue, with its own UDP
 * socket. The loop is synchronous — poll() with a timeout, then batches in
 * both directions — so it never yields to the event loop; the control plane
 * talks to it only through shared memory (control block, route table,
 * counters), read once per batch.
 */
import { workerData } from 'node:worker_threads';
import { native } from '../native/index.js';
import { RouteTableReader } from '../route-table/index.js';
import { FlannelUdpPath } from '../encap/flannel-udp.js';
import { PacketQueue, ReplyArea } from '../encap/queue.js';
import { ICMP_ERROR_MAX_LEN } from '../wire/constants.js';
import { DropReason } from '../wire/drop-reason.js';
import { BATCH, CTL, HEADROOM, PEER, POLL_TIMEOUT_MS, SLOT_SIZE, STAT, WORKER_STRIDE, statsLayout } from './layout.js';

export interface WorkerInit {
  readonly index: number;
  readonly tunFd: number;
  readonly udpFd: number;
  readonly control: SharedArrayBuffer;
  readonly routes: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly maxPeers: number;
  readonly workers: number;
  readonly pathMtu: number;
}

function run(init: WorkerInit): void {
  const ctl = new Int32Array(init.control);
  const stats = new Float64Array(init.stats);
  const w = init.index;
  const base = w * WORKER_STRIDE;
  const peerBase = statsLayout(init.workers, init.maxPeers).peerBase(w);
  const rt = new RouteTableReader(init.routes, w);

  // One slab: BATCH slots for TUN reads, BATCH for UDP receives, then the
  // ICMP reply slots (two per batch direction). Allocated once.
  const replySlots = 2 * BATCH;
  const tunBase = 0;
  const udpBase = BATCH * SLOT_SIZE;
  const replyBase = 2 * BATCH * SLOT_SIZE;
  const slab = new Uint8Array(replyBase + replySlots * ICMP_ERROR_MAX_LEN);
  const tunOffs = new Uint32Array(BATCH);
  const udpOffs = new Uint32Array(BATCH);
  for (let i = 0; i < BATCH; i++) {
    tunOffs[i] = tunBase + i * SLOT_SIZE + HEADROOM;
    udpOffs[i] = udpBase + i * SLOT_SIZE + HEADROOM;
  }
  const cap = SLOT_SIZE - HEADROOM;
  const tunLens = new Uint32Array(BATCH);
  const udpLens = new Uint32Array(BATCH);
  const udpAddrs = new Uint32Array(BATCH);
  const udpPorts = new Uint32Array(BATCH);

  const replies = new ReplyArea(replyBase, ICMP_ERROR_MAX_LEN, replySlots);
  const toPeer = new PacketQueue(2 * BATCH);
  const toTun = new PacketQueue(2 * BATCH);
  const path = new FlannelUdpPath(rt, { stats, dropBase: base + STAT.DROPS, icmpSlot: base + STAT.ICMP_SENT },
    init.pathMtu, replies);
  const tunFd = init.tunFd;
  const udpFd = init.udpFd;

  const flushToPeer = (): void => {
    const n = toPeer.count;
    if (n === 0) return;
    const sent = native.udpSend(udpFd, slab, toPeer.offs, toPeer.lens, toPeer.addrs, toPeer.ports, n);
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const len = toPeer.lens[i]!;
      bytes += len;
      const p = toPeer.peers[i]!;
      if (p >= 0) {
        const pb = peerBase + p * PEER.STRIDE;
        stats[pb + PEER.TX_PKTS]++;
        stats[pb + PEER.TX_BYTES] += len;
      }
    }
    stats[base + STAT.UDP_TX_PKTS] += sent;
    // Which ones failed is not reported by sendmmsg; bytes are those offered.
    stats[base + STAT.UDP_TX_BYTES] += bytes;
    if (sent < n) stats[base + STAT.DROPS + DropReason.UDP_SEND_FAILED] += n - sent;
    toPeer.count = 0;
  };

  const flushToTun = (): void => {
    const n = toTun.count;
    if (n === 0) return;
    const written = native.tunWrite(tunFd, slab, toTun.offs, toTun.lens, n);
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const len = toTun.lens[i]!;
      bytes += len;
      const p = toTun.peers[i]!;
      if (p >= 0) {
        const pb = peerBase + p * PEER.STRIDE;
        stats[pb + PEER.RX_PKTS]++;
        stats[pb + PEER.RX_BYTES] += len;
      }
    }
    stats[base + STAT.TUN_TX_PKTS] += written;
    stats[base + STAT.TUN_TX_BYTES] += bytes;
    if (written < n) stats[base + STAT.DROPS + DropReason.TUN_WRITE_FAILED] += n - written;
    toTun.count = 0;
  };

  while (Atomics.load(ctl, CTL.STOP) === 0) {
    rt.refresh();
    stats[base + STAT.HEARTBEAT] = Date.now();
    if (Atomics.load(ctl, CTL.CRASH + w) !== 0) {
      Atomics.store(ctl, CTL.CRASH + w, 0);
      throw new Error(`worker ${w}: crashed on request (test hook)`);
    }
    const ready = native.pollIn(tunFd, udpFd, POLL_TIMEOUT_MS);
    if (ready === 0) continue;
    replies.reset();

    if (ready & 1) {
      const n = native.tunRead(tunFd, slab, tunOffs, cap, tunLens, BATCH);
      if (n > 0) {
        stats[base + STAT.TUN_READ_BATCHES]++;
        stats[base + STAT.TUN_RX_PKTS] += n;
        for (let i = 0; i < n; i++) {
          const len = tunLens[i]!;
          stats[base + STAT.TUN_RX_BYTES] += len;
          path.egress(slab, tunOffs[i]!, len, toPeer, toTun);
        }
        flushToPeer();
        flushToTun();
      }
    }
    if (ready & 2) {
      const n = native.udpRecv(udpFd, slab, udpOffs, cap, udpLens, udpAddrs, udpPorts, BATCH);
      if (n > 0) {
        stats[base + STAT.UDP_RECV_BATCHES]++;
        stats[base + STAT.UDP_RX_PKTS] += n;
        for (let i = 0; i < n; i++) {
          const len = udpLens[i]!;
          stats[base + STAT.UDP_RX_BYTES] += len;
          path.ingress(slab, udpOffs[i]!, len, cap, udpAddrs[i]!, udpPorts[i]!, toTun, toPeer);
        }
        flushToTun();
        flushToPeer();
      }
    }
  }
  rt.release();
}

run(workerData as WorkerInit);
