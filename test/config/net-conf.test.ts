import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NetConf, parseNetConf, parseNetConfFrom, readNetConfText, subnetCount, subnetSize } from '../../src/config/net-conf.js';
import { isWeftError } from '../../src/errors.js';
import { formatIpv4, formatIpv4Prefix } from '../../src/wire/ipv4-addr.js';

function brief(c: NetConf): Record<string, unknown> {
  return {
    network: formatIpv4Prefix(c.network),
    subnetLen: c.subnetLen,
    subnetMin: formatIpv4(c.subnetMin),
    subnetMax: formatIpv4(c.subnetMax),
  };
}

function rejects(text: string, ...parts: (string | RegExp)[]): void {
  assert.throws(
    () => parseNetConf(text),
    (e: unknown) => {
      assert.ok(isWeftError(e, 'ECONFIG'), `expected WeftError ECONFIG, got ${String(e)}`);
      for (const p of parts) {
        if (typeof p === 'string') assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
        else assert.match(e.message, p);
      }
      return true;
    },
  );
}

test('net-conf: kube-flannel default (vxlan)', () => {
  const c = parseNetConf('{\n  "Network": "10.244.0.0/16",\n  "EnableNFTables": false,\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n');
  assert.deepEqual(brief(c), { network: '10.244.0.0/16', subnetLen: 24, subnetMin: '10.244.1.0', subnetMax: '10.244.255.0' });
  assert.equal(c.enableIPv4, true);
  assert.equal(c.enableIPv6, false);
  assert.equal(c.ipv6Network, null);
  assert.equal(c.ipv6SubnetLen, 64);
  assert.equal(c.enableNFTables, false);
  assert.deepEqual(c.backend, { type: 'vxlan', vni: 1, port: 8472, mtu: 0, gbp: false, learning: false, directRouting: false, mode: 'auto' });
  assert.deepEqual(c.raw, { Network: '10.244.0.0/16', EnableNFTables: false, Backend: { Type: 'vxlan' } });
  assert.equal(subnetSize(c.subnetLen), 256);
  assert.equal(subnetCount(c), 255);
});

test('net-conf: absent Backend means udp on 8285', () => {
  assert.deepEqual(parseNetConf('{"Network":"10.244.0.0/16"}').backend, { type: 'udp', port: 8285 });
});

test('net-conf: keys are case-insensitive at every level, unknown keys ignored', () => {
  const c = parseNetConf('{"network":"10.5.0.0/16","SUBNETLEN":26,"subnetmin":"10.5.0.64","Extra":{"x":1},"backend":{"type":"VXLAN","vni":7,"PORT":4789,"mtu":1400,"gbp":true,"learning":true,"directrouting":true,"mode":"UserSpace","Whatever":1}}');
  assert.deepEqual(brief(c), { network: '10.5.0.0/16', subnetLen: 26, subnetMin: '10.5.0.64', subnetMax: '10.5.255.192' });
  assert.deepEqual(c.backend, { type: 'vxlan', vni: 7, port: 4789, mtu: 1400, gbp: true, learning: true, directRouting: true, mode: 'userspace' });
  // Go's encoding/json: the last of several case-variants wins.
  assert.equal(formatIpv4Prefix(parseNetConf('{"Network":"10.1.0.0/16","NETWORK":"10.2.0.0/16"}').network), '10.2.0.0/16');
});

test('net-conf: SubnetLen defaults and Min/Max defaults', () => {
  const rows: [string, Record<string, unknown>][] = [
    ['10.244.0.0/16', { network: '10.244.0.0/16', subnetLen: 24, subnetMin: '10.244.1.0', subnetMax: '10.244.255.0' }],
    ['10.244.7.9/16', { network: '10.244.0.0/16', subnetLen: 24, subnetMin: '10.244.1.0', subnetMax: '10.244.255.0' }],
    ['10.0.0.0/8', { network: '10.0.0.0/8', subnetLen: 24, subnetMin: '10.0.1.0', subnetMax: '10.255.255.0' }],
    ['10.1.0.0/22', { network: '10.1.0.0/22', subnetLen: 24, subnetMin: '10.1.1.0', subnetMax: '10.1.3.0' }],
    ['10.1.0.0/23', { network: '10.1.0.0/23', subnetLen: 25, subnetMin: '10.1.0.128', subnetMax: '10.1.1.128' }],
    ['10.1.0.0/26', { network: '10.1.0.0/26', subnetLen: 28, subnetMin: '10.1.0.16', subnetMax: '10.1.0.48' }],
    ['10.1.0.0/28', { network: '10.1.0.0/28', subnetLen: 30, subnetMin: '10.1.0.4', subnetMax: '10.1.0.12' }],
  ];
  for (const [net, want] of rows) {
    assert.deepEqual(brief(parseNetConf(JSON.stringify({ Network: net }))), want, net);
  }
});

test('net-conf: explicit SubnetLen, SubnetMin, SubnetMax', () => {
  const c = parseNetConf('{"Network":"10.244.0.0/16","SubnetLen":20,"SubnetMin":"10.244.16.0","SubnetMax":"10.244.240.0"}');
  assert.deepEqual(brief(c), { network: '10.244.0.0/16', subnetLen: 20, subnetMin: '10.244.16.0', subnetMax: '10.244.240.0' });
  assert.equal(subnetCount(c), 15);
  // Boundaries: prefix+2 and 30 are both allowed; Min == Max is allowed.
  assert.equal(parseNetConf('{"Network":"10.0.0.0/16","SubnetLen":18}').subnetLen, 18);
  assert.equal(parseNetConf('{"Network":"10.0.0.0/16","SubnetLen":30}').subnetLen, 30);
  const one = parseNetConf('{"Network":"10.0.0.0/16","SubnetMin":"10.0.5.0","SubnetMax":"10.0.5.0"}');
  assert.equal(subnetCount(one), 1);
  // SubnetMin "0.0.0.0" means "unset" in flannel.
  assert.equal(formatIpv4(parseNetConf('{"Network":"10.0.0.0/16","SubnetMin":"0.0.0.0"}').subnetMin), '10.0.1.0');
  // The network's first and last subnets may be given explicitly.
  const edges = parseNetConf('{"Network":"10.0.0.0/16","SubnetMin":"10.0.0.0","SubnetMax":"10.0.255.0"}');
  assert.deepEqual([formatIpv4(edges.subnetMin), formatIpv4(edges.subnetMax)], ['10.0.0.0', '10.0.255.0']);
  // JSON null is "not given", as in Go.
  assert.equal(parseNetConf('{"Network":"10.0.0.0/16","SubnetLen":null}').subnetLen, 24);
});

test('net-conf: errors name the key, the value and what is allowed', () => {
  const rows: [string, ...(string | RegExp)[]][] = [
    ['{}', 'please define a correct Network parameter in the flannel config', 'Network is missing', '10.244.0.0/16'],
    ['{"Network":"0.0.0.0/0"}', 'please define a correct Network parameter in the flannel config'],
    ['{"Network":"10.244.0.0"}', 'please define a correct Network parameter', '"10.244.0.0"'],
    ['{"Network":"10.244.0.0/33"}', 'Network', '"10.244.0.0/33"'],
    ['{"Network":"fd00::/64"}', 'Network', 'not an IPv4 CIDR'],
    ['{"Network":16}', 'Network must be a string', 'got 16'],
    ['{"Network":"10.0.0.0/29"}', 'Network 10.0.0.0/29 is too small', 'Minimum useful network prefix is /28'],
    ['{"Network":"10.0.0.0/16","SubnetLen":31}', 'SubnetLen 31', 'SubnetLen must be less than /31', '18..30'],
    ['{"Network":"10.0.0.0/16","SubnetLen":17}', 'SubnetLen 17', 'network must be able to accommodate at least four subnets', '18..30'],
    ['{"Network":"10.0.0.0/16","SubnetLen":16}', 'SubnetLen 16', 'at least four subnets'],
    ['{"Network":"10.0.0.0/29","SubnetLen":30}', 'SubnetLen 30', 'at least four subnets'],
    ['{"Network":"10.0.0.0/16","SubnetLen":-1}', 'SubnetLen must be', 'got -1'],
    ['{"Network":"10.0.0.0/16","SubnetLen":24.5}', 'SubnetLen must be', 'got 24.5'],
    ['{"Network":"10.0.0.0/16","SubnetLen":"24"}', 'SubnetLen must be', 'got "24"'],
    ['{"Network":"10.0.0.0/16","SubnetMin":"10.1.0.0"}', 'SubnetMin 10.1.0.0', 'SubnetMin is not in the range of the Network 10.0.0.0/16', '10.0.1.0..10.0.255.0'],
    ['{"Network":"10.0.0.0/16","SubnetMax":"11.0.0.0"}', 'SubnetMax 11.0.0.0', 'SubnetMax is not in the range of the Network'],
    ['{"Network":"10.0.0.0/16","SubnetMin":"10.0.1.1"}', 'SubnetMin is not on a SubnetLen boundary: 10.0.1.1', 'SubnetLen 24', '10.0.1.0'],
    ['{"Network":"10.0.0.0/16","SubnetMax":"10.0.9.128"}', 'SubnetMax is not on a SubnetLen boundary: 10.0.9.128'],
    ['{"Network":"10.0.0.0/16","SubnetMin":"10.0.9.0","SubnetMax":"10.0.8.0"}', 'SubnetMin 10.0.9.0 is above SubnetMax 10.0.8.0'],
    ['{"Network":"10.0.0.0/16","SubnetMin":"10.0.1"}', 'SubnetMin "10.0.1" is not an IPv4 address'],
    ['{"Network":"10.0.0.0/16","EnableIPv4":"yes"}', 'EnableIPv4 must be true or false', 'got "yes"'],
    ['{"Network":"10.0.0.0/16","EnableNFTables":1}', 'EnableNFTables must be true or false', 'got 1'],
    ['[1,2]', 'must be a JSON object', 'got [1,2]'],
    ['"x"', 'must be a JSON object'],
    ['{"Network":"10.0.0.0/16","Backend":null}', 'Backend must be an object', 'got null'],
    ['{"Network":"10.0.0.0/16","Backend":"vxlan"}', 'Backend must be an object', 'got "vxlan"'],
    ['{"Network":"10.0.0.0/16","Backend":{}}', 'Backend.Type is missing', 'vxlan', 'udp', 'host-gw'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":5}}', 'Backend.Type must be a string', 'got 5'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"geneve"}}', 'Backend.Type "geneve"', 'known types: alloc, extension, host-gw, ipip, ipsec, tencent-vpc, udp, vxlan, wireguard'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"udp","Port":0}}', 'Backend.Port must be a UDP port 1..65535', 'got 0'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"udp","Port":65536}}', 'Backend.Port', 'got 65536'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}', 'Backend.VNI', '0..16777215', 'got 16777216'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"vxlan","Port":-1}}', 'Backend.Port', 'got -1'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"vxlan","MTU":50}}', 'Backend.MTU', '68..65535', 'got 50'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"vxlan","GBP":"true"}}', 'Backend.GBP must be true or false', 'got "true"'],
    ['{"Network":"10.0.0.0/16","Backend":{"Type":"vxlan","Mode":"fast"}}', 'Backend.Mode "fast"', 'auto, kernel, userspace'],
    ['{"Network":"10.0.0.0/16","EnableIPv6":true}', 'please define a correct IPv6Network parameter in the flannel config'],
    ['{"Network":"10.0.0.0/16","IPv6Network":"fd00::"}', 'IPv6Network "fd00::" is not an IPv6 CIDR'],
    ['{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/125"}', 'IPv6Network fd00::/125 is too small', '/124'],
    ['{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":127}', 'IPv6SubnetLen 127', 'less than /127'],
    ['{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetLen":57}', 'IPv6SubnetLen 57', 'at least four subnets', '58..126'],
    ['{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetMin":"fd01::"}', 'IPv6SubnetMin fd01::', 'not in the range'],
    ['{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56","IPv6SubnetMax":"fd00:0:0:1::1"}', 'IPv6SubnetMax is not on a SubnetLen boundary'],
  ];
  for (const [text, ...parts] of rows) rejects(text, ...parts);
});

test('net-conf: JSON syntax errors give the position', () => {
  rejects('{"Network": "10.0.0.0/16",}', 'not valid JSON', 'line 1 column 27', 'position 26');
  rejects('{\n  "Network": "10.0.0.0/16"\n  "Backend": {}\n}', 'not valid JSON', 'line 3 column 3');
  rejects('', 'not valid JSON', 'Unexpected end of JSON input', 'position 0');
});

test('net-conf: a UTF-8 byte-order mark is named at line 1 column 1; a message without a position claims none', () => {
  rejects('\ufeff{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}', 'byte-order mark', 'line 1 column 1', 'without BOM');
  // V8 quotes the text for an unexpected token (Node 20) or gives a position (Node 24).
  assert.throws(() => parseNetConf('{"Network": x}'), (e: Error) => {
    const at = /at line (\d+) column (\d+)/.exec(e.message);
    assert.ok(at === null || (at[1] === '1' && at[2] === '13'), e.message);
    assert.doesNotMatch(e.message, /is not valid JSON$/, e.message);
    return true;
  });
});

test('net-conf: backends', () => {
  const base = (be: unknown): string => JSON.stringify({ Network: '10.0.0.0/16', Backend: be });
  assert.deepEqual(parseNetConf(base({ Type: 'udp' })).backend, { type: 'udp', port: 8285 });
  assert.deepEqual(parseNetConf(base({ Type: 'UDP', Port: 9000 })).backend, { type: 'udp', port: 9000 });
  assert.deepEqual(parseNetConf(base({ Type: 'vxlan', VNI: 0, Port: 0 })).backend, { type: 'vxlan', vni: 0, port: 8472, mtu: 0, gbp: false, learning: false, directRouting: false, mode: 'auto' });
  assert.deepEqual(parseNetConf(base({ Type: 'vxlan', VNI: 4096, Port: 4789, Mode: 'kernel' })).backend, { type: 'vxlan', vni: 4096, port: 4789, mtu: 0, gbp: false, learning: false, directRouting: false, mode: 'kernel' });
  assert.deepEqual(parseNetConf(base({ Type: 'host-gw' })).backend, { type: 'host-gw', options: {} });
  assert.deepEqual(parseNetConf(base({ Type: 'WireGuard', PSK: 'x', ListenPort: 51820 })).backend, { type: 'wireguard', options: { PSK: 'x', ListenPort: 51820 } });
  for (const t of ['alloc', 'ipip', 'ipsec', 'extension', 'tencent-vpc']) {
    assert.equal(parseNetConf(base({ type: t })).backend.type, t);
  }
});

test('net-conf: EnableIPv4/EnableIPv6 and IPv6 fields', () => {
  // IPv6 is parsed and handed on; the daemon decides what it supports.
  const c = parseNetConf('{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"FD00:10:244:0::7/56"}');
  assert.equal(c.enableIPv6, true);
  assert.equal(c.ipv6Network, 'fd00:10:244::/56');
  assert.equal(c.ipv6SubnetLen, 64);
  assert.equal(parseNetConf('{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/120"}').ipv6SubnetLen, 122);
  assert.equal(parseNetConf('{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetLen":80}').ipv6SubnetLen, 80);
  // IPv6 rules are not applied unless IPv6 is enabled (as in flannel).
  assert.equal(parseNetConf('{"Network":"10.0.0.0/16","IPv6Network":"fd00::/126"}').ipv6Network, 'fd00::/126');
  // IPv6-only: Network may be absent.
  const v6 = parseNetConf('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/56"}');
  assert.equal(v6.enableIPv4, false);
  assert.deepEqual(v6.network, { addr: 0, len: 0 });
});

test('readNetConfText: reads the file; a missing file, a FIFO or a directory is refused naming it and the flag', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-netconf-'));
  try {
    const p = join(dir, 'net-conf.json');
    await writeFile(p, '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}');
    const c = parseNetConfFrom(await readNetConfText(p, false), p);
    assert.equal(formatIpv4Prefix(c.network), '10.244.0.0/16');
    const missing = join(dir, 'nope.json');
    await assert.rejects(readNetConfText(missing, false), (e: unknown) => {
      assert.ok(isWeftError(e, 'ECONFIG'));
      assert.ok(e.message.includes(missing));
      assert.ok(e.message.includes('--net-config-path'));
      return true;
    });
    await assert.rejects(readNetConfText(missing, true), /kube-flannel-cfg ConfigMap/);
    // A FIFO would block the read until some writer came: refused at once (regression: start-up hung).
    const fifo = join(dir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(readNetConfText(fifo, false), (e: unknown) => isWeftError(e, 'ECONFIG') && e.message.includes(`${fifo} is a FIFO, not a file`));
    await assert.rejects(readNetConfText(dir, false), /is a directory, not a file/);
    await writeFile(p, '{"Network":"10.0.0.0/29"}');
    assert.throws(() => parseNetConfFrom('{"Network":"10.0.0.0/29"}', p), (e: unknown) => isWeftError(e, 'ECONFIG') && e.message.startsWith(`${p}: `) && e.message.includes('too small'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
