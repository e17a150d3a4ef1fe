/**
 * A node configured the way flanneld's kernel vxlan backend configures
 * one, by plain ip/bridge commands (no weft code involved), plus the
 * flannel lease files and the kernel entries flanneld programs for a
 * peer's lease, in the JSON iproute2 prints them. Used by the VXLAN
 * integration tests as the reference weft must interoperate with and
 * match.
 *
 * What flanneld does (backend/vxlan, v0.2x): a vxlan link flannel.<VNI>
 * (id VNI, local PublicIP, dev underlay, dstport Port, nolearning, MTU
 * underlay − 50, address VtepMAC), the lease's network address /32 on it,
 * link up; per peer lease a permanent neighbour <peer .0> → peer VtepMAC,
 * a permanent self FDB entry peer VtepMAC → peer PublicIP, and the route
 * <peer subnet> via <peer .0> dev flannel.<VNI> onlink.
 */
import { readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Testbed } from '../../src/testbed/index.js';

export interface FlannelVxlanDevice {
  /** Host namespace. */
  ns: string;
  vni: number;
  /** UDP destination port: 8472 (Linux default) or 4789 (IANA). */
  port: number;
  mtu: number;
  /** "0a:…" */
  vtepMac: string;
  /** Underlay address (no prefix length) and device. */
  localIp: string;
  underlayIf: string;
  /** This node's lease, e.g. "10.244.200.0/24". */
  subnet: string;
}

/** A peer as flanneld sees it in a vxlan lease. */
export interface FlannelVxlanPeer {
  /** "10.244.7.0/24" */
  subnet: string;
  publicIp: string;
  vtepMac: string;
}

export interface FlannelLease extends FlannelVxlanPeer {
  /** File name in the lease directory, flannel's key: "10.244.7.0-24". */
  key: string;
  backendType: string;
  vni: number;
  /** The file's text as read. */
  text: string;
}

/** "10.244.7.0/24" → "10.244.7.0" */
function networkAddr(subnet: string): string {
  return subnet.slice(0, subnet.indexOf('/'));
}

export function devName(vni: number): string {
  return `flannel.${vni}`;
}

/** flannel's lease value for the vxlan backend, byte for byte as flanneld writes it. */
export function flannelVxlanLeaseJson(publicIp: string, vni: number, vtepMac: string): string {
  return `{"PublicIP":"${publicIp}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":${vni},"VtepMAC":"${vtepMac}"}}`;
}

/** flannel's key for a subnet: "10.244.7.0/24" → "10.244.7.0-24". */
export function leaseKey(subnet: string): string {
  return subnet.replace('/', '-');
}

/** Publishes a lease file the way the local store does (temp file + rename), so no reader sees half of it. */
export async function writeLeaseFile(leaseDir: string, subnet: string, text: string): Promise<void> {
  const key = leaseKey(subnet);
  const tmp = join(leaseDir, `.test-${key}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, join(leaseDir, key));
}

export async function removeLeaseFile(leaseDir: string, subnet: string): Promise<void> {
  await unlink(join(leaseDir, leaseKey(subnet)));
}

/** Every lease in a local-store directory (temp and claim files skipped). */
export async function readLeases(leaseDir: string): Promise<FlannelLease[]> {
  const out: FlannelLease[] = [];
  for (const name of (await readdir(leaseDir)).sort()) {
    if (name.startsWith('.')) continue;
    const text = await readFile(join(leaseDir, name), 'utf8');
    const v = JSON.parse(text) as { PublicIP: string; BackendType?: string; BackendData?: { VNI?: number; VtepMAC?: string } };
    out.push({
      key: name, subnet: name.replace('-', '/'), publicIp: v.PublicIP, backendType: v.BackendType ?? '',
      vni: v.BackendData?.VNI ?? 0, vtepMac: v.BackendData?.VtepMAC ?? '', text,
    });
  }
  return out;
}

/** The lease held by `publicIp`; throws when there is none. */
export async function leaseOf(leaseDir: string, publicIp: string): Promise<FlannelLease> {
  const l = (await readLeases(leaseDir)).find((x) => x.publicIp === publicIp);
  if (l === undefined) throw new Error(`no lease with PublicIP ${publicIp} in ${leaseDir}`);
  return l;
}

/**
 * Creates (or re-creates) flannel.<VNI> in `d.ns` with flanneld's
 * attributes and the lease address; any previous device and its entries go.
 */
export async function createFlannelVxlanDevice(tb: Testbed, d: FlannelVxlanDevice): Promise<void> {
  const dev = devName(d.vni);
  const ipn = (...a: string[]) => tb.run(null, ['ip', '-n', d.ns, ...a]);
  await tb.exec(null, ['ip', '-n', d.ns, 'link', 'del', dev]);
  await ipn('link', 'add', dev, 'mtu', String(d.mtu), 'address', d.vtepMac, 'type', 'vxlan', 'id', String(d.vni),
    'local', d.localIp, 'dev', d.underlayIf, 'dstport', String(d.port), 'nolearning');
  await ipn('addr', 'add', `${networkAddr(d.subnet)}/32`, 'dev', dev);
  await ipn('link', 'set', dev, 'up');
}

/** flanneld's three entries for one peer lease. */
export async function addFlannelPeer(tb: Testbed, ns: string, vni: number, p: FlannelVxlanPeer): Promise<void> {
  const dev = devName(vni);
  const gw = networkAddr(p.subnet);
  await tb.run(null, ['ip', '-n', ns, 'neigh', 'replace', gw, 'lladdr', p.vtepMac, 'dev', dev, 'nud', 'permanent']);
  await tb.run(null, ['bridge', '-n', ns, 'fdb', 'replace', p.vtepMac, 'dev', dev, 'dst', p.publicIp, 'self', 'permanent']);
  await tb.run(null, ['ip', '-n', ns, 'route', 'replace', p.subnet, 'via', gw, 'dev', dev, 'onlink']);
}

export interface KernelEntries {
  neigh: unknown[];
  fdb: unknown[];
  routes: unknown[];
}

/**
 * The entries flanneld programs for these peers, as `ip -j neigh show dev`,
 * `bridge -j fdb show dev` and `ip -j route show dev` print them
 * (iproute2 ≥ 5), sorted like kernelEntries() sorts.
 */
export function expectedFlannelEntries(peers: readonly FlannelVxlanPeer[]): KernelEntries {
  return sortEntries({
    neigh: peers.map((p) => ({ dst: networkAddr(p.subnet), lladdr: p.vtepMac, state: ['PERMANENT'] })),
    fdb: peers.map((p) => ({ mac: p.vtepMac, dst: p.publicIp, flags: ['self'], state: 'permanent' })),
    routes: peers.map((p) => ({ dst: p.subnet, gateway: networkAddr(p.subnet), flags: ['onlink'] })),
  });
}

async function jsonOf(tb: Testbed, argv: string[]): Promise<unknown[]> {
  const r = await tb.run(null, argv);
  return r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as unknown[]);
}

/** What the kernel holds on flannel.<VNI> in `ns`, sorted for comparison. */
export async function kernelEntries(tb: Testbed, ns: string, vni: number): Promise<KernelEntries> {
  const dev = devName(vni);
  return sortEntries({
    neigh: await jsonOf(tb, ['ip', '-n', ns, '-j', 'neigh', 'show', 'dev', dev]),
    fdb: await jsonOf(tb, ['bridge', '-n', ns, '-j', 'fdb', 'show', 'dev', dev]),
    routes: await jsonOf(tb, ['ip', '-n', ns, '-j', 'route', 'show', 'dev', dev]),
  });
}

/** `ip -d -j link show <dev>` of flannel.<VNI> in `ns`. */
export async function vxlanLink(tb: Testbed, ns: string, vni: number): Promise<Record<string, unknown>> {
  const [l] = await jsonOf(tb, ['ip', '-n', ns, '-d', '-j', 'link', 'show', devName(vni)]);
  return l as Record<string, unknown>;
}

function sortEntries(e: KernelEntries): KernelEntries {
  const by = (a: unknown, b: unknown): number => JSON.stringify(a).localeCompare(JSON.stringify(b));
  return { neigh: [...e.neigh].sort(by), fdb: [...e.fdb].sort(by), routes: [...e.routes].sort(by) };
}

/**
 * Turns transmit checksum offload of `ifname` in `ns` on or off (ethtool's
 * `tx` feature, through the ETHTOOL_STXCSUM ioctl: the ethtool binary is
 * not installed everywhere, python3 is — node-gyp needs it).
 *
 * Why the VXLAN tests need it: over a veth the kernel hands the peer
 * namespace its skbs as they are, so a kernel VTEP's inner TCP/UDP
 * checksums stay CHECKSUM_PARTIAL (pseudo-header sum only) all the way into
 * the receiver's UDP socket, where a userspace VTEP reads them as bytes.
 * With tx checksumming off on the kernel node's underlay the kernel
 * completes them before they leave, as a physical NIC does on the wire.
 */
export async function setTxChecksum(tb: Testbed, ns: string, ifname: string, on: boolean): Promise<void> {
  const py = [
    'import array, fcntl, socket, struct, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    "v = array.array('B', struct.pack('II', 0x17, int(sys.argv[2])))", // struct ethtool_value {ETHTOOL_STXCSUM, data}
    "fcntl.ioctl(s.fileno(), 0x8946, struct.pack('16sP', sys.argv[1].encode(), v.buffer_info()[0]))", // SIOCETHTOOL
  ].join('\n');
  await tb.run(ns, ['python3', '-c', py, ifname, on ? '1' : '0']);
}
