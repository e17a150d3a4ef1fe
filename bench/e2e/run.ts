/**
 * End-to-end packet-path bench: weft beside host-gw, the kernel's vxlan and
 * userspace tunnels (socat, fastd) on a namespace testbed, variants
 * interleaved round by round so drift hits all alike.
 *
 *   node dist/bench/e2e/run.js [--quick] [--rounds N] [--seconds S]
 *        [--variants a,b,...] [--out DIR]
 *
 * Writes DIR/results.json (every sample + environment), DIR/results.md
 * (table and ratios) and DIR/chart.svg. Exit 0 when every round of every
 * variant ran, 1 when some failed (the failures are in the outputs), 2 when
 * it cannot run here (not root, a tool missing, bad arguments).
 */
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Testbed, ensureTools, iperf3Client, iperf3Server, ping, waitReachable, type Iperf3Result, type ToolSpec } from '../../src/testbed/index.js';
import { cpuNanosAll, cpuSecondsAll, peakRssKb } from './proc.js';
import { evaluateTargets, FIGURES, markdown, median, summarize, svgChart, weftOffloads, type ReportMeta, type Sample, type TcpSample, type UdpSample } from './report.js';
import { KERNEL_REFERENCE, USERSPACE_PEERS, VARIANTS, type Variant, type VariantSetup } from './variants.js';

interface Options {
  rounds: number;
  seconds: number;
  variants: Variant[];
  out: string;
}

const USAGE = `usage: node dist/bench/e2e/run.js [--quick] [--rounds N] [--seconds S] [--variants a,b,...] [--out DIR]
  --quick        1 round x 3 s (default: 3 rounds x 10 s)
  --variants     any of: ${VARIANTS.map((v) => v.name).join(', ')}
                 (default: ${VARIANTS.filter((v) => v.byDefault).map((v) => v.name).join(',')})
  --out DIR      default bench-results/<timestamp>/
Needs root (network namespaces, TUN devices).`;

const BASE_TOOLS: ToolSpec[] = [
  { bin: 'ip', debPackage: 'iproute2' },
  { bin: 'ss', debPackage: 'iproute2' },
  { bin: 'iperf3', debPackage: 'iperf3' },
  { bin: 'ping', debPackage: 'iputils-ping' },
];

const PING_COUNT = 50;
const PING_INTERVAL_S = 0.01;
// Back to back: each ping leaves when the last reply arrives (-i 0; one
// in flight), so every pass finds the path warm and the RTT is what each
// hop costs, not what a wake after a pause costs. Bounded by ping's own
// deadline (2 s) as well as the count.
const PING_B2B_COUNT = 2000;
const UDP_PAYLOAD = 64;
const REACH_TIMEOUT_MS = 15_000;

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Options | 'help' {
  let rounds: number | null = null;
  let seconds: number | null = null;
  let quick = false;
  let names: string[] | null = null;
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (a.startsWith('--') && eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    const int = (name: string, v: string, lo: number, hi: number): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`${name} must be an integer ${lo}..${hi}, got "${v}"`);
      return n;
    };
    switch (flag) {
      case '-h':
      case '--help':
        return 'help';
      case '--quick':
        quick = true;
        break;
      case '--rounds':
        rounds = int('--rounds', value(), 1, 50);
        break;
      case '--seconds':
        seconds = int('--seconds', value(), 1, 120);
        break;
      case '--variants':
        names = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
        break;
      case '--out':
        out = value();
        break;
      default:
        throw new UsageError(`unknown argument "${a}"`);
    }
  }
  let variants: Variant[];
  if (names === null) {
    variants = VARIANTS.filter((v) => v.byDefault);
  } else {
    if (names.length === 0) throw new UsageError('--variants is empty');
    variants = names.map((n) => {
      const v = VARIANTS.find((x) => x.name === n);
      if (v === undefined) throw new UsageError(`unknown variant "${n}" (known: ${VARIANTS.map((x) => x.name).join(', ')})`);
      return v;
    });
    variants = variants.filter((v, i) => variants.indexOf(v) === i);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    rounds: rounds ?? (quick ? 1 : 3),
    seconds: seconds ?? (quick ? 3 : 10),
    variants,
    out: resolve(out ?? join('bench-results', stamp)),
  };
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

async function toolVersion(tb: Testbed, argv: string[], pick: (out: string) => string): Promise<string | null> {
  try {
    const r = await tb.exec(null, argv, { timeoutMs: 5_000 });
    const v = pick(r.stdout + r.stderr).trim();
    return v === '' ? null : v;
  } catch {
    return null;
  }
}

function tcpSample(r: Iperf3Result): TcpSample {
  const intervals = (r.json as { intervals?: { sum?: { bits_per_second?: number } }[] }).intervals ?? [];
  return {
    gbps: r.summary.bitsPerSecond / 1e9,
    retransmits: r.summary.retransmits,
    bytes: r.summary.bytes,
    seconds: r.summary.seconds,
    intervalsGbps: intervals.map((i) => (i.sum?.bits_per_second ?? 0) / 1e9),
  };
}

function udpSample(r: Iperf3Result): UdpSample {
  return {
    pps: r.summary.receivedPps ?? 0,
    lossPercent: r.summary.lostPercent,
    packetsSent: r.summary.packets,
    packetsReceived: r.summary.receivedPackets,
    bytes: r.summary.bytes,
    seconds: r.summary.seconds,
  };
}

async function copyLogs(from: string, to: string): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(from)).filter((n) => n.endsWith('.log'));
  } catch {
    return;
  }
  if (names.length === 0) return;
  await mkdir(to, { recursive: true });
  for (const n of names) await copyFile(join(from, n), join(to, n)).catch(() => {});
}

/**
 * Runs `work` and returns what it gave, the daemons' thread CPU time over
 * it (per-thread schedstat; null without a daemon or when one is gone) and
 * its wall time, both in ns.
 */
async function withDaemonCpu<T>(daemons: readonly number[], work: () => Promise<T>): Promise<{ value: T; cpuNs: number | null; wallNs: number }> {
  const c0 = cpuNanosAll(daemons);
  const w0 = performance.now();
  const value = await work();
  const wallNs = (performance.now() - w0) * 1e6;
  const c1 = cpuNanosAll(daemons);
  return { value, cpuNs: daemons.length > 0 && c0 !== null && c1 !== null ? c1 - c0 : null, wallNs };
}

async function runRound(tb: Testbed, v: Variant, round: number, seconds: number, work: string, out: string): Promise<Sample> {
  const s: Sample = {
    variant: v.name, round, startedAt: new Date().toISOString(), setupMs: null, mtu: null,
    error: null, errors: [], notes: [], ping: null, pingB2b: null, tcp1: null, tcp4: null, udp64: null, cpu: null, rss: null, extra: null,
  };
  const fail = (what: string, e: unknown): void => {
    s.errors.push(`${what}: ${message(e)}`);
  };
  const dir = join(work, `${v.name}-r${round}`);
  await mkdir(dir, { recursive: true });
  let setup: VariantSetup | null = null;
  try {
    if (v.unavailable !== null) {
      s.errors.push(v.unavailable);
      return s;
    }
    const t0 = performance.now();
    try {
      setup = await v.setup({ tb, dir });
    } catch (e) {
      fail('setup', e);
      return s;
    }
    s.setupMs = Math.round(performance.now() - t0);
    s.mtu = setup.mtu;
    const [pa, pb] = setup.pods;
    if (!(await waitReachable(tb, pa.ns, pb.ip, REACH_TIMEOUT_MS))) {
      fail('connectivity', new Error(`pod ${pa.ip} got no ping reply from pod ${pb.ip} within ${REACH_TIMEOUT_MS} ms`));
      return s;
    }
    try {
      const { value: p, cpuNs, wallNs } = await withDaemonCpu(setup.daemons,
        () => ping(tb, pa.ns, pb.ip, { count: PING_COUNT, intervalS: PING_INTERVAL_S }));
      s.ping = { sent: p.sent, received: p.received, rttMs: p.rttMs, medianMs: median(p.rttMs),
        daemonCpuPct: cpuNs === null ? null : cpuNs / wallNs * 100 };
    } catch (e) {
      fail('ping', e);
    }
    try {
      const { value: p, cpuNs } = await withDaemonCpu(setup.daemons,
        () => ping(tb, pa.ns, pb.ip, { count: PING_B2B_COUNT, intervalS: 0 }));
      s.pingB2b = { sent: p.sent, received: p.received, medianMs: median(p.rttMs),
        daemonCpuUsPerRtt: cpuNs !== null && p.received > 0 ? cpuNs / 1e3 / p.received : null };
    } catch (e) {
      fail('ping back to back', e);
    }
    // The server logs to the round's directory (copied to logs/) so a
    // server that dies between tests can be diagnosed; a dead one is
    // restarted before the next test and the restart noted, rather than
    // letting one iperf3 crash cost the round's remaining figures.
    const serverLog = (): string => join(dir, `iperf3-server-${s.notes.length}.log`);
    let server = await iperf3Server(tb, pb.ns, { logFile: serverLog() });
    const ensureServer = async (before: string): Promise<void> => {
      const p = server.proc;
      if (p.exitCode === null && p.signalCode === null) return;
      s.notes.push(`iperf3 server exited (${p.exitCode !== null ? `code ${p.exitCode}` : String(p.signalCode)}) before ${before}; restarted`);
      server = await iperf3Server(tb, pb.ns, { logFile: serverLog() });
    };
    const cpu0 = cpuSecondsAll(setup.daemons);
    try {
      await ensureServer('tcp 1 stream');
      s.tcp1 = tcpSample(await iperf3Client(tb, pa.ns, pb.ip, { seconds }));
    } catch (e) {
      fail('tcp 1 stream', e);
    }
    try {
      await ensureServer('tcp 4 streams');
      s.tcp4 = tcpSample(await iperf3Client(tb, pa.ns, pb.ip, { seconds, parallel: 4 }));
    } catch (e) {
      fail('tcp 4 streams', e);
    }
    try {
      await ensureServer('udp 64 B');
      s.udp64 = udpSample(await iperf3Client(tb, pa.ns, pb.ip, { seconds, udp: true, bitrate: '0', length: UDP_PAYLOAD }));
    } catch (e) {
      fail('udp 64 B', e);
    }
    const cpu1 = cpuSecondsAll(setup.daemons);
    const bytesMoved = (s.tcp1?.bytes ?? 0) + (s.tcp4?.bytes ?? 0) + (s.udp64?.bytes ?? 0);
    const daemonSeconds = setup.daemons.length > 0 && cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
    s.cpu = {
      daemonSeconds,
      bytesMoved,
      secondsPerGB: daemonSeconds !== null && bytesMoved > 0 ? daemonSeconds / (bytesMoved / 1e9) : null,
    };
    const rss = setup.daemons.map((p) => peakRssKb(p));
    const known = rss.filter((x): x is number => x !== null);
    s.rss = { perDaemonKb: rss, peakMB: known.length > 0 ? Math.max(...known) / 1024 : null };
    if (setup.daemons.length > 0 && cpu1 === null) fail('daemons', new Error('a tunnel daemon exited during the round'));
    await server.stop();
  } catch (e) {
    fail('round', e);
  } finally {
    // Also after a failed round: what the daemons report (e.g. their
    // offload path) is known from start-up and helps explain the failure.
    if (setup?.collect !== undefined) {
      try {
        s.extra = await setup.collect();
      } catch (e) {
        fail('collect', e);
      }
    }
    s.error = s.errors[0] ?? null;
    await copyLogs(dir, join(out, 'logs', `${v.name}-r${round}`));
    await tb.cleanup();
  }
  return s;
}

function progress(s: Sample, total: number): string {
  const head = `[round ${s.round}/${total}] ${s.variant.padEnd(17)}`;
  if (s.tcp1 === null && s.tcp4 === null && s.udp64 === null && s.error !== null) return `${head} FAILED: ${s.error.split('\n')[0]}`;
  const n = (x: number | null | undefined, d: number): string => (x === null || x === undefined ? '—' : x.toFixed(d));
  return `${head} tcp1 ${n(s.tcp1?.gbps, 2)} Gbit/s, tcp4 ${n(s.tcp4?.gbps, 2)} Gbit/s, udp64 ${n(s.udp64 ? s.udp64.pps / 1000 : null, 1)} kpps, ` +
    `rtt ${n(s.ping?.medianMs, 3)} ms, b2b ${n(s.pingB2b?.medianMs, 3)} ms ${n(s.pingB2b?.daemonCpuUsPerRtt, 1)} µs cpu, cpu ${n(s.cpu?.secondsPerGB, 2)} s/GB${s.error !== null ? ` (error: ${s.error.split('\n')[0]})` : ''}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`weft bench: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    throw e;
  }
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('weft bench: needs root (it creates network namespaces and TUN devices); run it as root, e.g. sudo npm run bench\n');
    return 2;
  }
  const tools = [...BASE_TOOLS, ...opts.variants.filter((v) => v.unavailable === null).flatMap((v) => v.tools)];
  try {
    ensureTools(tools);
  } catch (e) {
    process.stderr.write(`weft bench: ${message(e)}\n`);
    return 2;
  }

  // The full pid in the prefix lets a later run tell a crashed run's
  // namespaces (pid gone) from a concurrent one's.
  const prefix = `wb${process.pid}`;
  const stale = Testbed.sweepDead('wb');
  if (stale.length > 0) process.stderr.write(`removed stale namespaces of an earlier run: ${stale.join(' ')}\n`);
  const tb = new Testbed(prefix);
  const uninstall = tb.installSignalCleanup();
  await mkdir(opts.out, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'weft-bench-'));

  const cpuList = cpus();
  const meta: ReportMeta = {
    date: new Date().toISOString(),
    kernel: release(),
    cores: cpuList.length,
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    node: process.version,
    rounds: opts.rounds,
    seconds: opts.seconds,
  };
  const environment = {
    ...meta,
    argv: [...argv],
    variants: opts.variants.map((v) => ({ name: v.name, description: v.description })),
    topology: 'two host netns joined by a veth underlay (MTU 1500), one pod netns per host behind a veth with MTU = overlay MTU; fresh namespaces per variant per round',
    tests: {
      ping: `${PING_COUNT} pings at ${PING_INTERVAL_S * 1000} ms, median RTT; the daemons' CPU time over them (per-thread schedstat) as % of one core`,
      pingB2b: `${PING_B2B_COUNT} pings back to back (ping -i 0, one in flight), median RTT; the daemons' CPU time over them (per-thread schedstat) per reply`,
      tcp1: `iperf3 -t ${opts.seconds}`,
      tcp4: `iperf3 -t ${opts.seconds} -P 4`,
      udp64: `iperf3 -u -b 0 -l ${UDP_PAYLOAD} -t ${opts.seconds}`,
      cpu: 'utime+stime (+cutime+cstime) of the tunnel daemons and their descendants from /proc/<pid>/stat, over the three iperf3 tests, per 1e9 payload bytes received',
      rss: 'max VmHWM over the tunnel daemons',
    },
    tools: {
      iperf3: await toolVersion(tb, ['iperf3', '--version'], (o) => o.split('\n')[0] ?? ''),
      ping: await toolVersion(tb, ['ping', '-V'], (o) => o.split('\n')[0] ?? ''),
      iproute2: await toolVersion(tb, ['ip', '-V'], (o) => o.split('\n')[0] ?? ''),
      socat: await toolVersion(tb, ['socat', '-V'], (o) => /socat version \S+/.exec(o)?.[0] ?? ''),
      fastd: await toolVersion(tb, ['fastd', '--version'], (o) => o.split('\n')[0] ?? ''),
    },
    /** Last `weft status --json` per weft variant and host (null: never reported). */
    weftStatus: {} as Record<string, unknown>,
    /** The offloads block (incl. `path`) each weft daemon reported, per variant and host. */
    weftOffloads: {} as Record<string, Record<string, unknown> | null>,
  };

  process.stderr.write(`weft bench: ${opts.variants.map((v) => v.name).join(', ')}; ${opts.rounds} round(s) x ${opts.seconds} s; output ${opts.out}\n`);
  const samples: Sample[] = [];
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const v of opts.variants) {
        const s = await runRound(tb, v, round, opts.seconds, work, opts.out);
        samples.push(s);
        process.stderr.write(`${progress(s, opts.rounds)}\n`);
        const status = (s.extra as { weftStatus?: Record<string, unknown> } | null)?.weftStatus;
        if (status !== undefined) environment.weftStatus[v.name] = status;
        else if (v.name.startsWith('weft') && !(v.name in environment.weftStatus)) environment.weftStatus[v.name] = null;
      }
    }
  } finally {
    await tb.cleanup();
    await rm(work, { recursive: true, force: true });
  }

  const names = opts.variants.map((v) => v.name);
  const summary = summarize(names, samples);
  environment.weftOffloads = weftOffloads(names, samples);
  const targets = evaluateTargets(names, summary);
  const notes = opts.variants.map((v) => v.note).filter((n): n is string => n !== undefined);
  const result = {
    schema: 'weft-bench-e2e/1',
    environment,
    variants: names,
    figures: FIGURES.map((f) => ({ key: f.key, label: f.label, better: f.better })),
    samples,
    summary,
    targets,
  };
  const md = markdown(meta, names, samples, summary, KERNEL_REFERENCE, USERSPACE_PEERS, { notes, targets, offloads: environment.weftOffloads });
  await writeFile(join(opts.out, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(opts.out, 'results.md'), md);
  await writeFile(join(opts.out, 'chart.svg'), svgChart(meta, names, summary));
  process.stdout.write(`${md}\nwrote ${join(opts.out, 'results.json')}, results.md, chart.svg\n`);
  uninstall();
  return samples.some((s) => s.error !== null) ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`weft bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
