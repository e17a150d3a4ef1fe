/**
 * Checksum primitives on a batch of 64 packets per iteration.
 * Run: node dist/bench/micro/checksum.bench.js
 */
import { runSuite } from './harness.js';
import { foldChecksum, ipv4HeaderChecksum, onesSum, updateChecksum16 } from '../../src/wire/checksum.js';

const BATCH = 64;
const PKT = 1400;
const slab = new Uint8Array(BATCH * PKT);
let x = 0x9e3779b9;
for (let i = 0; i < slab.length; i++) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  slab[i] = x & 0xff;
}
for (let i = 0; i < BATCH; i++) slab[i * PKT] = 0x45;

let sink = 0;

runSuite('checksum (batch of 64 packets)', [
  {
    name: 'onesSum + fold over 1400 bytes',
    perIteration: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) sink ^= foldChecksum(onesSum(slab, i * PKT, PKT));
    },
  },
  {
    name: 'ipv4HeaderChecksum (20 bytes)',
    perIteration: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) sink ^= ipv4HeaderChecksum(slab, i * PKT, 20);
    },
  },
  {
    name: 'updateChecksum16 (RFC 1624)',
    perIteration: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) {
        const o = i * PKT;
        sink ^= updateChecksum16((slab[o + 10]! << 8) | slab[o + 11]!, (slab[o + 8]! << 8) | slab[o + 9]!, i);
      }
    },
  },
]);

if (sink === -1) console.log(sink); // keep the results observable
