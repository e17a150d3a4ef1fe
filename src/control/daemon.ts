/**
 * The daemon: flanneld's start-up sequence with weft's data plane.
 *
 *   flags → store → net-conf → underlay → lease → data plane → peers
 *   → masquerade → subnet.env (ready) → renew and watch until stopped.
 *
 * The data plane is weft's (TUN + sockets + workers: udp, userspace
 * vxlan) or the kernel's (kernel vxlan, host-gw routes), or none (alloc).
 * Everything that can be checked is checked before the host is touched; a
 * failure after that closes what was opened (the TUN is not persistent, so
 * its address and route go with it; host-gw routes are removed).
 */
import { fstatSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { Server } from 'node:http';
import { isWeftError, WeftError } from '../errors.js';
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { ignoredFlagWarnings, type Flags } from '../config/flags.js';
import type { Log } from '../log.js';
import { parseNetConfFrom, type NetConf } from '../config/net-conf.js';
import {
  formatSubnetEnv, previousPublicIp, previousSubnet, publicIpNotePath, writePublicIpNote, writeSubnetEnv,
} from '../config/subnet-env.js';
import { findUnderlay, type Underlay } from '../config/underlay.js';
import { LocalLeaseStore } from '../subnet/local.js';
import type { Lease } from '../subnet/lease.js';
import type { LeaseStore, PeerEvent } from '../subnet/store.js';
import type { KubeLeaseStore } from '../subnet/kube.js';
import { RouteTableWriter } from '../route-table/index.js';
import { openTun, closeTun } from '../tun/tun.js';
import { openUdp, steerByInnerFlow } from '../conn/udp.js';
import { VXLAN_OVERHEAD } from '../wire/constants.js';
import { native, requireNative } from '../native/index.js';
import { formatMac } from '../wire/ethernet.js';
import { createControlBlock, createStats, MAX_WORKERS, type StatsLayout } from '../dataplane/layout.js';
import { Supervisor } from '../dataplane/supervisor.js';
import type { WorkerBackend, WorkerOffloads } from '../dataplane/lane.js';
import { probeTunOffload } from '../offload/probe.js';
import { MERGE_TCP, MERGE_UDP, tunSetOffload } from '../offload/vnet.js';
import { probeUdpOffload, udpSetGro } from '../conn/gso.js';
import { configureTun, readSysctl, type TunSetup } from './host.js';
import { startControlServer } from './control-server.js';
import { startHealthServer, type HealthServer } from './health.js';
import { ifindexOf, TunWatch } from './tun-watch.js';
import { createMetrics, type MetricsStatus } from './metrics.js';
import { MasqRules } from './masq.js';
import {
  checkHostGwPublicIp, chooseVxlanMode, classifyPeer, vxlanModeLine, leaseAttrsFor, planBackend, stableVtepMac,
  type BackendPlan, type DataMode,
} from './backend.js';
import { canCreateVxlan, KernelVxlan } from './kernel-vxlan.js';
import { HostGw } from './host-gw.js';
import { LeaseRenewer } from './renewer.js';
import { acquireInstanceLock, type InstanceLock } from './instance-lock.js';
import { foreignOnPort } from '../conn/port-owners.js';
import { ensureBlackholeRoute, linkExists, removeBlackholeRoute, type HostRoute, type VxlanPeer } from '../netlink/index.js';
import { peerCounters, snapshotStats, type PeerCounters } from './stats-view.js';
import { readKernelDrops } from './kernel-drops.js';

export const VERSION = '0.1.0';
/** Socket buffers sized for bursts: 64 × 64 KB super-batches in flight. */
const SOCKET_BUFFER = 8 * 1024 * 1024;
const TUN_TXQUEUELEN = 10_000;
const MAX_PEERS = 16_384;
/** How long start-up waits for the workers to finish their JIT warm-up and start forwarding. */
const WORKERS_RUNNING_TIMEOUT_MS = 10_000;
/** /healthz turns 503 when no worker has forwarded for this long. */
const LIVENESS_BOUND_MS = 10_000;

/**
 * `base`: the slot's counters when this peer took it (a freed slot is
 * reused, and the counters are never reset under the workers); null until
 * read after the commit that gave it the slot.
 */
interface PeerState { lease: Lease; slot: number; base: PeerCounters | null }
/** A peer lease we do not route: another backend's (`mismatch`), or ours but unusable. */
interface IgnoredPeer { lease: Lease; why: string; mismatch: boolean }

export class Daemon {
  private store: LeaseStore | null = null;
  private kubeStore: KubeLeaseStore | null = null;
  private lease: Lease | null = null;
  private underlay: Underlay | null = null;
  private tunFds: number[] = [];
  private udpFds: number[] = [];
  private wakeFds: number[] = [];
  private workerBackend: WorkerBackend | null = null;
  /** How start-up configured the TUN: what the TUN watch compares and a repair applies again. */
  private tunSetup: TunSetup | null = null;
  private tunIfindex = -1;
  private tunWatch: TunWatch | null = null;
  /** While the workers are stopped for a TUN repair: when one last forwarded. */
  private workersGoneAt = 0;
  private pendingEvents: PeerEvent[] = [];
  private applyQueued = false;
  private tunName = '';
  private routes: RouteTableWriter | null = null;
  private supervisor: Supervisor | null = null;
  private statsBuf: SharedArrayBuffer | null = null;
  private statsLayout: StatsLayout | null = null;
  private server: Server | null = null;
  private health: HealthServer | null = null;
  private masq: MasqRules | null = null;
  /** subnet.env written: /readyz answers 200. */
  private ready = false;
  private stopWatch: (() => void) | null = null;
  private renewer: LeaseRenewer | null = null;
  private storeKind = '';
  private readonly peers = new Map<string, PeerState>();
  private readonly ignored = new Map<string, IgnoredPeer>();
  private offloads: WorkerOffloads = { vnet: false, gso: false, gro: false, merge: 0 };
  private plan: BackendPlan | null = null;
  /** Which data path runs, once decided. */
  private mode: DataMode | '' = '';
  private vtepMac: Uint8Array | null = null;
  private kernel: KernelVxlan | null = null;
  private hostGw: HostGw | null = null;
  private lock: InstanceLock | null = null;
  private subnetEnvWritten = false;
  private blackholeTimer: NodeJS.Timeout | null = null;
  /** Our subnet, once --ip-blackhole-route added its route in this run. */
  private blackholeAdded: Ipv4Prefix | null = null;
  private mtu = 0;
  private tunOffloadFlags = 0;
  private commitChain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** start() is running. */
  private starting = false;
  /** A stop came while starting: start-up ends at its next step. */
  private stopping = false;
  private abortStart: () => void = () => undefined;
  private readonly startAborted: Promise<never> = new Promise<never>((_resolve, reject) => {
    this.abortStart = () => reject(new WeftError('ESTOPPED', 'stopped by a signal during start-up'));
  });
  private readonly startedAt = Date.now();
  private done!: (code: number) => void;
  /** Resolves with the exit code when the daemon stops. */
  readonly finished: Promise<number> = new Promise((r) => { this.done = r; });

  constructor(private readonly flags: Flags, private readonly log: Log) {}

  async start(): Promise<void> {
    this.starting = true;
    try {
      await this.startUp();
      // A stop during start-up's last steps, after its last checkpoint, would otherwise be lost.
      this.checkpoint();
    } catch (e) {
      // Nothing half-configured and nothing left listening after a failed start.
      this.stopped = true;
      const summary = await this.teardown(true);
      if (isWeftError(e, 'ESTOPPED')) this.log.info(`stopped during start-up: ${summary}`);
      throw e;
    } finally {
      this.starting = false;
    }
  }

  /**
   * A start-up step that a stop (SIGTERM) must not wait for: it loses the
   * race to the stop, which also closes the lease store so store calls end.
   */
  private async step<T>(p: Promise<T>): Promise<T> {
    p.catch(() => undefined); // its late failure is moot once the stop won
    const v = await Promise.race([p, this.startAborted]);
    this.checkpoint();
    return v;
  }

  private checkpoint(): void {
    if (this.stopping) throw new WeftError('ESTOPPED', 'stopped by a signal during start-up');
  }

  /**
   * The lease store the flags ask for: Kubernetes with --kube-subnet-mgr,
   * etcd when --etcd-endpoints is given (flag or FLANNELD_ETCD_ENDPOINTS),
   * otherwise weft's local directory store.
   */
  private async createStore(): Promise<LeaseStore> {
    const f = this.flags;
    if (f.kubeSubnetMgr) {
      // Loaded lazily: the Kubernetes client takes over a second to import.
      const { KubeLeaseStore } = await import('../subnet/kube.js');
      const kube = await KubeLeaseStore.fromEnv({
        kubeconfigFile: f.kubeconfigFile, apiUrl: f.kubeApiUrl, annotationPrefix: f.kubeAnnotationPrefix,
        netConfPath: f.netConfigPath, setNodeNetworkUnavailable: false,
      });
      this.kubeStore = kube;
      this.storeKind = 'kube';
      return kube;
    }
    if (f.explicit.has('etcd-endpoints')) {
      const { EtcdLeaseStore, etcdOptionsFromFlags } = await import('../subnet/etcd.js');
      this.storeKind = 'etcd';
      return new EtcdLeaseStore(etcdOptionsFromFlags(f, { log: this.log }));
    }
    this.storeKind = 'local';
    return new LocalLeaseStore({ dir: f.leaseDir, netConfPath: f.netConfigPath, log: this.log });
  }

  private async startUp(): Promise<void> {
    const f = this.flags;
    for (const w of ignoredFlagWarnings(f)) this.log.warn(w);
    this.lock = acquireInstanceLock(f.controlSocket);
    requireNative(); // a missing addon is a start-up error, not a worker crash loop
    // Health first, as flanneld does: /healthz answers while we start.
    const metrics = createMetrics(() => this.status(), { perPeer: f.metricsPerPeer });
    this.health = await startHealthServer({
      host: f.healthzIp, port: f.healthzPort, notReady: () => this.notReady(), notLive: () => this.notLive(),
      metrics: () => metrics.render(),
    });
    const store = await this.step(this.createStore());
    this.store = store;
    const conf = parseNetConfFrom(await this.step(store.getNetworkConfig()), store.configSource);
    const plan = planBackend(conf, store.configSource);
    this.plan = plan;
    if (conf.enableIPv6 || !conf.enableIPv4) {
      throw new WeftError('ECONFIG', 'weft carries IPv4 only: set "EnableIPv4": true and remove '
        + `"EnableIPv6" in ${store.configSource}`);
    }
    let underlay = await this.step(findUnderlay(f));
    if (this.kubeStore) {
      // flanneld lets the node's node-public-ip annotation override --public-ip.
      const annotated = await this.step(this.kubeStore.getStoredPublicIp());
      if (annotated !== null) underlay = { ...underlay, publicIp: annotated };
    }
    this.underlay = underlay;
    if (plan.kind === 'host-gw') checkHostGwPublicIp(underlay.publicIp, underlay.addr, underlay.name);
    const mtu = plan.mtuOverride > 0 ? plan.mtuOverride : underlay.mtu - plan.overhead;
    this.mtu = mtu;
    if (mtu < 576 && plan.mtuOverride > 0) {
      throw new WeftError('EMTU', `Backend.MTU ${plan.mtuOverride} in ${store.configSource} is below 576, the packet size every IPv4 `
        + `host must accept: set it to 576 or more, or remove it to use the underlay's (${underlay.name}: ${underlay.mtu}) `
        + `minus ${plan.overhead}`);
    }
    if (mtu < 576) {
      throw new WeftError('EMTU', `underlay ${underlay.name} has MTU ${underlay.mtu}; the ${plan.kind} backend needs at `
        + `least ${576 + plan.overhead} so the tunnel carries 576-byte packets`);
    }
    let mode: DataMode = plan.kind === 'vxlan' ? 'vxlan-userspace' : plan.kind;
    if (plan.kind === 'vxlan') {
      const choice = await this.step(chooseVxlanMode(plan.mode, canCreateVxlan));
      mode = choice.mode;
      this.log.info(vxlanModeLine(choice));
      this.vtepMac = stableVtepMac(underlay.publicIp, plan.vni);
    }
    this.mode = mode;
    const workers = f.workers > 0 ? f.workers : Math.min(availableParallelism(), 4);
    if (workers > MAX_WORKERS) {
      throw new WeftError('EUSAGE', `--workers ${workers} is more than ${MAX_WORKERS}; pick 1..${MAX_WORKERS}`);
    }
    if (mode !== 'alloc' && (await readSysctl('/proc/sys/net/ipv4/ip_forward')) === '0') {
      this.log.warn('net.ipv4.ip_forward is 0; pod traffic will not be forwarded until it is set to 1');
    }

    const previous = await previousSubnet(f.subnetFile);
    const lease = await this.step(store.acquire(conf, {
      attrs: leaseAttrsFor(plan, underlay.publicIp, this.vtepMac), previous, previousPublicIp: await previousPublicIp(f.subnetFile, previous),
    }));
    this.lease = lease;
    this.log.info(`lease ${formatIpv4Prefix(lease.subnet)} (public IP ${formatIpv4(underlay.publicIp)}, `
      + `underlay ${underlay.name} MTU ${underlay.mtu})`);

    if (plan.kind === 'vxlan' && mode === 'vxlan-kernel') {
      this.kernel = new KernelVxlan({
        vni: plan.vni, port: plan.port, mtu, mac: this.vtepMac!, localAddr: underlay.addr, underlayDev: underlay.name,
        learning: plan.learning, gbp: plan.gbp, directRouting: plan.directRouting, lease: lease.subnet, log: this.log,
      });
      await this.kernel.start();
      this.tunName = this.kernel.dev;
      this.checkpoint();
    } else if (plan.kind === 'host-gw') {
      this.hostGw = new HostGw({ dev: underlay.name, log: this.log });
      this.hostGw.start();
    } else if (plan.kind === 'udp' || plan.kind === 'vxlan') {
      const backend: WorkerBackend = plan.kind === 'udp' ? { kind: 'udp' } : {
        kind: 'vxlan', vni: plan.vni, mac: [...this.vtepMac!], port: plan.port, gbp: plan.gbp,
      };
      const tunName = plan.kind === 'udp' ? f.tunName : `flannel.${plan.vni}`;
      await this.setUpDataPlane(workers, plan.port, mtu, lease, conf.network, tunName, backend);
    }
    this.checkpoint();
    this.server = await startControlServer(f.controlSocket, {
      status: () => this.status(),
      crashWorker: f.testHooks && this.supervisor ? (i) => this.supervisor!.crash(i) : null,
    });
    await this.step(this.applyWatch(lease));
    await this.startMasq(conf, lease);
    this.checkpoint();
    if (f.ipBlackholeRoute) await this.startBlackhole(lease);
    const env = formatSubnetEnv({ network: conf.network, subnet: lease.subnet, mtu, ipMasq: f.ipMasq });
    await writeSubnetEnv(f.subnetFile, env);
    await writePublicIpNote(f.subnetFile, lease.subnet, lease.attrs.publicIp);
    this.subnetEnvWritten = true;
    this.ready = true;
    // NetworkUnavailable=False only once the network is really up, as flanneld.
    if (this.kubeStore && f.setNodeNetworkUnavailable) await this.step(this.kubeStore.completeLease());
    this.log.info(`ready: ${readyLine(plan, mode, this.tunName, underlay.name, workers)}, MTU ${mtu}, wrote ${f.subnetFile}`);
    this.renewer = new LeaseRenewer({
      renew: (l) => this.store!.renew(l), marginMs: f.subnetLeaseRenewMargin * 60_000, log: this.log,
      onRenewed: (l) => { this.lease = l; },
      onRevoked: (e) => {
        this.log.error(`our lease was revoked: ${e.message}; stopping`);
        void this.stop(1);
      },
    });
    this.renewer.start(lease);
  }

  /**
   * --ip-blackhole-route: flanneld re-adds the route every --iptables-resync
   * seconds; we also add it at once. Failures are logged when they change.
   */
  private async startBlackhole(lease: Lease): Promise<void> {
    const dst = formatIpv4Prefix(lease.subnet);
    let failing = '';
    const ensure = async (): Promise<void> => {
      try {
        if (await ensureBlackholeRoute(lease.subnet)) {
          this.blackholeAdded = lease.subnet;
          this.log.info(`blackhole route for ${dst} added`);
        }
        failing = '';
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        if (why !== failing) this.log.warn(`blackhole route for ${dst}: ${why}`);
        failing = why;
      }
    };
    await ensure();
    this.blackholeTimer = setInterval(() => void ensure(), this.flags.iptablesResync * 1000);
    this.blackholeTimer.unref();
  }

  private async setUpDataPlane(workers: number, port: number, mtu: number, lease: Lease,
    network: Ipv4Prefix, tunName: string, backend: WorkerBackend): Promise<void> {
    const f = this.flags;
    const want = {
      tun: f.offloads && f.offloadTun,
      gso: f.offloads && f.offloadTun && f.offloadGso,
      gro: f.offloads && f.offloadGro,
      coalesce: f.offloads && f.offloadTun && f.offloadCoalesce,
    };
    // Another owner of the port or the device would share our traffic (a
    // second weft, flanneld, anything bound with SO_REUSEPORT): refuse it
    // before touching either; a TUN would otherwise gain our queues.
    this.refuseForeignSockets(port, new Set());
    if (await linkExists(tunName)) {
      throw new WeftError('EEXIST', `device ${tunName} already exists, so another daemon (flanneld, a second weft) runs this `
        + `backend here, or it is left from one: stop it, or delete the device (ip link del ${tunName})`);
    }
    // Probe before creating anything: a kernel that refuses or mangles an
    // offload gets the plain path for it, and the log says which and why.
    let tunFlags = 0;
    let merge = 0;
    if (want.tun) {
      const p = await probeTunOffload();
      this.log.info(`offload probe (TUN): ${p.detail}`);
      if (p.accepted !== 0 && p.tcpMerge) {
        tunFlags = p.accepted;
        if (want.coalesce) merge = MERGE_TCP | (p.udpMerge ? MERGE_UDP : 0);
      }
    }
    let udp = { gso: false, gro: false };
    if (want.gso || want.gro) {
      const p = probeUdpOffload();
      this.log.info(`offload probe (UDP): ${p.detail}`);
      udp = { gso: want.gso && tunFlags !== 0 && p.gso, gro: want.gro && p.gro };
    }
    this.tunOffloadFlags = tunFlags;
    this.openTunQueues(tunName, workers);
    const setup: TunSetup = { name: this.tunName, lease: lease.subnet, network, mtu, txQueueLen: TUN_TXQUEUELEN, log: this.log };
    this.tunSetup = setup;
    await configureTun(setup);
    for (let i = 0; i < workers; i++) {
      const fd = openUdp({
        addr: this.underlay!.addr, port, reusePort: true, rcvBuf: SOCKET_BUFFER, sndBuf: SOCKET_BUFFER,
      });
      this.udpFds.push(fd);
      if (udp.gro && !udpSetGro(fd, true)) udp.gro = false;
    }
    // Bound between the check above and our bind: a member of our reuseport group too.
    this.refuseForeignSockets(port, new Set(this.udpFds.map((fd) => fstatSync(fd).ino)));
    // flannel peers send everything from port 8285 (8472) to the same
    // port, so the kernel's reuseport hash would give one peer's traffic to
    // one worker; steer by the inner flow instead.
    if (workers > 1) steerByInnerFlow(this.udpFds[0]!, backend.kind === 'udp' ? 0 : VXLAN_OVERHEAD - 28, workers);
    this.offloads = { vnet: tunFlags !== 0, gso: udp.gso, gro: udp.gro, merge };
    const path = this.offloads.vnet || this.offloads.gro ? 'offload' : 'batched-per-packet';
    this.log.info(`data path: ${path} (tun vnet_hdr ${this.offloads.vnet ? `on, TUNSETOFFLOAD 0x${tunFlags.toString(16)}` : 'off'}, `
      + `udp gso ${udp.gso ? 'on' : 'off'}, udp gro ${udp.gro ? 'on' : 'off'}, `
      + `coalesce ${merge === 0 ? 'off' : (merge & MERGE_UDP) !== 0 ? 'tcp+udp' : 'tcp'})`);
    const routes = RouteTableWriter.create({ maxPeers: MAX_PEERS });
    routes.setLocalSubnet(lease.subnet.addr, lease.subnet.len);
    await routes.commit();
    this.routes = routes;
    const { buffer, layout } = createStats(workers, MAX_PEERS);
    this.statsBuf = buffer;
    this.statsLayout = layout;
    for (let i = 0; i < workers; i++) this.wakeFds.push(native.eventfdOpen());
    this.workerBackend = backend;
    await this.startWorkers(Date.now());
    this.tunWatch = new TunWatch({
      expect: () => ({ name: setup.name, ifindex: this.tunIfindex, addr: setup.lease.addr, network: setup.network }),
      repair: (gone) => this.repairTun(gone),
      giveUp: (why) => {
        this.log.error(`${why}: stopping, so that the node's supervisor restarts weft`);
        void this.stop(1);
      },
      log: this.log,
    });
    this.tunWatch.start();
  }

  /** The TUN's queues (one per worker), with the offloads start-up chose. */
  private openTunQueues(name: string, queues: number): void {
    const flags = this.tunOffloadFlags;
    const tun = openTun(name, queues, flags !== 0 ? native.TUN_VNET_HDR : 0);
    this.tunFds = tun.fds;
    this.tunName = tun.name;
    this.tunIfindex = ifindexOf(tun.name);
    // The offload features belong to the device: one call covers every queue.
    if (flags !== 0) tunSetOffload(tun.fds[0]!, flags);
  }

  /** Workers on the current TUN queues and sockets; resolves once they forward (or after the bound). */
  private async startWorkers(lastForwardingAt: number): Promise<void> {
    const routes = this.routes!;
    const supervisor = new Supervisor({
      tunFds: this.tunFds,
      udpFds: this.udpFds,
      wakeFds: this.wakeFds,
      control: createControlBlock(),
      routes: routes.buffer,
      stats: this.statsBuf!,
      maxPeers: MAX_PEERS,
      pathMtu: this.mtu,
      offloads: this.offloads,
      backend: this.workerBackend!,
      keepWarmMs: this.flags.keepWarm,
      onWorkerGone: (i) => {
        routes.releaseReader(i);
        // A deleted TUN shows first as workers exiting (EBADFD): look now, not at the next tick.
        void this.tunWatch?.check();
      },
      lastForwardingAt,
      log: this.log,
    });
    this.supervisor = supervisor;
    routes.setWake(() => supervisor.wake());
    supervisor.start();
    // Each worker warms its JIT before its loop (dataplane/warmup.ts); ready
    // means packets are being forwarded, not queued behind a warm-up.
    if (!(await this.step(supervisor.running(WORKERS_RUNNING_TIMEOUT_MS)))) {
      this.log.warn(`not every worker was forwarding within ${WORKERS_RUNNING_TIMEOUT_MS} ms of its start`);
    }
  }

  /**
   * Puts the TUN back as start-up made it (tun-watch.ts). A deleted device
   * needs new queues: the workers stop, the queues are opened and
   * configured again, and new workers start on them.
   */
  private async repairTun(gone: boolean): Promise<void> {
    if (gone) {
      const last = this.supervisor?.lastForwardingAt() ?? this.workersGoneAt;
      this.workersGoneAt = last;
      await this.supervisor?.stop();
      this.supervisor = null;
      try {
        closeTun(this.tunFds);
      } catch {
        // The queues of a deleted device: nothing left to close cleanly.
      }
      this.tunFds = [];
      this.openTunQueues(this.tunName, this.workerCount);
    }
    await configureTun(this.tunSetup!);
    if (this.supervisor === null) await this.startWorkers(this.workersGoneAt);
  }

  /** Sockets on our port (and address, or any) other than `ours` would receive part of the tunnel traffic. */
  private refuseForeignSockets(port: number, ours: ReadonlySet<number>): void {
    const addr = this.underlay!.addr;
    const foreign = foreignOnPort(port, addr, ours);
    if (foreign.length === 0) return;
    throw new WeftError('EADDRINUSE', `UDP port ${port} on ${formatIpv4(addr)} is already bound by ${foreign.join('; ')}, which would `
      + 'receive part of the tunnel traffic: stop it (a second weft or flanneld on this node?) or give the cluster another Backend.Port');
  }

  /**
   * flannel's masquerade and forward rules. --ip-masq asked for them, so a
   * failure stops start-up; the forward rules alone (on by default) only
   * warn when iptables/nft cannot run, as flanneld does.
   */
  private async startMasq(conf: NetConf, lease: Lease): Promise<void> {
    const f = this.flags;
    if (!f.ipMasq && !f.iptablesForwardRules) return;
    const masq = new MasqRules({
      network: conf.network, lease: lease.subnet, nftables: conf.enableNFTables, masq: f.ipMasq,
      forwardRules: f.iptablesForwardRules, randomFully: !f.ipMasqFullyRandomDisable,
      resyncSeconds: f.iptablesResync, log: this.log,
    });
    try {
      await masq.start();
      this.masq = masq;
    } catch (e) {
      if (f.ipMasq) throw e;
      this.log.warn(`forward rules not installed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async applyWatch(own: Lease): Promise<void> {
    let first: (() => void) | null = null;
    const firstBatch = new Promise<void>((r) => { first = r; });
    this.stopWatch = this.store!.watch(own, (events) => {
      // Events that arrive while a batch is applied wait for the next one, together.
      this.pendingEvents.push(...events);
      if (!this.applyQueued) {
        this.applyQueued = true;
        this.commitChain = this.commitChain.then(() => {
          this.applyQueued = false;
          return this.applyEvents(this.pendingEvents.splice(0));
        }).catch((e: unknown) => {
          this.log.error(`route update failed: ${e instanceof Error ? e.message : String(e)}`);
        });
      }
      if (first) { void this.commitChain.then(first); first = null; }
    }, () => {
      this.log.error(`our lease ${formatIpv4Prefix(own.subnet)} was revoked; stopping`);
      void this.stop(1);
    });
    // Peers known at start are routed before we report ready; an empty
    // cluster sends no first batch, so do not wait long for one.
    await Promise.race([firstBatch, new Promise((r) => setTimeout(r, 1500))]);
  }

  private async applyEvents(events: PeerEvent[]): Promise<void> {
    const plan = this.plan!;
    // alloc routes nothing; its watch only tells us when our lease is revoked.
    if (plan.kind === 'alloc') return;
    const routes = this.routes;
    const port = plan.kind === 'udp' || plan.kind === 'vxlan' ? plan.port : 0;
    const vxlanChanges = new Map<string, VxlanPeer | null>();
    const hostRoutes = new Map<string, HostRoute | null>();
    for (const ev of events) {
      const key = formatIpv4Prefix(ev.lease.subnet);
      const prev = this.peers.get(key);
      const had = this.peers.delete(key);
      const wasIgnored = this.ignored.get(key);
      this.ignored.delete(key);
      routes?.removePeer(key);
      vxlanChanges.set(key, null);
      hostRoutes.set(key, null);
      if (ev.type === 'removed') {
        if (had) this.log.info(`peer ${key} removed`);
        continue;
      }
      const l = ev.lease;
      const at = formatIpv4(l.attrs.publicIp);
      const v = classifyPeer(plan, l.attrs);
      if (!v.ok) {
        this.ignored.set(key, { lease: l, why: v.why, mismatch: v.mismatch });
        // One warning per peer, again only if what is wrong with it changes.
        if (wasIgnored?.why !== v.why) {
          this.log.warn(`ignoring ${v.mismatch ? `non-${plan.kind} ` : ''}subnet ${key} at ${at}: ${v.why}`);
        }
        continue;
      }
      const mac = v.mac;
      let slot = -1;
      if (routes) {
        slot = routes.upsertPeer(key, {
          addr: l.attrs.publicIp, port, subnet: l.subnet.addr, prefixLen: l.subnet.len, ...(mac ? { mac } : {}),
        });
      }
      if (mac) vxlanChanges.set(key, { subnet: l.subnet, publicIp: l.attrs.publicIp, vtepMac: mac });
      hostRoutes.set(key, { dst: l.subnet, gw: l.attrs.publicIp });
      this.peers.set(key, { lease: l, slot, base: prev !== undefined && prev.slot === slot ? prev.base : null });
      this.log.info(`peer ${key} ${ev.type} at ${at}${mac ? ` (VtepMAC ${formatMac(mac)})` : ''}`);
    }
    if (routes) {
      await routes.commit();
      // Every worker has acked: a reused slot counts for its new peer only from here on.
      for (const p of this.peers.values()) p.base ??= this.slotCounters(p.slot);
    }
    if (this.kernel) await this.kernel.update(vxlanChanges);
    if (this.hostGw) await this.hostGw.update(hostRoutes);
    this.log.v(2, `applied ${events.length} peer events: ${this.peers.size} peers routed, ${this.ignored.size} ignored`
      + `${routes ? `, route table epoch ${routes.epoch}` : ''}`);
  }

  private slotCounters(slot: number): PeerCounters {
    return this.statsBuf && this.statsLayout && slot >= 0
      ? peerCounters(this.statsBuf, this.statsLayout, slot) : { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0 };
  }

  /** A peer's counters since it took its slot. */
  private peerCounts(p: PeerState): PeerCounters {
    const c = this.slotCounters(p.slot);
    const b = p.base ?? c;
    return { txPackets: c.txPackets - b.txPackets, txBytes: c.txBytes - b.txBytes, rxPackets: c.rxPackets - b.rxPackets,
      rxBytes: c.rxBytes - b.rxBytes };
  }

  /** Workers of the userspace data path (one wake eventfd each); 0 for the kernel's. */
  private get workerCount(): number {
    return this.wakeFds.length;
  }

  /** /readyz: why pod traffic is not forwarded now, or null. */
  private notReady(): string | null {
    if (!this.ready) return 'no lease / subnet.env not written yet';
    const tun = this.tunWatch?.problems ?? [];
    if (tun.length > 0) return `${this.tunName}: ${tun.join(', ')}; being restored`;
    const want = this.workerCount;
    const n = this.supervisor?.forwardingCount() ?? 0;
    return n < want ? `${n} of ${want} workers forwarding` : null;
  }

  /** /healthz: a data plane whose workers have all been gone for longer than the bound. */
  private notLive(): string | null {
    if (!this.ready || this.workerCount === 0) return null;
    const last = this.supervisor?.lastForwardingAt() ?? this.workersGoneAt;
    const idle = Date.now() - last;
    return idle > LIVENESS_BOUND_MS ? `no worker has forwarded for ${Math.round(idle / 1000)} s` : null;
  }

  status(): MetricsStatus & Record<string, unknown> {
    const stats = this.statsBuf && this.statsLayout
      ? snapshotStats(this.statsBuf, this.statsLayout)
      : { totals: {}, drops: {}, perWorker: [] };
    const notReady = this.notReady();
    return {
      version: VERSION,
      // What /readyz answers, and why not.
      ready: notReady === null,
      notReady,
      leaseRenewals: { ...(this.renewer?.counts ?? { ok: 0, failed: 0 }) },
      store: this.store ? { kind: this.storeKind, errors: this.store.errors } : null,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      backend: this.plan?.kind ?? null,
      mode: this.mode,
      vtepMac: this.vtepMac ? formatMac(this.vtepMac) : null,
      tun: this.tunName,
      mtu: this.mtu,
      lease: this.lease ? {
        subnet: formatIpv4Prefix(this.lease.subnet),
        expiration: new Date(this.lease.expiration).toISOString(),
      } : null,
      publicIp: this.underlay ? formatIpv4(this.underlay.publicIp) : null,
      offloads: {
        tunVnetHdr: this.offloads.vnet,
        tunOffloadFlags: this.tunOffloadFlags,
        udpGso: this.offloads.gso,
        udpGro: this.offloads.gro,
        coalesce: this.offloads.merge !== 0,
        path: this.mode === 'alloc' ? 'none' : this.kernel || this.hostGw ? 'kernel'
          : this.offloads.vnet || this.offloads.gro ? 'offload' : 'batched-per-packet',
      },
      routeEpoch: this.routes?.epoch ?? 0,
      routeCount: this.routes?.routeCount() ?? this.peers.size - (this.hostGw?.failures().length ?? 0),
      workers: this.supervisor?.health() ?? [],
      ignoredPeers: [...this.ignored].map(([key, p]) => ({
        subnet: key, publicIp: formatIpv4(p.lease.attrs.publicIp), backendType: p.lease.attrs.backendType ?? '',
        mismatch: p.mismatch, why: p.why,
      })),
      routeFailures: this.hostGw?.failures() ?? [],
      peers: [...this.peers.entries()].map(([key, p]) => ({
        subnet: key,
        publicIp: formatIpv4(p.lease.attrs.publicIp),
        ...this.peerCounts(p),
      })),
      totals: stats.totals,
      drops: stats.drops,
      // Losses in the kernel before weft sees a packet (full socket buffer, full TUN queue).
      kernelDrops: this.plan?.kind === 'udp' || (this.plan?.kind === 'vxlan' && !this.kernel)
        ? readKernelDrops(this.tunName, this.plan.port) : null,
      perWorker: stats.perWorker,
    };
  }

  /** Stops forwarding and closes everything. Keeps the lease, as flanneld does. */
  async stop(code = 0): Promise<void> {
    if (this.stopped) return;
    if (this.starting) {
      // start() undoes what it did and throws ESTOPPED.
      if (!this.stopping) {
        this.stopping = true;
        this.abortStart();
        void this.store?.close().catch(() => undefined);
      }
      return;
    }
    this.stopped = true;
    this.log.info(`stopped: ${await this.teardown(false)}`);
    this.done(code);
  }

  /**
   * Closes everything; `failedStart` also undoes what a running node keeps
   * (host-gw routes, a kernel VXLAN device made in this run, the blackhole
   * route). Returns what was removed and what was kept, for the last log line.
   */
  private async teardown(failedStart: boolean): Promise<string> {
    const removed: string[] = [];
    const kept: string[] = [];
    this.ready = false;
    // First: a TUN repair under way finishes, and no other starts.
    await this.tunWatch?.stop();
    this.tunWatch = null;
    if (this.blackholeTimer) clearInterval(this.blackholeTimer);
    this.blackholeTimer = null;
    if (this.blackholeAdded) {
      if (failedStart) {
        await removeBlackholeRoute(this.blackholeAdded).catch(() => undefined);
        removed.push('the blackhole route');
      } else {
        kept.push('the blackhole route');
      }
    }
    this.blackholeAdded = null;
    if (this.masq) {
      await this.masq.stop().then(() => removed.push('the masquerade and forward rules'), (e: unknown) => {
        this.log.error(`removing masquerade rules failed: ${e instanceof Error ? e.message : String(e)}`);
      });
    }
    this.masq = null;
    await this.health?.close();
    this.health = null;
    this.renewer?.stop();
    this.stopWatch?.();
    this.stopWatch = null;
    if (this.kernel) {
      const dev = this.kernel.dev;
      if (await this.kernel.stop(failedStart)) removed.push(dev);
      else kept.push(`${dev} and its peer entries (as flanneld leaves them)`);
    }
    this.kernel = null;
    if (this.hostGw) {
      await this.hostGw.stop(failedStart);
      (failedStart ? removed : kept).push('the host-gw routes');
    }
    this.hostGw = null;
    await this.supervisor?.stop();
    this.supervisor = null;
    if (this.server) {
      const s = this.server;
      this.server = null;
      await new Promise<void>((r) => s.close(() => r()));
    }
    for (const fd of [...this.udpFds, ...this.wakeFds]) native.close(fd);
    this.udpFds = [];
    this.wakeFds = [];
    if (this.tunFds.length > 0) {
      closeTun(this.tunFds);
      removed.push(`${this.tunName} (with its address and route)`);
    }
    this.tunFds = [];
    await this.store?.close().catch(() => undefined);
    this.store = null;
    if (this.lease) kept.push(`the lease ${formatIpv4Prefix(this.lease.subnet)}`);
    if (this.subnetEnvWritten) {
      if (failedStart) {
        await unlink(this.flags.subnetFile).catch(() => undefined);
        await unlink(publicIpNotePath(this.flags.subnetFile)).catch(() => undefined);
        removed.push(this.flags.subnetFile);
      } else {
        kept.push(this.flags.subnetFile);
      }
    }
    this.lock?.release();
    this.lock = null;
    return `removed ${removed.length > 0 ? removed.join(', ') : 'nothing'}; kept ${kept.length > 0 ? kept.join(', ') : 'nothing'}`;
  }
}

/** What the ready line says runs the packets. */
function readyLine(plan: BackendPlan, mode: DataMode, dev: string, underlay: string, workers: number): string {
  switch (mode) {
    case 'alloc': return 'alloc (a lease only, no data plane)';
    case 'host-gw': return `host-gw, routes via each peer's PublicIP on ${underlay}`;
    case 'vxlan-kernel': return `vxlan-kernel on ${dev}, forwarding by the kernel, UDP port ${plan.kind === 'vxlan' ? plan.port : 0}`;
    default: return `${mode} on ${dev}, ${workers} workers, UDP port ${plan.kind === 'udp' || plan.kind === 'vxlan' ? plan.port : 0}`;
  }
}
