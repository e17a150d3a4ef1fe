/**
 * Live route updates: a peer's lease added, changed (new PublicIP) and
 * removed reaches the data plane within 1 s, while a transfer to another
 * peer loses nothing. A transfer that loses datagrams says where they went
 * (item 9 of the fault probe: weft's drops, the kernel's, iperf3's figures).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { iperf3Server, iperf3Client, ping } from '../../src/testbed/index.js';
import { weftStatus } from '../../src/testbed/weft-node.js';
import { rootSkip } from '../helpers/root.js';
import { within } from '../helpers/traffic.js';
import { LossProbe, iperf3Figures, type LossSite } from '../helpers/loss.js';
import { WeftPair } from '../helpers/weft-pair.js';

interface Peer { subnet: string; publicIp: string; txPackets: number }

describe('live route updates', { skip: rootSkip(), timeout: 120_000 }, () => {
  const pair = new WeftPair('wl', () => ['--workers=2']);
  const { tb, nodes } = pair;

  before(() => pair.start());

  after(() => pair.stop());

  /** Writes a lease file the way the local store publishes one (temp + rename). */
  async function putLease(key: string, publicIp: string): Promise<void> {
    const tmp = join(pair.dir, 'leases', `.test-${key}.tmp`);
    await writeFile(tmp, `{"PublicIP":"${publicIp}","PublicIPv6":null}`);
    await rename(tmp, join(pair.dir, 'leases', key));
  }

  /** Milliseconds until node A's data plane shows `want` for 10.244.250.0/24 (undefined = gone). */
  async function timeUntil(want: string | undefined): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      const s = await weftStatus(tb, nodes[0]!) as { peers: Peer[] };
      const p = s.peers.find((x) => x.subnet === '10.244.250.0/24');
      if (p?.publicIp === want) return Date.now() - t0;
      if (Date.now() - t0 > 5000) throw new Error(`peer never became ${String(want)}: ${JSON.stringify(s.peers)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  const sites = (): LossSite[] => [
    { name: 'podA', ns: pair.podA.ns }, { name: 'h1', ns: nodes[0]!.host.ns, node: nodes[0]! },
    { name: 'h2', ns: nodes[1]!.host.ns, node: nodes[1]! }, { name: 'podB', ns: pair.podB.ns },
  ];

  test('peer added, changed and removed within 1 s; the running transfer to the other peer loses nothing', async () => {
    const server = await iperf3Server(tb, pair.podB.ns);
    const probe = await LossProbe.start(tb, sites());
    try {
      const transfer = iperf3Client(tb, pair.podA.ns, pair.podB.ip, { seconds: 6, udp: true, bitrate: '20M', length: 1000 });
      await new Promise((r) => setTimeout(r, 1000));
      await putLease('10.244.250.0-24', '192.168.100.50');
      const added = await timeUntil('192.168.100.50');
      await putLease('10.244.250.0-24', '192.168.100.51');
      const changed = await timeUntil('192.168.100.51');
      await unlink(join(pair.dir, 'leases', '10.244.250.0-24'));
      const removed = await timeUntil(undefined);
      const r = await transfer;
      assert.ok(added < 1000 && changed < 1000 && removed < 1000, `added ${added} ms, changed ${changed} ms, removed ${removed} ms`);
      assert.ok((r.summary.receivedPackets ?? 0) > 1000, JSON.stringify(r.summary));
      if (r.summary.lostPackets !== 0) assert.fail(`lost datagrams: ${(await probe.report(iperf3Figures(r.summary))).text}`);
    } finally {
      await server.stop();
    }
  });

  test('a peer that takes a freed slot starts from zero, not with the previous peer\'s counters', async () => {
    const counts = async (subnet: string): Promise<number | undefined> =>
      ((await weftStatus(tb, nodes[0]!)) as { peers: Peer[] }).peers.find((p) => p.subnet === subnet)?.txPackets;
    await putLease('10.244.252.0-24', '192.168.100.52');
    await within(2000, async () => (await counts('10.244.252.0/24')) !== undefined, async () => 'peer 10.244.252.0/24 not routed');
    // Sent towards an address nobody holds: weft counts them for the peer, the underlay drops them.
    // No replies: ping sends until its deadline, so count what it says it sent.
    const first = await ping(tb, pair.podA.ns, '10.244.252.1', { count: 5, intervalS: 0.05 });
    assert.ok(first.sent > 0);
    assert.equal(await counts('10.244.252.0/24'), first.sent, 'the first peer counted its packets');
    await unlink(join(pair.dir, 'leases', '10.244.252.0-24'));
    await within(2000, async () => (await counts('10.244.252.0/24')) === undefined, async () => 'peer 10.244.252.0/24 not removed');
    await putLease('10.244.253.0-24', '192.168.100.53');
    await within(2000, async () => (await counts('10.244.253.0/24')) !== undefined, async () => 'peer 10.244.253.0/24 not routed');
    assert.equal(await counts('10.244.253.0/24'), 0, 'the new peer in the reused slot');
    const second = await ping(tb, pair.podA.ns, '10.244.253.1', { count: 2, intervalS: 0.05 });
    assert.equal(await counts('10.244.253.0/24'), second.sent);
    await unlink(join(pair.dir, 'leases', '10.244.253.0-24'));
  });

  test('item 9: a transfer that loses datagrams says where: here the receiver\'s socket buffer, paused for 1 s', async (t) => {
    const server = await iperf3Server(tb, pair.podB.ns);
    const probe = await LossProbe.start(tb, sites());
    try {
      const transfer = iperf3Client(tb, pair.podA.ns, pair.podB.ip, { seconds: 4, udp: true, bitrate: '20M', length: 1000 });
      await new Promise((r) => setTimeout(r, 1000));
      // A stopped receiver: its socket buffer fills and the kernel drops the rest.
      process.kill(server.proc.pid!, 'SIGSTOP');
      await new Promise((r) => setTimeout(r, 1000));
      process.kill(server.proc.pid!, 'SIGCONT');
      const r = await transfer;
      const { text: report, drops } = await probe.report(iperf3Figures(r.summary));
      t.diagnostic(report);
      const lost = r.summary.lostPackets ?? 0;
      assert.ok(lost > 500, `a 1 s pause at 2 500 datagrams/s loses some: ${report}`);
      const at = drops.find(([k]) => k === 'podB kernel Udp RcvbufErrors')?.[1] ?? 0;
      // Datagrams still in flight when iperf3 stops count as lost too.
      assert.ok(at > 0 && at <= lost && lost - at <= Math.max(10, lost * 0.02), `the loss is placed: ${report}`);
      assert.ok(report.includes(`podB kernel Udp RcvbufErrors +${at}`) && report.includes(`lost ${lost}`), report);
    } finally {
      if (server.proc.exitCode === null) process.kill(server.proc.pid!, 'SIGCONT');
      await server.stop();
    }
  });
});
