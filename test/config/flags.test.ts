import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FLAGS, type FlagSpec, type Flags, flagEnvName, flagKey, formatEffectiveFlags, formatHelp, ignoredFlagWarnings, parseFlags, parseGoBool,
  parseGoInt, suggestFlag,
} from '../../src/config/flags.js';
import { isWeftError } from '../../src/errors.js';
import { FLANNELD_FLAGS } from '../helpers/flanneld-flags.js';

const p = (argv: string[], env: Record<string, string | undefined> = {}): { flags: Flags; positionals: string[] } => parseFlags(argv, env);

function usageError(argv: string[], env: Record<string, string | undefined>, ...parts: string[]): void {
  assert.throws(
    () => parseFlags(argv, env),
    (e: unknown) => {
      assert.ok(isWeftError(e, 'EUSAGE'), `expected EUSAGE for ${argv.join(' ')}, got ${String(e)}`);
      for (const part of parts) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
      return true;
    },
  );
}

test('flags: defaults match flanneld', () => {
  const { flags, positionals } = p([]);
  assert.deepEqual(positionals, []);
  assert.equal(flags.explicit.size, 0);
  const want: Partial<Flags> = {
    etcdEndpoints: 'http://127.0.0.1:4001,http://127.0.0.1:2379',
    etcdPrefix: '/coreos.com/network',
    etcdKeyfile: '', etcdCertfile: '', etcdCafile: '', etcdUsername: '', etcdPassword: '',
    subnetFile: '/run/flannel/subnet.env',
    netConfigPath: '/etc/kube-flannel/net-conf.json',
    subnetLeaseRenewMargin: 60,
    healthzIp: '0.0.0.0',
    healthzPort: 0,
    iptablesResync: 5,
    iptablesForwardRules: true,
    kubeAnnotationPrefix: 'flannel.alpha.coreos.com',
    ipMasq: false,
    kubeSubnetMgr: false,
    publicIp: '',
    iface: [],
    ifaceRegex: [],
    ifaceCanReach: '',
    kubeApiUrl: '',
    kubeconfigFile: '',
    setNodeNetworkUnavailable: true,
    v: 0,
    version: false,
    help: false,
    leaseDir: '/var/lib/weft/leases',
    workers: 0,
    controlSocket: '/run/weft/weft.sock',
    tunName: 'flannel0',
    testHooks: false,
    keepWarm: 0,
  };
  for (const [k, v] of Object.entries(want)) assert.deepEqual((flags as unknown as Record<string, unknown>)[k], v, k);
  // Every table entry has a field, named by flagKey.
  for (const f of FLAGS) assert.ok(flagKey(f.name) in flags, f.name);
});

test('flags: Go syntaxes', () => {
  const rows: [string[], Partial<Flags>][] = [
    [['-ip-masq'], { ipMasq: true }],
    [['--ip-masq'], { ipMasq: true }],
    [['--kube-subnet-mgr', '--ip-masq'], { kubeSubnetMgr: true, ipMasq: true }],
    [['-subnet-file=/tmp/a'], { subnetFile: '/tmp/a' }],
    [['--subnet-file=/tmp/a'], { subnetFile: '/tmp/a' }],
    [['--subnet-file', '/tmp/b'], { subnetFile: '/tmp/b' }],
    [['-subnet-file', '/tmp/b'], { subnetFile: '/tmp/b' }],
    [['--subnet-file='], { subnetFile: '' }],
    [['--etcd-endpoints=http://a:2379,http://b:2379'], { etcdEndpoints: 'http://a:2379,http://b:2379' }],
    [['--kube-api-url=https://x/?a=b'], { kubeApiUrl: 'https://x/?a=b' }],
    // A non-boolean flag takes the next argument even if it looks like a flag (Go).
    [['--public-ip', '--ip-masq'], { publicIp: '--ip-masq', ipMasq: false }],
    [['--healthz-port=8080'], { healthzPort: 8080 }],
    [['--healthz-port', '0x1f90'], { healthzPort: 8080 }],
    [['--iptables-resync=010'], { iptablesResync: 8 }],
    [['--subnet-lease-renew-margin=1_000'], { subnetLeaseRenewMargin: 1000 }],
    [['-v=2'], { v: 2 }],
    [['--v=4'], { v: 4 }],
    [['-v', '3'], { v: 3 }],
    [['--version'], { version: true }],
    [['-h'], { help: true }],
    [['--help'], { help: true }],
    // Last one wins for scalars.
    [['--subnet-file=/a', '--subnet-file=/b'], { subnetFile: '/b' }],
    // Repeatable, in order.
    [['--iface=eth0', '--iface', '10.0.0.5', '-iface=eth1'], { iface: ['eth0', '10.0.0.5', 'eth1'] }],
    [['--iface-regex=^en', '--iface-regex', '10\\.0\\.0\\.[0-9]{1,3}'], { ifaceRegex: ['^en', '10\\.0\\.0\\.[0-9]{1,3}'] }],
    [['--lease-dir=/x', '--workers=2', '--control-socket', '/s', '--tun-name=tun7', '--test-hooks'], { leaseDir: '/x', workers: 2, controlSocket: '/s', tunName: 'tun7', testHooks: true }],
    [['--public-ipv6=fd00::1', '--use-multi-cluster-cidr', '--persistent-mac', '--vmodule=x=2', '--log_backtrace_at=a.go:1'], { publicIpv6: 'fd00::1', useMultiClusterCidr: true, persistentMac: true, vmodule: 'x=2', logBacktraceAt: 'a.go:1' }],
  ];
  for (const [argv, want] of rows) {
    const { flags } = p(argv);
    for (const [k, v] of Object.entries(want)) assert.deepEqual((flags as unknown as Record<string, unknown>)[k], v, `${argv.join(' ')}: ${k}`);
  }
});

test('flags: boolean forms', () => {
  for (const t of ['true', 'TRUE', 'True', 't', 'T', '1']) {
    assert.equal(p([`--ip-masq=${t}`]).flags.ipMasq, true, t);
    assert.equal(p([`--iptables-forward-rules=${t}`]).flags.iptablesForwardRules, true, t);
  }
  for (const t of ['false', 'FALSE', 'False', 'f', 'F', '0']) {
    assert.equal(p([`--iptables-forward-rules=${t}`]).flags.iptablesForwardRules, false, t);
    assert.equal(p([`-set-node-network-unavailable=${t}`]).flags.setNodeNetworkUnavailable, false, t);
  }
  // Go does not take a separate value for a boolean: "false" is a positional.
  const { flags, positionals } = p(['--ip-masq', 'false', '--kube-subnet-mgr']);
  assert.equal(flags.ipMasq, true);
  assert.equal(flags.kubeSubnetMgr, false);
  assert.deepEqual(positionals, ['false', '--kube-subnet-mgr']);
  usageError(['--ip-masq=yes'], {}, 'invalid value "yes"', '--ip-masq');
  usageError(['--ip-masq='], {}, 'invalid value ""');
  assert.equal(parseGoBool('tRuE'), undefined);
});

test('flags: "--" and non-flags end parsing', () => {
  assert.deepEqual(p(['--ip-masq', '--', '--kube-subnet-mgr', 'x']).positionals, ['--kube-subnet-mgr', 'x']);
  const r = p(['--ip-masq', 'run', '--iface=eth0']);
  assert.deepEqual(r.positionals, ['run', '--iface=eth0']);
  assert.deepEqual(r.flags.iface, []);
  assert.deepEqual(p(['-', '--ip-masq']).positionals, ['-', '--ip-masq']);
});

test('flags: errors', () => {
  usageError(['--ip-mask'], {}, 'unknown flag --ip-mask', 'did you mean --ip-masq?');
  usageError(['--kube-subnet'], {}, 'unknown flag --kube-subnet', 'did you mean --kube-subnet-mgr?');
  usageError(['-etcd-endpoint=x'], {}, 'unknown flag --etcd-endpoint', 'did you mean --etcd-endpoints?');
  usageError(['--zzzzzzzz'], {}, 'unknown flag --zzzzzzzz');
  assert.equal(suggestFlag('zzzzzzzz'), null);
  usageError(['--subnet-file'], {}, 'flag needs an argument: --subnet-file');
  usageError(['--ip-masq', '--iface'], {}, 'flag needs an argument: --iface');
  usageError(['---ip-masq'], {}, 'bad flag syntax: ---ip-masq');
  usageError(['-=x'], {}, 'bad flag syntax');
  usageError(['--healthz-port=eighty'], {}, 'invalid value "eighty"', '--healthz-port', 'integer');
  usageError(['--subnet-lease-renew-margin=0'], {}, '--subnet-lease-renew-margin=0', '1..1439');
  usageError(['--subnet-lease-renew-margin=1440'], {}, '1..1439');
  usageError(['--healthz-port=70000'], {}, '--healthz-port=70000');
  usageError(['--workers=-1'], {}, '--workers=-1');
  usageError(['--keep-warm=101'], {}, '--keep-warm=101', '1..100', 'or 0 to turn them off');
  assert.equal(p(['--keep-warm=0']).flags.keepWarm, 0);
  usageError(['--tun-name=a-very-long-tun-name'], {}, '--tun-name');
  assert.equal(p(['--subnet-lease-renew-margin=1']).flags.subnetLeaseRenewMargin, 1);
  assert.equal(p(['--subnet-lease-renew-margin=1439']).flags.subnetLeaseRenewMargin, 1439);
});

test('flags: env fallback and precedence', () => {
  assert.equal(flagEnvName('iface-regex'), 'FLANNELD_IFACE_REGEX');
  assert.equal(flagEnvName('log_backtrace_at'), 'FLANNELD_LOG_BACKTRACE_AT');
  const env = {
    FLANNELD_IP_MASQ: 'true',
    FLANNELD_SUBNET_FILE: '/env/subnet.env',
    FLANNELD_ETCD_PREFIX: '/env/prefix',
    FLANNELD_HEALTHZ_PORT: '9000',
    FLANNELD_IFACE: 'eth0, 10.0.0.5,,eth1',
    FLANNELD_IFACE_REGEX: 'en[0-9]{1,2},x',
    FLANNELD_KUBE_SUBNET_MGR: '',
    FLANNELD_LEASE_DIR: '/env/leases',
    FLANNELD_VERSION: 'true',
    FLANNELD_V: '5',
    FLANNELD_UNKNOWN_THING: 'x',
  };
  const { flags } = p(['--subnet-file=/cli/subnet.env'], env);
  assert.equal(flags.subnetFile, '/cli/subnet.env'); // command line wins
  assert.equal(flags.ipMasq, true);
  assert.equal(flags.etcdPrefix, '/env/prefix');
  assert.equal(flags.healthzPort, 9000);
  assert.deepEqual(flags.iface, ['eth0', '10.0.0.5', 'eth1']); // comma list
  assert.deepEqual(flags.ifaceRegex, ['en[0-9]{1,2},x']); // regexes keep their commas
  assert.equal(flags.kubeSubnetMgr, false); // empty env is ignored
  assert.equal(flags.leaseDir, '/env/leases');
  assert.equal(flags.version, false); // flanneld checks --version before env
  assert.equal(flags.v, 5);
  assert.deepEqual([...flags.explicit].sort(), ['etcd-prefix', 'healthz-port', 'iface', 'iface-regex', 'ip-masq', 'lease-dir', 'subnet-file', 'v']);
  // A list given on the command line is not extended by env.
  assert.deepEqual(p(['--iface=ens3'], env).flags.iface, ['ens3']);
  // Boolean false from the command line beats env true.
  assert.equal(p(['--ip-masq=false'], env).flags.ipMasq, false);
  usageError([], { FLANNELD_IP_MASQ: 'yes' }, 'FLANNELD_IP_MASQ', 'invalid value "yes"');
  usageError([], { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '0' }, '1..1439');
});

test('flags: Go integer syntax', () => {
  const rows: [string, number | undefined][] = [
    ['0', 0], ['42', 42], ['-7', -7], ['+7', 7], ['0x10', 16], ['0X1f', 31], ['0o17', 15], ['017', 15], ['0b101', 5],
    ['1_000', 1000], ['0x_ff', 255], ['08', undefined], ['1__0', undefined], ['_1', undefined], ['1.5', undefined], ['', undefined], [' 1', undefined],
  ];
  for (const [t, want] of rows) assert.equal(parseGoInt(t), want, t);
});

test('flags: --help text is generated from the table', () => {
  const h = formatHelp('flanneld');
  const flat = h.replace(/\s+/g, ' ');
  assert.ok(h.startsWith('Usage: flanneld [OPTION]...\n'));
  for (const f of FLAGS) assert.ok(h.includes(`  --${f.name}`), f.name);
  assert.ok(flat.includes('(default "/run/flannel/subnet.env")'));
  assert.ok(flat.includes('(default 60)'));
  assert.ok(h.includes('        env FLANNELD_IFACE (comma-separated list)\n'));
  assert.ok(!h.includes('env FLANNELD_VERSION'));
  const section = (name: string): string => h.split('\n  --').find((x) => x.startsWith(`${name} `) || x.startsWith(`${name}\n`)) ?? '';
  assert.ok(section('lease-dir').includes('(weft only)'));
  assert.ok(!section('ip-masq').includes('(weft only)'));
  assert.ok(section('persistent-mac').includes('ignored by weft'));
  for (const line of h.split('\n')) assert.ok(line.length <= 80 || !line.includes(' '), `long line: ${line}`);
});

test('flags: every flag flanneld v0.28.9 defines is accepted, with its type and default', () => {
  for (const ff of FLANNELD_FLAGS) {
    const spec = (FLAGS as readonly FlagSpec[]).find((f) => f.name === ff.name);
    assert.ok(spec, `flanneld's --${ff.name} is in weft's flag table`);
    assert.equal(spec.type, ff.type, `--${ff.name} type`);
    assert.deepEqual(spec.default, ff.default, `--${ff.name} default`);
    assert.equal(spec.weft, undefined, `--${ff.name} is flanneld's, not marked weft-only`);
    const { flags } = p([`--${ff.name}=${ff.sample}`]);
    assert.ok(flags.explicit.has(ff.name), `--${ff.name}=${ff.sample} parsed`);
  }
});

test('flags: ignored flanneld flags are accepted and each explicit one names why at start-up', () => {
  const { flags } = p(['--public-ipv6=fd00::5', '--vmodule=main=4', '--ip-masq']);
  const w = ignoredFlagWarnings(flags);
  assert.deepEqual(w, [
    '--public-ipv6=fd00::5 is accepted for flanneld compatibility and ignored: weft carries IPv4 only, so no IPv6 address is published',
    '--vmodule=main=4 is accepted for flanneld compatibility and ignored: weft does not log through klog',
  ]);
  assert.deepEqual(ignoredFlagWarnings(p([]).flags), []);
  // From env too: FLANNELD_PUBLIC_IPV6 is as explicit as the flag.
  assert.equal(ignoredFlagWarnings(p([], { FLANNELD_PUBLIC_IPV6: 'fd00::7' }).flags).length, 1);
});

test('flags: --v takes klog\'s whole level range; --vmodule and --log_backtrace_at take klog\'s syntax', () => {
  for (const v of ['0', '2', '10', '99', '-1', '2147483647', '-2147483648']) assert.equal(p([`-v=${v}`]).flags.v, Number(v), v);
  usageError(['-v=2147483648'], {}, '--v=2147483648', '32-bit');
  usageError(['-v=x'], {}, 'invalid value "x"');
  assert.equal(p(['--vmodule=daemon=2,kube*=4']).flags.vmodule, 'daemon=2,kube*=4');
  usageError(['--vmodule=daemon'], {}, 'expect comma-separated list of filename=N');
  usageError(['--vmodule=daemon=x'], {}, 'expect comma-separated list of filename=N');
  assert.equal(p(['--log_backtrace_at=main.go:12']).flags.logBacktraceAt, 'main.go:12');
  usageError(['--log_backtrace_at=main.go'], {}, 'expect file.go:234');
});

test('formatEffectiveFlags: every daemon flag with its value, lists joined, the etcd password redacted', () => {
  const { flags } = p(['--iface=eth1', '--iface=10.0.0.5', '--ip-masq', '--etcd-password=hunter2', '--public-ip=192.168.1.5', '-v=2']);
  const text = formatEffectiveFlags(flags);
  assert.ok(text.startsWith('--etcd-endpoints=http://127.0.0.1:4001,http://127.0.0.1:2379 --etcd-prefix=/coreos.com/network '), text);
  for (const part of ['--iface=eth1,10.0.0.5', '--ip-masq=true', '--etcd-password=<redacted>', '--public-ip=192.168.1.5', '--v=2',
    '--iface-regex= ', '--subnet-lease-renew-margin=60', '--log-format=text']) assert.ok(text.includes(part), `${part} in ${text}`);
  assert.ok(!text.includes('hunter2'));
  assert.ok(!text.includes('--version') && !text.includes('--help'));
  assert.equal(text.split(' --').length, (FLAGS as readonly FlagSpec[]).filter((f) => f.env !== false).length);
});
