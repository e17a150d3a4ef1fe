/**
 * The daemon: flanneld's start-up sequence with weft's data plane.
 *
 *   flags → store → net-conf → underlay → lease → TUN + sockets + routes
 *   → workers → subnet.env (ready) → renew and watch until stopped.
 *
 * Everything that can be checked is checked before the host is touched; a
 * failure after that closes what was opened (the TUN is not persistent, so
 * its address and route go with it) and nothing is left half-configured.
 */
import { availableParallelism } from 'node:os';
import type { Server } from 'node:http';
import { WeftError } from '../errors.js';
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { FLANNEL_UDP_OVERHEAD } from '../wire/constants.js';
import type { Flags } from '../config/flags.js';
import { parseNetConf, type NetConf } from '../config/net-conf.js';
import { formatSubnetEnv, previousSubnet, writeSubnetEnv } from '../config/subnet-env.js';
import { findUnderlay, type Underlay } from '../config/underlay.js';
import { LocalLeaseStore } from '../subnet/local.js';
import type { Lease } from '../subnet/lease.js';
import type { LeaseStore, PeerEvent } from '../subnet/store.js';
import { RouteTableWriter } from '../route-table/index.js';
import { openTun, closeTun } from '../tun/tun.js';
import { openUdp } from '../conn/udp.js';
import { native, requireNative } from '../native/index.js';
import { createControlBlock, createStats, MAX_WORKERS, type StatsLayout } from '../dataplane/layout.js';
import { Supervisor } from '../dataplane/supervisor.js';
import { configureTun, readSysctl } from './host.js';
import { startControlServer } from './control-server.js';
import { peerCounters, snapshotStats } from './stats-view.js';

export const VERSION = '0.1.0';
/** Socket buffers sized for bursts: 64 × 64 KB super-batches in flight. */
const SOCKET_BUFFER = 8 * 1024 * 1024;
const TUN_TXQUEUELEN = 10_000;
const MAX_PEERS = 16_384;

export type Logger = (msg: string) => void;

interface PeerState { lease: Lease; slot: number }

export class Daemon {
  private store: LeaseStore | null = null;
  private lease: Lease | null = null;
  private conf: NetConf | null = null;
  private underlay: Underlay | null = null;
  private tunFds: number[] = [];
  private udpFds: number[] = [];
  private tunName = '';
  private routes: RouteTableWriter | null = null;
  private supervisor: Supervisor | null = null;
  private statsBuf: SharedArrayBuffer | null = null;
  private statsLayout: StatsLayout | null = null;
  private server: Server | null = null;
  private stopWatch: (() => void) | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private readonly peers = new Map<string, PeerState>();
  private commitChain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly startedAt = Date.now();
  private done!: (code: number) => void;
  /** Resolves with the exit code when the daemon stops. */
  readonly finished: Promise<number> = new Promise((r) => { this.done = r; });

  constructor(private readonly flags: Flags, private readonly log: Logger) {}

  async start(): Promise<void> {
    const f = this.flags;
    requireNative(); // a missing addon is a start-up error, not a worker crash loop
    if (f.kubeSubnetMgr) {
      throw new WeftError('EUNSUPPORTED', '--kube-subnet-mgr is not supported by this weft version yet; '
        + 'use the local lease store (--lease-dir) for now');
    }
    if (f.explicit.has('etcd-endpoints')) {
      throw new WeftError('EUNSUPPORTED', '--etcd-endpoints: the etcd lease store is not in this weft version yet; '
        + 'use the local lease store (--lease-dir) for now');
    }
    const store = new LocalLeaseStore({ dir: f.leaseDir, netConfPath: f.netConfigPath });
    this.store = store;
    const conf = parseNetConf(await store.getNetworkConfig());
    this.conf = conf;
    if (conf.backend.type !== 'udp') {
      const hint = conf.backend.type === 'vxlan'
        ? 'weft\'s VXLAN backend is not in this version yet; set "Backend": {"Type": "udp"}'
        : `weft implements the udp backend; set "Backend": {"Type": "udp"} in ${f.netConfigPath}`;
      throw new WeftError('EBACKEND', `backend type "${conf.backend.type}" is not supported: ${hint}`);
    }
    if (conf.enableIPv6 || !conf.enableIPv4) {
      throw new WeftError('ECONFIG', 'the udp backend carries IPv4 only: set "EnableIPv4": true and remove '
        + '"EnableIPv6" from the net-conf');
    }
    const port = conf.backend.port;
    const underlay = await findUnderlay(f);
    this.underlay = underlay;
    const mtu = underlay.mtu - FLANNEL_UDP_OVERHEAD;
    if (mtu < 576) {
      throw new WeftError('EMTU', `underlay ${underlay.name} has MTU ${underlay.mtu}; the udp backend needs at least `
        + `${576 + FLANNEL_UDP_OVERHEAD} so the tunnel carries 576-byte packets`);
    }
    const workers = f.workers > 0 ? f.workers : Math.min(availableParallelism(), 4);
    if (workers > MAX_WORKERS) {
      throw new WeftError('EUSAGE', `--workers ${workers} is more than ${MAX_WORKERS}; pick 1..${MAX_WORKERS}`);
    }
    if ((await readSysctl('/proc/sys/net/ipv4/ip_forward')) === '0') {
      this.log('warning: net.ipv4.ip_forward is 0; pod traffic will not be forwarded until it is set to 1');
    }

    const previous = await previousSubnet(f.subnetFile);
    const lease = await store.acquire(conf, { attrs: { publicIp: underlay.publicIp, publicIpv6: null }, previous });
    this.lease = lease;
    this.log(`lease ${formatIpv4Prefix(lease.subnet)} (public IP ${formatIpv4(underlay.publicIp)}, `
      + `underlay ${underlay.name} MTU ${underlay.mtu})`);

    try {
      await this.setUpDataPlane(workers, port, mtu, lease, conf.network);
      await this.applyWatch(lease);
      const env = formatSubnetEnv({ network: conf.network, subnet: lease.subnet, mtu, ipMasq: f.ipMasq });
      await writeSubnetEnv(f.subnetFile, env);
    } catch (e) {
      await this.teardown();
      throw e;
    }
    this.log(`ready: ${this.tunName} MTU ${mtu}, ${workers} workers, UDP port ${port}, wrote ${f.subnetFile}`);
    this.scheduleRenew();
  }

  private async setUpDataPlane(workers: number, port: number, mtu: number, lease: Lease,
    network: Ipv4Prefix): Promise<void> {
    const f = this.flags;
    const tun = openTun(f.tunName, workers);
    this.tunFds = tun.fds;
    this.tunName = tun.name;
    await configureTun({ name: tun.name, lease: lease.subnet, network, mtu, txQueueLen: TUN_TXQUEUELEN });
    for (let i = 0; i < workers; i++) {
      this.udpFds.push(openUdp({
        addr: this.underlay!.addr, port, reusePort: true, rcvBuf: SOCKET_BUFFER, sndBuf: SOCKET_BUFFER,
      }));
    }
    const routes = RouteTableWriter.create({ maxPeers: MAX_PEERS });
    routes.setLocalSubnet(lease.subnet.addr, lease.subnet.len);
    await routes.commit();
    this.routes = routes;
    const { buffer, layout } = createStats(workers, MAX_PEERS);
    this.statsBuf = buffer;
    this.statsLayout = layout;
    this.supervisor = new Supervisor({
      tunFds: this.tunFds,
      udpFds: this.udpFds,
      control: createControlBlock(),
      routes: routes.buffer,
      stats: buffer,
      maxPeers: MAX_PEERS,
      pathMtu: mtu,
      onWorkerGone: (i) => routes.releaseReader(i),
      log: this.log,
    });
    this.supervisor.start();
    this.server = await startControlServer(f.controlSocket, {
      status: () => this.status(),
      crashWorker: f.testHooks ? (i) => this.supervisor!.crash(i) : null,
    });
  }

  private async applyWatch(own: Lease): Promise<void> {
    let first: (() => void) | null = null;
    const firstBatch = new Promise<void>((r) => { first = r; });
    this.stopWatch = this.store!.watch(own, (events) => {
      this.commitChain = this.commitChain.then(() => this.applyEvents(events)).catch((e: unknown) => {
        this.log(`route update failed: ${e instanceof Error ? e.message : String(e)}`);
      });
      if (first) { void this.commitChain.then(first); first = null; }
    }, () => {
      this.log(`our lease ${formatIpv4Prefix(own.subnet)} was revoked; stopping`);
      void this.stop(1);
    });
    // Peers known at start are routed before we report ready; an empty
    // cluster sends no first batch, so do not wait long for one.
    await Promise.race([firstBatch, new Promise((r) => setTimeout(r, 1500))]);
  }

  private async applyEvents(events: PeerEvent[]): Promise<void> {
    const routes = this.routes!;
    const port = this.conf!.backend.type === 'udp' ? this.conf!.backend.port : 0;
    for (const ev of events) {
      const key = formatIpv4Prefix(ev.lease.subnet);
      if (ev.type === 'removed') {
        if (routes.removePeer(key)) this.log(`peer ${key} removed`);
        this.peers.delete(key);
        continue;
      }
      const l = ev.lease;
      const slot = routes.upsertPeer(key, {
        addr: l.attrs.publicIp, port, subnet: l.subnet.addr, prefixLen: l.subnet.len,
      });
      this.peers.set(key, { lease: l, slot });
      this.log(`peer ${key} ${ev.type} at ${formatIpv4(l.attrs.publicIp)}`);
    }
    await routes.commit();
  }

  private scheduleRenew(): void {
    if (this.stopped) return;
    const lease = this.lease!;
    const margin = this.flags.subnetLeaseRenewMargin * 60_000;
    const wait = Math.max(1000, Math.min(lease.expiration - margin - Date.now(), 2 ** 31 - 1));
    this.renewTimer = setTimeout(() => {
      this.store!.renew(this.lease!).then((l) => {
        this.lease = l;
        this.log(`lease ${formatIpv4Prefix(l.subnet)} renewed until ${new Date(l.expiration).toISOString()}`);
      }, (e: unknown) => {
        this.log(`lease renewal failed (will retry): ${e instanceof Error ? e.message : String(e)}`);
      }).finally(() => this.scheduleRenew());
    }, wait);
    this.renewTimer.unref();
  }

  status(): unknown {
    const stats = snapshotStats(this.statsBuf!, this.statsLayout!);
    return {
      version: VERSION,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      backend: 'udp',
      tun: this.tunName,
      lease: this.lease ? {
        subnet: formatIpv4Prefix(this.lease.subnet),
        expiration: new Date(this.lease.expiration).toISOString(),
      } : null,
      publicIp: this.underlay ? formatIpv4(this.underlay.publicIp) : null,
      // The fast-path offloads are not implemented yet: every path is per-packet.
      offloads: { tunVnetHdr: false, udpGso: false, udpGro: false, path: 'batched-per-packet' },
      routeEpoch: this.routes?.epoch ?? 0,
      workers: this.supervisor?.health() ?? [],
      peers: [...this.peers.entries()].map(([key, p]) => ({
        subnet: key,
        publicIp: formatIpv4(p.lease.attrs.publicIp),
        ...peerCounters(this.statsBuf!, this.statsLayout!, p.slot),
      })),
      totals: stats.totals,
      drops: stats.drops,
      perWorker: stats.perWorker,
    };
  }

  /** Stops forwarding and closes everything. Keeps the lease, as flanneld does. */
  async stop(code = 0): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.teardown();
    this.done(code);
  }

  private async teardown(): Promise<void> {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.stopWatch?.();
    this.stopWatch = null;
    await this.supervisor?.stop();
    this.supervisor = null;
    if (this.server) {
      const s = this.server;
      this.server = null;
      await new Promise<void>((r) => s.close(() => r()));
    }
    for (const fd of this.udpFds) native.close(fd);
    this.udpFds = [];
    if (this.tunFds.length > 0) closeTun(this.tunFds);
    this.tunFds = [];
    await this.store?.close();
  }
}
