/**
 * The kernel routes of the host-gw backend, as flanneld programs them
 * (pkg/backend/route_network.go): per peer `<subnet> via <PublicIP> dev
 * <underlay>` in the main table — protocol boot, scope universe, no
 * metric, no onlink, exactly what `ip route add` makes — after deleting any
 * main-table route to the same destination through another gateway or
 * device. Also the blackhole route of --ip-blackhole-route.
 *
 * Planning is pure (tests feed it `ip -j route` output); applying is one
 * `ip -force -batch` so one peer's unreachable gateway does not hold up
 * the others.
 */
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { WeftError } from '../errors.js';
import { checkDevName, iprouteBatchEach, iprouteJson } from './iproute.js';

/** A route host-gw wants: its destination through `gw` on the underlay. */
export interface HostRoute {
  dst: Ipv4Prefix;
  /** The peer's PublicIP (uint32). */
  gw: number;
}

/** A main-table route as `ip -j route show table main` prints it. */
export interface MainRoute {
  /** "unicast", "blackhole", … */
  type: string;
  /** "10.244.2.0/24" (iproute2 prints host routes without "/32"). */
  dst: string;
  gateway: string | null;
  dev: string | null;
  metric: number;
}

type Obj = Record<string, unknown>;

export function parseMainRoutes(json: readonly unknown[]): MainRoute[] {
  const out: MainRoute[] = [];
  for (const e of json) {
    if (typeof e !== 'object' || e === null) continue;
    const r = e as Obj;
    if (typeof r['dst'] !== 'string') continue;
    const dst = r['dst'] === 'default' || r['dst'].includes('/') ? r['dst'] : `${r['dst']}/32`;
    out.push({
      type: typeof r['type'] === 'string' ? r['type'] : 'unicast',
      dst,
      gateway: typeof r['gateway'] === 'string' ? r['gateway'] : null,
      dev: typeof r['dev'] === 'string' ? r['dev'] : null,
      metric: typeof r['metric'] === 'number' ? r['metric'] : 0,
    });
  }
  return out;
}

/** flannel's routeEqual: same destination, gateway and device. */
export function isOurRoute(r: MainRoute, dev: string, want: HostRoute): boolean {
  return r.type === 'unicast' && r.dst === formatIpv4Prefix(want.dst) && r.gateway === formatIpv4(want.gw) && r.dev === dev;
}

export interface RoutePlan {
  /** Routes in the way: same destination as a wanted one, another gateway, device or type. */
  del: MainRoute[];
  /** Wanted routes the kernel lacks. */
  add: HostRoute[];
}

/** What turns `have` into a table holding every `want` route (and nothing else to those destinations). */
export function planHostRoutes(dev: string, want: readonly HostRoute[], have: readonly MainRoute[]): RoutePlan {
  const byDst = new Map<string, MainRoute[]>();
  for (const r of have) {
    const list = byDst.get(r.dst);
    if (list === undefined) byDst.set(r.dst, [r]);
    else list.push(r);
  }
  const plan: RoutePlan = { del: [], add: [] };
  for (const w of want) {
    const existing = byDst.get(formatIpv4Prefix(w.dst)) ?? [];
    const ours = existing.find((r) => isOurRoute(r, dev, w));
    for (const r of existing) if (r !== ours) plan.del.push(r);
    if (ours === undefined) plan.add.push(w);
  }
  return plan;
}

export function routeAddLine(dev: string, r: HostRoute): string {
  // replace, not add: a route the plan deleted may still be there when the
  // delete line failed; the result is the same route `ip route add` makes.
  return `route replace ${formatIpv4Prefix(r.dst)} via ${formatIpv4(r.gw)} dev ${dev}`;
}

export function routeDelLine(r: MainRoute): string {
  const type = r.type === 'unicast' ? '' : `${r.type} `;
  return `route del ${type}${r.dst}${r.gateway !== null ? ` via ${r.gateway}` : ''}`
    + `${r.dev !== null ? ` dev ${r.dev}` : ''} table main metric ${r.metric}`;
}

export async function readMainRoutes(netns?: string): Promise<MainRoute[]> {
  return parseMainRoutes(await iprouteJson('ip', ['route', 'show', 'table', 'main'], netns));
}

/** The outcome of applying a plan: what failed, keyed by destination ("10.244.2.0/24"). */
export interface ApplyResult {
  addFailed: Map<string, string>;
  delFailed: Map<string, string>;
}

/** Deletes `del` (in the way, or of peers gone), then adds `add`; every line runs. */
export async function applyHostRoutes(dev: string, del: readonly MainRoute[], add: readonly HostRoute[],
  netns?: string): Promise<ApplyResult> {
  checkDevName(dev);
  const lines = [...del.map(routeDelLine), ...add.map((r) => routeAddLine(dev, r))];
  const failed = await iprouteBatchEach('ip', lines, netns);
  const result: ApplyResult = { addFailed: new Map(), delFailed: new Map() };
  for (const [n, why] of failed) {
    const i = n - 1;
    if (i < del.length) result.delFailed.set(del[i]!.dst, why);
    else if (i - del.length < add.length) result.addFailed.set(formatIpv4Prefix(add[i - del.length]!.dst), why);
  }
  return result;
}

/**
 * --ip-blackhole-route: a blackhole route for our subnet unless one is
 * there (flanneld's AddBlackholeV4Route). Throws what iproute2 said.
 */
export async function ensureBlackholeRoute(subnet: Ipv4Prefix, netns?: string): Promise<boolean> {
  const dst = formatIpv4Prefix(subnet);
  const have = parseMainRoutes(await iprouteJson('ip', ['route', 'show', 'table', 'main', 'exact', dst], netns));
  if (have.some((r) => r.type === 'blackhole')) return false;
  const failed = await iprouteBatchEach('ip', [`route add blackhole ${dst}`], netns);
  const why = failed.get(1);
  if (why !== undefined) throw new WeftError('EIPROUTE', `ip route add blackhole ${dst} failed: ${why}`);
  return true;
}

/** Undoes ensureBlackholeRoute (a start that failed after adding it). */
export async function removeBlackholeRoute(subnet: Ipv4Prefix, netns?: string): Promise<void> {
  await iprouteBatchEach('ip', [`route del blackhole ${formatIpv4Prefix(subnet)} table main`], netns);
}
