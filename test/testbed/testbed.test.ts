import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Testbed, ensureTools, checkIfName, parsePing, summarizeIperf3 } from '../../src/testbed/index.js';
import { isWeftError } from '../../src/errors.js';
import { needsRoot } from '../helpers/root.js';

// Per-test prefixes: test files may run in parallel with other suites that
// also create namespaces; every name here starts with wt<pid><letter>.
const prefix = (letter: string): string => `wt${process.pid % 1000}${letter}`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it has exited for our purposes.
  const st = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' });
  return st.status === 0 && !st.stdout.trim().startsWith('Z');
}

test('prefix and interface names are validated', () => {
  assert.throws(() => new Testbed('bad-prefix'), (e) => isWeftError(e, 'TESTBED_BAD_NAME'));
  assert.throws(() => new Testbed(''), (e) => isWeftError(e, 'TESTBED_BAD_NAME'));
  assert.throws(() => checkIfName('a-name-longer-than-15'), /1-15 characters/);
  assert.doesNotThrow(() => checkIfName('flannel.1'));
  assert.equal(new Testbed('wb7').nsName('h1'), 'wb7-h1');
});

test('ensureTools names the missing tool and its Debian package, installs nothing', () => {
  assert.doesNotThrow(() => ensureTools([{ bin: 'sh', debPackage: 'dash' }]));
  assert.throws(
    () => ensureTools([{ bin: 'sh', debPackage: 'dash' }, { bin: 'no-such-tool-wt', debPackage: 'wt-pkg' }]),
    (e: unknown) => isWeftError(e, 'TOOL_MISSING') && /no-such-tool-wt/.test(e.message) && /apt-get install wt-pkg/.test(e.message) && !/\bsh\b \(/.test(e.message),
  );
});

test('parsePing reads the summary and every RTT sample', () => {
  const out = [
    'PING 10.244.2.2 (10.244.2.2) 56(84) bytes of data.',
    '64 bytes from 10.244.2.2: icmp_seq=1 ttl=62 time=0.412 ms',
    '64 bytes from 10.244.2.2: icmp_seq=3 ttl=62 time=0.08 ms',
    '',
    '--- 10.244.2.2 ping statistics ---',
    '3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms',
    'rtt min/avg/max/mdev = 0.080/0.246/0.412/0.166 ms',
  ].join('\n');
  assert.deepEqual(parsePing(out), { sent: 3, received: 2, rttMs: [0.412, 0.08] });
  assert.deepEqual(parsePing('ping: connect: Network is unreachable'), { sent: 0, received: 0, rttMs: [] });
});

test('summarizeIperf3: UDP received = highest sequence seen − gaps, loss against sent', () => {
  const json = {
    end: {
      sum_sent: { seconds: 1, bytes: 6400, packets: 100, lost_packets: 0 },
      sum_received: { seconds: 2, bytes: 5120, packets: 90, lost_packets: 10, bits_per_second: 20480 },
    },
  };
  const s = summarizeIperf3(json, true);
  assert.equal(s.packets, 100);
  assert.equal(s.receivedPackets, 80);
  assert.equal(s.lostPackets, 20);
  assert.equal(s.lostPercent, 20);
  assert.equal(s.receivedPps, 40);
  const t = summarizeIperf3({ end: { sum_sent: { retransmits: 7, seconds: 1 }, sum_received: { bytes: 1e9, bits_per_second: 8e9, seconds: 1 } } }, false);
  assert.equal(t.retransmits, 7);
  assert.equal(t.bytes, 1e9);
  assert.equal(t.bitsPerSecond, 8e9);
});

test('exec rejects on timeout, naming the command, and kills it', async () => {
  const tb = new Testbed(prefix('t'));
  const t0 = Date.now();
  await assert.rejects(tb.exec(null, ['sleep', '7'], { timeoutMs: 200 }), (e: unknown) =>
    isWeftError(e, 'TESTBED_TIMEOUT') && /sleep 7/.test(e.message) && /200 ms/.test(e.message));
  assert.ok(Date.now() - t0 < 3_000);
  assert.equal(tb.liveProcesses.length, 0);
  const r = await tb.exec(null, ['sh', '-c', 'cat; echo err >&2; exit 3'], { input: 'hello' });
  assert.deepEqual(r, { code: 3, stdout: 'hello', stderr: 'err\n' });
  await assert.rejects(tb.run(null, ['sh', '-c', 'echo nope >&2; exit 4']), /exit 4: sh -c .*nope/);
  await assert.rejects(tb.exec(null, ['/nonexistent/wt-binary']), (e: unknown) => isWeftError(e, 'TESTBED_EXEC'));
});

test('namespaces carry the prefix; cleanup removes them and kills processes even when a step throws', async (t) => {
  if (!needsRoot(t)) return;
  const tb = new Testbed(prefix('c'));
  let ns = '';
  const pids: number[] = [];
  try {
    await assert.rejects(async () => {
      ns = await tb.addNs('a');
      assert.equal(ns, `${prefix('c')}-a`);
      assert.ok(Testbed.namespaceExists(ns));
      const lo = await tb.run(ns, ['ip', '-o', 'link', 'show', 'lo']);
      assert.match(lo.stdout, /UP/);
      const b = await tb.addNs('b');
      await tb.veth(ns, 'x0', b, 'y0', 1400);
      await tb.addr(ns, 'x0', '10.99.0.1/24');
      await tb.addr(b, 'y0', '10.99.0.2/24');
      // A well-behaved process and one that ignores SIGTERM (needs the SIGKILL).
      const p1 = tb.spawn(ns, ['sleep', '60']);
      const p2 = tb.spawn(b, ['sh', '-c', 'trap "" TERM; sleep 60']);
      pids.push(p1.pid as number, p2.pid as number);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(pids.every(alive));
      await tb.run(ns, ['sh', '-c', 'exit 1']); // the step that throws
    }, /exit 1/);
  } finally {
    const t0 = Date.now();
    await tb.cleanup();
    assert.ok(Date.now() - t0 < 6_000, 'cleanup is bounded');
  }
  assert.ok(!Testbed.namespaceExists(ns), `${ns} removed`);
  assert.ok(!Testbed.namespaceExists(`${prefix('c')}-b`));
  for (const pid of pids) assert.ok(!alive(pid), `pid ${pid} killed`);
  assert.deepEqual(tb.namespaceNames, []);
  await tb.cleanup(); // idempotent
});

test('sweep removes stale namespaces of a crashed run, and nothing else', async (t) => {
  if (!needsRoot(t)) return;
  const p = prefix('s');
  const other = `${p}x-keep`; // shares the letters but not "<prefix>-"
  const tb = new Testbed(p);
  try {
    for (const n of [`${p}-old1`, `${p}-old2`, other]) spawnSync('ip', ['netns', 'add', n]);
    const sleeper = tb.spawn(`${p}-old1`, ['sleep', '60']);
    await new Promise((r) => setTimeout(r, 100));
    const removed = Testbed.sweep(p).sort();
    assert.deepEqual(removed, [`${p}-old1`, `${p}-old2`]);
    assert.ok(!Testbed.namespaceExists(`${p}-old1`));
    assert.ok(Testbed.namespaceExists(other));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!alive(sleeper.pid as number));
  } finally {
    spawnSync('ip', ['netns', 'del', other]);
    await tb.cleanup();
  }
});

test('sysctl and route work inside a namespace', async (t) => {
  if (!needsRoot(t)) return;
  const tb = new Testbed(prefix('y'));
  try {
    const ns = await tb.addNs('r');
    await tb.sysctl(ns, 'net.ipv4.ip_forward', 1);
    assert.equal((await tb.run(ns, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '1');
    const b = await tb.addNs('s');
    await tb.veth(ns, 'e0', b, 'e0', 1500);
    await tb.addr(ns, 'e0', '10.98.0.1/24');
    await tb.route(ns, ['10.97.0.0/16', 'via', '10.98.0.2']);
    const routes = await tb.run(null, ['ip', '-n', ns, 'route', 'show', '10.97.0.0/16']);
    assert.match(routes.stdout, /via 10\.98\.0\.2/);
  } finally {
    await tb.cleanup();
  }
});

test('sweepDead removes namespaces of dead <base><pid> runs, keeps live ones', async (t) => {
  if (!needsRoot(t)) return;
  const dead = 'wtz4999999-a'; // above any pid_max: that run is gone
  const live = `wtz${process.pid}-b`;
  try {
    for (const n of [dead, live]) spawnSync('ip', ['netns', 'add', n]);
    const removed = Testbed.sweepDead('wtz');
    assert.ok(removed.includes(dead));
    assert.ok(!removed.includes(live));
    assert.ok(!Testbed.namespaceExists(dead));
    assert.ok(Testbed.namespaceExists(live));
  } finally {
    for (const n of [dead, live]) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
  }
});
