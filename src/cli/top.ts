/**
 * `weft top`: a refreshing view of a running daemon — lease, workers, and
 * per-peer and per-drop-reason rates computed from successive snapshots of
 * the control socket's counters. q or Ctrl-C quits.
 */
import { commandUsage, controlSocketArg, parseCommandArgs, type Command } from './args.js';
import { WeftError } from '../errors.js';
import { controlRequest } from '../control/control-server.js';
import type { Status } from './status.js';

type Sample = { at: number; s: Status };

function rate(now: number, before: number | undefined, seconds: number): number {
  return before === undefined || seconds <= 0 ? 0 : Math.max(0, (now - before) / seconds);
}

function human(n: number, unit: string): string {
  const steps = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  while (n >= 1000 && i < steps.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)}${steps[i]}${unit}`;
}

/** One screen of `weft top` from two samples (pure, for tests). */
export function renderTop(cur: Sample, prev: Sample | null): string {
  const s = cur.s;
  const dt = prev ? (cur.at - prev.at) / 1000 : 0;
  const p = prev?.s;
  const lines: string[] = [];
  lines.push(`weft ${s.version}  pid ${s.pid}  up ${s.uptimeSeconds}s  ${s.tun}  lease ${s.lease?.subnet ?? '-'}`
    + `  public ${s.publicIp ?? '-'}  route epoch ${s.routeEpoch}`);
  lines.push(`path: ${String(s.offloads.path ?? '?')}  workers: ${s.workers
    .map((w) => `#${w.index} ${w.alive ? 'up' : 'DOWN'}${w.restarts ? ` (${w.restarts} restarts)` : ''}`).join('  ')}`);
  const t = s.totals;
  const pt = p?.totals ?? {};
  lines.push(`tun→udp ${human(rate(t.udp_tx_packets ?? 0, pt.udp_tx_packets, dt), 'pkt/s')} `
    + `${human(8 * rate(t.udp_tx_bytes ?? 0, pt.udp_tx_bytes, dt), 'bit/s')}   `
    + `udp→tun ${human(rate(t.tun_tx_packets ?? 0, pt.tun_tx_packets, dt), 'pkt/s')} `
    + `${human(8 * rate(t.tun_tx_bytes ?? 0, pt.tun_tx_bytes, dt), 'bit/s')}`);
  lines.push('');
  lines.push(`${'PEER'.padEnd(18)} ${'PUBLIC IP'.padEnd(15)} ${'TX pkt/s'.padStart(10)} ${'TX bit/s'.padStart(10)} `
    + `${'RX pkt/s'.padStart(10)} ${'RX bit/s'.padStart(10)}`);
  for (const peer of s.peers) {
    const q = p?.peers.find((x) => x.subnet === peer.subnet);
    lines.push(`${peer.subnet.padEnd(18)} ${peer.publicIp.padEnd(15)} `
      + `${human(rate(peer.txPackets, q?.txPackets, dt), '').padStart(10)} `
      + `${human(8 * rate(peer.txBytes, q?.txBytes, dt), '').padStart(10)} `
      + `${human(rate(peer.rxPackets, q?.rxPackets, dt), '').padStart(10)} `
      + `${human(8 * rate(peer.rxBytes, q?.rxBytes, dt), '').padStart(10)}`);
  }
  if (s.peers.length === 0) lines.push('(no peers)');
  lines.push('');
  lines.push(`${'DROP REASON'.padEnd(20)} ${'TOTAL'.padStart(12)} ${'PER S'.padStart(10)}`);
  const drops = Object.entries(s.drops).filter(([, v]) => v > 0);
  for (const [k, v] of drops) {
    lines.push(`${k.padEnd(20)} ${String(v).padStart(12)} ${human(rate(v, p?.drops[k], dt), '').padStart(10)}`);
  }
  if (drops.length === 0) lines.push('(no drops)');
  const k = s.kernelDrops;
  if (k) lines.push(`kernel: udp socket drops ${k.udpSocket}, tun queue drops ${k.tunQueue}`);
  return `${lines.join('\n')}\n`;
}

export const TOP_COMMAND: Command = {
  name: 'top',
  summary: 'The daemon\'s status, refreshing, with rates per peer and per drop reason (q or Ctrl-C quits).',
  specs: [
    { name: 'interval', type: 'number', default: 1, help: 'seconds between samples, 0.1..3600' },
    { name: 'once', type: 'bool', default: false, help: 'take two samples an interval apart, print one screen and exit' },
    controlSocketArg(),
  ],
};

export async function runTop(argv: string[]): Promise<number> {
  const args = parseCommandArgs(TOP_COMMAND, argv);
  if (args === 'help') {
    process.stdout.write(commandUsage(TOP_COMMAND));
    return 0;
  }
  const interval = Number(args.interval);
  const once = args.once === true;
  if (!(interval >= 0.1 && interval <= 3600)) {
    throw new WeftError('EUSAGE', `top: --interval=${interval} must be seconds between 0.1 and 3600`);
  }
  const socket = String(args['control-socket']);
  const get = async (): Promise<Sample> => ({
    at: Date.now(), s: await controlRequest(socket, 'GET', '/status') as Status,
  });
  let prev = await get();
  if (once) {
    await new Promise((r) => setTimeout(r, interval * 1000));
    process.stdout.write(renderTop(await get(), prev));
    return 0;
  }
  const tty = process.stdin.isTTY === true;
  let stop = false;
  const quit = () => { stop = true; };
  process.once('SIGINT', quit);
  if (tty) {
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', (d: Buffer) => { if (d[0] === 0x71 /* q */ || d[0] === 3 /* ^C */) quit(); });
  }
  try {
    while (!stop) {
      await new Promise((r) => setTimeout(r, interval * 1000));
      if (stop) break;
      const cur = await get();
      process.stdout.write(`\x1b[H\x1b[2J${renderTop(cur, prev)}(q to quit)\n`);
      prev = cur;
    }
  } finally {
    if (tty) { process.stdin.setRawMode(false); process.stdin.pause(); }
    process.removeListener('SIGINT', quit);
  }
  return 0;
}
