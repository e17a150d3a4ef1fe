/**
 * Traffic tools on a Testbed: ping (iputils) and iperf3, each bounded in
 * count and time, with their output parsed into numbers.
 */
import type { ChildProcess } from 'node:child_process';
import { WeftError } from '../errors.js';
import type { Testbed } from './testbed.js';

export interface PingOptions {
  count: number;
  /** Seconds between pings; below 0.2 needs root (we are). */
  intervalS: number;
  ttl?: number;
  /** ICMP payload bytes (-s). */
  size?: number;
  /** Set DF, never fragment locally (-M do). */
  df?: boolean;
  /** Default: count × interval + 5 s. */
  timeoutMs?: number;
}

export interface PingResult {
  sent: number;
  received: number;
  rttMs: number[];
  output: string;
}

/** Parses iputils ping output: the summary line and every "time=" sample. */
export function parsePing(output: string): Omit<PingResult, 'output'> {
  const summary = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(output);
  const rttMs: number[] = [];
  for (const m of output.matchAll(/\btime[=<]([\d.]+) ?ms/g)) rttMs.push(Number(m[1]));
  return {
    sent: summary ? Number(summary[1]) : 0,
    received: summary ? Number(summary[2]) : 0,
    rttMs,
  };
}

/**
 * Pings `dst` from `ns`. Never rejects for lost replies (received tells);
 * rejects only when ping cannot run or overruns its time bound.
 */
export async function ping(tb: Testbed, ns: string, dst: string, opts: PingOptions): Promise<PingResult> {
  // No -q: the per-reply lines carry the RTT samples.
  const argv = ['ping', '-n', '-c', String(opts.count), '-i', String(opts.intervalS), '-W', '1'];
  if (opts.ttl !== undefined) argv.push('-t', String(opts.ttl));
  if (opts.size !== undefined) argv.push('-s', String(opts.size));
  if (opts.df === true) argv.push('-M', 'do');
  // -w: ping's own deadline, so a black hole ends ping before our timeout.
  const deadlineS = Math.ceil(opts.count * opts.intervalS) + 2;
  argv.push('-w', String(deadlineS), dst);
  const r = await tb.exec(ns, argv, { timeoutMs: opts.timeoutMs ?? deadlineS * 1000 + 5_000 });
  const output = r.stdout + r.stderr;
  return { ...parsePing(output), output };
}

/** Pings once per `intervalMs` until a reply or `timeoutMs` passes; true on a reply. */
export async function waitReachable(tb: Testbed, ns: string, dst: string, timeoutMs = 15_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = await ping(tb, ns, dst, { count: 1, intervalS: 0.2 });
    if (r.received > 0) return true;
    await new Promise((res) => setTimeout(res, 200));
  }
  return false;
}

export interface Iperf3Server {
  ns: string;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `iperf3 -s` in `ns` (tracked by the testbed) and waits until it
 * listens. One server serves the successive client runs of a round.
 */
export async function iperf3Server(
  tb: Testbed,
  ns: string,
  opts: { port?: number; bind?: string; readyTimeoutMs?: number; logFile?: string } = {},
): Promise<Iperf3Server> {
  const port = opts.port ?? 5201;
  const argv = ['iperf3', '-s', '-p', String(port)];
  if (opts.bind !== undefined) argv.push('-B', opts.bind);
  const proc = tb.spawn(ns, argv, opts.logFile !== undefined ? { logFile: opts.logFile } : {});
  const end = Date.now() + (opts.readyTimeoutMs ?? 5_000);
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new WeftError('TESTBED_IPERF3', `iperf3 server in ${ns} exited (code ${proc.exitCode ?? proc.signalCode}) before listening on ${port}`);
    }
    const r = await tb.exec(ns, ['ss', '-Htln', `sport = :${port}`], { timeoutMs: 3_000 });
    if (r.code === 0 && r.stdout.trim() !== '') break;
    if (Date.now() > end) throw new WeftError('TESTBED_TIMEOUT', `iperf3 server in ${ns} not listening on ${port} after ${opts.readyTimeoutMs ?? 5_000} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    ns,
    port,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const t = setTimeout(() => {
          proc.kill('SIGKILL');
        }, 2_000);
        proc.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}

export interface Iperf3ClientOptions {
  /** -t; the call's timeout is seconds + 15 s unless timeoutMs is given. */
  seconds: number;
  port?: number;
  /** -P streams. */
  parallel?: number;
  udp?: boolean;
  /** -b, e.g. "0" (unlimited) or "100M". */
  bitrate?: string;
  /** -l payload length in bytes. */
  length?: number;
  reverse?: boolean;
  timeoutMs?: number;
}

export interface Iperf3Summary {
  /** Wall time of the test in seconds. */
  seconds: number;
  /** Bytes received by the receiver (TCP) or datagram payload bytes received (UDP). */
  bytes: number;
  /** Receiver-side bits per second. */
  bitsPerSecond: number;
  /** TCP: sender retransmits (null if the kernel does not report them). */
  retransmits: number | null;
  /** UDP: datagrams sent, lost, received and received per second. */
  packets: number | null;
  lostPackets: number | null;
  lostPercent: number | null;
  receivedPackets: number | null;
  receivedPps: number | null;
}

export interface Iperf3Result {
  json: unknown;
  summary: Iperf3Summary;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : {});
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Extracts the headline numbers from `iperf3 -J` client output. */
export function summarizeIperf3(json: unknown, udp: boolean): Iperf3Summary {
  const end = obj(obj(json).end);
  if (udp) {
    // iperf3 (3.12) reports both sides: sum_sent.packets is what the client
    // sent; on sum_received, packets is the highest sequence number the
    // server saw and lost_packets the gaps below it, so the datagrams that
    // arrived are packets − lost_packets. Loss is against what was sent
    // (datagrams still in flight at the end count as lost).
    const sent = obj(end.sum_sent ?? end.sum);
    const recv = obj(end.sum_received ?? end.sum);
    const seconds = num(recv.seconds) ?? num(sent.seconds) ?? 0;
    const packets = num(sent.packets);
    const seen = num(recv.packets);
    const gaps = num(recv.lost_packets);
    const received = seen !== null && gaps !== null ? seen - gaps : null;
    return {
      seconds,
      bytes: num(recv.bytes) ?? 0,
      bitsPerSecond: num(recv.bits_per_second) ?? 0,
      retransmits: null,
      packets,
      lostPackets: packets !== null && received !== null ? packets - received : null,
      lostPercent: packets !== null && packets > 0 && received !== null ? ((packets - received) / packets) * 100 : null,
      receivedPackets: received,
      receivedPps: received !== null && seconds > 0 ? received / seconds : null,
    };
  }
  const recv = obj(end.sum_received);
  const sent = obj(end.sum_sent);
  return {
    seconds: num(recv.seconds) ?? num(sent.seconds) ?? 0,
    bytes: num(recv.bytes) ?? 0,
    bitsPerSecond: num(recv.bits_per_second) ?? 0,
    retransmits: num(sent.retransmits),
    packets: null,
    lostPackets: null,
    lostPercent: null,
    receivedPackets: null,
    receivedPps: null,
  };
}

/** Runs `iperf3 -c server -J` in `ns`; rejects with iperf3's own error text. */
export async function iperf3Client(tb: Testbed, ns: string, server: string, opts: Iperf3ClientOptions): Promise<Iperf3Result> {
  const argv = ['iperf3', '-c', server, '-J', '-t', String(opts.seconds), '-p', String(opts.port ?? 5201), '--connect-timeout', '3000'];
  if (opts.parallel !== undefined) argv.push('-P', String(opts.parallel));
  if (opts.udp === true) argv.push('-u');
  if (opts.bitrate !== undefined) argv.push('-b', opts.bitrate);
  if (opts.length !== undefined) argv.push('-l', String(opts.length));
  if (opts.reverse === true) argv.push('-R');
  const r = await tb.exec(ns, argv, { timeoutMs: opts.timeoutMs ?? opts.seconds * 1000 + 15_000 });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new WeftError('TESTBED_IPERF3', `iperf3 ${argv.slice(1).join(' ')} in ${ns}: exit ${r.code}, no JSON: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  }
  const err = obj(json).error;
  if (typeof err === 'string' || r.code !== 0) {
    throw new WeftError('TESTBED_IPERF3', `iperf3 ${argv.slice(1).join(' ')} in ${ns}: ${typeof err === 'string' ? err : `exit ${r.code}`}`);
  }
  return { json, summary: summarizeIperf3(json, opts.udp === true) };
}
