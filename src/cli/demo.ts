/**
 * `weft demo`: two hosts in network namespaces joined by a veth underlay, a
 * pod behind each, a weft daemon per host with the local lease store; then
 * pings both ways and a short iperf3 pod→pod. Everything it creates is
 * prefixed and removed on exit, on error and on Ctrl-C. Exit 0 only when
 * traffic flowed both ways.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, ensureTools, twoHosts, ping, iperf3Server, iperf3Client, waitReachable } from '../testbed/index.js';
import { attachWeftPod, startWeftNode, weftStatus, type WeftNode } from '../testbed/weft-node.js';

const TOOLS = [
  { bin: 'ip', debPackage: 'iproute2' },
  { bin: 'ping', debPackage: 'iputils-ping' },
  { bin: 'iperf3', debPackage: 'iperf3' },
];

export async function runDemo(argv: string[]): Promise<number> {
  const seconds = Number(/^--seconds=(\d+)$/.exec(argv.find((a) => a.startsWith('--seconds=')) ?? '')?.[1] ?? 3);
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
      const n = await startWeftNode(tb, h, { dir, extraArgs: ['--workers=2'] });
      say(`weft on ${h.name}: lease ${n.subnet}, MTU ${n.mtu}`);
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
    say('| daemon | tun→udp pkts | udp→tun pkts | dropped | drops by reason |');
    say('|--------|--------------|--------------|---------|-----------------|');
    for (const n of nodes) {
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
    return ok ? 0 : 1;
  } finally {
    await tb.cleanup();
    removeHandlers();
    await rm(dir, { recursive: true, force: true });
  }
}
