import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatIpv4,
  formatIpv4Prefix,
  parseIpv4,
  parseIpv4Prefix,
  prefixContains,
  prefixMask,
  tryParseIpv4,
} from '../../src/wire/ipv4-addr.js';

test('dotted quads ↔ uint32 host order', () => {
  assert.equal(parseIpv4('10.244.1.2'), 0x0af40102);
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff); // unsigned, not -1
  assert.equal(parseIpv4('0.0.0.0'), 0);
  assert.equal(formatIpv4(0xc0a84003), '192.168.64.3');
  assert.equal(formatIpv4(0xffffffff), '255.255.255.255');
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', ' 1.2.3.4', '1.2.3.-4']) {
    assert.equal(tryParseIpv4(bad), -1, bad);
    assert.throws(() => parseIpv4(bad), TypeError);
  }
});

test('prefixes', () => {
  assert.equal(prefixMask(0), 0);
  assert.equal(prefixMask(16), 0xffff0000);
  assert.equal(prefixMask(32), 0xffffffff);
  const p = parseIpv4Prefix('10.244.7.9/16');
  assert.deepEqual(p, { addr: 0x0af40000, len: 16 });
  assert.equal(formatIpv4Prefix(p), '10.244.0.0/16');
  assert.throws(() => parseIpv4Prefix('10.244.7.9/16', true), /host bits/);
  assert.throws(() => parseIpv4Prefix('10.244.0.0/33'), TypeError);
  assert.throws(() => parseIpv4Prefix('10.244.0.0'), TypeError);
  assert.equal(prefixContains(p, parseIpv4('10.244.255.1')), true);
  assert.equal(prefixContains(p, parseIpv4('10.245.0.1')), false);
  assert.equal(prefixContains(parseIpv4Prefix('0.0.0.0/0'), 0xffffffff), true);
});
