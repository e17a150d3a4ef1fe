import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import {
  diffIptables, iptablesLines, iptablesMasqSpec, iptablesForwardSpec, iptablesRestoreTable, iptablesSpecs,
  iptablesVersionAtLeast162, MasqRules, nftChains, nftIntact, nftScript, parseIptablesSave, parseNftTable,
  type CommandRunner, type RuleSetOptions,
} from '../../src/control/masq.js';
import { captureLog } from '../helpers/log.js';

const opts: RuleSetOptions = {
  network: parseIpv4Prefix('10.244.0.0/16'), lease: parseIpv4Prefix('10.244.1.0/24'),
  masq: true, forwardRules: true, randomFully: true,
};

/** flanneld's rules for Network 10.244.0.0/16, lease 10.244.1.0/24, as iptables-save prints them. */
const EXPECTED_NAT = [
  '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
  '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
  '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
  '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
];
const EXPECTED_FILTER = [
  '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
  '-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
  '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
];

test('iptables masq and forward rules equal flanneld\'s for 10.244.0.0/16, lease 10.244.1.0/24', () => {
  assert.deepEqual(iptablesLines(iptablesMasqSpec(opts)), EXPECTED_NAT);
  assert.deepEqual(iptablesLines(iptablesForwardSpec(opts)), EXPECTED_FILTER);
});

test('without random-fully the MASQUERADE rules carry no option', () => {
  const l = iptablesLines(iptablesMasqSpec({ ...opts, randomFully: false }));
  assert.equal(l[5], '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE');
  assert.equal(l[6], '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE');
});

test('flags off → no lines', () => {
  assert.deepEqual(iptablesLines(iptablesMasqSpec({ ...opts, masq: false })), []);
  assert.deepEqual(iptablesLines(iptablesForwardSpec({ ...opts, forwardRules: false })), []);
});

test('nftables rules in nft list form', () => {
  const ch = nftChains(opts);
  assert.deepEqual(ch.map((c) => c.name), ['postrtg', 'forward']);
  assert.deepEqual(ch[0]!.rules, [
    'meta mark & 0x00004000 == 0x00004000 return',
    'ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return',
    'ip saddr 10.244.0.0/16 ip daddr 10.244.1.0/24 return',
    'ip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return',
    'ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
    'ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random',
  ]);
  assert.deepEqual(ch[1]!.rules, ['ip saddr 10.244.0.0/16 accept', 'ip daddr 10.244.0.0/16 accept']);
  const script = nftScript(ch);
  assert.match(script, /^add table ip flannel-ipv4\ndelete table ip flannel-ipv4\nadd table ip flannel-ipv4 \{ comment "rules for flannel-ipv4" ; \}\n/);
  assert.match(script, /add chain ip flannel-ipv4 postrtg \{ type nat hook postrouting priority srcnat ;/);
  assert.match(script, /add chain ip flannel-ipv4 forward \{ type filter hook forward priority filter ;/);
  assert.match(script, /add rule ip flannel-ipv4 postrtg ip saddr != 10\.244\.0\.0\/16 ip daddr 10\.244\.0\.0\/16 masquerade fully-random\n/);
  assert.equal(nftScript([]), 'add table ip flannel-ipv4\ndelete table ip flannel-ipv4\n');
});

const NFT_LISTING = `table ip flannel-ipv4 {
\tcomment "rules for flannel-ipv4"
\tchain postrtg {
\t\tcomment "chain to manage traffic masquerading by flannel"
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & 0x00004000 == 0x00004000 return
\t\tip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return
\t\tip saddr 10.244.0.0/16 ip daddr 10.244.1.0/24 return
\t\tip saddr != 10.244.0.0/16 ip daddr 10.244.1.0/24 return
\t\tip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random
\t\tip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random
\t}

\tchain forward {
\t\tcomment "chain to accept flannel traffic"
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr 10.244.0.0/16 accept
\t\tip daddr 10.244.0.0/16 accept
\t}
}
`;

test('nft listing parses; intact vs one rule missing', () => {
  const ch = nftChains(opts);
  assert.ok(nftIntact(ch, parseNftTable(NFT_LISTING)));
  const broken = NFT_LISTING.replace(/\t\tip saddr 10.244.0.0\/16 ip daddr 10.244.1.0\/24 return\n/, '');
  assert.ok(!nftIntact(ch, parseNftTable(broken)));
  assert.ok(!nftIntact(ch, null));
  assert.ok(nftIntact([], null));
  // -a listings carry "# handle N" comments
  assert.ok(nftIntact(ch, parseNftTable(NFT_LISTING.replace(/return\n/g, 'return # handle 7\n'))));
});

const save = (nat: string[], filter: string[] = EXPECTED_FILTER, natChains = ':FLANNEL-POSTRTG - [0:0]') => `# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
${natChains}
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
${nat.join('\n')}
COMMIT
# Completed
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:FLANNEL-FWD - [0:0]
${filter.join('\n')}
COMMIT
`;

test('iptables-save parsing: intact set', () => {
  const t = parseIptablesSave(save(EXPECTED_NAT));
  for (const s of iptablesSpecs(opts)) {
    const d = diffIptables(s, t.get(s.table));
    assert.ok(d.intact, JSON.stringify(d));
    assert.deepEqual(d.missing, []);
    assert.deepEqual(d.stale, []);
  }
});

test('iptables-save parsing finds a missing rule', () => {
  const t = parseIptablesSave(save(EXPECTED_NAT.filter((_, i) => i !== 3)));
  const d = diffIptables(iptablesMasqSpec(opts), t.get('nat'));
  assert.ok(!d.intact);
  assert.deepEqual(d.missing, [EXPECTED_NAT[3]]);
  assert.deepEqual(d.stale, []);
});

test('iptables-save parsing finds stale rules of an old lease, old flannel rules in POSTROUTING, a duplicate jump', () => {
  const old = iptablesLines(iptablesMasqSpec({ ...opts, lease: parseIpv4Prefix('10.244.9.0/24') })).slice(1);
  const oldStyle = '-A POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN';
  const t = parseIptablesSave(save([EXPECTED_NAT[0]!, EXPECTED_NAT[0]!, oldStyle, ...old]));
  const spec = iptablesMasqSpec(opts);
  const d = diffIptables(spec, t.get('nat'));
  assert.ok(!d.intact);
  assert.ok(d.stale.includes(oldStyle));
  assert.ok(d.stale.includes(EXPECTED_NAT[0]!), 'the second jump is stale');
  assert.ok(d.stale.some((l) => l.includes('10.244.9.0/24')));
  assert.ok(d.missing.some((l) => l.includes('-s 10.244.1.0/24')));
  const batch = iptablesRestoreTable('nat', [spec], t.get('nat'));
  assert.equal(batch, [
    '*nat',
    ':FLANNEL-POSTRTG - [0:0]',
    '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    '-D POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
    ...EXPECTED_NAT,
    'COMMIT',
  ].join('\n') + '\n');
  // kube-proxy's rule is not ours and stays.
  assert.ok(!batch.includes('KUBE-POSTROUTING'));
});

test('wrong order in our chain is not intact', () => {
  const swapped = [EXPECTED_NAT[0]!, EXPECTED_NAT[2]!, EXPECTED_NAT[1]!, ...EXPECTED_NAT.slice(3)];
  const d = diffIptables(iptablesMasqSpec(opts), parseIptablesSave(save(swapped)).get('nat'));
  assert.ok(!d.intact);
  assert.deepEqual(d.missing, []);
});

test('removal batch: jump deleted, chain flushed and removed', () => {
  const off = iptablesForwardSpec({ ...opts, forwardRules: false });
  const t = parseIptablesSave(save(EXPECTED_NAT)).get('filter');
  assert.ok(!diffIptables(off, t).intact);
  assert.equal(iptablesRestoreTable('filter', [off], t), [
    '*filter',
    '-D FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
    '-F FLANNEL-FWD',
    '-X FLANNEL-FWD',
    'COMMIT',
  ].join('\n') + '\n');
  assert.ok(diffIptables(off, parseIptablesSave(save(EXPECTED_NAT, [], '')).get('nat')).intact);
});

test('iptables version probe: 1.6.2 and later have --random-fully and --wait', () => {
  assert.ok(iptablesVersionAtLeast162('iptables v1.8.9 (nf_tables)'));
  assert.ok(iptablesVersionAtLeast162('iptables v1.6.2'));
  assert.ok(!iptablesVersionAtLeast162('iptables v1.6.1'));
  assert.ok(!iptablesVersionAtLeast162('iptables v1.4.21'));
  assert.ok(!iptablesVersionAtLeast162('garbage'));
});

/** A fake iptables: keeps the save text and records restore input. */
function fakeIptables(initial: string): { run: CommandRunner; restores: string[]; state: { save: string } } {
  const state = { save: initial };
  const restores: string[] = [];
  const run: CommandRunner = async (argv, input) => {
    if (argv[0] === 'iptables' && argv[1] === '--version') return { code: 0, stdout: 'iptables v1.8.9 (nf_tables)\n', stderr: '' };
    if (argv[0] === 'iptables-save') return { code: 0, stdout: state.save, stderr: '' };
    if (argv[0] === 'iptables-restore') {
      assert.deepEqual(argv.slice(1), ['-w', '--noflush']);
      restores.push(input ?? '');
      state.save = save(EXPECTED_NAT);
      return { code: 0, stdout: '', stderr: '' };
    }
    if (argv[0] === 'nft') return { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
    throw Object.assign(new Error('spawn ENOENT'), { code: 'ENOENT' });
  };
  return { run, restores, state };
}

test('MasqRules: start applies one batch, check() true when intact, false + rebuild when a rule is gone', async () => {
  const f = fakeIptables(save([], [], ''));
  const logs: string[] = [];
  const m = new MasqRules({
    network: opts.network, lease: opts.lease, nftables: false, forwardRules: true, resyncSeconds: 3600,
    log: captureLog(logs), run: f.run,
  });
  await m.start();
  assert.equal(f.restores.length, 1);
  assert.match(f.restores[0]!, /^\*nat\n:FLANNEL-POSTRTG - \[0:0\]\n/);
  assert.match(f.restores[0]!, /COMMIT\n\*filter\n:FLANNEL-FWD - \[0:0\]\n/);
  assert.equal(await m.check(), true);
  assert.equal(f.restores.length, 1);
  f.state.save = save(EXPECTED_NAT.slice(0, 6));
  assert.equal(await m.check(), false);
  assert.equal(f.restores.length, 2);
  assert.equal(m.rebuilds, 1);
  assert.ok(logs.some((l) => l.includes('1 missing')), logs.join('\n'));
  await m.stop();
});

test('MasqRules: a missing tool is a WeftError that says what to install', async () => {
  const run: CommandRunner = async () => { throw Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' }); };
  const m = new MasqRules({
    network: opts.network, lease: opts.lease, nftables: true, forwardRules: true, resyncSeconds: 5, log: captureLog(), run,
  });
  await assert.rejects(m.start(), (e: Error & { code?: string }) => e.code === 'EMASQ' && /apt-get install nftables/.test(e.message));
});
