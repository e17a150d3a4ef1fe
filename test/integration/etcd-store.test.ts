// Runs in the serial (integration) phase: its watch assertions allow 1 s, which a
// fully loaded 2-core machine running every unit file in parallel can exceed.
/**
 * EtcdLeaseStore against a real etcd (Debian's etcd-server) that this file
 * starts on 127.0.0.1 with a temporary data dir. Leases are written and read
 * back with a separate raw etcd3 client, exactly as flanneld writes them.
 * Each test uses its own prefix so they do not see each other's leases.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { EtcdLeaseStore, etcdOptionsFromFlags, type EtcdLeaseStoreOptions } from '../../src/subnet/etcd.js';
import { subnetKey, type Lease, type LeaseAttrs } from '../../src/subnet/lease.js';
import type { LeaseNetConf, PeerEvent } from '../../src/subnet/store.js';
import { isWeftError } from '../../src/errors.js';
import { formatIpv4, formatIpv4Prefix, parseIpv4 as ip, parseIpv4Prefix as pfx } from '../../src/wire/ipv4-addr.js';
import { etcdSkip, startEtcd, type EtcdServer } from '../helpers/etcd-server.js';
import { captureLog } from '../helpers/log.js';

const CONF: LeaseNetConf = { network: pfx('10.244.0.0/16'), subnetLen: 24, subnetMin: ip('10.244.1.0'), subnetMax: ip('10.244.255.0') };
// Network 10.10.0.0/28, SubnetLen 30, Min/Max restricting to 2 subnets.
const TINY: LeaseNetConf = { network: pfx('10.10.0.0/28'), subnetLen: 30, subnetMin: ip('10.10.0.4'), subnetMax: ip('10.10.0.8') };
const DAY = 86_400;

function attrs(pub: string, extra: Partial<LeaseAttrs> = {}): LeaseAttrs {
  return { publicIp: ip(pub), publicIpv6: null, ...extra };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Collects watch events; `until` waits (bounded) for a condition. */
class Events {
  readonly all: PeerEvent[] = [];
  /** The store's log lines, when the test collects them: shown on a failure. */
  logs: string[] = [];
  batches = 0;
  revoked = 0;
  push = (evs: PeerEvent[]): void => {
    this.batches++;
    this.all.push(...evs);
  };
  revoke = (): void => {
    this.revoked++;
  };
  has(type: PeerEvent['type'], subnet: string, publicIp?: string): boolean {
    return this.all.some((e) => e.type === type && formatIpv4Prefix(e.lease.subnet) === subnet
      && (publicIp === undefined || formatIpv4(e.lease.attrs.publicIp) === publicIp));
  }
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) {
        assert.fail(`${what} not seen within ${ms} ms; events: ${JSON.stringify(this.all.map((e) => [e.type, formatIpv4Prefix(e.lease.subnet), formatIpv4(e.lease.attrs.publicIp)]))}`
          + (this.logs.length > 0 ? `; store log:\n${this.logs.join('\n')}` : ''));
      }
      await sleep(20);
    }
  }
}

describe('etcd lease store (real etcd)', { skip: etcdSkip(), timeout: 180_000 }, () => {
  let etcd: EtcdServer;
  let raw: Etcd3;
  const stores: EtcdLeaseStore[] = [];
  let n = 0;

  before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: etcd.endpoint });
  });
  after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    raw?.close();
    await etcd?.stop();
  });

  /** A fresh prefix per test, like a separate cluster. */
  function prefix(): string {
    return `/t${++n}/coreos.com/network`;
  }
  function mk(p: string, extra: Partial<EtcdLeaseStoreOptions> = {}): EtcdLeaseStore {
    const s = new EtcdLeaseStore({ endpoints: [etcd.endpoint], prefix: p, ...extra });
    stores.push(s);
    return s;
  }
  /** What flanneld's createSubnet does: a 24 h etcd lease and the value on it. */
  async function flannelPut(key: string, value: string): Promise<void> {
    const g = await raw.leaseClient.leaseGrant({ TTL: DAY, ID: 0 });
    await raw.put(key).value(value).lease(g.ID);
  }

  test('a missing config says how to put it with the v3 API; a present one is returned as is', async () => {
    const p = prefix();
    const s = mk(p);
    await assert.rejects(s.getNetworkConfig(), (e: unknown) => {
      assert.ok(isWeftError(e, 'ECONFIG'), String(e));
      assert.match(e.message, new RegExp(`${p}/config`));
      assert.match(e.message, /etcdctl .*put \S+\/config '\{"Network":"10\.244\.0\.0\/16","Backend":\{"Type":"udp"\}\}'/);
      assert.match(e.message, /ETCDCTL_API=3/);
      return true;
    });
    const text = '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}';
    await raw.put(`${p}/config`).value(text);
    assert.equal(await s.getNetworkConfig(), text);
  });

  test('an unreachable etcd fails within the bound, naming the endpoints and the cause', async () => {
    const dead = `http://127.0.0.1:${etcd.peerPort + 1000 > 65000 ? 1 : etcd.peerPort + 1000}`;
    const s = mk('/dead', { endpoints: [dead], connectTimeoutMs: 1500 });
    const t0 = Date.now();
    await assert.rejects(s.getNetworkConfig(), (e: unknown) => {
      assert.ok(isWeftError(e, 'EETCD'), String(e));
      assert.ok(e.message.includes(dead), e.message);
      assert.match(e.message, /UNAVAILABLE|ECONNREFUSED|connect/i);
      return true;
    });
    assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
  });

  test('endpoints: a scheme is required and not mixed; flags map onto options', () => {
    assert.throws(() => new EtcdLeaseStore({ endpoints: ['127.0.0.1:2379'] }), (e: unknown) => isWeftError(e, 'EUSAGE'));
    assert.throws(() => new EtcdLeaseStore({ endpoints: ['http://a:1', 'https://b:2'] }), (e: unknown) => isWeftError(e, 'EUSAGE'));
    assert.throws(() => new EtcdLeaseStore({ endpoints: ['https://a:1'], caFile: '/nonexistent/ca.pem' }), (e: unknown) => isWeftError(e, 'ECONFIG') && e.message.includes('--etcd-cafile'));
    const o = etcdOptionsFromFlags({
      etcdEndpoints: 'http://127.0.0.1:4001, http://127.0.0.1:2379', etcdPrefix: '/x/network',
      etcdKeyfile: '', etcdCertfile: '', etcdCafile: '', etcdUsername: 'u', etcdPassword: 'p',
    });
    assert.deepEqual(o, { endpoints: ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'], prefix: '/x/network', username: 'u', password: 'p' });
  });

  test('two nodes get different subnets; the value is flannel\'s bytes on a 24 h etcd lease', async () => {
    const p = prefix();
    const a = await mk(p).acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const b = await mk(p).acquire(CONF, { attrs: attrs('192.168.100.2'), previous: null });
    assert.notEqual(formatIpv4Prefix(a.subnet), formatIpv4Prefix(b.subnet));
    const key = `${p}/subnets/${subnetKey(a.subnet)}`;
    assert.match(key, /\/subnets\/10\.244\.\d+\.0-24$/);
    const kv = (await raw.get(key).exec()).kvs[0];
    assert.ok(kv !== undefined);
    // Byte for byte what flanneld's udp backend writes.
    assert.equal(kv.value.toString(), '{"PublicIP":"192.168.100.1","PublicIPv6":null}');
    assert.notEqual(kv.lease, '0', 'attached to an etcd lease');
    const ttl = await raw.leaseClient.leaseTimeToLive({ ID: kv.lease });
    assert.ok(Number(ttl.TTL) > DAY - 60 && Number(ttl.TTL) <= DAY, `TTL ${ttl.TTL}`);
    assert.equal(Number(ttl.grantedTTL), DAY);
    assert.ok(Math.abs(a.expiration - (Date.now() + DAY * 1000)) < 60_000, 'expiration = now + 24 h');
  });

  test('after this node\'s address changed, its subnet.env lease (held by the old PublicIP it noted) is kept with the new one', async () => {
    const p = prefix();
    const logs: string[] = [];
    const key = `${p}/subnets/10.244.77.0-24`;
    await flannelPut(key, '{"PublicIP":"192.168.1.20","PublicIPv6":null}');
    const prev = pfx('10.244.77.0/24');
    const other = await mk(p).acquire(CONF, { attrs: attrs('192.168.1.99'), previous: prev, previousPublicIp: ip('192.168.1.21') });
    assert.notDeepEqual(other.subnet, prev, 'the noted PublicIP is not the holder: another node\'s lease, not taken');
    const l = await mk(p, { log: captureLog(logs) }).acquire(CONF, { attrs: attrs('192.168.1.30'), previous: prev, previousPublicIp: ip('192.168.1.20') });
    assert.deepEqual(l.subnet, prev);
    assert.equal((await raw.get(key).string()), '{"PublicIP":"192.168.1.30","PublicIPv6":null}');
    assert.match(logs.join('\n'), /this node's address changed to 192\.168\.1\.30; the lease is kept/);
  });

  test('a lease written in flanneld\'s exact key and JSON is a peer, and its subnet is not picked', async () => {
    const p = '/coreos.com/network';
    await flannelPut('/coreos.com/network/subnets/10.244.9.0-24', '{"PublicIP":"192.168.100.9","PublicIPv6":null}');
    // Only 10.244.9.0 and 10.244.10.0 in range: the flannel lease's subnet must not be taken.
    const narrow: LeaseNetConf = { ...CONF, subnetMin: ip('10.244.9.0'), subnetMax: ip('10.244.10.0') };
    const s = mk(p);
    const own = await s.acquire(narrow, { attrs: attrs('192.168.100.1'), previous: null });
    assert.equal(formatIpv4Prefix(own.subnet), '10.244.10.0/24');
    const ev = new Events();
    const stop = s.watch(own, ev.push, ev.revoke);
    try {
      await ev.until(() => ev.batches >= 1, 5000, 'first batch');
      assert.equal(ev.all.length, 1);
      const e = ev.all[0]!;
      assert.equal(e.type, 'added');
      assert.equal(formatIpv4Prefix(e.lease.subnet), '10.244.9.0/24');
      assert.deepEqual(e.lease.attrs, { publicIp: ip('192.168.100.9'), publicIpv6: null });
      assert.ok(e.lease.expiration > Date.now() + (DAY - 120) * 1000, 'expiration from the etcd lease');
      // A vxlan flanneld lease decodes with its backend data.
      await flannelPut('/coreos.com/network/subnets/10.244.11.0-24',
        '{"PublicIP":"192.168.100.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}');
      await ev.until(() => ev.has('added', '10.244.11.0/24'), 1000, 'vxlan peer');
      const vx = ev.all.find((x) => formatIpv4Prefix(x.lease.subnet) === '10.244.11.0/24')!;
      assert.equal(vx.lease.attrs.backendType, 'vxlan');
      assert.deepEqual(vx.lease.attrs.backendData, { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' });
    } finally {
      stop();
      await raw.delete().prefix(`${p}/`);
    }
  });

  test('a node keeps its lease across a restart; changed attrs rewrite the value, not the subnet', async () => {
    const p = prefix();
    const first = await mk(p).acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const key = `${p}/subnets/${subnetKey(first.subnet)}`;
    const oldLease = (await raw.get(key).exec()).kvs[0]!.lease;
    // Restart: a new store, no subnet.env (previous null) or a stale one: our lease wins.
    const again = await mk(p).acquire(CONF, { attrs: attrs('192.168.100.1'), previous: pfx('10.244.200.0/24') });
    assert.deepEqual(again.subnet, first.subnet);
    const kv = (await raw.get(key).exec()).kvs[0]!;
    assert.notEqual(kv.lease, oldLease, 'reuse re-puts with a new 24 h etcd lease, as flannel\'s updateSubnet');
    const vx = attrs('192.168.100.1', { backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } });
    const third = await mk(p).acquire(CONF, { attrs: vx, previous: null });
    assert.deepEqual(third.subnet, first.subnet);
    assert.equal((await raw.get(key).string()),
      '{"PublicIP":"192.168.100.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}');
    assert.equal((await raw.getAll().prefix(`${p}/subnets/`).keys()).length, 1, 'no second lease');
  });

  test('the previous subnet (subnet.env) is reused when free, not when another node holds it', async () => {
    const p = prefix();
    const got = await mk(p).acquire(CONF, { attrs: attrs('192.168.100.1'), previous: pfx('10.244.77.0/24') });
    assert.equal(formatIpv4Prefix(got.subnet), '10.244.77.0/24');
    const other = await mk(p).acquire(CONF, { attrs: attrs('192.168.100.2'), previous: pfx('10.244.77.0/24') });
    assert.notEqual(formatIpv4Prefix(other.subnet), '10.244.77.0/24');
    // An incompatible previous (wrong length) is ignored.
    const third = await mk(p).acquire(CONF, { attrs: attrs('192.168.100.3'), previous: pfx('10.244.78.0/25') });
    assert.equal(third.subnet.len, 24);
  });

  test('out of subnets when every subnet in range is leased', async () => {
    const p = prefix();
    const a = await mk(p).acquire(TINY, { attrs: attrs('192.168.100.1'), previous: null });
    const b = await mk(p).acquire(TINY, { attrs: attrs('192.168.100.2'), previous: null });
    assert.deepEqual(new Set([formatIpv4Prefix(a.subnet), formatIpv4Prefix(b.subnet)]), new Set(['10.10.0.4/30', '10.10.0.8/30']));
    await assert.rejects(mk(p).acquire(TINY, { attrs: attrs('192.168.100.3'), previous: null }), (e: unknown) => {
      assert.ok(isWeftError(e, 'ENOSUBNET'), String(e));
      assert.match(e.message, /out of subnets/);
      return true;
    });
  });

  test('concurrent acquirers never share a subnet', async () => {
    const p = prefix();
    const leases = await Promise.all([1, 2, 3, 4, 5, 6].map((i) =>
      mk(p, { random: () => 0 }).acquire(CONF, { attrs: attrs(`192.168.100.${i}`), previous: null })));
    assert.equal(new Set(leases.map((l) => formatIpv4Prefix(l.subnet))).size, 6);
  });

  test('watch: first batch (empty), then added / changed / removed within 1 s; renewals are silent', async () => {
    const p = prefix();
    const s = mk(p);
    const own = await s.acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const ev = new Events();
    const stop = s.watch(own, ev.push, ev.revoke);
    try {
      await ev.until(() => ev.batches >= 1, 5000, 'first (empty) batch');
      assert.equal(ev.all.length, 0);
      const key = `${p}/subnets/10.244.50.0-24`;
      await flannelPut(key, '{"PublicIP":"192.168.100.50","PublicIPv6":null}');
      await ev.until(() => ev.has('added', '10.244.50.0/24', '192.168.100.50'), 1000, 'added');
      await flannelPut(key, '{"PublicIP":"192.168.100.51","PublicIPv6":null}');
      await ev.until(() => ev.has('changed', '10.244.50.0/24', '192.168.100.51'), 1000, 'changed');
      // flanneld's renewal: same value, new etcd lease → no event. Ours too.
      const before = ev.all.length;
      await flannelPut(key, '{"PublicIP":"192.168.100.51","PublicIPv6":null}');
      const renewed = await s.renew(own);
      assert.ok(renewed.expiration >= own.expiration);
      await raw.delete().key(key);
      await ev.until(() => ev.has('removed', '10.244.50.0/24'), 1000, 'removed');
      assert.equal(ev.all.length, before + 1, 'renewals produced no events');
      assert.equal(ev.revoked, 0);
    } finally {
      stop();
    }
  });

  test('compaction past the watch revision: re-list and emit only the differences', async () => {
    const p = prefix();
    const sub = `${p}/subnets/`;
    await flannelPut(`${sub}10.244.61.0-24`, '{"PublicIP":"192.168.100.61","PublicIPv6":null}');
    await flannelPut(`${sub}10.244.62.0-24`, '{"PublicIP":"192.168.100.62","PublicIPv6":null}');
    await flannelPut(`${sub}10.244.63.0-24`, '{"PublicIP":"192.168.100.63","PublicIPv6":null}');
    const logs: string[] = [];
    let compacted = false;
    const s = mk(p, {
      log: captureLog(logs),
      // Between the first listing and the watch: change things, then compact
      // them away, so the watch from listing revision + 1 is refused.
      beforeWatch: async () => {
        if (compacted) return;
        compacted = true;
        await flannelPut(`${sub}10.244.61.0-24`, '{"PublicIP":"192.168.101.61","PublicIPv6":null}');
        await raw.delete().key(`${sub}10.244.62.0-24`);
        await flannelPut(`${sub}10.244.64.0-24`, '{"PublicIP":"192.168.100.64","PublicIPv6":null}');
        const rev = (await raw.get(`${sub}10.244.64.0-24`).exec()).header.revision;
        await raw.kv.compact({ revision: rev, physical: true });
      },
    });
    const own = await s.acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const ev = new Events();
    ev.logs = logs;
    const stop = s.watch(own, ev.push, ev.revoke);
    try {
      await ev.until(() => ev.batches >= 1, 5000, 'first batch');
      assert.equal(ev.all.filter((e) => e.type === 'added').length, 3);
      await ev.until(() => ev.has('removed', '10.244.62.0/24') && ev.has('added', '10.244.64.0/24')
        && ev.has('changed', '10.244.61.0/24', '192.168.101.61'), 20_000, 're-list diff');
      // Only the differences: 63 unchanged → reported once.
      assert.equal(ev.all.filter((e) => formatIpv4Prefix(e.lease.subnet) === '10.244.63.0/24').length, 1);
      assert.equal(ev.all.length, 6);
      assert.ok(logs.some((l) => /interrupted \(.*(compact|cancel)/i.test(l)), logs.join('\n'));
      // The watch is live again after the re-list.
      await flannelPut(`${sub}10.244.65.0-24`, '{"PublicIP":"192.168.100.65","PublicIPv6":null}');
      await ev.until(() => ev.has('added', '10.244.65.0/24'), 1000, 'added after re-list');
    } finally {
      stop();
    }
  });

  test('deleting our own key: onRevoked once, renew says EREVOKED', async () => {
    const p = prefix();
    const s = mk(p);
    const own = await s.acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const ev = new Events();
    s.watch(own, ev.push, ev.revoke);
    await ev.until(() => ev.batches >= 1, 5000, 'first batch');
    await raw.delete().key(`${p}/subnets/${subnetKey(own.subnet)}`);
    await ev.until(() => ev.revoked === 1, 1000, 'revoked');
    await flannelPut(`${p}/subnets/10.244.90.0-24`, '{"PublicIP":"192.168.100.90","PublicIPv6":null}');
    await sleep(300);
    assert.equal(ev.revoked, 1);
    assert.ok(!ev.has('added', '10.244.90.0/24'), 'the watch stopped');
    await assert.rejects(s.renew(own), (e: unknown) => isWeftError(e, 'EREVOKED'));
  });

  test('our key taken over by another PublicIP: revoked; release leaves a foreign key alone', async () => {
    const p = prefix();
    const s = mk(p);
    const own: Lease = await s.acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const key = `${p}/subnets/${subnetKey(own.subnet)}`;
    const ev = new Events();
    s.watch(own, ev.push, ev.revoke);
    await ev.until(() => ev.batches >= 1, 5000, 'first batch');
    await flannelPut(key, '{"PublicIP":"192.168.100.2","PublicIPv6":null}');
    await ev.until(() => ev.revoked === 1, 1000, 'revoked');
    await assert.rejects(s.renew(own), (e: unknown) => isWeftError(e, 'EREVOKED') && e.message.includes('192.168.100.2'));
    await s.release(own);
    assert.equal(await raw.get(key).string(), '{"PublicIP":"192.168.100.2","PublicIPv6":null}');
  });

  test('release deletes our key and revokes its etcd lease', async () => {
    const p = prefix();
    const s = mk(p);
    const own = await s.acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const key = `${p}/subnets/${subnetKey(own.subnet)}`;
    const id = (await raw.get(key).exec()).kvs[0]!.lease;
    await s.release(own);
    assert.equal(await raw.get(key).string(), null);
    const ttl = await raw.leaseClient.leaseTimeToLive({ ID: id });
    assert.equal(Number(ttl.TTL), -1, 'etcd lease revoked');
  });

  test('etcd down for 5 s: no removals, then changes made meanwhile are caught up', async () => {
    const p = prefix();
    const sub = `${p}/subnets/`;
    await flannelPut(`${sub}10.244.31.0-24`, '{"PublicIP":"192.168.100.31","PublicIPv6":null}');
    await flannelPut(`${sub}10.244.32.0-24`, '{"PublicIP":"192.168.100.32","PublicIPv6":null}');
    const logs: string[] = [];
    const s = mk(p, { log: captureLog(logs) });
    const own = await s.acquire(CONF, { attrs: attrs('192.168.100.1'), previous: null });
    const ev = new Events();
    const stop = s.watch(own, ev.push, ev.revoke);
    let writer: Etcd3 | null = null;
    try {
      await ev.until(() => ev.batches >= 1, 5000, 'first batch');
      assert.equal(ev.all.length, 2);
      await etcd.halt();
      await sleep(5000);
      assert.equal(ev.all.length, 2, 'nothing emitted during the outage');
      assert.equal(ev.revoked, 0);
      await etcd.start();
      // A second client writes right after the restart, before the watcher's
      // backoff brings it back.
      writer = new Etcd3({ hosts: etcd.endpoint });
      await writer.delete().key(`${sub}10.244.31.0-24`);
      await writer.put(`${sub}10.244.32.0-24`).value('{"PublicIP":"192.168.101.32","PublicIPv6":null}');
      await writer.put(`${sub}10.244.33.0-24`).value('{"PublicIP":"192.168.100.33","PublicIPv6":null}');
      await ev.until(() => ev.has('removed', '10.244.31.0/24') && ev.has('changed', '10.244.32.0/24', '192.168.101.32')
        && ev.has('added', '10.244.33.0/24'), 15_000, 'catch-up after the outage');
      assert.equal(ev.all.length, 5);
      assert.equal(ev.revoked, 0);
      assert.ok(logs.some((l) => /interrupted/.test(l)) && logs.some((l) => /resumed/.test(l)), logs.join('\n'));
      // And live again.
      await writer.put(`${sub}10.244.34.0-24`).value('{"PublicIP":"192.168.100.34","PublicIPv6":null}');
      await ev.until(() => ev.has('added', '10.244.34.0/24'), 1000, 'live after catch-up');
      // Our own lease survived the outage (its etcd lease has ~24 h left).
      assert.ok((await s.renew(own)).expiration > Date.now());
    } finally {
      stop();
      writer?.close();
      if (!etcd.running) await etcd.start();
    }
  });
});
