/**
 * Topologies on a Testbed: hosts joined by an underlay, pods behind hosts.
 * Interface names are fixed and short (eth0, vp0 …): links are created
 * directly inside their namespaces, so they never meet in the root one.
 */
import { WeftError } from '../errors.js';
import { formatIpv4, parseIpv4Prefix } from '../wire/ipv4-addr.js';
import type { Testbed } from './testbed.js';

export interface Host {
  /** Full namespace name. */
  ns: string;
  /** Short name used to derive pod namespace names ("h1"). */
  name: string;
  underlayIf: string;
  /** 192.168.<k>.<i> (no prefix length). */
  underlayIp: string;
  underlayPrefixLen: number;
  /** Pods attached so far (names the next host-side veth). */
  pods: number;
}

export interface Pod {
  ns: string;
  /** Interface inside the pod namespace. */
  ifname: string;
  /** Pod address without prefix length. */
  ip: string;
  cidr: string;
  gateway: string;
  /** Host-side end of the pod veth. */
  hostIf: string;
  mtu: number;
}

export interface HostsOptions {
  underlayMtu?: number;
  /** k in 192.168.<k>.0/24; default 100. */
  subnetOctet?: number;
}

const UNDERLAY_IF = 'eth0';

async function hostDefaults(tb: Testbed, ns: string): Promise<void> {
  await tb.sysctl(ns, 'net.ipv4.ip_forward', 1);
  // The pod veth and the tunnel device are different interfaces; strict
  // reverse-path filtering would drop the first packets of some tunnels.
  await tb.sysctl(ns, 'net.ipv4.conf.all.rp_filter', 0);
  await tb.sysctl(ns, 'net.ipv4.conf.default.rp_filter', 0);
}

/** Two host namespaces h1, h2 joined by one veth pair (eth0 ↔ eth0). */
export async function twoHosts(tb: Testbed, opts: HostsOptions = {}): Promise<{ hosts: [Host, Host] }> {
  const mtu = opts.underlayMtu ?? 1500;
  const k = opts.subnetOctet ?? 100;
  const a = await tb.addNs('h1');
  const b = await tb.addNs('h2');
  await tb.veth(a, UNDERLAY_IF, b, UNDERLAY_IF, mtu);
  const hosts: [Host, Host] = [
    { ns: a, name: 'h1', underlayIf: UNDERLAY_IF, underlayIp: `192.168.${k}.1`, underlayPrefixLen: 24, pods: 0 },
    { ns: b, name: 'h2', underlayIf: UNDERLAY_IF, underlayIp: `192.168.${k}.2`, underlayPrefixLen: 24, pods: 0 },
  ];
  for (const h of hosts) {
    await tb.addr(h.ns, h.underlayIf, `${h.underlayIp}/24`);
    await hostDefaults(tb, h.ns);
  }
  return { hosts };
}

/**
 * n host namespaces h1..hn on one L2 segment: a bridge br0 in a "sw"
 * namespace with one veth per host (host eth0 ↔ switch p<i>).
 */
export async function nHosts(tb: Testbed, n: number, opts: HostsOptions = {}): Promise<{ hosts: Host[]; switchNs: string }> {
  if (!Number.isInteger(n) || n < 1 || n > 250) throw new WeftError('TESTBED_BAD_TOPOLOGY', `nHosts: n must be 1..250, got ${n}`);
  const mtu = opts.underlayMtu ?? 1500;
  const k = opts.subnetOctet ?? 100;
  const sw = await tb.addNs('sw');
  await tb.run(null, ['ip', '-n', sw, 'link', 'add', 'br0', 'mtu', String(mtu), 'type', 'bridge']);
  await tb.up(sw, 'br0');
  const hosts: Host[] = [];
  for (let i = 1; i <= n; i++) {
    const ns = await tb.addNs(`h${i}`);
    const port = `p${i}`;
    await tb.veth(ns, UNDERLAY_IF, sw, port, mtu);
    await tb.run(null, ['ip', '-n', sw, 'link', 'set', port, 'master', 'br0']);
    const h: Host = { ns, name: `h${i}`, underlayIf: UNDERLAY_IF, underlayIp: `192.168.${k}.${i}`, underlayPrefixLen: 24, pods: 0 };
    await tb.addr(ns, UNDERLAY_IF, `${h.underlayIp}/24`);
    await hostDefaults(tb, ns);
    hosts.push(h);
  }
  return { hosts, switchNs: sw };
}

export interface PodOptions {
  /** Pod address with prefix length, e.g. "10.244.1.2/24". */
  podCidrHost: string;
  /** Host-side address, e.g. "10.244.1.1"; given the pod's prefix length. */
  gateway: string;
  /** Both ends of the pod veth: the overlay's MTU. */
  mtu: number;
}

/**
 * A pod namespace `<host>p<i>` behind `host` with one veth: host side
 * vp<i> holds the gateway, pod side eth0 holds the pod address and a
 * default route via the gateway.
 */
export async function attachPod(tb: Testbed, host: Host, opts: PodOptions): Promise<Pod> {
  const slash = opts.podCidrHost.indexOf('/');
  if (slash < 0) throw new WeftError('TESTBED_BAD_TOPOLOGY', `attachPod: podCidrHost "${opts.podCidrHost}" needs a prefix length`);
  const prefix = parseIpv4Prefix(opts.podCidrHost); // validates; masks to the network
  const ip = opts.podCidrHost.slice(0, slash);
  const idx = host.pods++;
  const ns = await tb.addNs(`${host.name}p${idx}`);
  const hostIf = `vp${idx}`;
  await tb.veth(host.ns, hostIf, ns, 'eth0', opts.mtu);
  await tb.addr(host.ns, hostIf, `${opts.gateway}/${prefix.len}`);
  await tb.addr(ns, 'eth0', opts.podCidrHost);
  await tb.route(ns, ['add', 'default', 'via', opts.gateway, 'dev', 'eth0']);
  return { ns, ifname: 'eth0', ip, cidr: `${formatIpv4(prefix.addr)}/${prefix.len}`, gateway: opts.gateway, hostIf, mtu: opts.mtu };
}
