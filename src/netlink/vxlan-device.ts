/**
 * The kernel VXLAN device `flannel.<VNI>`, created as flanneld's vxlan
 * backend creates it (flannel pkg/backend/vxlan/device.go):
 *
 *   ip link add flannel.<VNI> mtu <MTU> address <VtepMAC> type vxlan
 *      id <VNI> local <underlay IP> dev <underlay> dstport <Port>
 *      nolearning            (learning when Learning)
 *      [gbp]                 (when GBP)
 *   sysctl net/ipv6/conf/flannel.<VNI>/accept_ra=0
 *   ip addr <lease network address>/32 ; ip link set up
 *
 * flanneld sends no other vxlan attributes than those (its TTL/TOS/proxy/
 * l2miss/l3miss values are the kernel defaults), so the device attributes
 * `ip -d link` shows are the same whichever of the two created it.
 */
import { WeftError, isWeftError } from '../errors.js';
import { VXLAN_PORT_LINUX } from '../wire/constants.js';
import { formatIpv4, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { checkDevName, iproute, iprouteBatch, iprouteJson, writeNetSysctl } from './iproute.js';
import { checkVtepMac, formatMac } from './mac.js';
import type { Log } from '../log.js';
import { foreignOnPort } from '../conn/port-owners.js';


/** Largest VNI (24 bits). */
export const VNI_MAX = 0xffffff;

export interface VxlanDeviceOptions {
  vni: number;
  /** Default `flannel.<VNI>`. */
  name?: string;
  /** Local underlay IPv4 address (uint32), the VTEP source. */
  localAddr: number;
  /** Underlay interface name. */
  underlayDev: string;
  /** UDP port; 0 or absent = the Linux default 8472 (as flannel's Port 0). */
  port?: number;
  /** Device MTU: the underlay MTU − 50, computed by the caller. */
  mtu: number;
  /** VtepMAC: kept across restarts through the published backend data. */
  mac: Uint8Array;
  learning?: boolean;
  gbp?: boolean;
  netns?: string;
  log?: Log;
}

export interface EnsureResult {
  /** A device was created (also true after a replace). */
  created: boolean;
  /** An existing, incompatible device of that name was deleted first. */
  replaced: boolean;
  ifindex: number;
}

/** What `ip -d -j link show` says about a device. */
export interface LinkFacts {
  ifindex: number;
  name: string;
  mtu: number;
  mac: string;
  up: boolean;
  /** linkinfo.info_kind; null for a device without one (e.g. TUN shows "tun"). */
  kind: string | null;
  vxlan: {
    id: number;
    local: string | null;
    port: number;
    /** Underlay device name (null when none or in another namespace). */
    link: string | null;
    learning: boolean;
    gbp: boolean;
  } | null;
}

export function vxlanDeviceName(vni: number): string {
  return `flannel.${vni}`;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

/** Parses one element of `ip -d -j link show` output. */
export function parseLinkFacts(v: unknown): LinkFacts {
  const o = obj(v);
  const info = obj(o.linkinfo);
  const kind = str(info.info_kind);
  const data = obj(info.info_data);
  const flags = Array.isArray(o.flags) ? (o.flags as unknown[]) : [];
  return {
    ifindex: num(o.ifindex) ?? 0,
    name: str(o.ifname) ?? '',
    mtu: num(o.mtu) ?? 0,
    mac: str(o.address) ?? '',
    up: flags.includes('UP'),
    kind,
    vxlan: kind !== 'vxlan' ? null : {
      id: num(data.id) ?? -1,
      local: str(data.local),
      port: num(data.port) ?? 0,
      link: str(data.link),
      // iproute2 prints "learning": true/false; older versions print only
      // the key when set.
      learning: data.learning === true,
      gbp: data.gbp === true,
    },
  };
}

/** Facts about `name`, or null when no such device exists. */
export async function readLink(name: string, netns?: string): Promise<LinkFacts | null> {
  checkDevName(name);
  try {
    const arr = await iprouteJson('ip', ['-d', 'link', 'show', 'dev', name], netns);
    return arr.length === 0 ? null : parseLinkFacts(arr[0]);
  } catch (e) {
    if (isWeftError(e, 'ENODEV')) return null;
    throw e;
  }
}

function resolvedPort(port: number | undefined): number {
  return port === undefined || port === 0 ? VXLAN_PORT_LINUX : port;
}

/**
 * Why an existing device cannot be reused ('' = it can), in flannel's
 * words (vxlanLinksIncompat). flannel ignores Learning; we compare it too:
 * a learning device on a nolearning config would fill its FDB from traffic.
 */
export function vxlanIncompat(have: LinkFacts, want: VxlanDeviceOptions): string {
  if (have.kind !== 'vxlan' || have.vxlan === null) return `link type: ${have.kind ?? 'unknown'} vs vxlan`;
  const v = have.vxlan;
  if (v.id !== want.vni) return `vni: ${v.id} vs ${want.vni}`;
  if (v.link !== want.underlayDev) return `vtep (external) interface: ${v.link ?? 'none'} vs ${want.underlayDev}`;
  const local = formatIpv4(want.localAddr);
  if (v.local !== local) return `vtep (external) IP: ${v.local ?? 'none'} vs ${local}`;
  const port = resolvedPort(want.port);
  if (v.port !== port) return `port: ${v.port} vs ${port}`;
  if (v.learning !== (want.learning === true)) return `learning: ${v.learning} vs ${want.learning === true}`;
  if (v.gbp !== (want.gbp === true)) return `gbp: ${v.gbp} vs ${want.gbp === true}`;
  return '';
}

/** The `ip link add` arguments flanneld's netlink request amounts to. */
export function vxlanCreateArgs(o: VxlanDeviceOptions): string[] {
  const name = o.name ?? vxlanDeviceName(o.vni);
  const args = ['link', 'add', name, 'mtu', String(o.mtu), 'address', formatMac(o.mac), 'type', 'vxlan',
    'id', String(o.vni), 'local', formatIpv4(o.localAddr), 'dev', o.underlayDev,
    'dstport', String(resolvedPort(o.port)), o.learning === true ? 'learning' : 'nolearning'];
  if (o.gbp === true) args.push('gbp');
  return args;
}

function checkOptions(o: VxlanDeviceOptions): string {
  if (!Number.isInteger(o.vni) || o.vni < 0 || o.vni > VNI_MAX) throw new WeftError('EVXLAN', `VNI ${o.vni} must be 0..${VNI_MAX}`);
  const port = resolvedPort(o.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new WeftError('EVXLAN', `VXLAN port ${o.port} must be 1..65535 (0 = 8472)`);
  if (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535) throw new WeftError('EVXLAN', `VXLAN device MTU ${o.mtu} must be 68..65535`);
  checkVtepMac(o.mac);
  const name = o.name ?? vxlanDeviceName(o.vni);
  checkDevName(name);
  checkDevName(o.underlayDev);
  return name;
}

async function createDevice(o: VxlanDeviceOptions, name: string): Promise<void> {
  try {
    await iproute('ip', vxlanCreateArgs(o), { netns: o.netns });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new WeftError('EVXLAN', `cannot create VXLAN device ${name}: ${msg}`, { cause: e });
  }
  // As flanneld: no router advertisements taken on the overlay device.
  await writeNetSysctl(`/proc/sys/net/ipv6/conf/${name}/accept_ra`, '0', o.netns);
}

/**
 * Creates `flannel.<VNI>`, or reuses a compatible device of that name
 * (setting MTU and MAC), or deletes an incompatible one and creates it anew
 * (logging why). Leaves the device up.
 */
export async function ensureVxlanDevice(o: VxlanDeviceOptions): Promise<EnsureResult> {
  const name = checkOptions(o);
  const log = o.log;
  let created = false;
  let replaced = false;
  const have = await readLink(name, o.netns);
  if (have === null) {
    await createDevice(o, name);
    created = true;
  } else {
    const why = vxlanIncompat(have, o);
    if (why === '') {
      const mac = formatMac(o.mac);
      const set: string[] = [];
      if (have.mtu !== o.mtu) set.push('mtu', String(o.mtu));
      if (have.mac.toLowerCase() !== mac) set.push('address', mac);
      if (set.length > 0) await iproute('ip', ['link', 'set', 'dev', name, ...set], { netns: o.netns });
      log?.info(`reusing VXLAN device ${name} (ifindex ${have.ifindex})${set.length > 0 ? `; set ${set.join(' ')}` : ''}`);
    } else {
      log?.warn(`${name} already exists with incompatible configuration: ${why}; recreating device`);
      await iproute('ip', ['link', 'del', 'dev', name], { netns: o.netns });
      await createDevice(o, name);
      created = true;
      replaced = true;
    }
  }
  try {
    await iproute('ip', ['link', 'set', 'dev', name, 'up'], { netns: o.netns });
  } catch (e) {
    // Up is where the kernel binds the UDP port; a device made here must not outlive the failure.
    if (created) await iproute('ip', ['link', 'del', 'dev', name], { netns: o.netns }).catch(() => undefined);
    const msg = e instanceof Error ? e.message : String(e);
    if (!/Address already in use/.test(msg)) throw e;
    const port = resolvedPort(o.port);
    const owners = o.netns === undefined ? foreignOnPort(port, o.localAddr, new Set()) : [];
    throw new WeftError('EADDRINUSE', `VXLAN device ${name} cannot bind UDP port ${port}: it is already bound`
      + `${owners.length > 0 ? ` by ${owners.join('; ')}` : ''}. Stop the other VXLAN endpoint (flanneld, another weft, `
      + 'a userspace VTEP) or give this cluster another Backend.Port', { cause: e });
  }
  const now = await readLink(name, o.netns);
  if (now === null) throw new WeftError('EVXLAN', `VXLAN device ${name} vanished while it was being set up`);
  return { created, replaced, ifindex: now.ifindex };
}

/**
 * Gives `name` the lease's network address as /32 (flannel: "so that no
 * broadcast routes are created"; the address is the source for host-to-pod
 * traffic) and removes every other IPv4 address from it.
 */
export async function setDeviceAddress(name: string, lease: Ipv4Prefix, netns?: string): Promise<void> {
  checkDevName(name);
  const want = formatIpv4(lease.addr);
  const arr = await iprouteJson('ip', ['-4', 'addr', 'show', 'dev', name], netns);
  const lines: string[] = [];
  let have = false;
  for (const link of arr) {
    for (const a of (obj(link).addr_info as unknown[] | undefined) ?? []) {
      const ai = obj(a);
      if (ai.family !== 'inet') continue;
      if (ai.local === want && ai.prefixlen === 32) have = true;
      else lines.push(`addr del ${String(ai.local)}/${String(ai.prefixlen)} dev ${name}`);
    }
  }
  if (!have) lines.push(`addr add ${want}/32 dev ${name}`);
  await iprouteBatch('ip', lines, netns);
}

export interface DeviceWatch {
  stop(): void;
}

export interface WatchOptions {
  netns?: string;
  /** Default 1000 ms. */
  intervalMs?: number;
  /** Called with a read error (the watch keeps polling). */
  onError?: (e: unknown) => void;
}

/**
 * Calls `onGone` once when `name` disappears or is replaced by another
 * device of the same name (its ifindex changes: our neighbours, FDB entries
 * and routes went with the old one), then stops. The caller recreates the
 * device, re-adds its peers and watches again.
 *
 * Polling `ip link show` once a second, rather than a long-lived
 * `ip monitor`, keeps nothing running between polls and cannot miss an
 * event while a child restarts; one second is well inside what flannel
 * users notice (flanneld itself does not notice at all).
 */
export function watchDevice(name: string, onGone: () => void, opts: WatchOptions = {}): DeviceWatch {
  checkDevName(name);
  const interval = opts.intervalMs ?? 1000;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let ifindex = -1;
  const poll = async (): Promise<void> => {
    timer = null;
    if (stopped) return;
    try {
      const l = await readLink(name, opts.netns);
      if (stopped) return;
      if (ifindex === -1 && l !== null) ifindex = l.ifindex;
      if (l === null || l.ifindex !== ifindex) {
        stopped = true;
        onGone();
        return;
      }
    } catch (e) {
      opts.onError?.(e);
    }
    if (!stopped) {
      // Not unref'd: a watch keeps the process alive until stop().
      timer = setTimeout(() => void poll(), interval);
    }
  };
  void poll();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}

/**
 * For Mode auto: can this kernel create a vxlan link here? Creates and at
 * once deletes `wxprobe<pid>` (VNI 16777215, no underlay), so neither
 * flannel.<VNI> nor any traffic is touched.
 */
export async function canCreateVxlan(netns?: string): Promise<boolean> {
  const name = `wxprobe${process.pid % 100_000_000}`;
  // A probe left by a crashed run of the same pid would make the add fail.
  await iproute('ip', ['link', 'del', 'dev', name], { netns }).catch(() => undefined);
  try {
    await iproute('ip', ['link', 'add', name, 'type', 'vxlan', 'id', String(VNI_MAX), 'dstport', '0'], { netns });
  } catch {
    return false;
  }
  await iproute('ip', ['link', 'del', 'dev', name], { netns }).catch(() => undefined);
  return true;
}
