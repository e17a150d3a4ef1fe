/**
 * docs/configuration.md matches what the code accepts: every flag in the
 * FLAGS table is documented with its default and env name, every `--flag`
 * the page mentions exists, and the net-conf keys the page lists are the
 * keys src/config/net-conf.ts reads. Also: the other docs exist and only
 * name flags that exist.
 */
import { chooseVxlanMode, vxlanModeLine } from '../../src/control/backend.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FLAGS, type FlagSpec, flagEnvName } from '../../src/config/flags.js';
import { INSTALL_CNI_DEFAULTS } from '../../src/cli/install-cni.js';
import { DROP_REASON_NAMES } from '../../src/wire/drop-reason.js';
import { FLANNELD_FLAGS } from '../helpers/flanneld-flags.js';
import { STATUS_COMMAND } from '../../src/cli/status.js';
import { TOP_COMMAND } from '../../src/cli/top.js';
import { DEMO_COMMAND } from '../../src/cli/demo.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const doc = (name: string): string => readFileSync(join(ROOT, 'docs', name), 'utf8');

function section(text: string, marker: string): string {
  const b = text.indexOf(`<!-- ${marker}:begin -->`);
  const e = text.indexOf(`<!-- ${marker}:end -->`);
  assert.ok(b >= 0 && e > b, `markers ${marker}:begin/end`);
  return text.slice(b, e);
}

/** Table rows of a markdown section as arrays of trimmed cells. */
function rows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));
}

function expectedDefault(f: FlagSpec): string {
  if (f.type === 'list') return '(none)';
  if (f.type === 'string') return f.default === '' ? '""' : `\`${String(f.default)}\``;
  return `\`${String(f.default)}\``;
}

const COMMANDS = [STATUS_COMMAND, TOP_COMMAND, DEMO_COMMAND];
// Flags of subcommands, not of the daemon (install-cni has its own parser).
const SUBCOMMAND_FLAGS = new Set([...COMMANDS.flatMap((c) => c.specs.map((s) => s.name)), 'src', 'dest', 'cni-bin-dir',
  'flag' /* the syntax placeholder */]);

test('docs: every flag of the FLAGS table is in configuration.md with type, default and env', () => {
  const table = new Map(rows(section(doc('configuration.md'), 'flags')).map((r) => [r[0], r]));
  for (const f of FLAGS as readonly FlagSpec[]) {
    const r = table.get(`\`--${f.name}\``);
    assert.ok(r, `--${f.name} is not documented`);
    assert.equal(r[1], f.type, `--${f.name} type`);
    assert.equal(r[2], expectedDefault(f), `--${f.name} default`);
    if (f.env === false) assert.equal(r[3], '—');
    else assert.ok(r[3]?.startsWith(`\`${flagEnvName(f.name)}\``), `--${f.name} env`);
    if (f.weft === true) assert.match(r[4] ?? '', /weft only/);
    if (f.ignored !== undefined) assert.ok((r[4] ?? '').includes(`ignored by weft: ${f.ignored}`), `--${f.name} says why it is ignored`);
  }
  assert.equal(table.size, FLAGS.length, 'one row per flag, no extra rows');
});

test('docs: every flag flanneld v0.28.9 defines has a row, none marked weft only', () => {
  const table = new Map(rows(section(doc('configuration.md'), 'flags')).map((r) => [r[0], r]));
  for (const ff of FLANNELD_FLAGS) {
    const r = table.get(`\`--${ff.name}\``);
    assert.ok(r, `flanneld's --${ff.name} is not documented`);
    assert.doesNotMatch(r[4] ?? '', /weft only/, `--${ff.name}`);
  }
});

test('docs: every --flag the docs mention is one the code accepts', () => {
  const known = new Set((FLAGS as readonly FlagSpec[]).map((f) => f.name));
  for (const name of ['configuration.md', 'migrating-from-flannel.md', 'troubleshooting.md']) {
    const text = doc(name);
    // Flags of other programs the docs quote (kube-controller-manager,
    // kubeadm, ip, iptables, npm) are written after the program's name on
    // the same line; weft's stand alone or follow `weft`.
    for (const line of text.split('\n')) {
      if (/kube-controller-manager|kubeadm|kubelet|iptables|nft |npm |ethtool|ip -|kubectl/.test(line)) continue;
      for (const m of line.matchAll(/(?<![\w-])--([a-z][a-z0-9_-]*[a-z0-9])(?==|\b)/g)) {
        const flag = m[1] as string;
        assert.ok(known.has(flag) || SUBCOMMAND_FLAGS.has(flag), `${name}: --${flag} is not a weft flag (line: ${line.trim()})`);
      }
    }
  }
});

test('docs: install-cni options and defaults match the code', () => {
  const text = doc('configuration.md');
  assert.ok(text.includes(`| \`--src\` | \`${INSTALL_CNI_DEFAULTS.src}\``));
  assert.ok(text.includes(`| \`--dest\` | \`${INSTALL_CNI_DEFAULTS.dest}\``));
  assert.ok(text.includes(`| \`--cni-bin-dir\` | \`${INSTALL_CNI_DEFAULTS.cniBinDir}\``));
});

/** Keys net-conf.ts reads: getBool/getInt/getString/lookup on the root or the Backend object. */
function netConfKeysInSource(): Set<string> {
  const src = readFileSync(join(ROOT, 'src', 'config', 'net-conf.ts'), 'utf8');
  const keys = new Set<string>();
  for (const m of src.matchAll(/\b(?:getBool|getInt|getString|lookup)\((root|be), '([A-Za-z0-9]+)'/g)) {
    keys.add(m[1] === 'be' ? `Backend.${m[2]}` : (m[2] as string));
  }
  return keys;
}

test('docs: the net-conf keys documented are the keys the parser reads', () => {
  const inSource = netConfKeysInSource();
  assert.ok(inSource.has('Network') && inSource.has('Backend.Type'), 'the source scan finds keys');
  const documented = new Set(rows(section(doc('configuration.md'), 'netconf')).map((r) => (r[0] as string).replace(/`/g, '')));
  for (const k of inSource) assert.ok(documented.has(k), `net-conf key ${k} is read by src/config/net-conf.ts but not documented`);
  for (const k of documented) assert.ok(inSource.has(k), `net-conf key ${k} is documented but src/config/net-conf.ts does not read it`);
});

test('docs: the generated flag table is current (scripts/gen-flag-docs.mjs --check)', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'gen-flag-docs.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('docs: migration and troubleshooting pages cover what the issue asks', () => {
  const mig = doc('migrating-from-flannel.md');
  for (const s of ['kube-flannel-cfg', 'subnet.env', 'udp', 'annotation', 'drop', 'ICMP', 'longest-prefix', '/healthz', '/metrics']) {
    assert.ok(mig.includes(s), `migrating-from-flannel.md mentions ${s}`);
  }
  const tr = doc('troubleshooting.md');
  for (const s of ['podCIDR', 'MTU', '28', '50', 'GSO', 'weft status', 'control socket', 'drops']) {
    assert.ok(tr.includes(s), `troubleshooting.md mentions ${s}`);
  }
});

test('docs: troubleshooting.md explains every drop counter weft status can show', () => {
  const tr = doc('troubleshooting.md');
  for (const name of DROP_REASON_NAMES.slice(1)) assert.ok(tr.includes(`| \`${name}\` |`), `drop reason ${name} is not explained`);
});

const src = (...p: string[]): string => readFileSync(join(ROOT, 'src', ...p), 'utf8');

test('docs: the start-up log lines quoted in troubleshooting.md are the ones the daemon writes', async () => {
  const tr = doc('troubleshooting.md');
  const daemon = src('control', 'daemon.ts');
  // The vxlan mode lines, made by the same function the daemon logs with.
  for (const [mode, can] of [['kernel', true], ['userspace', true], ['auto', true], ['auto', false]] as const) {
    const line = vxlanModeLine(await chooseVxlanMode(mode, async () => can));
    assert.ok(tr.includes(line), `troubleshooting.md quotes "${line}"`);
  }
  assert.ok(daemon.includes('this.log.info(vxlanModeLine('), 'the daemon logs the mode line');
  for (const s of [
    'offload probe (TUN): ', 'offload probe (UDP): ', 'data path: ',
    'forwarding by the kernel', 'batched-per-packet',
  ]) {
    assert.ok(tr.includes(s), `troubleshooting.md quotes "${s}"`);
    assert.ok(daemon.includes(s), `src/control/daemon.ts still writes "${s}"`);
  }
  assert.ok(daemon.includes('this.log.warn(`ignoring ${v.mismatch ? `non-${plan.kind} `'), 'the daemon warns about ignored peers');
  assert.ok(tr.replace(/\s+/g, ' ').includes('`ignoring non-<kind> subnet <subnet> at <ip>: its backend is "<type>", ours is "<kind>"`'));
  assert.ok(src('control', 'backend.ts').includes('its backend is ${'), 'backend.ts words the mismatch as quoted');
  assert.ok(src('control', 'kernel-vxlan.ts').includes('disappeared; recreating it'));
  assert.ok(src('control', 'host.ts').includes('accept_local'), 'weft still sets accept_local on the TUN');
  for (const s of ['weft top', 'accept_local', 'rp_filter', 'SO_REUSEPORT', '--offloads=false', 'kernel mode']) {
    assert.ok(tr.includes(s), `troubleshooting.md mentions ${s}`);
  }
});

test('docs: every subcommand flag is in configuration.md\'s synopsis; top\'s also in troubleshooting.md', () => {
  const conf = doc('configuration.md');
  for (const c of COMMANDS) {
    const synopsis = conf.split('\n').find((l) => l.trim().startsWith(`weft ${c.name} `)) ?? '';
    for (const spec of c.specs) assert.ok(synopsis.includes(`--${spec.name}`), `weft ${c.name} --${spec.name} in: ${synopsis}`);
  }
  for (const spec of TOP_COMMAND.specs.filter((x) => x.name !== 'control-socket')) {
    assert.ok(doc('troubleshooting.md').includes(`--${spec.name}`), `troubleshooting.md mentions weft top --${spec.name}`);
  }
});

test('docs: configuration.md describes the three lease stores and every offload switch', () => {
  const conf = doc('configuration.md');
  const daemon = src('control', 'daemon.ts');
  assert.ok(daemon.includes("explicit.has('etcd-endpoints')"), 'etcd is still chosen by an explicit --etcd-endpoints');
  for (const s of ['--kube-subnet-mgr', '`FLANNELD_ETCD_ENDPOINTS`', '--lease-dir', '<etcd-prefix>/config', 'spec.podCIDR']) {
    assert.ok(section(conf, 'netconf') !== '' && conf.includes(s), `configuration.md mentions ${s}`);
  }
  for (const f of (FLAGS as readonly FlagSpec[]).filter((x) => x.name.startsWith('offload'))) {
    assert.ok(conf.includes(`| \`--${f.name}\` | \`${flagEnvName(f.name)}\` |`), `offload switch --${f.name} in the offload table`);
  }
  const mig = doc('migrating-from-flannel.md');
  for (const s of ['vxlan', 'Backend.Mode', 'kernel', 'userspace', 'VtepMAC', 'machine-id', 'spoof']) {
    assert.ok(mig.includes(s), `migrating-from-flannel.md mentions ${s}`);
  }
});
