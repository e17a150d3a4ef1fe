/**
 * Multi-queue: with two workers, the flows of one peer are spread over
 * both workers' sockets by the inner flow (native/steer.c), although the
 * peer sends every datagram from port 8285 to port 8285.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { weftStatus } from '../../src/testbed/weft-node.js';
import { rootSkip } from '../helpers/root.js';
import { WeftPair } from '../helpers/weft-pair.js';

// 32 UDP flows (distinct source ports) × 20 datagrams, then exit.
const SENDER = `
const dgram = require('node:dgram');
const [dst] = process.argv.slice(1);
let left = 32;
for (let f = 0; f < 32; f++) {
  const s = dgram.createSocket('udp4');
  s.bind(0, () => {
    let n = 0;
    const next = () => {
      if (n++ === 20) { s.close(); if (--left === 0) process.exit(0); return; }
      s.send(Buffer.alloc(100, f), 9999, dst, next);
    };
    next();
  });
}
setTimeout(() => process.exit(2), 10000).unref();
`;

describe('reuseport steering by inner flow', { skip: rootSkip(), timeout: 60_000 }, () => {
  const pair = new WeftPair('ws', () => ['--workers=2']);
  const { tb, nodes } = pair;

  before(() => pair.start());

  after(() => pair.stop());

  test('32 flows from one peer reach both receiving workers', async () => {
    const before = (await weftStatus(tb, nodes[1]!)) as { perWorker: Record<string, number>[] };
    await tb.run(pair.podA.ns, [process.execPath, '-e', SENDER, pair.podB.ip], { timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 300));
    const after = (await weftStatus(tb, nodes[1]!)) as { perWorker: Record<string, number>[] };
    const got = after.perWorker.map((w, i) => w.udp_rx_packets! - before.perWorker[i]!.udp_rx_packets!);
    assert.equal(got.length, 2);
    assert.ok(got[0]! > 0 && got[1]! > 0, `datagrams per receiving worker: ${got.join(', ')}`);
    assert.ok(got[0]! + got[1]! >= 640, `all 640 datagrams arrived: ${got.join(', ')}`);
  });
});
