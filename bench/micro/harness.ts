/**
 * Shared runner for the micro-benchmarks: one Benchmark.js suite, run
 * synchronously, printed as a table of ns per packet and packets per
 * second. Each case's fn processes a whole batch (`perIteration` packets)
 * so the harness's per-call overhead does not dominate.
 *
 * WEFT_BENCH_MAX_TIME (seconds, default 1) bounds the sampling time per case.
 */
import Benchmark from 'benchmark';

export interface BenchCase {
  name: string;
  /** Packets (or items) processed by one call of fn. */
  perIteration: number;
  fn: () => void;
}

export function runSuite(name: string, cases: BenchCase[]): void {
  const maxTime = Number(process.env.WEFT_BENCH_MAX_TIME ?? '') || 1;
  const suite = new Benchmark.Suite(name);
  for (const c of cases) {
    suite.add(c.name, c.fn, { maxTime, minSamples: 5, initCount: 1 });
  }
  const rows: string[][] = [];
  let failed = false;
  suite.on('cycle', (ev: Benchmark.Event) => {
    const b = ev.target as unknown as Benchmark;
    const c = cases.find((x) => x.name === b.name);
    const per = c?.perIteration ?? 1;
    if (b.error !== undefined && b.error !== null) {
      failed = true;
      rows.push([String(b.name), 'error', String((b.error as Error).message ?? b.error), '', '']);
      return;
    }
    const hz = b.hz ?? 0;
    const nsPerPacket = hz > 0 ? 1e9 / hz / per : NaN;
    rows.push([
      String(b.name),
      nsPerPacket.toFixed(1),
      formatRate(hz * per),
      `±${(b.stats?.rme ?? 0).toFixed(1)}%`,
      String(b.stats?.sample.length ?? 0),
    ]);
  });
  suite.run({ async: false });
  printTable(name, ['case', 'ns/packet', 'packets/s', 'rme', 'samples'], rows);
  if (failed) process.exitCode = 1;
}

function formatRate(pps: number): string {
  if (pps >= 1e6) return `${(pps / 1e6).toFixed(2)} M`;
  if (pps >= 1e3) return `${(pps / 1e3).toFixed(1)} k`;
  return pps.toFixed(0);
}

function printTable(title: string, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(`\n${title} (node ${process.version})`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}
