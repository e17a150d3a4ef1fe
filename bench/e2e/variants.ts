/**
 * The overlays under test. Each sets up two hosts (h1, h2 on a 1500-byte
 * veth underlay), its tunnel, and one pod per host whose veth MTU is the
 * overlay's MTU. Pod subnets are 10.244.1.0/24 and 10.244.2.0/24 unless the
 * daemon leases its own (weft).
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FLANNEL_UDP_PORT, FLANNEL_UDP_OVERHEAD, VXLAN_PORT_LINUX } from '../../src/wire/constants.js';
import { attachPod, twoHosts, type Host, type Pod, type Testbed, type ToolSpec } from '../../src/testbed/index.js';
import { attachWeftPod, startWeftNode, weftStatus, type WeftNode } from '../../src/testbed/weft-node.js';

export const UNDERLAY_MTU = 1500;
const VXLAN_OVERHEAD = 50; // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
/** fastd over IPv4 with the null method: IPv4 20 + UDP 8 + fastd's 1-byte packet type. */
const FASTD_NULL_OVERHEAD = 29;
const FASTD_PORT = 10000;

export interface VariantContext {
  tb: Testbed;
  /** Scratch directory for this variant round (configs, sockets, logs). */
  dir: string;
}

export interface VariantSetup {
  hosts: [Host, Host];
  pods: [Pod, Pod];
  /** PIDs of the tunnel daemons (empty for in-kernel variants). */
  daemons: number[];
  /** Overlay MTU given to the pods. */
  mtu: number;
  /** Extra facts recorded with the round after the traffic (e.g. weft status). */
  collect?: () => Promise<Record<string, unknown>>;
}

export interface Variant {
  name: string;
  description: string;
  /** null when it can run; otherwise why not (recorded as the round's error). */
  unavailable: string | null;
  /** Part of the default set. */
  byDefault: boolean;
  tools: ToolSpec[];
  /** A caveat printed under the table when the variant is in the run. */
  note?: string;
  setup(ctx: VariantContext): Promise<VariantSetup>;
}

const SUBNET = (i: number): string => `10.244.${i}.0`;

async function plainPods(tb: Testbed, hosts: [Host, Host], mtu: number): Promise<[Pod, Pod]> {
  const a = await attachPod(tb, hosts[0], { podCidrHost: '10.244.1.2/24', gateway: '10.244.1.1', mtu });
  const b = await attachPod(tb, hosts[1], { podCidrHost: '10.244.2.2/24', gateway: '10.244.2.1', mtu });
  return [a, b];
}

/** Polls until `ifname` exists in `ns` (a daemon created it) or the time is up. */
async function waitLink(tb: Testbed, ns: string, ifname: string, pid: number, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await tb.exec(null, ['ip', '-n', ns, 'link', 'show', 'dev', ifname], { timeoutMs: 3_000 });
    if (r.code === 0) return;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) throw new Error(`${what} in ${ns} exited before creating ${ifname} (see its log)`);
    if (Date.now() > end) throw new Error(`${what} in ${ns} did not create ${ifname} within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] as number) & 0xfe) | 0x02; // unicast, locally administered (as flannel's VTEP MAC)
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const IP: ToolSpec = { bin: 'ip', debPackage: 'iproute2' };
const BRIDGE: ToolSpec = { bin: 'bridge', debPackage: 'iproute2' };

const hostGw: Variant = {
  name: 'host-gw',
  description: 'plain routes via the peer underlay address (the ceiling)',
  unavailable: null,
  byDefault: true,
  tools: [IP],
  async setup({ tb }) {
    const { hosts } = await twoHosts(tb, { underlayMtu: UNDERLAY_MTU });
    await tb.route(hosts[0].ns, ['add', `${SUBNET(2)}/24`, 'via', hosts[1].underlayIp, 'dev', hosts[0].underlayIf]);
    await tb.route(hosts[1].ns, ['add', `${SUBNET(1)}/24`, 'via', hosts[0].underlayIp, 'dev', hosts[1].underlayIf]);
    const mtu = UNDERLAY_MTU;
    return { hosts, pods: await plainPods(tb, hosts, mtu), daemons: [], mtu };
  },
};

const kernelVxlan: Variant = {
  name: 'kernel-vxlan',
  description: "kernel vxlan device as flannel's vxlan backend sets it up",
  unavailable: null,
  byDefault: true,
  tools: [IP, BRIDGE],
  async setup({ tb }) {
    const { hosts } = await twoHosts(tb, { underlayMtu: UNDERLAY_MTU });
    const mtu = UNDERLAY_MTU - VXLAN_OVERHEAD;
    const macs = [randomMac(), randomMac()];
    for (let i = 0; i < 2; i++) {
      const h = hosts[i] as Host;
      await tb.run(null, ['ip', '-n', h.ns, 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', h.underlayIp,
        'dev', h.underlayIf, 'dstport', String(VXLAN_PORT_LINUX), 'nolearning']);
      await tb.run(null, ['ip', '-n', h.ns, 'link', 'set', 'flannel.1', 'address', macs[i] as string, 'mtu', String(mtu)]);
      await tb.up(h.ns, 'flannel.1');
      await tb.addr(h.ns, 'flannel.1', `${SUBNET(i + 1)}/32`);
    }
    for (let i = 0; i < 2; i++) {
      const h = hosts[i] as Host;
      const j = 1 - i;
      const peer = hosts[j] as Host;
      const peerMac = macs[j] as string;
      await tb.run(null, ['ip', '-n', h.ns, 'neigh', 'add', SUBNET(j + 1), 'lladdr', peerMac, 'dev', 'flannel.1', 'nud', 'permanent']);
      await tb.run(null, ['bridge', '-n', h.ns, 'fdb', 'append', peerMac, 'dev', 'flannel.1', 'dst', peer.underlayIp, 'self', 'permanent']);
      await tb.route(h.ns, ['add', `${SUBNET(j + 1)}/24`, 'via', SUBNET(j + 1), 'dev', 'flannel.1', 'onlink']);
    }
    return { hosts, pods: await plainPods(tb, hosts, mtu), daemons: [], mtu };
  },
};

const socat: Variant = {
  name: 'socat',
  description: "socat TUN <-> UDP 8285 (flannel udp's wire format: the bare IP packet as UDP payload)",
  unavailable: null,
  byDefault: true,
  tools: [IP, { bin: 'socat', debPackage: 'socat' }],
  async setup({ tb, dir }) {
    const { hosts } = await twoHosts(tb, { underlayMtu: UNDERLAY_MTU });
    const mtu = UNDERLAY_MTU - FLANNEL_UDP_OVERHEAD;
    const daemons: number[] = [];
    for (let i = 0; i < 2; i++) {
      const h = hosts[i] as Host;
      const peer = hosts[1 - i] as Host;
      // UDP-DATAGRAM (unconnected) so an ICMP port-unreachable before the
      // peer is up cannot kill the tunnel with ECONNREFUSED.
      const p = tb.spawn(h.ns, ['socat', '-b', '65536',
        `TUN:${SUBNET(i + 1)}/16,tun-name=tun0,tun-type=tun,iff-no-pi,iff-up`,
        `UDP-DATAGRAM:${peer.underlayIp}:${FLANNEL_UDP_PORT},bind=${h.underlayIp}:${FLANNEL_UDP_PORT}`,
      ], { logFile: join(dir, `socat-${h.name}.log`) });
      if (p.pid === undefined) throw new Error('socat did not start');
      daemons.push(p.pid);
      await waitLink(tb, h.ns, 'tun0', p.pid, 'socat');
      await tb.run(null, ['ip', '-n', h.ns, 'link', 'set', 'tun0', 'mtu', String(mtu)]);
    }
    return { hosts, pods: await plainPods(tb, hosts, mtu), daemons, mtu };
  },
};

async function fastdKey(tb: Testbed, dir: string, name: string): Promise<{ secret: string; public: string }> {
  const secret = (await tb.run(null, ['fastd', '--generate-key', '--machine-readable'], { timeoutMs: 10_000 })).stdout.trim();
  const conf = join(dir, `key-${name}.conf`);
  await writeFile(conf, `secret "${secret}";\n`);
  const pub = (await tb.run(null, ['fastd', '-c', conf, '--show-key', '--machine-readable'], { timeoutMs: 10_000 })).stdout.trim();
  return { secret, public: pub };
}

const fastd: Variant = {
  name: 'fastd',
  description: 'fastd, method "null", TUN mode, over UDP',
  unavailable: null,
  byDefault: true,
  tools: [IP, { bin: 'fastd', debPackage: 'fastd' }],
  async setup({ tb, dir }) {
    const { hosts } = await twoHosts(tb, { underlayMtu: UNDERLAY_MTU });
    const mtu = UNDERLAY_MTU - FASTD_NULL_OVERHEAD;
    const keys = [await fastdKey(tb, dir, 'h1'), await fastdKey(tb, dir, 'h2')];
    const daemons: number[] = [];
    for (let i = 0; i < 2; i++) {
      const h = hosts[i] as Host;
      const peer = hosts[1 - i] as Host;
      const conf = join(dir, `fastd-${h.name}.conf`);
      await writeFile(conf, [
        'log to stderr level warn;',
        'mode tun;',
        'interface "fd0";',
        'protocol "ec25519-fhmqvc";',
        'method "null";',
        `bind ${h.underlayIp}:${FASTD_PORT};`,
        `secret "${(keys[i] as { secret: string }).secret}";`,
        `mtu ${mtu};`,
        `peer "${peer.name}" { key "${(keys[1 - i] as { public: string }).public}"; remote ${peer.underlayIp}:${FASTD_PORT}; }`,
        '',
      ].join('\n'));
      const p = tb.spawn(h.ns, ['fastd', '-c', conf], { logFile: join(dir, `fastd-${h.name}.log`) });
      if (p.pid === undefined) throw new Error('fastd did not start');
      daemons.push(p.pid);
      await waitLink(tb, h.ns, 'fd0', p.pid, 'fastd');
      await tb.addr(h.ns, 'fd0', `${SUBNET(i + 1)}/32`);
      await tb.up(h.ns, 'fd0');
      await tb.route(h.ns, ['add', '10.244.0.0/16', 'dev', 'fd0']);
    }
    return { hosts, pods: await plainPods(tb, hosts, mtu), daemons, mtu };
  },
};

/** net-conf.json for a weft variant: the pods' Network with the given Backend. */
function weftNetConf(backend: Record<string, unknown>): string {
  return `${JSON.stringify({ Network: '10.244.0.0/16', Backend: backend })}\n`;
}

/**
 * A weft variant: one daemon per host with the local lease store, pods
 * attached with the lease's .1 as gateway and FLANNEL_MTU from subnet.env
 * (so the MTU is whatever the daemon computed for its backend, not ours).
 */
function weftVariant(o: { name: string; description: string; byDefault: boolean; netConf: string; extraArgs?: readonly string[]; note?: string }): Variant {
  return {
    name: o.name,
    description: o.description,
    unavailable: null,
    byDefault: o.byDefault,
    tools: [IP],
    ...(o.note !== undefined ? { note: o.note } : {}),
    async setup({ tb, dir }) {
      const { hosts } = await twoHosts(tb, { underlayMtu: UNDERLAY_MTU });
      const nodes: WeftNode[] = [];
      for (const h of hosts) {
        nodes.push(await startWeftNode(tb, h, { dir, netConf: o.netConf, extraArgs: o.extraArgs ?? [], readyTimeoutMs: 15_000 }));
      }
      const pods: [Pod, Pod] = [await attachWeftPod(tb, nodes[0] as WeftNode), await attachWeftPod(tb, nodes[1] as WeftNode)];
      const daemons = nodes.map((n) => n.proc.pid).filter((p): p is number => p !== undefined);
      return {
        hosts,
        pods,
        daemons,
        mtu: (nodes[0] as WeftNode).mtu,
        async collect() {
          const status: Record<string, unknown> = {};
          for (const n of nodes) status[n.host.name] = await weftStatus(tb, n).catch(() => null);
          return { weftStatus: status };
        },
      };
    },
  };
}

const weftUdp = weftVariant({
  name: 'weft-udp',
  description: "weft, flannel's udp backend in user space (TUN flannel0, UDP 8285), offloads as probed",
  byDefault: true,
  netConf: weftNetConf({ Type: 'udp' }),
});

// Same daemon with every offload off: per-packet (batched) I/O. Beside
// weft-udp it shows what the offload path buys on this machine.
const weftUdpPlain = weftVariant({
  name: 'weft-udp-plain',
  description: 'weft-udp with --offloads=false (batched per-packet I/O, no TUN/UDP offloads)',
  byDefault: false,
  netConf: weftNetConf({ Type: 'udp' }),
  extraArgs: ['--offloads=false'],
});

const weftVxlanUser = weftVariant({
  name: 'weft-vxlan-user',
  description: "weft's userspace VTEP: TUN flannel.1, VXLAN codec in weft's workers, UDP 8472",
  byDefault: true,
  netConf: weftNetConf({ Type: 'vxlan', Mode: 'userspace' }),
});

const weftVxlanKernel = weftVariant({
  name: 'weft-vxlan-kernel',
  description: 'weft programming a kernel vxlan device flannel.1 (neighbour, FDB, onlink routes); the kernel forwards',
  byDefault: true,
  netConf: weftNetConf({ Type: 'vxlan', Mode: 'kernel' }),
  note: 'weft-vxlan-kernel: CPU and RSS are the weft daemon\'s only; the packets are forwarded by the kernel, whose work is not attributed (as for kernel-vxlan).',
});

export const VARIANTS: readonly Variant[] = [
  hostGw,
  kernelVxlan,
  socat,
  fastd,
  weftUdp,
  weftUdpPlain,
  weftVxlanUser,
  weftVxlanKernel,
];

export const USERSPACE_PEERS = ['socat', 'fastd'] as const;
export const KERNEL_REFERENCE = 'kernel-vxlan';
