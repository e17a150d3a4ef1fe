/**
 * Which backend this node runs, decided once at start-up from net-conf and
 * the kernel: flannel's udp backend; VXLAN run by weft's userspace VTEP or
 * by the kernel (programmed through iproute2); host-gw (kernel routes via
 * each peer's PublicIP); or alloc (a lease and nothing else). Everything
 * here is control plane.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { WeftError } from '../errors.js';
import { FLANNEL_UDP_OVERHEAD, VXLAN_OVERHEAD, VXLAN_PORT_LINUX } from '../wire/constants.js';
import { formatMac } from '../wire/ethernet.js';
import { formatIpv4 } from '../wire/ipv4-addr.js';
import type { NetConf } from '../config/net-conf.js';
import type { LeaseAttrs } from '../subnet/lease.js';

export type BackendPlan =
  | { kind: 'udp'; port: number; overhead: number; mtuOverride: number }
  | {
    kind: 'vxlan'; vni: number; port: number; gbp: boolean; learning: boolean; directRouting: boolean;
    mode: 'auto' | 'kernel' | 'userspace'; overhead: number; mtuOverride: number;
  }
  // No tunnel: FLANNEL_MTU is the underlay's.
  | { kind: 'host-gw' | 'alloc'; overhead: 0; mtuOverride: 0 };

export type DataMode = 'udp' | 'vxlan-userspace' | 'vxlan-kernel' | 'host-gw' | 'alloc';

/** The backends weft runs, for messages. */
export const IMPLEMENTED_BACKENDS = ['udp', 'vxlan', 'host-gw', 'alloc'] as const;

/**
 * Backend.Mode resolved: "auto" means the kernel when it can create a
 * vxlan link here. `why` is for the start-up log.
 */
export async function chooseVxlanMode(mode: 'auto' | 'kernel' | 'userspace',
  canCreateVxlan: () => Promise<boolean>): Promise<{ mode: DataMode; why: string }> {
  if (mode === 'kernel') return { mode: 'vxlan-kernel', why: 'Backend.Mode "kernel"' };
  if (mode === 'userspace') return { mode: 'vxlan-userspace', why: 'Backend.Mode "userspace"' };
  return await canCreateVxlan()
    ? { mode: 'vxlan-kernel', why: 'Backend.Mode "auto": the kernel can create a vxlan link' }
    : { mode: 'vxlan-userspace', why: 'Backend.Mode "auto": the kernel cannot create a vxlan link here' };
}

/** The start-up log line for a mode choice (quoted in docs/troubleshooting.md). */
export function vxlanModeLine(choice: { mode: DataMode; why: string }): string {
  return `vxlan mode ${choice.mode === 'vxlan-kernel' ? 'kernel' : 'userspace'} (${choice.why})`;
}

/**
 * The backend net-conf asks for, or a clear error for the ones weft does
 * not implement. `source` names where the net-conf was read (a file, or an
 * etcd key) so the message says what to edit.
 */
export function planBackend(conf: NetConf, source: string): BackendPlan {
  const b = conf.backend;
  if (b.type === 'udp') return { kind: 'udp', port: b.port, overhead: FLANNEL_UDP_OVERHEAD, mtuOverride: 0 };
  if (b.type === 'vxlan') {
    return {
      kind: 'vxlan', vni: b.vni, port: b.port === 0 ? VXLAN_PORT_LINUX : b.port, gbp: b.gbp, learning: b.learning,
      directRouting: b.directRouting, mode: b.mode, overhead: VXLAN_OVERHEAD, mtuOverride: b.mtu,
    };
  }
  if (b.type === 'host-gw' || b.type === 'alloc') return { kind: b.type, overhead: 0, mtuOverride: 0 };
  const runs = IMPLEMENTED_BACKENDS.map((t) => `"${t}"`).join(', ');
  throw new WeftError('EBACKEND', `backend type "${b.type}" is not implemented by weft, which runs ${runs}: `
    + `set "Backend": {"Type": "vxlan"} (or another of those) in ${source}`);
}

/**
 * flannel's host-gw refuses a PublicIP other than the interface's: peers
 * route via the PublicIP, which must be this host on their segment.
 */
export function checkHostGwPublicIp(publicIp: number, ifaceAddr: number, ifaceName: string): void {
  if (publicIp === ifaceAddr) return;
  throw new WeftError('EBACKEND', 'your PublicIP differs from interface IP, meaning that probably you\'re on a NAT, '
    + `which is not supported by host-gw backend (public IP ${formatIpv4(publicIp)}, ${ifaceName} has ${formatIpv4(ifaceAddr)}): `
    + 'drop --public-ip (or the node-public-ip annotation), or use the vxlan backend');
}

/**
 * Our VtepMAC: locally administered, unicast, and the same on every start
 * of this node (a restart must not make peers relearn it). Derived from the
 * machine id, the public IP and the VNI, so two nodes sharing a machine
 * (network namespaces) still differ.
 */
export function stableVtepMac(publicIp: number, vni: number): Uint8Array {
  let machine = '';
  try {
    machine = readFileSync('/etc/machine-id', 'utf8').trim();
  } catch {
    machine = hostname();
  }
  const h = createHash('sha256').update(`weft-vtep\0${machine}\0${publicIp}\0${vni}`).digest();
  const mac = Uint8Array.from(h.subarray(0, 6));
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return mac;
}

/**
 * Our lease's attributes as flanneld publishes them for this backend: udp
 * and alloc write no BackendType, host-gw a BackendType and no data.
 */
export function leaseAttrsFor(plan: BackendPlan, publicIp: number, mac: Uint8Array | null): LeaseAttrs {
  switch (plan.kind) {
    case 'udp':
    case 'alloc':
      return { publicIp, publicIpv6: null };
    case 'host-gw':
      return { publicIp, publicIpv6: null, backendType: 'host-gw' };
    case 'vxlan':
      return { publicIp, publicIpv6: null, backendType: 'vxlan', backendData: { VNI: plan.vni, VtepMAC: formatMac(mac!) } };
  }
}

/**
 * What we make of a peer's lease: usable (with its VtepMAC for vxlan), of
 * another backend (`mismatch`: flanneld ignores those with a warning), or
 * of ours but unusable (a vxlan lease without a valid VtepMAC).
 */
export type PeerVerdict =
  | { ok: true; mac: Uint8Array | null }
  | { ok: false; mismatch: boolean; why: string };

const MAC_TEXT = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i;

/**
 * udp leases carry no BackendType (flanneld's udp backend publishes none;
 * the Kubernetes annotation is ""), so an alloc lease looks like a udp one
 * here as it does to flanneld.
 */
export function classifyPeer(plan: BackendPlan, attrs: LeaseAttrs): PeerVerdict {
  const type = attrs.backendType ?? '';
  const mismatch = (): PeerVerdict => ({
    ok: false, mismatch: true, why: `its backend is ${type === '' ? 'udp or alloc (no BackendType)' : `"${type}"`}, ours is "${plan.kind}"`,
  });
  switch (plan.kind) {
    case 'udp':
      return type === '' || type === 'udp' ? { ok: true, mac: null } : mismatch();
    case 'host-gw':
      return type === 'host-gw' ? { ok: true, mac: null } : mismatch();
    case 'alloc':
      return { ok: false, mismatch: false, why: 'the alloc backend routes to no peer' };
    case 'vxlan': {
      if (type !== 'vxlan') return mismatch();
      const data = attrs.backendData as { VtepMAC?: unknown } | null | undefined;
      const m = MAC_TEXT.exec(typeof data?.VtepMAC === 'string' ? data.VtepMAC : '');
      if (m === null) {
        return {
          ok: false, mismatch: false, why: `its BackendData ${JSON.stringify(attrs.backendData ?? null)} has no valid VtepMAC `
            + '(a flannel vxlan lease carries {"VNI":1,"VtepMAC":"xx:xx:xx:xx:xx:xx"})',
        };
      }
      return { ok: true, mac: Uint8Array.from(m.slice(1).map((x) => parseInt(x, 16))) };
    }
  }
}
