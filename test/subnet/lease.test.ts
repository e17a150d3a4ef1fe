import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLeaseAttrs, encodeLeaseAttrs, LeaseDecoder, parseSubnetKey, subnetKey, type LeaseAttrs } from '../../src/subnet/lease.js';
import { isWeftError } from '../../src/errors.js';
import { parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { captureLog } from '../helpers/log.js';

// What flanneld v0.2x writes to etcd (docs/design.md §1.2), byte for byte.
const UDP_GOLDEN = '{"PublicIP":"192.168.64.3","PublicIPv6":null}';
const VXLAN_GOLDEN =
  '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';

test('encode: udp lease (no BackendType) is byte-identical to flanneld', () => {
  assert.equal(encodeLeaseAttrs({ publicIp: parseIpv4('192.168.64.3'), publicIpv6: null }), UDP_GOLDEN);
});

test('encode: vxlan lease is byte-identical to flanneld', () => {
  const a: LeaseAttrs = {
    publicIp: parseIpv4('192.168.64.3'),
    publicIpv6: null,
    backendType: 'vxlan',
    backendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' },
  };
  assert.equal(encodeLeaseAttrs(a), VXLAN_GOLDEN);
});

test('encode: omitempty on BackendType "", PublicIPv6 string, Go HTML escaping', () => {
  assert.equal(encodeLeaseAttrs({ publicIp: parseIpv4('10.0.0.1'), publicIpv6: null, backendType: '' }), '{"PublicIP":"10.0.0.1","PublicIPv6":null}');
  assert.equal(
    encodeLeaseAttrs({ publicIp: parseIpv4('10.0.0.1'), publicIpv6: 'fd00::1', backendType: 'x', backendData: { s: '<a&b>\u2028' } }),
    '{"PublicIP":"10.0.0.1","PublicIPv6":"fd00::1","BackendType":"x","BackendData":{"s":"\\u003ca\\u0026b\\u003e\\u2028"}}',
  );
  assert.equal(
    encodeLeaseAttrs({ publicIp: 0, publicIpv6: null, backendType: 'udp', backendData: null }),
    '{"PublicIP":"0.0.0.0","PublicIPv6":null,"BackendType":"udp","BackendData":null}',
  );
});

test('decode: the golden values round-trip', () => {
  for (const g of [UDP_GOLDEN, VXLAN_GOLDEN]) assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(g)), g);
  const v = decodeLeaseAttrs(VXLAN_GOLDEN);
  assert.equal(v.publicIp, parseIpv4('192.168.64.3'));
  assert.equal(v.publicIpv6, null);
  assert.equal(v.backendType, 'vxlan');
  assert.deepEqual(v.backendData, { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' });
  assert.equal('backendType' in decodeLeaseAttrs(UDP_GOLDEN), false);
  assert.equal('backendData' in decodeLeaseAttrs(UDP_GOLDEN), false);
});

test('decode: flannel values with extra fields, other key order, whitespace, case', () => {
  // Dual-stack flanneld adds PublicIPv6 and BackendV6Data; a future one may add more.
  const dual =
    '{ "BackendType": "vxlan",\n  "PublicIPv6": "fd00:1::3", "PublicIP": "192.168.64.3",\n' +
    '  "BackendData": {"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},\n' +
    '  "BackendV6Data": {"VNI":1,"VtepMAC":"aa:d2:32:6f:8f:44"}, "Future": [1,2] }';
  const v = decodeLeaseAttrs(dual);
  assert.equal(v.publicIp, parseIpv4('192.168.64.3'));
  assert.equal(v.publicIpv6, 'fd00:1::3');
  assert.equal(v.backendType, 'vxlan');
  assert.deepEqual(v.backendV6Data, { VNI: 1, VtepMAC: 'aa:d2:32:6f:8f:44' });
  // Re-encoded in Go's struct order, extra fields dropped as flanneld would.
  assert.equal(
    encodeLeaseAttrs(v),
    '{"PublicIP":"192.168.64.3","PublicIPv6":"fd00:1::3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"aa:d2:32:6f:8f:44"}}',
  );
  // encoding/json matches keys case-insensitively.
  assert.equal(decodeLeaseAttrs('{"publicip":"10.1.2.3","backendtype":"udp"}').publicIp, parseIpv4('10.1.2.3'));
  // A missing PublicIPv6 is null.
  assert.equal(decodeLeaseAttrs('{"PublicIP":"10.1.2.3"}').publicIpv6, null);
});

test('decode: garbage throws ELEASE', () => {
  for (const g of [
    '',
    'not json',
    '[]',
    'null',
    '"x"',
    '{}',
    '{"PublicIP":3}',
    '{"PublicIP":"300.1.1.1"}',
    '{"PublicIP":"1.2.3.4","PublicIPv6":5}',
    '{"PublicIP":"1.2.3.4","BackendType":{}}',
    '{"PublicIP":"1.2.3.4"',
  ]) {
    assert.throws(() => decodeLeaseAttrs(g), (e: unknown) => isWeftError(e, 'ELEASE'), g);
  }
});

test('subnetKey: flannel format and round trip', () => {
  const p = parseIpv4Prefix('10.244.1.0/24');
  assert.equal(subnetKey(p), '10.244.1.0-24');
  assert.deepEqual(parseSubnetKey('10.244.1.0-24'), p);
  for (const t of ['0.0.0.0/0', '10.0.0.0/8', '192.168.255.252/30', '1.2.3.4/32']) {
    const q = parseIpv4Prefix(t);
    assert.deepEqual(parseSubnetKey(subnetKey(q)), q, t);
  }
  // Dual-stack keys carry the IPv6 subnet after '&'; the IPv4 part is ours.
  assert.deepEqual(parseSubnetKey('10.244.1.0-24&fc00:0:0:1::-64'), p);
});

test('parseSubnetKey: rejects what is not a key', () => {
  for (const k of ['', 'config', '10.244.1.0/24', '10.244.1.0-33', '10.244.1.1-24', '10.244.1-24', '.tmp-10.244.1.0-24', '10.244.1.0-24x', '256.0.0.0-8']) {
    assert.equal(parseSubnetKey(k), null, k);
  }
});

test('LeaseDecoder: a value that is not a flannel lease is skipped with one warning per key and value', () => {
  const logs: string[] = [];
  const d = new LeaseDecoder(captureLog(logs));
  const good = '{"PublicIP":"192.168.50.1","PublicIPv6":null,"BackendType":"host-gw"}';
  assert.deepEqual(d.decode('/p/subnets/10.244.1.0-24', good), { publicIp: parseIpv4('192.168.50.1'), publicIpv6: null, backendType: 'host-gw' });
  assert.equal(d.decode('/p/subnets/10.244.2.0-24', '{"PublicIP":"192.168.50.2",'), null);
  assert.equal(d.decode('/p/subnets/10.244.2.0-24', '{"PublicIP":"192.168.50.2",'), null);
  assert.equal(logs.length, 1, 'the same bad value again is not logged again');
  assert.match(logs[0]!, /^W ignoring lease \/p\/subnets\/10\.244\.2\.0-24: lease value .* is not a flannel lease: invalid JSON/);
  assert.equal(d.decode('/p/subnets/10.244.2.0-24', '{"PublicIP":"nope"}'), null);
  assert.equal(logs.length, 2, 'another bad value is');
  assert.match(logs[1]!, /PublicIP "nope" is not an IPv4 address/);
  assert.notEqual(d.decode('/p/subnets/10.244.2.0-24', good), null);
  assert.equal(d.decode('/p/subnets/10.244.2.0-24', '{"PublicIP":"nope"}'), null);
  assert.equal(logs.length, 3, 'broken again after being fixed: logged again');
});

test('lease codec: flanneld\'s host-gw and alloc values round-trip byte for byte', () => {
  for (const v of [
    '{"PublicIP":"192.168.50.1","PublicIPv6":null,"BackendType":"host-gw"}',
    '{"PublicIP":"192.168.244.5","PublicIPv6":null}',
  ]) assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(v)), v);
});
