/**
 * `weft demo`: two hosts in network namespaces joined by a veth underlay, a
 * pod behind each, a weft daemon per host with the local lease store (udp,
 * or vxlan in whichever mode `auto` picks); then pings both ways and a
 * short iperf3 pod→pod, and says which data path carried them. Everything
 * it creates is prefixed and removed on exit, on error and on Ctrl-C
 * (with --keep: left running for `weft top` until Ctrl-C). Exit 0 only when
 * traffic flowed both ways.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, ensureTools, twoHosts, ping, iperf3Server, iperf3Client, waitReachable } from '../testbed/index.js';
import { attachWeftPod, startWeftNode, weftStatus, type WeftNode } from '../testbed/weft-node.js';
import { commandUsage, parseCommandArgs, type Command } from './args.js';

const TOOLS = [
  { bin: 'ip', debPackage: 'iproute2' },
  { bin: 'ping', debPackage: 'iputils-ping' },
  { bin: 'iperf3', debPackage: 'iperf3' },
];

export const DEMO_COMMAND: Command = {
  name: 'demo',
  summary: 'Two hosts in network namespaces, a pod behind each, a weft daemon per host; pings and iperf3 pod to pod (needs root).',
  specs: [
    { name: 'backend', type: 'string', default: 'udp', oneOf: ['udp', 'vxlan'], help: 'the backend both daemons run (vxlan: Mode auto)' },
    { name: 'seconds', type: 'number', default: 3, help: 'length of the iperf3 run' },
    { name: 'keep', type: 'bool', default: false, help: 'leave the hosts and daemons running for `weft top` until Ctrl-C' },
  ],
};

const NET_CONF: Record<string, string> = {
  udp: '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}\n',
  vxlan: '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}\n',
};

export async function runDemo(argv: string[]): Promise<number> {
  const args = parseCommandArgs(DEMO_COMMAND, argv);
  if (args === 'help') {
    process.stdout.write(commandUsage(DEMO_COMMAND));
    return 0;
  }
  const seconds = Number(args.seconds);
  const backend = String(args.backend);
  if (!(seconds >= 1 && seconds <= 60)) {
    process.stderr.write(`weft demo: --seconds=${seconds} must be 1..60\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('weft demo needs root (it creates network namespaces and TUN devices): run it with sudo\n');
    return 2;
  }
  try {
    ensureTools(TOOLS);
  } catch (e) {
    process.stderr.write(`weft demo: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  const tb = new Testbed(`wd${process.pid % 10000}`);
  const removeHandlers = tb.installSignalCleanup();
  const dir = await mkdtemp(join(tmpdir(), 'weft-demo-'));
  const say = (s: string) => process.stdout.write(`${s}\n`);
  try {
    say('building two hosts (h1, h2) joined by a veth underlay 192.168.100.0/24 ...');
    const { hosts } = await twoHosts(tb);
    const nodes: WeftNode[] = [];
    for (const h of hosts) {
      const n = await startWeftNode(tb, h, { dir, netConf: NET_CONF[backend]!, extraArgs: ['--workers=2'] });
      const st = await weftStatus(tb, n) as { mode: string; tun: string; offloads: { path: string } };
      say(`weft on ${h.name}: ${backend} backend, ${st.mode} on ${st.tun}, data path ${st.offloads.path}; lease ${n.subnet}, MTU ${n.mtu}`);
      nodes.push(n);
    }
    const [a, b] = [nodes[0]!, nodes[1]!];
    const podA = await attachWeftPod(tb, a);
    const podB = await attachWeftPod(tb, b);
    say(`pods: ${podA.ns} ${podA.ip}  ${podB.ns} ${podB.ip}`);
    await waitReachable(tb, podA.ns, podB.ip, 10_000);

    const ab = await ping(tb, podA.ns, podB.ip, { count: 10, intervalS: 0.05 });
    const ba = await ping(tb, podB.ns, podA.ip, { count: 10, intervalS: 0.05 });
    const server = await iperf3Server(tb, podB.ns);
    let gbps = 0;
    let iperfError = '';
    try {
      const r = await iperf3Client(tb, podA.ns, podB.ip, { seconds });
      gbps = r.summary.bitsPerSecond / 1e9;
    } catch (e) {
      iperfError = e instanceof Error ? e.message : String(e);
    } finally {
      await server.stop();
    }
    const median = (xs: number[]) => {
      const s = [...xs].sort((x, y) => x - y);
      return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
    };
    say('');
    say('| path      | ping sent/recv | RTT median (ms) |');
    say('|-----------|----------------|-----------------|');
    say(`| h1 → h2   | ${`${ab.sent}/${ab.received}`.padEnd(14)} | ${median(ab.rttMs).toFixed(3).padEnd(15)} |`);
    say(`| h2 → h1   | ${`${ba.sent}/${ba.received}`.padEnd(14)} | ${median(ba.rttMs).toFixed(3).padEnd(15)} |`);
    say('');
    say(iperfError ? `iperf3 pod→pod failed: ${iperfError}` : `iperf3 TCP pod→pod, ${seconds} s: ${gbps.toFixed(2)} Gbit/s`);
    say('');
    const kernel = (await weftStatus(tb, a) as { offloads: { path: string } }).offloads.path === 'kernel';
    if (kernel) say('the kernel forwarded the packets (vxlan kernel mode): weft programmed the device and has no packet counters.');
    else say('| daemon | tun→udp pkts | udp→tun pkts | dropped | drops by reason |');
    if (!kernel) say('|--------|--------------|--------------|---------|-----------------|');
    for (const n of kernel ? [] : nodes) {
      const s = await weftStatus(tb, n) as { totals: Record<string, number>; drops: Record<string, number> };
      const d = Object.entries(s.drops).filter(([, v]) => v > 0);
      const total = d.reduce((x, [, v]) => x + v, 0);
      say(`| ${n.host.name.padEnd(6)} | ${String(s.totals.udp_tx_packets).padEnd(12)} | `
        + `${String(s.totals.tun_tx_packets).padEnd(12)} | ${String(total).padEnd(7)} | `
        + `${d.map(([k, v]) => `${k}=${v}`).join(' ') || '-'} |`);
    }
    const ok = ab.received > 0 && ba.received > 0 && gbps > 0;
    say('');
    say(ok ? 'traffic flowed both ways through weft.' : 'FAILED: traffic did not flow both ways (see above).');
    if (!ok) {
      for (const n of nodes) {
        const log = await readFile(n.logFile, 'utf8').catch(() => '');
        say(`--- last lines of weft's log on ${n.host.name}:\n${log.split('\n').slice(-15).join('\n')}`);
      }
    }
    if (ok && args.keep === true) {
      say('');
      say('left running; in another terminal:');
      for (const n of nodes) say(`  weft top --control-socket=${n.controlSocket}`);
      say('Ctrl-C stops the daemons and removes everything.');
      // The testbed's signal handler cleans up and exits; until then, wait.
      await new Promise<never>(() => { setInterval(() => {}, 60_000); });
    }
    return ok ? 0 : 1;
  } finally {
    await tb.cleanup();
    removeHandlers();
    await rm(dir, { recursive: true, force: true });
  }
}
