/**
 * Which backend this node runs, decided once at start-up from net-conf and
 * the kernel: flannel's udp backend, or VXLAN run by weft's userspace VTEP
 * or by the kernel (programmed through iproute2). Everything here is
 * control plane.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { WeftError } from '../errors.js';
import { FLANNEL_UDP_OVERHEAD, VXLAN_OVERHEAD, VXLAN_PORT_LINUX } from '../wire/constants.js';
import { formatMac } from '../wire/ethernet.js';
import type { NetConf } from '../config/net-conf.js';
import type { LeaseAttrs } from '../subnet/lease.js';

export type BackendPlan =
  | { kind: 'udp'; port: number; overhead: number; mtuOverride: number }
  | {
    kind: 'vxlan'; vni: number; port: number; gbp: boolean; learning: boolean; directRouting: boolean;
    mode: 'auto' | 'kernel' | 'userspace'; overhead: number; mtuOverride: number;
  };

export type DataMode = 'udp' | 'vxlan-userspace' | 'vxlan-kernel';

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

/** The backend net-conf asks for, or a clear error for the ones weft does not implement. */
export function planBackend(conf: NetConf, netConfPath: string): BackendPlan {
  const b = conf.backend;
  if (b.type === 'udp') return { kind: 'udp', port: b.port, overhead: FLANNEL_UDP_OVERHEAD, mtuOverride: 0 };
  if (b.type === 'vxlan') {
    return {
      kind: 'vxlan', vni: b.vni, port: b.port === 0 ? VXLAN_PORT_LINUX : b.port, gbp: b.gbp, learning: b.learning,
      directRouting: b.directRouting, mode: b.mode, overhead: VXLAN_OVERHEAD, mtuOverride: b.mtu,
    };
  }
  throw new WeftError('EBACKEND', `backend type "${b.type}" is not implemented by weft, which runs "udp" and "vxlan": `
    + `set "Backend": {"Type": "vxlan"} (or "udp") in ${netConfPath}`);
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

/** Our lease's attributes as flanneld publishes them for this backend. */
export function leaseAttrsFor(plan: BackendPlan, publicIp: number, mac: Uint8Array | null): LeaseAttrs {
  if (plan.kind === 'udp') return { publicIp, publicIpv6: null };
  return {
    publicIp, publicIpv6: null, backendType: 'vxlan',
    backendData: { VNI: plan.vni, VtepMAC: formatMac(mac!) },
  };
}

/**
 * Whether a peer's lease speaks our backend. udp leases carry no
 * BackendType (flanneld's udp backend publishes none; the Kubernetes
 * annotation is ""); vxlan leases need BackendType vxlan and a VtepMAC.
 */
export function peerVtepMac(plan: BackendPlan, attrs: LeaseAttrs): Uint8Array | null | 'incompatible' {
  const type = attrs.backendType ?? '';
  if (plan.kind === 'udp') return type === '' || type === 'udp' ? null : 'incompatible';
  if (type !== 'vxlan') return 'incompatible';
  const data = attrs.backendData as { VtepMAC?: unknown } | null | undefined;
  const text = typeof data?.VtepMAC === 'string' ? data.VtepMAC : '';
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (m === null) return 'incompatible';
  return Uint8Array.from(m.slice(1).map((x) => parseInt(x, 16)));
}
