/** `weft status`: one look at a running daemon through its control socket. */
import { commandUsage, controlSocketArg, parseCommandArgs, type Command } from './args.js';
import { controlRequest } from '../control/control-server.js';

export interface Status {
  version: string; pid: number; uptimeSeconds: number; tun: string; backend: string | null; mode: string;
  lease: { subnet: string; expiration: string } | null; publicIp: string | null;
  offloads: Record<string, unknown>; routeEpoch: number;
  workers: { index: number; alive: boolean; restarts: number; heartbeatAgeMs: number | null }[];
  peers: { subnet: string; publicIp: string; txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }[];
  ignoredPeers?: { subnet: string; publicIp: string; backendType: string; why: string }[];
  routeFailures?: { subnet: string; gateway: string; error: string; attempts: number }[];
  totals: Record<string, number>; drops: Record<string, number>;
  kernelDrops?: { udpSocket: number; tunQueue: number } | null;
}

export const STATUS_COMMAND: Command = {
  name: 'status',
  summary: 'One look at a running daemon through its control socket: lease, peers, ignored peers, counters, drops, workers.',
  specs: [{ name: 'json', type: 'bool', default: false, help: 'print the status JSON as the daemon sends it' }, controlSocketArg()],
};

export async function runStatus(argv: string[]): Promise<number> {
  const args = parseCommandArgs(STATUS_COMMAND, argv);
  if (args === 'help') {
    process.stdout.write(commandUsage(STATUS_COMMAND));
    return 0;
  }
  const s = await controlRequest(String(args['control-socket']), 'GET', '/status') as Status;
  if (args.json === true) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(formatStatus(s));
  return 0;
}

export function formatStatus(s: Status): string {
  const lines: string[] = [];
  lines.push(`weft ${s.version}  pid ${s.pid}  up ${s.uptimeSeconds}s  ${s.mode || '-'}${s.tun ? ` on ${s.tun}` : ''}`
    + `  lease ${s.lease?.subnet ?? '-'}`
    + `  public ${s.publicIp ?? '-'}  route epoch ${s.routeEpoch}`);
  lines.push(`offloads: ${Object.entries(s.offloads).map(([k, v]) => `${k}=${String(v)}`).join(' ')}`);
  lines.push(`workers: ${s.workers.map((w) => `#${w.index} ${w.alive ? 'up' : 'DOWN'} restarts=${w.restarts}`).join(', ')}`);
  lines.push('peers:');
  if (s.peers.length === 0) lines.push('  (none)');
  for (const p of s.peers) {
    lines.push(`  ${p.subnet.padEnd(18)} via ${p.publicIp.padEnd(15)} tx ${p.txPackets} pkts ${p.txBytes} B`
      + `  rx ${p.rxPackets} pkts ${p.rxBytes} B`);
  }
  const ignored = s.ignoredPeers ?? [];
  if (ignored.length > 0) {
    lines.push('ignored peers:');
    for (const p of ignored) lines.push(`  ${p.subnet.padEnd(18)} at  ${p.publicIp.padEnd(15)} ${p.why}`);
  }
  for (const f of s.routeFailures ?? []) {
    lines.push(`route refused: ${f.subnet} via ${f.gateway} (${f.attempts} attempts): ${f.error}`);
  }
  const t = s.totals;
  lines.push(`packets: tun→udp ${t.tun_rx_packets ?? 0}/${t.udp_tx_packets ?? 0}  udp→tun ${t.udp_rx_packets ?? 0}/${t.tun_tx_packets ?? 0}  icmp sent ${t.icmp_sent ?? 0}`);
  const drops = Object.entries(s.drops).filter(([, v]) => v > 0);
  lines.push(`drops: ${drops.length === 0 ? 'none' : drops.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  if (s.kernelDrops) {
    lines.push(`kernel drops: udp socket ${s.kernelDrops.udpSocket}, tun queue ${s.kernelDrops.tunQueue}`);
  }
  return `${lines.join('\n')}\n`;
}
