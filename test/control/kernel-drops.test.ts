import { test } from 'node:test';
import assert from 'node:assert/strict';
import { udpSocketDrops } from '../../src/control/kernel-drops.js';

// Two sockets on 8285 (0x205D) with 3 and 4 drops, one on another port.
const PROC = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  101: 0164A8C0:205D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41301 2 0000000000000000 3
  102: 0164A8C0:205D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41302 2 0000000000000000 4
  230: 00000000:2118 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 41303 2 0000000000000000 9
`;

test('udpSocketDrops sums the drops column of the sockets on our port only', () => {
  assert.equal(udpSocketDrops(PROC, 8285), 7);
  assert.equal(udpSocketDrops(PROC, 8472), 9);
  assert.equal(udpSocketDrops(PROC, 4789), 0);
  assert.equal(udpSocketDrops('garbage\nmore garbage', 8285), 0);
});
