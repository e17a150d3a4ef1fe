/**
 * A weft daemon on a testbed host: started inside the host namespace with
 * the local lease store, ready once it has written its subnet.env (which it
 * does only after its data plane runs). Used by `weft demo`, the
 * integration tests and the e2e bench.
 */
import type { ChildProcess } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';
import { formatIpv4, parseIpv4Prefix } from '../wire/ipv4-addr.js';
import type { Testbed } from './testbed.js';
import { attachPod, type Host, type Pod } from './topology.js';

/** bin/weft.js of this checkout (from dist/src/testbed/). */
export const WEFT_BIN = resolve(fileURLToPath(new URL('../../../bin/weft.js', import.meta.url)));

export interface WeftNode {
  host: Host;
  proc: ChildProcess;
  subnetFile: string;
  controlSocket: string;
  logFile: string;
  /** FLANNEL_SUBNET, e.g. 10.244.7.1/24. */
  subnet: string;
  mtu: number;
}

export interface WeftNodeOptions {
  /** Directory for net-conf, leases, sockets and logs (shared by the cluster). */
  dir: string;
  /** net-conf.json text; default: Network 10.244.0.0/16, Backend udp. */
  netConf?: string;
  extraArgs?: readonly string[];
  /** Added to the daemon's environment (NODE_NAME for --kube-subnet-mgr). */
  env?: Readonly<Record<string, string>>;
  readyTimeoutMs?: number;
}

export const DEFAULT_NET_CONF = '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}\n';

export async function startWeftNode(tb: Testbed, host: Host, o: WeftNodeOptions): Promise<WeftNode> {
  // One file per node: nodes of one cluster may run different backends.
  const netConf = join(o.dir, `${host.name}.net-conf.json`);
  await writeFile(netConf, o.netConf ?? DEFAULT_NET_CONF, { flag: 'w' });
  const subnetFile = join(o.dir, `${host.name}.subnet.env`);
  const controlSocket = join(o.dir, `${host.name}.sock`);
  const logFile = join(o.dir, `${host.name}.log`);
  const proc = tb.spawn(host.ns, [
    process.execPath, WEFT_BIN,
    `--iface=${host.underlayIf}`,
    `--net-config-path=${netConf}`,
    `--subnet-file=${subnetFile}`,
    `--lease-dir=${join(o.dir, 'leases')}`,
    `--control-socket=${controlSocket}`,
    ...(o.extraArgs ?? []),
  ], { logFile, env: { ...process.env, ...o.env } });
  const started = Date.now();
  const deadline = started + (o.readyTimeoutMs ?? 15_000);
  for (;;) {
    // Written by this daemon: a restart finds the last run's file in place.
    const fresh = await stat(subnetFile).then((st) => st.mtimeMs >= started, () => false);
    const env = fresh ? await readFile(subnetFile, 'utf8').catch(() => null) : null;
    if (env !== null) {
      const subnet = /^FLANNEL_SUBNET=(.+)$/m.exec(env)?.[1];
      const mtu = Number(/^FLANNEL_MTU=(\d+)$/m.exec(env)?.[1]);
      // subnet.env comes a step before start-up ends: a signal then is a stop during start-up.
      const ready = /\] ready: |"msg":"ready: /.test(await readFile(logFile, 'utf8').catch(() => ''));
      if (subnet && mtu > 0 && ready) return { host, proc, subnetFile, controlSocket, logFile, subnet, mtu };
    }
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      const why = proc.exitCode !== null ? `exited with code ${proc.exitCode}` : 'was not ready in time';
      throw new WeftError('ETESTBED', `weft on ${host.name} ${why}; its log:\n${log.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A pod behind a weft node: .2 of its lease, gateway = FLANNEL_SUBNET's address (the cni0 role). */
export async function attachWeftPod(tb: Testbed, node: WeftNode, hostNumber = 2): Promise<Pod> {
  const p = parseIpv4Prefix(node.subnet);
  const gw = node.subnet.slice(0, node.subnet.indexOf('/'));
  return attachPod(tb, node.host, {
    podCidrHost: `${formatIpv4(p.addr + hostNumber)}/${p.len}`,
    gateway: gw,
    mtu: node.mtu,
  });
}

/** The daemon's status JSON through `weft status --json`, run in its namespace. */
export async function weftStatus(tb: Testbed, node: WeftNode): Promise<Record<string, unknown>> {
  const r = await tb.run(node.host.ns, [process.execPath, WEFT_BIN, 'status', '--json',
    `--control-socket=${node.controlSocket}`], { timeoutMs: 10_000 });
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
