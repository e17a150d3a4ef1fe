import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv6, formatIpv6Prefix, tryParseIpv6, tryParseIpv6Prefix } from '../../src/config/ipv6.js';

test('ipv6: parse and RFC 5952 format round trips', () => {
  const rows: [string, string][] = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['FD00:0010:0244:0000:0000:0000:0000:0001', 'fd00:10:244::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  for (const [text, want] of rows) {
    const v = tryParseIpv6(text);
    assert.ok(v >= 0n, text);
    assert.equal(formatIpv6(v), want, text);
  }
  for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '::1.2.3', '::256.1.1.1', 'fe80::1%eth0', '10.0.0.1']) {
    assert.equal(tryParseIpv6(bad), -1n, bad);
  }
});

test('ipv6: prefixes are masked like Go ParseCIDR', () => {
  const p = tryParseIpv6Prefix('fd00:10:244:1::9/56');
  assert.ok(p !== null);
  assert.equal(formatIpv6Prefix(p), 'fd00:10:244::/56');
  assert.equal(formatIpv6Prefix(tryParseIpv6Prefix('::/0') ?? { addr: 1n, len: 1 }), '::/0');
  assert.equal(tryParseIpv6Prefix('fd00::/129'), null);
  assert.equal(tryParseIpv6Prefix('fd00::'), null);
  assert.equal(tryParseIpv6Prefix('fd00::/x'), null);
});
