/**
 * The host-gw backend: one kernel route per peer via its PublicIP, kept in
 * place as flanneld keeps it — every 10 s a missing route is put back, and
 * a route the kernel refuses (a gateway off our segment) is retried. No
 * device and no userspace data path.
 */
import { formatIpv4, formatIpv4Prefix } from '../wire/ipv4-addr.js';
import { applyHostRoutes, isOurRoute, planHostRoutes, readMainRoutes, type HostRoute, type MainRoute } from '../netlink/index.js';
import type { Log } from '../log.js';

/** flanneld's routeCheckRetries × 1 s. */
export const HOST_GW_CHECK_MS = 10_000;
/** A route that keeps failing is logged on its first failure, then once per this many checks. */
const FAILURE_LOG_EVERY = 6;

export interface HostGwOptions {
  /** The underlay device the routes go through. */
  dev: string;
  log: Log;
  checkMs?: number;
}

/** A peer whose route the kernel refuses. */
export interface FailingRoute {
  subnet: string;
  gateway: string;
  error: string;
  attempts: number;
}

interface Failure { error: string; attempts: number }

/** The kernel's words for a gateway that is not on a directly connected network. */
const OFF_SEGMENT = /invalid gateway|Network is unreachable|No route to host/i;

export class HostGw {
  /** Wanted routes by peer subnet text. */
  private readonly routes = new Map<string, HostRoute>();
  /** Subnets whose route is in the kernel as far as we know (for "recovered"). */
  private readonly installed = new Set<string>();
  private readonly failing = new Map<string, Failure>();
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly o: HostGwOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.serialize(() => this.sync([], true)), this.o.checkMs ?? HOST_GW_CHECK_MS);
    this.timer.unref();
  }

  /** Applies peer changes (key = subnet text); null removes. Resolves once the kernel has them. */
  async update(changes: ReadonlyMap<string, HostRoute | null>): Promise<void> {
    const gone: HostRoute[] = [];
    for (const [key, r] of changes) {
      const old = this.routes.get(key);
      if (r === null) {
        if (old !== undefined) gone.push(old);
        this.routes.delete(key);
        this.installed.delete(key);
        this.failing.delete(key);
      } else {
        // A peer whose PublicIP moved: the plan deletes the old route as "in the way".
        if (old !== undefined && old.gw !== r.gw) this.failing.delete(key);
        this.routes.set(key, r);
      }
    }
    await this.serialize(() => this.sync(gone, false));
  }

  /** Peers whose route the kernel refused at the last attempt. */
  failures(): FailingRoute[] {
    return [...this.failing].map(([subnet, f]) => ({
      subnet, gateway: formatIpv4(this.routes.get(subnet)?.gw ?? 0), error: f.error, attempts: f.attempts,
    }));
  }

  /**
   * Stops the checks. The routes stay, as flanneld leaves them, so pods on
   * other nodes keep reaching ours across a restart — unless
   * `removeRoutes` (a start that failed: leave the host as it was).
   */
  async stop(removeRoutes: boolean): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (!removeRoutes) return;
    const all = [...this.routes.values()];
    this.routes.clear();
    await this.serialize(() => this.sync(all, false, true));
  }

  private serialize(fn: () => Promise<unknown>): Promise<unknown> {
    this.chain = this.chain.then(fn).catch((e: unknown) => {
      this.o.log.error(`host-gw: ${e instanceof Error ? e.message : String(e)}`);
    });
    return this.chain;
  }

  /** One pass: remove `gone`, then make the kernel hold every wanted route. */
  private async sync(gone: readonly HostRoute[], check: boolean, stopping = false): Promise<void> {
    if (this.stopped && !stopping) return;
    const dev = this.o.dev;
    const have = await readMainRoutes();
    const del: MainRoute[] = [];
    for (const g of gone) {
      for (const r of have) if (isOurRoute(r, dev, g)) del.push(r);
    }
    const plan = planHostRoutes(dev, [...this.routes.values()], have);
    for (const r of plan.del) {
      const want = this.routes.get(r.dst);
      this.o.log.warn(`host-gw: replacing the route to ${r.dst} (${describe(r)}) with via ${formatIpv4(want?.gw ?? 0)} dev ${dev}`);
    }
    del.push(...plan.del);
    const res = await applyHostRoutes(dev, del, plan.add);
    for (const [dst, why] of res.delFailed) this.o.log.error(`host-gw: deleting the route to ${dst} failed: ${why}`);
    for (const r of plan.add) this.noteAdd(r, res.addFailed.get(formatIpv4Prefix(r.dst)), check);
  }

  private noteAdd(r: HostRoute, raw: string | undefined, check: boolean): void {
    // iproute2 says "Error: Nexthop has invalid gateway."; keep the words.
    const error = raw?.replace(/^Error:\s*/, '').replace(/\.$/, '');
    const key = formatIpv4Prefix(r.dst);
    const route = `${key} via ${formatIpv4(r.gw)} dev ${this.o.dev}`;
    if (error === undefined) {
      const was = this.failing.get(key);
      this.failing.delete(key);
      if (was !== undefined) this.o.log.info(`host-gw: route ${route} added after ${was.attempts} failed attempts`);
      else if (check && this.installed.has(key)) this.o.log.info(`host-gw: route ${route} was missing; recovered`);
      else this.o.log.v(1, `host-gw: route ${route} added`);
      this.installed.add(key);
      return;
    }
    this.installed.delete(key);
    const f = this.failing.get(key) ?? { error, attempts: 0 };
    f.attempts++;
    const changed = f.error !== error;
    f.error = error;
    this.failing.set(key, f);
    if (f.attempts % FAILURE_LOG_EVERY !== 1 && !changed) return;
    const hint = OFF_SEGMENT.test(error)
      ? ` (the peer's PublicIP ${formatIpv4(r.gw)} is not on a network ${this.o.dev} reaches directly, and host-gw needs every `
        + 'node on one L2 segment; for nodes on other segments use the vxlan backend with "DirectRouting": true)'
      : '';
    this.o.log.error(`host-gw: cannot add the route to peer ${key} (${route}; attempt ${f.attempts}, retried every `
      + `${(this.o.checkMs ?? HOST_GW_CHECK_MS) / 1000} s): ${error}${hint}`);
  }
}

function describe(r: MainRoute): string {
  const parts = [r.type === 'unicast' ? '' : r.type, r.gateway !== null ? `via ${r.gateway}` : '', r.dev !== null ? `dev ${r.dev}` : '',
    r.metric !== 0 ? `metric ${r.metric}` : ''];
  return parts.filter((p) => p !== '').join(' ');
}
