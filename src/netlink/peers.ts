/**
 * Per-peer kernel state for the vxlan backend, as flanneld programs it
 * (flannel pkg/backend/vxlan/vxlan_network.go, handleSubnetEvents):
 *
 *   neighbour  <peer subnet .0> lladdr <VtepMAC> dev flannel.<VNI> nud permanent
 *   FDB        <VtepMAC> dev flannel.<VNI> dst <PublicIP> self permanent
 *   route      <peer subnet> via <peer subnet .0> dev flannel.<VNI> onlink
 *
 * added in that order ("the kernel would ARP for the Gw IP address if it
 * hadn't already been set above"), each as a replace (flannel uses
 * NeighSet/RouteReplace, so one FDB entry per VtepMAC). With DirectRouting,
 * a peer whose PublicIP `ip route get` reaches without a gateway (flannel's
 * ip.DirectRouting) gets only `<peer subnet> via <PublicIP>`.
 *
 * weft goes further in one place: its direct routes carry
 * `proto WEFT_ROUTE_PROTO`, so a restarted weft can tell the underlay
 * routes it added from the administrator's and remove stale ones.
 * Everything on flannel.<VNI> is ours by construction and carries
 * flannel's own (default) protocol.
 */
import { WeftError } from '../errors.js';
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { checkDevName, iprouteBatch, iprouteJson, iprouteRaw, parseJsonArray } from './iproute.js';
import { formatMac } from './mac.js';
import type { Log } from '../log.js';

/** rtm_protocol of weft's DirectRouting routes ('W'; unused by the routing daemons in rt_protos). */
export const WEFT_ROUTE_PROTO = 87;

export interface VxlanPeer {
  /** The peer's lease subnet. */
  subnet: Ipv4Prefix;
  /** The peer's PublicIP (uint32 host order). */
  publicIp: number;
  /** VtepMAC from the peer's BackendData. */
  vtepMac: Uint8Array;
}

export interface PeerLink {
  /** The VXLAN device, flannel.<VNI>. */
  dev: string;
  /** net-conf Backend.DirectRouting. */
  directRouting: boolean;
  netns?: string;
  log?: Log;
}

/** The kernel entries for one peer, as text the way iproute2 prints them. */
export interface PeerEntries {
  /** null for a direct-routed peer. */
  neigh: { ip: string; mac: string } | null;
  fdb: { mac: string; dst: string } | null;
  route: { dst: string; via: string; dev: string; onlink: boolean };
}

/**
 * What flanneld would program for `peer` on `dev`; `directDev` is the
 * underlay device when the peer is direct-routed, else null.
 */
export function peerEntries(dev: string, peer: VxlanPeer, directDev: string | null): PeerEntries {
  const dst = formatIpv4Prefix(peer.subnet);
  if (directDev !== null) {
    return { neigh: null, fdb: null, route: { dst, via: formatIpv4(peer.publicIp), dev: directDev, onlink: false } };
  }
  const gw = formatIpv4(peer.subnet.addr);
  const mac = formatMac(peer.vtepMac);
  return {
    neigh: { ip: gw, mac },
    fdb: { mac, dst: formatIpv4(peer.publicIp) },
    route: { dst, via: gw, dev, onlink: true },
  };
}

// `-batch` lines. Adds are replaces: idempotent, and a changed lease
// (new MAC or PublicIP for the same subnet) overwrites in place.
export function neighAddLine(dev: string, n: { ip: string; mac: string }): string {
  return `neigh replace ${n.ip} lladdr ${n.mac} dev ${dev} nud permanent`;
}
export function fdbAddLine(dev: string, f: { mac: string; dst: string }): string {
  return `fdb replace ${f.mac} dev ${dev} dst ${f.dst} self permanent`;
}
export function routeAddLine(r: PeerEntries['route']): string {
  return r.onlink
    ? `route replace ${r.dst} via ${r.via} dev ${r.dev} onlink`
    : `route replace ${r.dst} via ${r.via} dev ${r.dev} proto ${WEFT_ROUTE_PROTO}`;
}
export function neighDelLine(dev: string, ip: string): string {
  return `neigh del ${ip} dev ${dev}`;
}
export function fdbDelLine(dev: string, f: { mac: string; dst: string }): string {
  return `fdb del ${f.mac} dev ${dev} dst ${f.dst} self`;
}
export function routeDelLine(r: KernelRoute): string {
  // dst + metric + table identify an IPv4 route; dev/proto only narrow it.
  return `route del ${r.dst} dev ${r.dev} table main metric ${r.metric}${r.weft ? ` proto ${WEFT_ROUTE_PROTO}` : ''}`;
}

export interface KernelRoute {
  dst: string;
  via: string | null;
  dev: string;
  onlink: boolean;
  metric: number;
  /** Carries WEFT_ROUTE_PROTO (a direct route weft added). */
  weft: boolean;
}

/** What the kernel holds that may be ours. */
export interface KernelPeerState {
  /** Permanent neighbours on the device. */
  neigh: { ip: string; mac: string }[];
  /** Permanent `self` FDB entries with a remote on the device. */
  fdb: { mac: string; dst: string }[];
  /** Main-table routes on the device with a gateway, and weft's direct routes. */
  routes: KernelRoute[];
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});
const strList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function normDst(dst: string): string {
  return dst.includes('/') ? dst : `${dst}/32`;
}

function parseRoute(v: unknown, dev: string | null, weft: boolean): KernelRoute | null {
  const o = obj(v);
  if (typeof o.dst !== 'string' || o.dst === 'default') return null;
  if (o.type !== undefined && o.type !== 'unicast') return null;
  return {
    dst: normDst(o.dst),
    via: typeof o.gateway === 'string' ? o.gateway : null,
    dev: typeof o.dev === 'string' ? o.dev : (dev ?? ''),
    onlink: strList(o.flags).includes('onlink'),
    metric: typeof o.metric === 'number' ? o.metric : 0,
    weft,
  };
}

/** Builds KernelPeerState from `ip -j neigh show dev`, `bridge -j fdb show dev`, `ip -j route show … dev` and `… proto`. */
export function parsePeerState(dev: string, neigh: unknown[], fdb: unknown[], devRoutes: unknown[], weftRoutes: unknown[]): KernelPeerState {
  const s: KernelPeerState = { neigh: [], fdb: [], routes: [] };
  for (const v of neigh) {
    const o = obj(v);
    const state = Array.isArray(o.state) ? strList(o.state) : strList([o.state]);
    if (typeof o.dst !== 'string' || typeof o.lladdr !== 'string' || !state.includes('PERMANENT')) continue;
    s.neigh.push({ ip: o.dst, mac: o.lladdr.toLowerCase() });
  }
  for (const v of fdb) {
    const o = obj(v);
    if (typeof o.mac !== 'string' || typeof o.dst !== 'string') continue;
    if (o.state !== 'permanent' || !strList(o.flags).includes('self')) continue;
    s.fdb.push({ mac: o.mac.toLowerCase(), dst: o.dst });
  }
  for (const v of devRoutes) {
    const r = parseRoute(v, dev, false);
    // A route on the device without a gateway is not a peer route (weft
    // never adds one there); protocol kernel/dhcp/… routes are not ours.
    const proto = obj(v).protocol;
    if (r !== null && r.via !== null && (proto === undefined || proto === 'boot')) s.routes.push(r);
  }
  for (const v of weftRoutes) {
    const r = parseRoute(v, null, true);
    if (r !== null) s.routes.push(r);
  }
  return s;
}

export async function readPeerState(dev: string, netns?: string): Promise<KernelPeerState> {
  checkDevName(dev);
  const [neigh, fdb, devRoutes, weftRoutes] = await Promise.all([
    iprouteJson('ip', ['-4', 'neigh', 'show', 'dev', dev], netns),
    iprouteJson('bridge', ['fdb', 'show', 'dev', dev], netns),
    iprouteJson('ip', ['-4', 'route', 'show', 'table', 'main', 'dev', dev], netns),
    iprouteJson('ip', ['-4', 'route', 'show', 'table', 'main', 'proto', String(WEFT_ROUTE_PROTO)], netns),
  ]);
  return parsePeerState(dev, neigh, fdb, devRoutes, weftRoutes);
}

export interface PeerChanges {
  /** `bridge -batch` lines: deletions first, then replaces. */
  bridge: string[];
  /** `ip -batch` lines: route and neighbour deletions, then neighbour and route replaces. */
  ip: string[];
  removed: number;
  added: number;
}

/** The commands that turn `state` into exactly `desired` (pure; the reconcile's core). */
export function diffPeers(dev: string, desired: readonly PeerEntries[], state: KernelPeerState): PeerChanges {
  const wantNeigh = new Map<string, string>();
  const wantFdb = new Set<string>();
  const wantRoute = new Map<string, PeerEntries['route']>();
  for (const e of desired) {
    if (e.neigh !== null) wantNeigh.set(e.neigh.ip, e.neigh.mac);
    if (e.fdb !== null) wantFdb.add(`${e.fdb.mac} ${e.fdb.dst}`);
    wantRoute.set(e.route.dst, e.route);
  }
  const fdbDel: string[] = [];
  const fdbAdd: string[] = [];
  const routeDel: string[] = [];
  const neighDel: string[] = [];
  const neighAdd: string[] = [];
  const routeAdd: string[] = [];

  const haveFdb = new Set<string>();
  for (const f of state.fdb) {
    const key = `${f.mac} ${f.dst}`;
    haveFdb.add(key);
    if (!wantFdb.has(key)) fdbDel.push(fdbDelLine(dev, f));
  }
  const haveNeigh = new Map<string, string>();
  for (const n of state.neigh) {
    haveNeigh.set(n.ip, n.mac);
    // A wanted IP with another MAC is fixed by the replace below.
    if (!wantNeigh.has(n.ip)) neighDel.push(neighDelLine(dev, n.ip));
  }
  const routeOk = new Set<string>();
  for (const r of state.routes) {
    const w = wantRoute.get(r.dst);
    const exact = w !== undefined && r.metric === 0 && w.via === r.via && w.dev === r.dev && w.onlink === r.onlink && r.weft === !w.onlink;
    if (exact) {
      routeOk.add(r.dst);
      continue;
    }
    // A wrong route with metric 0 for a wanted subnet is overwritten by the
    // replace (same dst, tos, metric, table): no gap in between.
    if (w !== undefined && r.metric === 0) continue;
    routeDel.push(routeDelLine(r));
  }
  for (const e of desired) {
    if (e.fdb !== null && !haveFdb.has(`${e.fdb.mac} ${e.fdb.dst}`)) fdbAdd.push(fdbAddLine(dev, e.fdb));
    if (e.neigh !== null && haveNeigh.get(e.neigh.ip) !== e.neigh.mac) neighAdd.push(neighAddLine(dev, e.neigh));
    if (!routeOk.has(e.route.dst)) routeAdd.push(routeAddLine(e.route));
  }
  return {
    bridge: [...fdbDel, ...fdbAdd],
    ip: [...routeDel, ...neighDel, ...neighAdd, ...routeAdd],
    removed: fdbDel.length + routeDel.length + neighDel.length,
    added: fdbAdd.length + neighAdd.length + routeAdd.length,
  };
}

/**
 * For each PublicIP: the device the kernel reaches it through when that
 * needs no gateway (flannel's ip.DirectRouting), else null. One `ip` process
 * for all of them; an unreachable address is logged and not direct.
 */
export async function directRoutes(publicIps: readonly number[], netns?: string, log?: Log): Promise<Map<number, string | null>> {
  const res = new Map<number, string | null>();
  const unique = [...new Set(publicIps)];
  if (unique.length === 0) return res;
  const input = unique.map((a) => `route get ${formatIpv4(a)}`).join('\n') + '\n';
  // -force: one unreachable address must not hide the answers for the rest;
  // each answer names its dst, so the lines need not align.
  const r = await iprouteRaw('ip', ['-j', '-force', '-batch', '-'], { netns, input });
  const byDst = new Map<string, string | null>();
  for (const line of r.stdout.split('\n')) {
    if (line.trim() === '') continue;
    for (const v of parseJsonArray(line, 'ip -j route get')) {
      const o = obj(v);
      if (typeof o.dst !== 'string') continue;
      const local = o.type === 'local' || o.dev === 'lo';
      byDst.set(o.dst, typeof o.gateway === 'string' || local || typeof o.dev !== 'string' ? null : o.dev);
    }
  }
  for (const a of unique) {
    const t = formatIpv4(a);
    if (!byDst.has(t)) log?.warn(`DirectRouting: couldn't look up the route to ${t}: ${r.stderr.trim().split('\n')[0] ?? ''}`);
    res.set(a, byDst.get(t) ?? null);
  }
  return res;
}

function checkPeer(p: VxlanPeer): void {
  if (p.vtepMac.length !== 6) throw new WeftError('EBADMAC', `peer ${formatIpv4Prefix(p.subnet)}: VtepMAC must have 6 bytes`);
}

async function plan(link: PeerLink, peers: readonly VxlanPeer[]): Promise<PeerEntries[]> {
  checkDevName(link.dev);
  peers.forEach(checkPeer);
  const direct = link.directRouting ? await directRoutes(peers.map((p) => p.publicIp), link.netns, link.log) : null;
  return peers.map((p) => peerEntries(link.dev, p, direct?.get(p.publicIp) ?? null));
}

async function apply(link: PeerLink, ch: PeerChanges): Promise<void> {
  // FDB first: an onlink route or neighbour without the FDB entry would
  // send the first packets nowhere; the kernel needs all three anyway.
  await iprouteBatch('bridge', ch.bridge, link.netns);
  await iprouteBatch('ip', ch.ip, link.netns);
}

/** Programs one peer (replace: idempotent, and a changed lease overwrites in place). */
export async function addPeer(link: PeerLink, peer: VxlanPeer): Promise<PeerEntries> {
  const [e] = await plan(link, [peer]);
  const entries = e as PeerEntries;
  const ip: string[] = [];
  if (entries.neigh !== null) ip.push(neighAddLine(link.dev, entries.neigh));
  ip.push(routeAddLine(entries.route));
  await apply(link, { bridge: entries.fdb !== null ? [fdbAddLine(link.dev, entries.fdb)] : [], ip, removed: 0, added: ip.length + (entries.fdb !== null ? 1 : 0) });
  return entries;
}

/**
 * Deletes exactly the entries `peer` accounts for, in whichever form
 * (VXLAN or direct) the kernel holds them; returns how many. The FDB entry
 * stays while another neighbour still uses the same VtepMAC (a node whose
 * lease changed subnet keeps its MAC).
 */
export async function removePeer(link: PeerLink, peer: VxlanPeer): Promise<number> {
  checkDevName(link.dev);
  checkPeer(peer);
  const st = await readPeerState(link.dev, link.netns);
  const dst = formatIpv4Prefix(peer.subnet);
  const gw = formatIpv4(peer.subnet.addr);
  const pub = formatIpv4(peer.publicIp);
  const mac = formatMac(peer.vtepMac);
  const ip: string[] = [];
  const bridge: string[] = [];
  for (const r of st.routes) {
    if (r.dst !== dst) continue;
    const vx = !r.weft && r.dev === link.dev && r.via === gw;
    const direct = r.weft && r.via === pub;
    if (vx || direct) ip.push(routeDelLine(r));
  }
  for (const n of st.neigh) if (n.ip === gw && n.mac === mac) ip.push(neighDelLine(link.dev, n.ip));
  const macInUse = st.neigh.some((n) => n.mac === mac && n.ip !== gw);
  if (!macInUse) for (const f of st.fdb) if (f.mac === mac && f.dst === pub) bridge.push(fdbDelLine(link.dev, f));
  // Route before neighbour (the reverse of adding), then the FDB entry.
  await iprouteBatch('ip', ip, link.netns);
  await iprouteBatch('bridge', bridge, link.netns);
  return ip.length + bridge.length;
}

/**
 * Makes the kernel hold exactly the entries for `desired` (and nothing
 * stale: neighbours, FDB entries and gateway routes on the device, weft's
 * direct routes on the underlay). Use at start, after recreating the
 * device, and whenever the lease list was re-read.
 */
export async function syncPeers(link: PeerLink, desired: readonly VxlanPeer[]): Promise<{ added: number; removed: number }> {
  const want = await plan(link, desired);
  const st = await readPeerState(link.dev, link.netns);
  const ch = diffPeers(link.dev, want, st);
  await apply(link, ch);
  return { added: ch.added, removed: ch.removed };
}
