/**
 * Prometheus metrics for /metrics. Nothing here runs per packet: every
 * value is read at scrape time from the daemon's status snapshot (which
 * sums the workers' shared counters), once per scrape.
 *
 * Counters are prom-client Counters whose collect() resets the series and
 * adds the current absolute value: the exposition then says `# TYPE …
 * counter` (so rate() and friends apply), and series of peers that went
 * away disappear. The worker counters only grow; a value that falls (a
 * worker slot reused after the daemon restarts) is a counter reset to
 * Prometheus, which is what it is.
 *
 * Batch sizes are not a histogram (that would be per-batch work on the
 * data path): weft_batches_total{kind} with weft_packets_total gives the
 * mean batch size, e.g. rate(packets{direction="tun_rx"}) /
 * rate(batches{kind="tun_read"}).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DROP_REASON_NAMES } from '../wire/drop-reason.js';

/** The part of Daemon.status() that the metrics read. */
export interface MetricsStatus {
  version: string;
  /** What /readyz answers: subnet.env written and the data plane forwarding. */
  ready: boolean;
  leaseRenewals: { ok: number; failed: number };
  /** The lease store ("local", "etcd", "kube") and its failed reads and watches. */
  store: { kind: string; errors: number } | null;
  lease: { subnet: string; expiration: string } | null;
  offloads: { tunVnetHdr: boolean; udpGso: boolean; udpGro: boolean; path: string } & Record<string, unknown>;
  routeEpoch: number;
  /** Peer routes in the table (RouteTableWriter.routeCount()); absent → the number of peers. */
  routeCount?: number;
  workers: { index: number; alive: boolean; restarts: number }[];
  peers: { subnet: string; publicIp: string; txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }[];
  /** stats-view totals: tun_rx_packets, udp_tx_bytes, icmp_sent, tun_read_batches, … */
  totals: Record<string, number>;
  /** Drop reason name → count. */
  drops: Record<string, number>;
  /** Losses in the kernel before weft sees a packet; null without a userspace data path. */
  kernelDrops?: { udpSocket: number; tunQueue: number } | null;
  /** Peer leases not routed (another backend's, or unusable), with the lease's BackendType. */
  ignoredPeers?: { backendType: string }[];
  /** host-gw routes the kernel refused at the last attempt. */
  routeFailures?: unknown[];
}

export type MetricsSource = () => MetricsStatus | Promise<MetricsStatus>;

export interface WeftMetrics {
  readonly registry: Registry;
  /** Content type for the HTTP response. */
  readonly contentType: string;
  /** Reads the source once and renders the exposition text. */
  render(): Promise<string>;
}

const DIRECTIONS = ['tun_rx', 'udp_tx', 'udp_rx', 'tun_tx'] as const;
const BATCH_KINDS = [['tun_read', 'tun_read_batches'], ['udp_recv', 'udp_recv_batches']] as const;

/** A non-negative finite number (Counter.inc throws on negatives). */
const nn = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);

export interface MetricsOptions {
  /** --metrics-per-peer: four series per peer, so off by default (a cluster of N nodes scrapes 4N² of them). */
  perPeer: boolean;
}

export function createMetrics(source: MetricsSource, opts: MetricsOptions): WeftMetrics {
  const registry = new Registry();
  // The main thread's process and Node.js metrics (CPU, memory, event loop lag, GC).
  collectDefaultMetrics({ register: registry });
  // One status read per scrape, shared by every collector of that scrape;
  // a direct registry.metrics() (no render()) reads its own.
  let current: Promise<MetricsStatus> | null = null;
  const snap = (): Promise<MetricsStatus> => current ?? Promise.resolve(source());
  const registers = [registry];
  /** A counter that is one of the status totals, summed over the workers. */
  const totalCounter = (name: string, help: string, total: string): void => {
    new Counter({
      name, help, registers,
      async collect() {
        const s = await snap();
        this.reset();
        this.inc(nn(s.totals[total]));
      },
    });
  };

  new Counter({
    name: 'weft_packets_total', help: 'Packets through the data path, by direction (tun_rx: read from the TUN; '
      + 'udp_tx: datagrams sent to peers; udp_rx: datagrams received; tun_tx: written to the TUN).',
    labelNames: ['direction'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      for (const d of DIRECTIONS) this.inc({ direction: d }, nn(s.totals[`${d}_packets`]));
    },
  });
  new Counter({
    name: 'weft_bytes_total', help: 'Bytes through the data path (inner IP packets), by direction.',
    labelNames: ['direction'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      for (const d of DIRECTIONS) this.inc({ direction: d }, nn(s.totals[`${d}_bytes`]));
    },
  });
  if (opts.perPeer) {
    new Counter({
      name: 'weft_peer_packets_total', help: 'Datagrams sent to (udp_tx) and received from (udp_rx) each peer, by peer subnet.',
      labelNames: ['peer', 'public_ip', 'direction'], registers,
      async collect() {
        const s = await snap();
        this.reset();
        for (const p of s.peers) {
          this.inc({ peer: p.subnet, public_ip: p.publicIp, direction: 'udp_tx' }, nn(p.txPackets));
          this.inc({ peer: p.subnet, public_ip: p.publicIp, direction: 'udp_rx' }, nn(p.rxPackets));
        }
      },
    });
    new Counter({
      name: 'weft_peer_bytes_total', help: 'Bytes sent to (udp_tx) and received from (udp_rx) each peer, by peer subnet.',
      labelNames: ['peer', 'public_ip', 'direction'], registers,
      async collect() {
        const s = await snap();
        this.reset();
        for (const p of s.peers) {
          this.inc({ peer: p.subnet, public_ip: p.publicIp, direction: 'udp_tx' }, nn(p.txBytes));
          this.inc({ peer: p.subnet, public_ip: p.publicIp, direction: 'udp_rx' }, nn(p.rxBytes));
        }
      },
    });
  }
  new Counter({
    name: 'weft_drops_total', help: 'Packets dropped by the data path, by reason (every reason is always present).',
    labelNames: ['reason'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      for (let r = 1; r < DROP_REASON_NAMES.length; r++) {
        const name = DROP_REASON_NAMES[r]!;
        this.inc({ reason: name }, nn(s.drops[name]));
      }
    },
  });
  new Counter({
    name: 'weft_batches_total', help: 'Batched I/O calls that returned packets (tun_read, udp_recv); '
      + 'packets / batches = mean batch size.',
    labelNames: ['kind'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      for (const [kind, key] of BATCH_KINDS) this.inc({ kind }, nn(s.totals[key]));
    },
  });
  totalCounter('weft_icmp_sent_total',
    'ICMP errors weft generated into the TUN (unreachable, time exceeded, frag needed).', 'icmp_sent');
  totalCounter('weft_icmp_rate_limited_total',
    'ICMP errors not sent: over the per-destination, per-type rate (burst 6, then 1 per second; frag-needed exempt).',
    'icmp_rate_limited');
  totalCounter('weft_keep_warm_turns_total',
    'Dry forwarding turns idle workers ran to keep the path in CPU cache (--keep-warm; two per tick).', 'keep_warm_turns');
  totalCounter('weft_udp_gso_fallbacks_total',
    'UDP GSO sends the kernel refused (EIO), sent again as single datagrams; the worker sends without GSO from then on.',
    'udp_gso_fallbacks');
  new Counter({
    name: 'weft_kernel_drops_total',
    help: 'Packets the kernel dropped before weft saw them: udp_socket (receive buffer full), tun_queue (TUN queue full).',
    labelNames: ['where'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      const k = s.kernelDrops;
      this.inc({ where: 'udp_socket' }, nn(k?.udpSocket));
      this.inc({ where: 'tun_queue' }, nn(k?.tunQueue));
    },
  });
  new Counter({
    name: 'weft_worker_restarts_total', help: 'Times each data-path worker was restarted after it died.',
    labelNames: ['worker'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      for (const w of s.workers) this.inc({ worker: String(w.index) }, nn(w.restarts));
    },
  });
  new Gauge({
    name: 'weft_worker_up', help: '1 while the data-path worker runs, 0 while it is down (restarting).',
    labelNames: ['worker'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      for (const w of s.workers) this.set({ worker: String(w.index) }, w.alive ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_offload_info', help: 'The packet path in use and which offloads are on (value always 1).',
    labelNames: ['path', 'tun_vnet_hdr', 'udp_gso', 'udp_gro'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      const o = s.offloads;
      this.set({ path: o.path, tun_vnet_hdr: String(o.tunVnetHdr), udp_gso: String(o.udpGso), udp_gro: String(o.udpGro) }, 1);
    },
  });
  new Gauge({
    name: 'weft_lease_expiration_timestamp_seconds', help: 'When our subnet lease expires (Unix time); absent without a lease.',
    // The label also keeps the series absent (not 0) without a lease.
    labelNames: ['subnet'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      const t = s.lease ? Date.parse(s.lease.expiration) : NaN;
      if (s.lease && Number.isFinite(t)) this.set({ subnet: s.lease.subnet }, t / 1000);
    },
  });
  new Gauge({
    name: 'weft_route_table_size', help: 'Routes to peers: in weft\'s route table, or the kernel\'s with kernel vxlan and host-gw '
      + '(our own subnet is not counted).',
    registers,
    async collect() {
      const s = await snap();
      this.set(s.routeCount ?? s.peers.length);
    },
  });
  new Gauge({
    name: 'weft_build_info', help: 'weft\'s version and the Node.js it runs on (value always 1).',
    labelNames: ['version', 'node_version'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      this.set({ version: s.version, node_version: process.version }, 1);
    },
  });
  new Gauge({
    name: 'weft_ready', help: '1 while subnet.env is written and the data plane forwards (what /readyz answers), else 0.',
    registers,
    async collect() {
      this.set((await snap()).ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_peers', help: 'Peer leases routed (of our backend and usable); weft_ignored_peers counts the others.',
    registers,
    async collect() {
      this.set((await snap()).peers.length);
    },
  });
  new Counter({
    name: 'weft_lease_renewals_total', help: 'Renewals of our lease, by result (failed ones are retried).',
    labelNames: ['result'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      this.inc({ result: 'ok' }, nn(s.leaseRenewals.ok));
      this.inc({ result: 'failed' }, nn(s.leaseRenewals.failed));
    },
  });
  new Counter({
    name: 'weft_lease_store_errors_total', help: 'Failed reads and watches of the lease store (each retried), by store.',
    labelNames: ['store'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      if (s.store !== null) this.inc({ store: s.store.kind }, nn(s.store.errors));
    },
  });
  new Gauge({
    name: 'weft_ignored_peers', help: 'Peer leases not routed, by their BackendType ("" for udp and alloc): another '
      + 'backend\'s (flanneld ignores those too), or ours with unusable BackendData. The log says which and why.',
    labelNames: ['backend_type'], registers,
    async collect() {
      const s = await snap();
      this.reset();
      const by = new Map<string, number>();
      for (const p of s.ignoredPeers ?? []) by.set(p.backendType, (by.get(p.backendType) ?? 0) + 1);
      for (const [t, n] of by) this.set({ backend_type: t }, n);
    },
  });
  new Gauge({
    name: 'weft_route_failures', help: 'host-gw routes the kernel refused at the last attempt (e.g. a peer off our L2 '
      + 'segment); each is retried every 10 s.',
    registers,
    async collect() {
      const s = await snap();
      this.set(s.routeFailures?.length ?? 0);
    },
  });
  new Gauge({
    name: 'weft_route_table_epoch', help: 'Route table generation; it grows by one with every committed change.',
    registers,
    async collect() {
      const s = await snap();
      this.set(nn(s.routeEpoch));
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    async render() {
      const p = Promise.resolve(source());
      current = p;
      try {
        await p;
        return await registry.metrics();
      } finally {
        if (current === p) current = null;
      }
    },
  };
}
