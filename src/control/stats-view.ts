/**
 * Sums the workers' shared counters into one snapshot for `weft status`,
 * the control socket and (later) /metrics. Reads race with the workers'
 * increments, which is fine for monotonic counters.
 */
import { DROP_REASON_COUNT, DROP_REASON_NAMES } from '../wire/drop-reason.js';
import { PEER, STAT, SUMMED_STATS, WORKER_STRIDE, type StatsLayout } from '../dataplane/layout.js';

export interface PeerCounters { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }

export interface StatsSnapshot {
  totals: Record<string, number>;
  drops: Record<string, number>;
  perWorker: Record<string, number>[];
}

export function snapshotStats(buf: SharedArrayBuffer, layout: StatsLayout): StatsSnapshot {
  const s = new Float64Array(buf);
  const totals: Record<string, number> = {};
  const drops: Record<string, number> = {};
  const perWorker: Record<string, number>[] = [];
  for (let r = 1; r < DROP_REASON_COUNT; r++) drops[DROP_REASON_NAMES[r]!] = 0;
  for (const [n] of SUMMED_STATS) totals[n] = 0;
  for (let w = 0; w < layout.workers; w++) {
    const base = w * WORKER_STRIDE;
    const mine: Record<string, number> = {};
    for (const [n, slot] of SUMMED_STATS) {
      mine[n] = s[base + slot]!;
      totals[n]! += s[base + slot]!;
    }
    mine.restarts = s[base + STAT.RESTARTS]!;
    let dropped = 0;
    for (let r = 1; r < DROP_REASON_COUNT; r++) {
      const v = s[base + STAT.DROPS + r]!;
      drops[DROP_REASON_NAMES[r]!]! += v;
      dropped += v;
    }
    mine.dropped = dropped;
    perWorker.push(mine);
  }
  return { totals, drops, perWorker };
}

export function peerCounters(buf: SharedArrayBuffer, layout: StatsLayout, slot: number): PeerCounters {
  const s = new Float64Array(buf);
  const c = { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
  for (let w = 0; w < layout.workers; w++) {
    const b = layout.peerBase(w) + slot * PEER.STRIDE;
    c.txPackets += s[b + PEER.TX_PKTS]!;
    c.txBytes += s[b + PEER.TX_BYTES]!;
    c.rxPackets += s[b + PEER.RX_PKTS]!;
    c.rxBytes += s[b + PEER.RX_BYTES]!;
  }
  return c;
}
