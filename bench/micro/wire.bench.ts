/**
 * Per-packet costs of the IPv4 / UDP / ICMP views on a batch of 64
 * 1400-byte packets in one slab, the way a worker sees a TUN read batch.
 * Run: node dist/bench/micro/wire.bench.js
 */
import { runSuite } from './harness.js';
import { Ipv4Header, emitIpv4 } from '../../src/wire/ipv4.js';
import { UdpHeader, emitUdp, udpChecksum } from '../../src/wire/udp.js';
import { buildIcmpError, shouldSendIcmpError } from '../../src/wire/icmp.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import { ICMP_DEST_UNREACH, ICMP_ERROR_MAX_LEN, ICMP_FRAG_NEEDED, IPPROTO_UDP } from '../../src/wire/constants.js';

const BATCH = 64;
const PKT = 1400;
const slab = new Uint8Array(BATCH * PKT);
const offs = new Uint32Array(BATCH);
const lens = new Uint32Array(BATCH);
const out = new Uint8Array(BATCH * ICMP_ERROR_MAX_LEN);

for (let i = 0; i < BATCH; i++) {
  const off = i * PKT;
  offs[i] = off;
  lens[i] = PKT;
  for (let k = 0; k < PKT; k++) slab[off + k] = (k * 31 + i) & 0xff;
  emitIpv4(
    {
      src: (0x0af40102 + i) >>> 0,
      dst: 0x0af40202,
      protocol: IPPROTO_UDP,
      ttl: 64,
      tos: 0,
      ident: i,
      dontFrag: true,
      payloadLen: PKT - 20,
    },
    slab,
    off,
  );
  emitUdp({ srcPort: 40000 + i, dstPort: 5201, payloadLen: PKT - 28 }, slab, off + 20);
  const c = udpChecksum(slab, off);
  slab[off + 26] = c >> 8;
  slab[off + 27] = c & 0xff;
}

const ip = new Ipv4Header();
const udp = new UdpHeader();
let sink = 0;

runSuite('wire (batch of 64 × 1400-byte IPv4/UDP packets)', [
  {
    name: 'ipv4 check + decrementTtl',
    perIteration: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) {
        ip.reset(slab, offs[i]!);
        if (ip.check(lens[i]!) !== DropReason.NONE) continue;
        // TTL runs out every 63 rounds; put it back (1 in 63 packets pays a fill).
        if (ip.decrementTtl() === 0) {
          ip.ttl = 64;
          ip.fillChecksum();
        }
      }
    },
  },
  {
    name: 'ipv4 check + verifyChecksum',
    perIteration: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) {
        ip.reset(slab, offs[i]!);
        if (ip.check(lens[i]!) === DropReason.NONE && ip.verifyChecksum()) sink ^= i;
      }
    },
  },
  {
    name: 'udp check + udpChecksum (1372 B payload)',
    perIteration: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) {
        udp.reset(slab, offs[i]! + 20);
        if (udp.check(lens[i]! - 20) !== DropReason.NONE) continue;
        sink ^= udpChecksum(slab, offs[i]!);
      }
    },
  },
  {
    name: 'shouldSendIcmpError + buildIcmpError (576 B)',
    perIteration: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) {
        if (!shouldSendIcmpError(slab, offs[i]!, lens[i]!)) continue;
        sink ^= buildIcmpError(
          out,
          i * ICMP_ERROR_MAX_LEN,
          ICMP_DEST_UNREACH,
          ICMP_FRAG_NEEDED,
          1422,
          slab,
          offs[i]!,
          lens[i]!,
          0x0af40100,
        );
      }
    },
  },
]);

if (sink === -1) console.log(sink); // keep the results observable
