/**
 * Shared memory layouts between the control plane (main thread) and the
 * workers: the control block (Int32, Atomics) and the stats counters
 * (Float64, one region per worker so no two threads write one slot).
 * Float64 counts exactly up to 2^53, which no packet or byte counter
 * reaches in practice.
 */
import { DROP_REASON_COUNT } from '../wire/drop-reason.js';

/** Our own tuning, in one place. */
export const BATCH = 64;
/** Bytes reserved in front of each packet so outer headers can be written in place. */
export const HEADROOM = 64;
/**
 * One slot holds the largest IPv4 packet, a 10-byte virtio_net_hdr in
 * front of it on an offloading TUN, and the headroom.
 */
export const SLOT_SIZE = 65536 + 64 + HEADROOM;
/** A worker blocks in poll() at most this long, so stop and epochs are seen. */
export const POLL_TIMEOUT_MS = 100;
/** After its last packet a worker keeps its path warm this long (--keep-warm; worker.ts). */
export const KEEP_WARM_LINGER_MS = 1000;
export const MAX_WORKERS = 64;

/** Control block slots (Int32Array over a SharedArrayBuffer). */
export const CTL = {
  /** 1 = every worker leaves its loop. */
  STOP: 0,
  /** Test hook: worker i (CRASH + i) throws on its next batch when set. */
  CRASH: 8,
  LEN: 8 + MAX_WORKERS,
} as const;

export function createControlBlock(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CTL.LEN * 4));
}

/** Per-worker counter slots; drops follow at DROPS + reason. */
export const STAT = {
  TUN_RX_PKTS: 0,
  TUN_RX_BYTES: 1,
  UDP_TX_PKTS: 2,
  UDP_TX_BYTES: 3,
  UDP_RX_PKTS: 4,
  UDP_RX_BYTES: 5,
  TUN_TX_PKTS: 6,
  TUN_TX_BYTES: 7,
  ICMP_SENT: 8,
  TUN_READ_BATCHES: 9,
  UDP_RECV_BATCHES: 10,
  /** Turns of the worker's loop so far (one per wait); the supervisor samples it. */
  HEARTBEAT: 11,
  RESTARTS: 12,
  /** Dry turns the keep-warm ticks ran (two per tick: a ping out, its reply in). */
  KEEP_WARM_TURNS: 13,
  /** GSO sends the kernel refused with EIO, sent again as single datagrams; GSO is then off in that worker. */
  GSO_FALLBACKS: 14,
  /** ICMP errors the per-destination rate limit held back (encap/ipv4-checks.ts). */
  ICMP_RATE_LIMITED: 15,
  DROPS: 16,
} as const;
/**
 * The counters summed over workers into `weft status` totals and
 * /metrics, by name and slot (HEARTBEAT and RESTARTS are per worker only).
 */
export const SUMMED_STATS: readonly (readonly [name: string, slot: number])[] = [
  ['tun_rx_packets', STAT.TUN_RX_PKTS], ['tun_rx_bytes', STAT.TUN_RX_BYTES],
  ['udp_tx_packets', STAT.UDP_TX_PKTS], ['udp_tx_bytes', STAT.UDP_TX_BYTES],
  ['udp_rx_packets', STAT.UDP_RX_PKTS], ['udp_rx_bytes', STAT.UDP_RX_BYTES],
  ['tun_tx_packets', STAT.TUN_TX_PKTS], ['tun_tx_bytes', STAT.TUN_TX_BYTES],
  ['icmp_sent', STAT.ICMP_SENT], ['tun_read_batches', STAT.TUN_READ_BATCHES],
  ['udp_recv_batches', STAT.UDP_RECV_BATCHES], ['keep_warm_turns', STAT.KEEP_WARM_TURNS],
  ['udp_gso_fallbacks', STAT.GSO_FALLBACKS], ['icmp_rate_limited', STAT.ICMP_RATE_LIMITED],
];
export const WORKER_STRIDE = STAT.DROPS + 32;
if (DROP_REASON_COUNT > 32) throw new Error('WORKER_STRIDE too small for the drop reasons');

/** Per-peer counters, per worker: [tx pkts, tx bytes, rx pkts, rx bytes]. */
export const PEER = { TX_PKTS: 0, TX_BYTES: 1, RX_PKTS: 2, RX_BYTES: 3, STRIDE: 4 } as const;

export interface StatsLayout {
  readonly workers: number;
  readonly maxPeers: number;
  /** Offset of worker w's peer region. */
  peerBase(w: number): number;
}

export function createStats(workers: number, maxPeers: number): { buffer: SharedArrayBuffer; layout: StatsLayout } {
  const workerPart = MAX_WORKERS * WORKER_STRIDE;
  const len = workerPart + MAX_WORKERS * maxPeers * PEER.STRIDE;
  const buffer = new SharedArrayBuffer(len * 8);
  return { buffer, layout: statsLayout(workers, maxPeers) };
}

export function statsLayout(workers: number, maxPeers: number): StatsLayout {
  const workerPart = MAX_WORKERS * WORKER_STRIDE;
  return {
    workers,
    maxPeers,
    peerBase: (w: number) => workerPart + w * maxPeers * PEER.STRIDE,
  };
}
