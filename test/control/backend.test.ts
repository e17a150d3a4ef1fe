import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkHostGwPublicIp, chooseVxlanMode, classifyPeer, leaseAttrsFor, planBackend, stableVtepMac, vxlanModeLine,
} from '../../src/control/backend.js';
import { parseNetConf } from '../../src/config/net-conf.js';
import { encodeLeaseAttrs } from '../../src/subnet/lease.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';
import { isWeftError } from '../../src/errors.js';

const conf = (backend: string) => parseNetConf(`{"Network":"10.244.0.0/16","Backend":${backend}}`);

test('planBackend: udp, vxlan, host-gw and alloc with flannel defaults; other types refused naming the source', () => {
  assert.deepEqual(planBackend(conf('{"Type":"udp"}'), 'x'), { kind: 'udp', port: 8285, overhead: 28, mtuOverride: 0 });
  const v = planBackend(conf('{"Type":"vxlan"}'), 'x');
  assert.equal(v.kind, 'vxlan');
  assert.equal(v.kind === 'vxlan' && v.port, 8472, 'Port 0 means the Linux default');
  assert.equal(v.overhead, 50);
  const v2 = planBackend(conf('{"Type":"vxlan","Port":4789,"VNI":7}'), 'x');
  assert.equal(v2.kind === 'vxlan' && v2.port, 4789);
  // No tunnel header: FLANNEL_MTU is the underlay's; Backend keys flannel ignores are ignored.
  assert.deepEqual(planBackend(conf('{"Type":"host-gw"}'), 'x'), { kind: 'host-gw', overhead: 0, mtuOverride: 0 });
  assert.deepEqual(planBackend(conf('{"Type":"Host-GW","MTU":1400}'), 'x'), { kind: 'host-gw', overhead: 0, mtuOverride: 0 });
  assert.deepEqual(planBackend(conf('{"Type":"alloc"}'), 'x'), { kind: 'alloc', overhead: 0, mtuOverride: 0 });
  for (const [type, source] of [['wireguard', '/etc/kube-flannel/net-conf.json'], ['ipip', 'etcd key /coreos.com/network/config']]) {
    assert.throws(() => planBackend(conf(`{"Type":"${type}"}`), source!),
      (e: unknown) => isWeftError(e, 'EBACKEND') && e.message.includes(`"${type}"`) && e.message.includes(source!)
        && e.message.includes('"udp", "vxlan", "host-gw", "alloc"'));
  }
});

test('checkHostGwPublicIp: flanneld\'s NAT refusal, with both addresses and the fix', () => {
  checkHostGwPublicIp(parseIpv4('10.0.0.1'), parseIpv4('10.0.0.1'), 'eth0');
  assert.throws(() => checkHostGwPublicIp(parseIpv4('203.0.113.9'), parseIpv4('10.0.0.1'), 'eth0'), (e: unknown) =>
    isWeftError(e, 'EBACKEND')
    && e.message.startsWith('your PublicIP differs from interface IP, meaning that probably you\'re on a NAT, which is not supported by host-gw backend')
    && e.message.includes('203.0.113.9') && e.message.includes('eth0 has 10.0.0.1') && e.message.includes('vxlan'));
});

test('stableVtepMac: same inputs, same MAC; locally administered unicast; differs per node and VNI', () => {
  const a = stableVtepMac(parseIpv4('192.168.100.1'), 1);
  assert.deepEqual(a, stableVtepMac(parseIpv4('192.168.100.1'), 1));
  assert.equal(a.length, 6);
  assert.equal(a[0]! & 0x03, 0x02, 'locally administered, not multicast');
  assert.notDeepEqual(a, stableVtepMac(parseIpv4('192.168.100.2'), 1));
  assert.notDeepEqual(a, stableVtepMac(parseIpv4('192.168.100.1'), 2));
});

test('leaseAttrsFor: flannel\'s udp, alloc, host-gw and vxlan lease values', () => {
  const ip = parseIpv4('192.168.64.3');
  assert.equal(encodeLeaseAttrs(leaseAttrsFor(planBackend(conf('{"Type":"udp"}'), 'x'), ip, null)),
    '{"PublicIP":"192.168.64.3","PublicIPv6":null}');
  assert.equal(encodeLeaseAttrs(leaseAttrsFor(planBackend(conf('{"Type":"alloc"}'), 'x'), ip, null)),
    '{"PublicIP":"192.168.64.3","PublicIPv6":null}');
  assert.equal(encodeLeaseAttrs(leaseAttrsFor(planBackend(conf('{"Type":"host-gw"}'), 'x'), parseIpv4('192.168.50.1'), null)),
    '{"PublicIP":"192.168.50.1","PublicIPv6":null,"BackendType":"host-gw"}');
  const mac = Uint8Array.from([0xc6, 0xd2, 0x32, 0x6f, 0x8f, 0x44]);
  assert.equal(encodeLeaseAttrs(leaseAttrsFor(planBackend(conf('{"Type":"vxlan"}'), 'x'), ip, mac)),
    '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}');
});

test('classifyPeer: which peers speak our backend, which are another backend, which are broken', () => {
  const udp = planBackend(conf('{"Type":"udp"}'), 'x');
  const vx = planBackend(conf('{"Type":"vxlan"}'), 'x');
  const hg = planBackend(conf('{"Type":"host-gw"}'), 'x');
  const base = { publicIp: 1, publicIpv6: null };
  const ok = { ok: true, mac: null };
  const hostGw = { ...base, backendType: 'host-gw' };
  const vxlan = { ...base, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'C6:d2:32:6f:8f:44' } };
  assert.deepEqual(classifyPeer(udp, base), ok);
  assert.deepEqual(classifyPeer(udp, { ...base, backendType: '' }), ok, 'the Kubernetes annotation is ""');
  assert.deepEqual(classifyPeer(udp, vxlan), { ok: false, mismatch: true, why: 'its backend is "vxlan", ours is "udp"' });
  assert.deepEqual(classifyPeer(udp, hostGw), { ok: false, mismatch: true, why: 'its backend is "host-gw", ours is "udp"' });
  assert.deepEqual(classifyPeer(hg, hostGw), ok);
  assert.deepEqual(classifyPeer(hg, base), { ok: false, mismatch: true, why: 'its backend is udp or alloc (no BackendType), ours is "host-gw"' });
  assert.equal(classifyPeer(hg, vxlan).ok, false);
  assert.deepEqual(classifyPeer(vx, base), { ok: false, mismatch: true, why: 'its backend is udp or alloc (no BackendType), ours is "vxlan"' });
  assert.equal(classifyPeer(vx, hostGw).ok, false);
  // Our type but unusable data: not a mismatch, and the message shows the data.
  for (const backendData of [{ VtepMAC: 'zz' }, 'not json', null, { VNI: 1 }]) {
    const v = classifyPeer(vx, { ...base, backendType: 'vxlan', backendData });
    assert.equal(v.ok, false);
    assert.ok(!v.ok && !v.mismatch && v.why.includes(JSON.stringify(backendData)) && v.why.includes('no valid VtepMAC'), JSON.stringify(v));
  }
  assert.deepEqual(classifyPeer(vx, vxlan), { ok: true, mac: Uint8Array.from([0xc6, 0xd2, 0x32, 0x6f, 0x8f, 0x44]) });
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
