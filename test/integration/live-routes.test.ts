/**
 * Live route updates: a peer's lease added, changed (new PublicIP) and
 * removed reaches the data plane within 1 s, while a transfer to another
 * peer loses nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { iperf3Server, iperf3Client } from '../../src/testbed/index.js';
import { weftStatus } from '../../src/testbed/weft-node.js';
import { rootSkip } from '../helpers/root.js';
import { WeftPair } from '../helpers/weft-pair.js';

interface Peer { subnet: string; publicIp: string }

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

  test('peer added, changed and removed within 1 s; the running transfer to the other peer loses nothing', async () => {
    const server = await iperf3Server(tb, pair.podB.ns);
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
      assert.equal(r.summary.lostPackets, 0, JSON.stringify(r.summary));
    } finally {
      await server.stop();
    }
  });
});
