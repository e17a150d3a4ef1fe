import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpHeader, emitUdp, parseUdp, udpChecksum, type UdpRepr } from '../../src/wire/udp.js';
import { Ipv4Header } from '../../src/wire/ipv4.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import { FLANNEL_UDP_PORT } from '../../src/wire/constants.js';
import { isWeftError } from '../../src/errors.js';
import { hex } from '../helpers/hex.js';

const INNER_PING =
  '4500 0034 07f6 4000 4001 19e8 0af4 0102 0af4 0202 0800 95a1 125a 0001' +
  '3284 026b 0000 0000 5a60 0500 0000 0000 7765 6674 7765 6674';

// Captured with tcpdump on a veth: a flannel udp-backend datagram
// 192.168.64.3:8285 → 192.168.64.4:8285 whose payload is the inner ping
// 10.244.1.2 → 10.244.2.2. veth sends with checksum offload, so the capture
// held the partial (pseudo-header) sum 0x01a6; the checksum below, 0xbd63,
// is the full one, computed with an independent Python RFC 1071 sum.
const FLANNEL_DGRAM = hex(
  '4500 0050 a64b 4000 4011 92f9 c0a8 4003 c0a8 4004' + // outer IPv4
    '205d 205d 003c bd63' + // UDP 8285 → 8285, length 60
    INNER_PING,
);

// Same socket, 3-byte payload "abc": an odd-length checksum (0xf962, Python).
const ODD_DGRAM = hex('4500 001f a64c 4000 4011 9329 c0a8 4003 c0a8 4004 205d 205d 000b f962 616263');

const REPR: UdpRepr = { srcPort: FLANNEL_UDP_PORT, dstPort: FLANNEL_UDP_PORT, payloadLen: 52 };

test('deconstruct: captured flannel datagram carries the inner packet verbatim', () => {
  const h = new UdpHeader().reset(FLANNEL_DGRAM, 20);
  assert.equal(h.check(60), DropReason.NONE);
  assert.equal(h.srcPort, 8285);
  assert.equal(h.dstPort, 8285);
  assert.equal(h.length, 60);
  assert.equal(h.checksum, 0xbd63);
  assert.deepEqual(FLANNEL_DGRAM.subarray(28), hex(INNER_PING));
  const inner = new Ipv4Header(FLANNEL_DGRAM, 28);
  assert.equal(inner.check(52), DropReason.NONE);
  assert.equal(inner.verifyChecksum(), true);
});

test('udpChecksum over the IPv4 packet in place (even and odd lengths)', () => {
  assert.equal(udpChecksum(FLANNEL_DGRAM, 0), 0xbd63);
  assert.equal(udpChecksum(ODD_DGRAM, 0), 0xf962);
  // stored field is ignored
  const b = FLANNEL_DGRAM.slice();
  b[26] = 0;
  b[27] = 0;
  assert.equal(udpChecksum(b, 0), 0xbd63);
});

test('udpChecksum sends a computed 0 as 0xffff', () => {
  const b = ODD_DGRAM.slice();
  const want = udpChecksum(b, 0); // 0xf962: the sum is ~0xf962 = 0x069d
  // Raise the sum by 0xffff - 0x069d via the first payload word ("ab"+pad
  // is one word 0x6162): the new sum folds to 0xffff, checksum 0x0000.
  const word = 0x6162 + (0xffff - (~want & 0xffff));
  const w = word > 0xffff ? word - 0xffff : word;
  b[28] = w >> 8;
  b[29] = w & 0xff;
  assert.equal(udpChecksum(b, 0), 0xffff);
});

test('construct: setters on a 0xa5-filled buffer', () => {
  const b = new Uint8Array(80).fill(0xa5);
  b.set(FLANNEL_DGRAM.subarray(0, 20), 0);
  b.set(hex(INNER_PING), 28);
  const h = new UdpHeader(b, 20);
  h.srcPort = 8285;
  h.dstPort = 8285;
  h.length = 60;
  h.checksum = 0;
  h.checksum = udpChecksum(b, 0);
  assert.deepEqual(b, FLANNEL_DGRAM);
});

test('parse and emit', () => {
  assert.deepEqual(parseUdp(FLANNEL_DGRAM, 20, 60), REPR);
  const b = new Uint8Array(12).fill(0xa5);
  assert.equal(emitUdp(REPR, b, 2), 8);
  assert.deepEqual(b, hex('a5a5 205d 205d 003c 0000 a5a5'));
  // round trip
  const r: UdpRepr = { srcPort: 40000, dstPort: 9999, payloadLen: 3 };
  const d = new Uint8Array(11);
  emitUdp(r, d, 0);
  assert.deepEqual(parseUdp(d, 0, 11), r);
  assert.throws(() => emitUdp({ ...r, payloadLen: 65528 }, d, 0), (e) => isWeftError(e, 'EPACKET'));
  assert.throws(() => emitUdp(r, d, 4), (e) => isWeftError(e, 'EPACKET'));
});

test('check: every reason it can return', () => {
  const b = FLANNEL_DGRAM.slice();
  const h = new UdpHeader(b, 20);
  assert.equal(h.check(7), DropReason.TRUNCATED);
  assert.equal(h.check(61), DropReason.TRUNCATED); // past the buffer
  h.length = 7;
  assert.equal(h.check(60), DropReason.BAD_TOTAL_LENGTH);
  h.length = 61;
  assert.equal(h.check(60), DropReason.BAD_TOTAL_LENGTH);
  h.length = 59; // shorter than the IP payload: trailing padding, accepted
  assert.equal(h.check(60), DropReason.NONE);
  assert.throws(() => parseUdp(b, 20, 5), (e) => isWeftError(e, 'EPACKET') && /shorter than a UDP header/.test((e as Error).message));
  h.length = 3;
  assert.throws(() => parseUdp(b, 20, 60), (e) => isWeftError(e, 'EPACKET') && /length field 3/.test((e as Error).message));
});

test('view at a non-zero byteOffset in a larger ArrayBuffer', () => {
  const ab = new ArrayBuffer(200);
  const slab = new Uint8Array(ab, 13, 150);
  slab.set(FLANNEL_DGRAM, 33);
  const h = new UdpHeader().reset(slab, 53);
  assert.equal(h.check(60), DropReason.NONE);
  assert.equal(h.dstPort, 8285);
  assert.equal(udpChecksum(slab, 33), 0xbd63);
  assert.deepEqual(parseUdp(slab, 53, 60), REPR);
  h.dstPort = 4789;
  assert.equal(new Uint8Array(ab)[13 + 53 + 2], 0x12);
  assert.equal(new Uint8Array(ab)[13 + 53 + 3], 0xb5);
});
