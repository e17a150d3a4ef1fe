import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needsRoot } from '../helpers/root.js';

// dist/test/integration/ → dist/bench/e2e/run.js
const RUN = fileURLToPath(new URL('../../bench/e2e/run.js', import.meta.url));
const VARIANTS = ['host-gw', 'weft-udp'];

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    // SIGTERM on overrun: the bench cleans up its namespaces and exits 143.
    const child = spawn(process.execPath, [RUN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs, killSignal: 'SIGTERM' });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

type Obj = Record<string, unknown>;

test('e2e bench --quick: JSON, table and chart written; traffic moved for every variant (shape only, no timing)', { timeout: 300_000 }, async (t) => {
  if (!needsRoot(t)) return;
  const out = await mkdtemp(join(tmpdir(), 'weft-bench-test-'));
  try {
    const { code, stderr } = await runBench(['--quick', '--variants', VARIANTS.join(','), '--out', out], 240_000);
    const result = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as Obj;
    assert.equal(result.schema, 'weft-bench-e2e/1');
    const env = result.environment as Obj;
    for (const k of ['date', 'kernel', 'cores', 'node', 'tools', 'rounds', 'seconds', 'weftStatus', 'weftOffloads']) {
      assert.ok(k in env, `environment.${k}`);
    }
    assert.equal(env.rounds, 1);
    assert.equal(env.seconds, 3);
    assert.ok(typeof env.cores === 'number' && env.cores > 0);
    assert.deepEqual(result.variants, VARIANTS);
    assert.ok('weft-udp' in (env.weftStatus as Obj), 'weft status recorded (object or null)');
    // The offload path each weft daemon reported, per variant and host.
    const offloads = (env.weftOffloads as Record<string, Record<string, Obj | null> | null>)['weft-udp'];
    assert.ok(offloads !== null && offloads !== undefined, 'weft-udp offloads recorded');
    assert.equal(Object.keys(offloads).length, 2, 'one entry per weft daemon');
    for (const [h, o] of Object.entries(offloads)) {
      assert.equal(typeof o?.path, 'string', `${h}: offload path reported`);
    }
    assert.ok(!('host-gw' in (env.weftOffloads as Obj)), 'only weft variants have an offload path');

    const samples = result.samples as Obj[];
    assert.equal(samples.length, VARIANTS.length, 'one sample per variant and round');
    assert.deepEqual(samples.map((s) => s.variant), VARIANTS, 'round order A B …');
    for (const s of samples) {
      const v = s.variant as string;
      assert.equal(s.error, null, `${v} failed: ${String(s.error)}`);
      const tcp1 = s.tcp1 as Obj;
      const tcp4 = s.tcp4 as Obj;
      const udp = s.udp64 as Obj;
      const ping = s.ping as Obj;
      assert.ok((tcp1.bytes as number) > 0, `${v}: tcp 1 stream moved bytes`);
      assert.ok((tcp4.bytes as number) > 0, `${v}: tcp 4 streams moved bytes`);
      assert.ok(typeof tcp1.gbps === 'number' && Array.isArray(tcp1.intervalsGbps));
      assert.ok((udp.packetsReceived as number) > 0, `${v}: udp packets received`);
      assert.ok((udp.packetsSent as number) >= (udp.packetsReceived as number));
      assert.ok(typeof udp.pps === 'number' && typeof udp.lossPercent === 'number');
      assert.equal(ping.sent, 50);
      assert.ok((ping.received as number) > 0, `${v}: ping replies`);
      assert.equal((ping.rttMs as number[]).length, ping.received);
      const b2b = s.pingB2b as Obj;
      assert.ok((b2b.received as number) > 0 && (b2b.received as number) <= (b2b.sent as number), `${v}: back-to-back replies`);
      assert.ok((b2b.medianMs as number) > 0, `${v}: back-to-back median`);
      assert.ok(typeof s.mtu === 'number');
      const cpu = s.cpu as Obj;
      assert.ok((cpu.bytesMoved as number) > 0);
      if (v === 'host-gw') {
        assert.equal(cpu.secondsPerGB, null, 'no daemon for host-gw');
        assert.equal(b2b.daemonCpuUsPerRtt, null, 'no daemon CPU per round trip for host-gw');
        assert.equal(ping.daemonCpuPct, null, 'no daemon CPU during the ping for host-gw');
      } else {
        assert.equal(typeof cpu.secondsPerGB, 'number', `${v}: daemon CPU per GB`);
        assert.ok(((s.rss as Obj).peakMB as number) > 0, `${v}: daemon peak RSS`);
        assert.ok((b2b.daemonCpuUsPerRtt as number) > 0, `${v}: daemon CPU per round trip`);
        const pct = ping.daemonCpuPct as number;
        assert.ok(pct > 0 && pct <= 100 * availableParallelism(), `${v}: daemon CPU during the 10 ms ping, % of a core: ${pct}`);
      }
    }
    const summary = result.summary as Record<string, Record<string, Obj | null>>;
    for (const v of VARIANTS) {
      const tcp = summary[v]?.tcp1Gbps;
      assert.ok(tcp && tcp.n === 1 && (tcp.min as number) <= (tcp.median as number) && (tcp.median as number) <= (tcp.max as number));
    }

    const md = await readFile(join(out, 'results.md'), 'utf8');
    assert.match(md, /\| variant \| MTU \|/);
    for (const v of VARIANTS) assert.match(md, new RegExp(`^\\| ${v} \\|`, 'm'));
    assert.match(md, /## weft-udp: ratios of medians/);
    // Targets of issues 4 and 5: judged where both variants ran, n/a otherwise.
    assert.match(md, /^## Targets \(issues 4 and 5\)$/m);
    assert.match(md, /^- weft-udp TCP 1 stream ≥ 0\.3× kernel-vxlan: n\/a — kernel-vxlan not in this run$/m);
    assert.match(md, /^- weft-vxlan-user TCP 1 stream within 15% of weft-udp: n\/a/m);
    const targets = result.targets as Obj[];
    assert.equal(targets.length, 7);
    for (const tr of targets) {
      assert.ok(['met', 'missed', 'n/a'].includes(tr.status as string), `target status ${String(tr.status)}`);
      assert.equal(tr.status, 'n/a', `${String(tr.target)}: no reference variant in this run`);
    }
    assert.match(md, /^## weft data paths$/m);
    assert.match(md, /^- weft-udp: \S+ (offload|batched-per-packet)/m);
    const svg = await readFile(join(out, 'chart.svg'), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\s*$/);
    assert.ok((await stat(join(out, 'chart.svg'))).size > 1000);
    assert.equal(code, 0, `bench exit code (stderr: ${stderr.slice(-2000)})`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('e2e bench refuses an unknown variant with exit 2', async () => {
  const { code, stderr } = await runBench(['--variants', 'no-such-variant'], 30_000);
  assert.equal(code, 2);
  assert.match(stderr, /unknown variant "no-such-variant"/);
});
