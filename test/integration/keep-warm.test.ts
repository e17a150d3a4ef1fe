/**
 * Keep-warm (--keep-warm, worker.ts): after traffic an idle worker runs
 * dry turns for about a second, then sleeps as before; with
 * --keep-warm=0 it never does. What it buys (a lower RTT for sparse
 * traffic) is a figure for the bench, not for a test; this checks the
 * cost stays bounded: it stops once the linger is over.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ping } from '../../src/testbed/index.js';
import { weftStatus, type WeftNode } from '../../src/testbed/weft-node.js';
import { KEEP_WARM_LINGER_MS } from '../../src/dataplane/layout.js';
import { rootSkip } from '../helpers/root.js';
import { WeftPair } from '../helpers/weft-pair.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Longer than any linger: the ticks are timeouts of at least 1 ms each, a few percent late at most. */
const PAST_LINGER_MS = 3 * KEEP_WARM_LINGER_MS;

describe('keep-warm ticks', { skip: rootSkip(), timeout: 60_000 }, () => {
  // One worker each; node A keeps warm every 1 ms, node B not at all (the default).
  const pair = new WeftPair('wk', (_, i) => (i === 0 ? ['--workers=1', '--keep-warm=1'] : ['--workers=1']));
  const { tb, nodes } = pair;

  before(async () => {
    await pair.start();
    await sleep(PAST_LINGER_MS);
  });

  after(() => pair.stop());

  const turns = async (n: WeftNode): Promise<number> =>
    ((await weftStatus(tb, n)) as { totals: Record<string, number> }).totals.keep_warm_turns!;

  test('after traffic: about a second of ticks, then none; without --keep-warm nothing ticks', async () => {
    const a0 = await turns(nodes[0]!);
    const b0 = await turns(nodes[1]!);
    // Idle since before(): nothing ticks.
    await sleep(500);
    assert.equal(await turns(nodes[0]!), a0, 'no ticks while idle');
    const r = await ping(tb, pair.podA.ns, pair.podB.ip, { count: 5, intervalS: 0.1 });
    assert.equal(r.received, 5);
    await sleep(PAST_LINGER_MS);
    const a1 = await turns(nodes[0]!);
    const b1 = await turns(nodes[1]!);
    await sleep(KEEP_WARM_LINGER_MS);
    const a2 = await turns(nodes[0]!);
    // After the last reply the worker had 1000 idle ticks of 1 ms, two dry turns each.
    const lingerTurns = 2 * Math.ceil(KEEP_WARM_LINGER_MS / 1);
    assert.ok(a1 - a0 >= lingerTurns, `node A ran ${a1 - a0} dry turns after the pings; the linger alone is ${lingerTurns}`);
    // Before it, at most one tick per ms of the ~0.5 s the pings took (and their replies re-armed the linger).
    assert.ok(a1 - a0 <= lingerTurns + 2 * 1000, `node A ran ${a1 - a0} dry turns`);
    assert.equal(a2, a1, 'the ticks stopped once the linger was over');
    assert.equal(b1 - b0, 0, 'the default (--keep-warm=0): no ticks');
  });
});
