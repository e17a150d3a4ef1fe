import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chooseVxlanMode, leaseAttrsFor, peerVtepMac, planBackend, stableVtepMac, vxlanModeLine,
} from '../../src/control/backend.js';
import { parseNetConf } from '../../src/config/net-conf.js';
import { encodeLeaseAttrs } from '../../src/subnet/lease.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';
import { isWeftError } from '../../src/errors.js';

const conf = (backend: string) => parseNetConf(`{"Network":"10.244.0.0/16","Backend":${backend}}`);

test('planBackend: udp and vxlan with flannel defaults; other types refused with the fix', () => {
  assert.deepEqual(planBackend(conf('{"Type":"udp"}'), 'x'), { kind: 'udp', port: 8285, overhead: 28, mtuOverride: 0 });
  const v = planBackend(conf('{"Type":"vxlan"}'), 'x');
  assert.equal(v.kind, 'vxlan');
  assert.equal(v.port, 8472, 'Port 0 means the Linux default');
  assert.equal(v.overhead, 50);
  assert.equal(planBackend(conf('{"Type":"vxlan","Port":4789,"VNI":7}'), 'x').port, 4789);
  assert.throws(() => planBackend(conf('{"Type":"host-gw"}'), '/etc/kube-flannel/net-conf.json'),
    (e: unknown) => isWeftError(e, 'EBACKEND') && /host-gw/.test(e.message) && /net-conf\.json/.test(e.message));
});

test('stableVtepMac: same inputs, same MAC; locally administered unicast; differs per node and VNI', () => {
  const a = stableVtepMac(parseIpv4('192.168.100.1'), 1);
  assert.deepEqual(a, stableVtepMac(parseIpv4('192.168.100.1'), 1));
  assert.equal(a.length, 6);
  assert.equal(a[0]! & 0x03, 0x02, 'locally administered, not multicast');
  assert.notDeepEqual(a, stableVtepMac(parseIpv4('192.168.100.2'), 1));
  assert.notDeepEqual(a, stableVtepMac(parseIpv4('192.168.100.1'), 2));
});

test('leaseAttrsFor: flannel\'s udp and vxlan lease values', () => {
  const ip = parseIpv4('192.168.64.3');
  assert.equal(encodeLeaseAttrs(leaseAttrsFor(planBackend(conf('{"Type":"udp"}'), 'x'), ip, null)),
    '{"PublicIP":"192.168.64.3","PublicIPv6":null}');
  const mac = Uint8Array.from([0xc6, 0xd2, 0x32, 0x6f, 0x8f, 0x44]);
  assert.equal(encodeLeaseAttrs(leaseAttrsFor(planBackend(conf('{"Type":"vxlan"}'), 'x'), ip, mac)),
    '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}');
});

test('peerVtepMac: which peers speak our backend', () => {
  const udp = planBackend(conf('{"Type":"udp"}'), 'x');
  const vx = planBackend(conf('{"Type":"vxlan"}'), 'x');
  const base = { publicIp: 1, publicIpv6: null };
  assert.equal(peerVtepMac(udp, base), null);
  assert.equal(peerVtepMac(udp, { ...base, backendType: '' }), null, 'the Kubernetes annotation is ""');
  assert.equal(peerVtepMac(udp, { ...base, backendType: 'vxlan', backendData: {} }), 'incompatible');
  assert.equal(peerVtepMac(vx, base), 'incompatible');
  assert.equal(peerVtepMac(vx, { ...base, backendType: 'vxlan', backendData: { VtepMAC: 'zz' } }), 'incompatible');
  assert.deepEqual(peerVtepMac(vx, { ...base, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'C6:d2:32:6f:8f:44' } }),
    Uint8Array.from([0xc6, 0xd2, 0x32, 0x6f, 0x8f, 0x44]));
});

test('chooseVxlanMode: explicit modes win; auto asks the kernel', async () => {
  let asked = 0;
  const can = (v: boolean) => async () => { asked++; return v; };
  assert.equal((await chooseVxlanMode('kernel', can(false))).mode, 'vxlan-kernel');
  assert.equal((await chooseVxlanMode('userspace', can(true))).mode, 'vxlan-userspace');
  assert.equal(asked, 0, 'explicit modes do not probe');
  assert.equal((await chooseVxlanMode('auto', can(true))).mode, 'vxlan-kernel');
  const u = await chooseVxlanMode('auto', can(false));
  assert.equal(u.mode, 'vxlan-userspace');
  assert.equal(vxlanModeLine(u), 'vxlan mode userspace (Backend.Mode "auto": the kernel cannot create a vxlan link here)');
});
