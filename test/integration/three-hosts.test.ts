/**
 * Three weft hosts on one L2 segment: every pod reaches the other two,
 * which shows each packet goes to the peer that holds its destination.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, nHosts, ping, waitReachable, type Pod } from '../../src/testbed/index.js';
import { attachWeftPod, startWeftNode, weftStatus, type WeftNode } from '../../src/testbed/weft-node.js';
import { rootSkip } from '../helpers/root.js';

describe('udp backend, three hosts', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`w3${process.pid % 10000}`);
  let dir = '';
  const nodes: WeftNode[] = [];
  const pods: Pod[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-it3-'));
    const { hosts } = await nHosts(tb, 3);
    for (const h of hosts) nodes.push(await startWeftNode(tb, h, { dir, extraArgs: ['--workers=1'] }));
    for (const n of nodes) pods.push(await attachWeftPod(tb, n));
  });

  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('each pod reaches the other two, through the right peer', async () => {
    assert.equal(new Set(nodes.map((n) => n.subnet)).size, 3, 'three distinct leases');
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        if (i === j) continue;
        assert.ok(await waitReachable(tb, pods[i]!.ns, pods[j]!.ip, 10_000), `pod ${i} → pod ${j}`);
        const r = await ping(tb, pods[i]!.ns, pods[j]!.ip, { count: 3, intervalS: 0.05 });
        assert.equal(r.received, 3, r.output);
      }
    }
    // Each node sent to both peers and received from both: per-peer counters.
    for (const n of nodes) {
      const s = await weftStatus(tb, n) as { peers: { subnet: string; txPackets: number; rxPackets: number }[] };
      assert.equal(s.peers.length, 2);
      for (const p of s.peers) {
        assert.ok(p.txPackets >= 3 && p.rxPackets >= 3, `${n.host.name} ↔ ${p.subnet}: ${JSON.stringify(p)}`);
      }
    }
  });
});
