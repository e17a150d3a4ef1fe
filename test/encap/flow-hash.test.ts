import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LOCAL_PORT_MAX, LOCAL_PORT_MIN, flowHash, vxlanSourcePort } from '../../src/encap/flow-hash.js';
import { emitIpv4 } from '../../src/wire/ipv4.js';
import { emitUdp } from '../../src/wire/udp.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';

const A = parseIpv4('10.244.1.2');
const B = parseIpv4('10.244.2.2');

function udpPacket(buf: Uint8Array, off: number, src: number, dst: number, sport: number, dport: number, proto = 17): number {
  buf.fill(0x33, off, off + 48);
  emitIpv4({ src, dst, protocol: proto, ttl: 64, tos: 0, ident: 1, dontFrag: true, payloadLen: 28 }, buf, off);
  emitUdp({ srcPort: sport, dstPort: dport, payloadLen: 20 }, buf, off + 20);
  return 48;
}

test('vxlanSourcePort: the kernel formula, range [min, max)', () => {
  // ((hash ^ hash << 16) * (max - min)) >> 32 + min, computed with BigInt.
  const ref = (h: number, min: number, max: number): number => {
    const x = BigInt((h ^ (h << 16)) >>> 0);
    return Number((x * BigInt(max - min)) >> 32n) + min;
  };
  for (const h of [0, 1, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0xdeadbeef, 0x12345678]) {
    assert.equal(vxlanSourcePort(h), ref(h, 32768, 60999), h.toString(16));
    assert.equal(vxlanSourcePort(h, 1000, 2000), ref(h, 1000, 2000));
  }
  assert.equal(vxlanSourcePort(0), LOCAL_PORT_MIN);
  assert.ok(vxlanSourcePort(0xffffffff) < LOCAL_PORT_MAX, 'max is exclusive');
  assert.equal(vxlanSourcePort(0xffff0000), ref(0xffff0000, 32768, 60999));
  assert.equal(vxlanSourcePort(5, 0, 0), vxlanSourcePort(5), 'min >= max: default range, as the kernel');
});

test('flowHash: stable per flow, symmetric, ports count, ICMP by addresses only', () => {
  const b = new Uint8Array(256);
  const len = udpPacket(b, 0, A, B, 40001, 7000);
  const h1 = flowHash(b, 0, len, 7);
  assert.equal(flowHash(b, 0, len, 7), h1, 'deterministic');
  udpPacket(b, 100, B, A, 7000, 40001);
  assert.equal(flowHash(b, 100, len, 7), h1, 'reply direction hashes alike (kernel consistentify)');
  udpPacket(b, 0, A, B, 40002, 7000);
  assert.notEqual(flowHash(b, 0, len, 7), h1, 'another source port is another flow');
  udpPacket(b, 0, A, B, 40001, 7000);
  assert.notEqual(flowHash(b, 0, len, 8), h1, 'the seed matters');
  udpPacket(b, 0, A, B, 40001, 7000, 1);
  const icmp = flowHash(b, 0, len, 7);
  udpPacket(b, 0, A, B, 1, 2, 1);
  assert.equal(flowHash(b, 0, len, 7), icmp, 'ICMP: payload bytes are not ports');
});

test('flowHash: fragments hash without ports, so all fragments of a datagram agree', () => {
  const b = new Uint8Array(128);
  const len = udpPacket(b, 0, A, B, 40001, 7000);
  b[6] = 0x20; // MF, offset 0: the first fragment
  const first = flowHash(b, 0, len, 1);
  b[6] = 0x00;
  b[7] = 0x10; // offset 16*8, ports absent here in reality
  b[20] = 0x99;
  assert.equal(flowHash(b, 0, len, 1), first);
  udpPacket(b, 0, A, B, 40002, 7001);
  b[6] = 0x20;
  assert.equal(flowHash(b, 0, len, 1), first, 'ports ignored in fragments');
});

test('flowHash: ports spread over the range (1000 flows → many distinct source ports)', () => {
  const b = new Uint8Array(64);
  const ports = new Set<number>();
  let lo = 65536;
  let hi = 0;
  for (let i = 0; i < 1000; i++) {
    const len = udpPacket(b, 0, A, B, 30000 + i, 5201);
    const p = vxlanSourcePort(flowHash(b, 0, len, 12345));
    ports.add(p);
    lo = Math.min(lo, p);
    hi = Math.max(hi, p);
  }
  assert.ok(ports.size > 950, `${ports.size} distinct`);
  assert.ok(lo >= 32768 && hi <= 60998);
  assert.ok(lo < 33768 && hi > 59999, 'reaches both ends');
});
