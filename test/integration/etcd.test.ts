/**
 * Two weft daemons sharing a real etcd, with flanneld's key and value
 * formats. etcd runs inside the testbed: its own host namespace ("h3",
 * 192.168.100.3) on the same underlay bridge as the weft hosts, because a
 * daemon's 127.0.0.1 is the loopback of its own namespace. Nothing leaves
 * the test's namespaces.
 *
 * Contract with the daemon (src/control/daemon.ts): given --etcd-endpoints
 * (and --etcd-prefix) it uses EtcdLeaseStore instead of the local store —
 * even though startWeftNode also passes --lease-dir — and takes the
 * net-conf from <prefix>/config (the net-conf file startWeftNode writes is
 * ignored). A revoked lease stops it with exit code 1 and a log line.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Testbed, nHosts, ping, waitReachable, type Host, type Pod } from '../../src/testbed/index.js';
import { DEFAULT_NET_CONF, WEFT_BIN, attachWeftPod, startWeftNode, type WeftNode } from '../../src/testbed/weft-node.js';
import { rootSkip } from '../helpers/root.js';
import { controlRequest } from '../../src/control/control-server.js';
import { etcdSkip, etcdctl, startEtcd, type EtcdServer } from '../helpers/etcd-server.js';

const PREFIX = '/coreos.com/network';
const NET_CONF = '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}';
// Long enough for every watch and renewal to see the outage and back off (retries start at 1 s).
const OUTAGE_MS = 5_000;
const LOAD_SCRIPT = fileURLToPath(new URL('../helpers/etcd-load.js', import.meta.url));

interface StatusPeer { subnet: string; publicIp: string }

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function skip(): string | false {
  return rootSkip() || etcdSkip();
}

describe('etcd lease store: two weft daemons', { skip: skip(), timeout: 240_000 }, () => {
  const tb = new Testbed(`we${process.pid % 10000}`);
  let dir = '';
  let etcd: EtcdServer | null = null;
  let etcdHost: Host;
  const nodes: WeftNode[] = [];
  const pods: Pod[] = [];

  /** etcdctl (v3) from the etcd namespace itself. */
  async function ctl(...args: string[]): Promise<string> {
    const r = await etcdctl(etcd!.endpoint, args, etcdHost.ns);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }
  /** What flanneld does for a new lease: a 24 h etcd lease, the value put on it. */
  async function flannelPut(key: string, value: string): Promise<void> {
    const id = /lease ([0-9a-f]+) granted/.exec(await ctl('lease', 'grant', '86400'))?.[1];
    assert.ok(id, 'lease id');
    await ctl('put', `--lease=${id}`, key, value);
  }
  /** `weft status`'s answer, asked of the control socket directly (no process per poll). */
  async function peers(n: WeftNode): Promise<StatusPeer[]> {
    return ((await controlRequest(n.controlSocket, 'GET', '/status')) as { peers: StatusPeer[] }).peers;
  }
  async function waitPeer(n: WeftNode, subnet: string, publicIp: string | null, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const ps = await peers(n);
      const has = ps.some((p) => p.subnet === subnet && (publicIp === null || p.publicIp === publicIp));
      if (publicIp === null ? !ps.some((p) => p.subnet === subnet) : has) return;
      if (Date.now() > deadline) {
        assert.fail(`${n.host.name}: peer ${subnet} ${publicIp === null ? 'still present' : `at ${publicIp} not seen`} after ${ms} ms: ${JSON.stringify(ps)}`);
      }
      await sleep(100);
    }
  }
  async function pingBoth(count = 3): Promise<void> {
    for (const [a, b] of [[0, 1], [1, 0]] as const) {
      const r = await ping(tb, pods[a]!.ns, pods[b]!.ip, { count, intervalS: 0.05 });
      assert.equal(r.received, count, `pod ${a} → pod ${b}: ${r.output}`);
    }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-itetcd-'));
    const { hosts } = await nHosts(tb, 3);
    etcdHost = hosts[2]!;
    etcd = await startEtcd({ netns: etcdHost.ns, host: etcdHost.underlayIp });
    await ctl('put', `${PREFIX}/config`, NET_CONF);
    for (const h of hosts.slice(0, 2)) {
      nodes.push(await startWeftNode(tb, h, {
        dir,
        netConf: DEFAULT_NET_CONF, // ignored: the daemon reads <prefix>/config
        extraArgs: ['--workers=1', `--etcd-endpoints=${etcd.endpoint}`, `--etcd-prefix=${PREFIX}`],
      }));
    }
    for (const n of nodes) pods.push(await attachWeftPod(tb, n));
  });

  after(async () => {
    await etcd?.stop();
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('different subnets, flannel\'s exact lease values, pods reach each other both ways', async () => {
    assert.notEqual(nodes[0]!.subnet, nodes[1]!.subnet);
    const out = await ctl('get', '--prefix', `${PREFIX}/subnets/`);
    for (const n of nodes) {
      const net = n.subnet.replace(/\.1\/(\d+)$/, '.0-$1');
      const i = out.split('\n').indexOf(`${PREFIX}/subnets/${net}`);
      assert.ok(i >= 0, `key for ${n.subnet} in:\n${out}`);
      assert.equal(out.split('\n')[i + 1], `{"PublicIP":"${n.host.underlayIp}","PublicIPv6":null}`);
    }
    assert.ok(await waitReachable(tb, pods[0]!.ns, pods[1]!.ip, 10_000), 'pod 0 → pod 1');
    await pingBoth();
  });

  test('a lease written in flanneld\'s JSON becomes a route in both daemons', async () => {
    await flannelPut(`${PREFIX}/subnets/10.244.200.0-24`, '{"PublicIP":"192.168.100.9","PublicIPv6":null}');
    for (const n of nodes) await waitPeer(n, '10.244.200.0/24', '192.168.100.9', 2000);
  });

  /** Runs test/helpers/etcd-load.ts in the etcd namespace; its JSON answer. */
  async function load(...args: string[]): Promise<{ keys?: string[]; events?: number; ms: number }> {
    const r = await tb.exec(etcdHost.ns, [process.execPath, LOAD_SCRIPT, etcd!.endpoint, ...args], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `etcd-load ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as { keys?: string[]; events?: number; ms: number };
  }
  /**
   * Polls both daemons until the peers whose subnet matches `range` are
   * exactly `want`; the milliseconds each took, or a failure saying how far
   * each had got at the deadline.
   */
  async function converge(range: RegExp, want: readonly string[], ms: number): Promise<number[]> {
    const target = [...want].sort().join(',');
    const t0 = Date.now();
    return Promise.all(nodes.map(async (n) => {
      for (;;) {
        const got = (await peers(n)).filter((p) => range.test(p.subnet)).map((p) => p.subnet).sort();
        const at = Date.now() - t0;
        if (got.join(',') === target && at <= ms) return at;
        if (at > ms) {
          const missing = want.filter((k) => !got.includes(k)).length;
          const extra = got.filter((k) => !want.includes(k)).length;
          assert.fail(`${n.host.name}: after ${ms} ms ${got.length} peers in ${range}, ${missing} of ${want.length} wanted missing, `
            + `${extra} extra (deleted ones still routed)`);
        }
        await sleep(50);
      }
    }));
  }
  const subnetOf = (key: string): string => key.slice(`${PREFIX}/subnets/`.length).replace(/-(\d+)$/, '/$1');

  test('1000 peer leases put at once are routed by both daemons within 2 s, and removed within 2 s', async (t) => {
    const range = /^10\.244\.(1[2-8]\d|19[01])\./;
    const put = await load('burst', PREFIX, '1000');
    const added = await converge(range, put.keys!.map(subnetOf), 2000);
    const del = await load('delete', PREFIX, '1000');
    const removed = await converge(range, [], 2000);
    t.diagnostic(`puts took ${put.ms} ms, routed ${added.join('/')} ms after; deletes took ${del.ms} ms, gone ${removed.join('/')} ms after`);
  });

  test('a churn of 100 peer events a second for 10 s: both daemons match etcd within 2 s of its end', async (t) => {
    const range = /^10\.244\.19[2-9]\./;
    const churn = await load('churn', PREFIX, '200', '100', '10');
    assert.ok(churn.events! >= 900, `the churn made ${churn.events} events in ${churn.ms} ms`);
    const settled = await converge(range, churn.keys!.map(subnetOf), 2000);
    t.diagnostic(`${churn.events} events in ${churn.ms} ms, ${churn.keys!.length} keys left; matched ${settled.join('/')} ms after`);
  });

  test(`etcd down for ${OUTAGE_MS / 1000} s: traffic flows on the last-known routes; a change made after the restart arrives`, async () => {
    const known = await Promise.all(nodes.map(async (n) => (await peers(n)).map((p) => `${p.subnet} ${p.publicIp}`).sort()));
    await etcd!.halt();
    try {
      const t0 = Date.now();
      while (Date.now() - t0 < OUTAGE_MS) {
        await pingBoth(2);
        for (const [i, n] of nodes.entries()) {
          assert.equal(n.proc.exitCode, null, `${n.host.name} still running`);
          assert.deepEqual((await peers(n)).map((p) => `${p.subnet} ${p.publicIp}`).sort(), known[i], `${n.host.name} keeps its peers`);
        }
        await sleep(1000);
      }
    } finally {
      await etcd!.start();
    }
    // Written right after the restart, before the daemons' backoff brings them back.
    await flannelPut(`${PREFIX}/subnets/10.244.201.0-24`, '{"PublicIP":"192.168.100.10","PublicIPv6":null}');
    for (const n of nodes) await waitPeer(n, '10.244.201.0/24', '192.168.100.10', 20_000);
    await pingBoth();
  });

  test('a bad net-conf in etcd: the message names the etcd key it was read from, not a file', async () => {
    const h = etcdHost;
    for (const [conf, want] of [
      ['{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}', /backend type "ipip" is not implemented by weft.* in etcd key \/weft-bad\/network\/config/],
      ['{"Network":"10.244.0.0/31"}', /^F\d{4} .*\] etcd key \/weft-bad\/network\/config: .*too small/m],
      ['{"Network":"10.244.0.0/16",}', /^F\d{4} .*\] etcd key \/weft-bad\/network\/config: the network config is not valid JSON: .*line 1 column 28/m],
    ] as const) {
      await ctl('put', '/weft-bad/network/config', conf);
      const r = await tb.exec(h.ns, [process.execPath, WEFT_BIN, `--iface=${h.underlayIf}`, `--etcd-endpoints=${etcd!.endpoint}`,
        '--etcd-prefix=/weft-bad/network', `--subnet-file=${join(dir, 'bad.subnet.env')}`, `--control-socket=${join(dir, 'bad.sock')}`],
      { timeoutMs: 30_000 });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, want);
      const fatal = r.stderr.split('\n').filter((l) => l.startsWith('F')).join('\n');
      assert.doesNotMatch(fatal, /net-conf\.json/, 'the fatal line names no file (the banner lists --net-config-path)');
    }
  });

  test('deleting a daemon\'s own lease key stops it with exit code 1 and says why', async () => {
    const victim = nodes[1]!;
    const key = `${PREFIX}/subnets/${victim.subnet.replace(/\.1\/(\d+)$/, '.0-$1')}`;
    await ctl('del', key);
    const code = await Promise.race([
      new Promise<number | null>((r) => {
        if (victim.proc.exitCode !== null) r(victim.proc.exitCode);
        else victim.proc.once('exit', (c) => r(c));
      }),
      sleep(10_000).then(() => 'timeout' as const),
    ]);
    assert.equal(code, 1, `exit code (log:\n${(await readFile(victim.logFile, 'utf8')).slice(-2000)})`);
    assert.match(await readFile(victim.logFile, 'utf8'), /revoked/);
    // The other daemon keeps running and drops the deleted lease's route.
    assert.equal(nodes[0]!.proc.exitCode, null);
    await waitPeer(nodes[0]!, victim.subnet.replace(/\.1\//, '.0/'), null, 2000);
  });
});
