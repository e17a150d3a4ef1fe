/**
 * ip-masq and forward rules in a namespace (host h1 of twoHosts), for
 * iptables and nftables: the listed rules equal flanneld's set, a deleted
 * rule comes back within the resync period, stale rules of an old Network
 * and lease are removed at start, and a pod's TCP connection to an address
 * outside the Network arrives with h1's address. The "outside" namespace
 * has no route back to the pod network, so without masquerading the
 * connection cannot complete at all.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Testbed, twoHosts, attachPod, type Host, type Pod } from '../../src/testbed/index.js';
import {
  iptablesLines, iptablesMasqSpec, iptablesRestoreTable, iptablesSpecs, MasqRules, nftChains, parseIptablesSave,
  parseNftTable, type CommandRunner, type RuleSetOptions,
} from '../../src/control/masq.js';
import { parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { rootSkip } from '../helpers/root.js';
import { captureLog } from '../helpers/log.js';

const NETWORK = parseIpv4Prefix('10.244.0.0/16');
const LEASE = parseIpv4Prefix('10.244.1.0/24');
const OUT_IP = '172.31.0.2';
const H1_OUT_IP = '172.31.0.1';
const PORT = 7100;

const SERVER = `const n=require('net');n.createServer(s=>{console.log('peer '+s.remoteAddress);s.end('hi')})`
  + `.listen(${PORT},'${OUT_IP}',()=>console.log('listening'));setTimeout(()=>process.exit(0),170000)`;
const CLIENT = `const s=require('net').connect(${PORT},'${OUT_IP}');s.on('data',()=>{console.log('ok');process.exit(0)});`
  + `s.on('error',e=>{console.log(e.code);process.exit(0)});setTimeout(()=>{console.log('TIMEOUT');process.exit(0)},2000)`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ip-masq and forward rules in a namespace', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`wm${process.pid % 10000}`);
  let h1: Host;
  let pod: Pod;
  let peers: string[] = [];
  let run: CommandRunner;
  const logs: string[] = [];

  before(async () => {
    const { hosts } = await twoHosts(tb);
    h1 = hosts[0];
    pod = await attachPod(tb, h1, { podCidrHost: '10.244.1.2/24', gateway: '10.244.1.1', mtu: 1500 });
    const out = await tb.addNs('out');
    await tb.veth(h1.ns, 'eth1', out, 'eth0');
    await tb.addr(h1.ns, 'eth1', `${H1_OUT_IP}/24`);
    await tb.addr(out, 'eth0', `${OUT_IP}/24`);
    const server = tb.spawn(out, [process.execPath, '-e', SERVER], { pipe: true });
    let buf = '';
    server.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (l.startsWith('peer ')) peers.push(l.slice(5));
    });
    const ready = new Promise<void>((resolve) => server.stdout!.on('data', (d: string) => { if (d.includes('listening')) resolve(); }));
    await Promise.race([ready, sleep(5000)]);
    run = (argv, input) => tb.exec(h1.ns, argv, input === undefined ? { timeoutMs: 20_000 } : { input, timeoutMs: 20_000 });
  });

  after(async () => { await tb.cleanup(); });

  const connect = async (): Promise<string> => (await tb.run(pod.ns, [process.execPath, '-e', CLIENT], { timeoutMs: 10_000 })).stdout.trim();

  const ours = async (): Promise<string[]> => {
    const lines: string[] = [];
    for (const t of ['nat', 'filter']) {
      const r = await tb.run(h1.ns, ['iptables-save', '-t', t]);
      for (const x of parseIptablesSave(r.stdout).get(t)?.rules ?? []) {
        const l = `-A ${x.chain} ${x.spec}`;
        if (l.includes('FLANNEL') || l.includes('flanneld')) lines.push(l);
      }
    }
    return lines;
  };

  const expectOutsideSeesHost = async () => {
    peers = [];
    assert.equal(await connect(), 'ok', 'pod → outside connection completes');
    assert.deepEqual(peers, [H1_OUT_IP], 'the outside server saw h1\'s address');
  };

  test('iptables: stale rules removed, flanneld\'s set listed, a deleted rule comes back, masquerade works', async () => {
    // Rules of an old Network and lease, and a pre-0.20 flanneld rule directly in POSTROUTING.
    const old: RuleSetOptions = {
      network: parseIpv4Prefix('10.245.0.0/16'), lease: parseIpv4Prefix('10.245.3.0/24'), masq: true, forwardRules: true, randomFully: false,
    };
    const seed = iptablesRestoreTable('nat', [iptablesMasqSpec(old)], undefined)
      .replace('COMMIT', '-A POSTROUTING -s 10.245.0.0/16 -d 10.245.0.0/16 -m comment --comment "flanneld masq" -j RETURN\nCOMMIT');
    await tb.run(h1.ns, ['iptables-restore', '--noflush'], { input: seed });
    assert.ok((await ours()).some((l) => l.includes('10.245.3.0/24')));

    const m = new MasqRules({
      network: NETWORK, lease: LEASE, nftables: false, forwardRules: true, resyncSeconds: 1, log: captureLog(logs), run,
    });
    try {
      await m.start();
      const want = iptablesSpecs(m.ruleSet).flatMap(iptablesLines);
      assert.equal(want.length, 10);
      assert.deepEqual(await ours(), want, logs.join('\n'));

      await tb.run(h1.ns, ['iptables', '-t', 'nat', '-D', 'FLANNEL-POSTRTG', '3']);
      await tb.run(h1.ns, ['iptables', '-t', 'filter', '-D', 'FORWARD', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'FLANNEL-FWD']);
      assert.notDeepEqual(await ours(), want);
      const deadline = Date.now() + 3500;
      let got: string[] = [];
      while (Date.now() < deadline) {
        got = await ours();
        if (JSON.stringify(got) === JSON.stringify(want)) break;
        await sleep(200);
      }
      assert.deepEqual(got, want, 'rules restored within the resync period');
      assert.ok(m.rebuilds >= 1);

      await expectOutsideSeesHost();
    } finally {
      await m.stop();
    }
    assert.deepEqual(await ours(), [], 'stop() removes our rules');
    assert.notEqual(await connect(), 'ok', 'without masquerading the outside cannot answer the pod');
  });

  test('nftables: table flannel-ipv4 listed as expected, iptables leftovers removed, a deleted rule comes back, masquerade works', async () => {
    // Leftovers of iptables mode must not masquerade twice.
    const seed = iptablesRestoreTable('nat', [iptablesMasqSpec({ network: NETWORK, lease: LEASE, masq: true, forwardRules: false, randomFully: false })], undefined);
    await tb.run(h1.ns, ['iptables-restore', '--noflush'], { input: seed });
    const m = new MasqRules({
      network: NETWORK, lease: LEASE, nftables: true, forwardRules: true, resyncSeconds: 1, log: captureLog(logs), run,
    });
    const list = async () => {
      const r = await tb.exec(h1.ns, ['nft', 'list', 'table', 'ip', 'flannel-ipv4']);
      return r.code === 0 ? Object.fromEntries(parseNftTable(r.stdout)) : null;
    };
    try {
      await m.start();
      const want = Object.fromEntries(nftChains(m.ruleSet).map((c) => [c.name, c.rules]));
      assert.deepEqual(await list(), want, logs.join('\n'));
      assert.deepEqual(await ours(), [], 'iptables leftovers removed');

      const a = await tb.run(h1.ns, ['nft', '-a', 'list', 'chain', 'ip', 'flannel-ipv4', 'postrtg']);
      const handle = /ip saddr 10\.244\.0\.0\/16 ip daddr 10\.244\.1\.0\/24 return # handle (\d+)/.exec(a.stdout)?.[1];
      assert.ok(handle, a.stdout);
      await tb.run(h1.ns, ['nft', 'delete', 'rule', 'ip', 'flannel-ipv4', 'postrtg', 'handle', handle]);
      assert.notDeepEqual(await list(), want);
      const deadline = Date.now() + 3500;
      let got: unknown = null;
      while (Date.now() < deadline) {
        got = await list();
        if (JSON.stringify(got) === JSON.stringify(want)) break;
        await sleep(200);
      }
      assert.deepEqual(got, want, 'table restored within the resync period');

      await expectOutsideSeesHost();
    } finally {
      await m.stop();
    }
    assert.equal(await list(), null, 'stop() deletes the table');
  });
});
