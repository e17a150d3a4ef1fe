/**
 * Regression tests for the failure modes of the fault probe (each named
 * after its item): a second weft and a foreign reuseport socket refused
 * (3); failed kernel-vxlan starts leave no device (2); SIGTERM during a
 * blocked start-up, SIGTERM at any moment of start-up, SIGHUP, a second SIGTERM, a FIFO net-conf (8); a node whose address
 * changed keeps its subnet (5); messages that name their subject (7); a
 * TUN deleted, flushed or set down is restored, and one that cannot be
 * turns /readyz and /healthz 503 and ends the daemon (1). In namespaces,
 * bounded, cleaned up.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { watch } from 'node:fs';
import { mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, findTool, nHosts, ping, twoHosts, type Host, type Pod } from '../../src/testbed/index.js';
import { attachWeftPod, startWeftNode, weftStatus, WEFT_BIN, type WeftNode } from '../../src/testbed/weft-node.js';
import { rootSkip } from '../helpers/root.js';
import { hostState } from '../helpers/host-state.js';
import { httpGet, pingBoth, sleep, within } from '../helpers/traffic.js';

const UDP = '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}';
const KERNEL_VXLAN = '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Mode":"kernel"}}';

interface Run { code: number; stderr: string }

/** The daemon in `host`'s namespace with its own files under `dir/name`, run to its exit. */
async function runToExit(tb: Testbed, host: Host, dir: string, name: string, netConf: string, extra: string[] = [],
  envPrefix: string[] = []): Promise<Run> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'net-conf.json'), netConf);
  const r = await tb.exec(host.ns, [...envPrefix, process.execPath, WEFT_BIN, `--iface=${host.underlayIf}`,
    `--net-config-path=${join(d, 'net-conf.json')}`, `--subnet-file=${join(d, 'subnet.env')}`, `--lease-dir=${join(d, 'leases')}`,
    `--control-socket=${join(d, 'weft.sock')}`, ...extra], { timeoutMs: 30_000 });
  return { code: r.code, stderr: r.stderr };
}

/** A socat holding UDP `port` in `ns` (optionally with SO_REUSEPORT); resolves once it is bound. */
async function holdPort(tb: Testbed, ns: string, port: number, reuseport: boolean): Promise<ChildProcess> {
  const p = tb.spawn(ns, ['socat', '-u', `UDP4-RECV:${port}${reuseport ? ',reuseport=1' : ''}`, '/dev/null']);
  await within(5_000, async () => (await tb.exec(ns, ['ss', '-Hlun', `sport = :${port}`])).stdout.includes(`:${port}`),
    async () => `socat did not bind ${port}`);
  return p;
}

describe('item 3: one weft per node', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`kr3${process.pid % 10000}`);
  let dir = '';
  let hosts: [Host, Host];
  let first: WeftNode;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-kr3-'));
    ({ hosts } = await twoHosts(tb));
    first = await startWeftNode(tb, hosts[0], { dir, netConf: UDP });
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a second weft with the same control socket is refused naming the running one\'s pid; the first is untouched', async () => {
    const r = await tb.exec(hosts[0].ns, [process.execPath, WEFT_BIN, `--iface=${hosts[0].underlayIf}`,
      `--net-config-path=${join(dir, 'h1.net-conf.json')}`, `--subnet-file=${join(dir, 'second.subnet.env')}`,
      `--lease-dir=${join(dir, 'leases')}`, `--control-socket=${first.controlSocket}`], { timeoutMs: 30_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^F.*\] another weft runs on this node \(pid \d+, lock \S+weft|^F.*\] another weft runs on this node \(pid \d+/m);
    assert.equal((await weftStatus(tb, first) as { workers: { alive: boolean }[] }).workers.every((w) => w.alive), true);
  });

  test('a second weft with its own files is refused: the port is held by the first; no queue added to flannel0', async () => {
    const queuesBefore = (await tb.run(null, ['ip', '-n', hosts[0].ns, '-d', 'link', 'show', 'flannel0'])).stdout;
    const r = await runToExit(tb, hosts[0], dir, 'second', UDP);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /UDP port 8285 on 192\.168\.100\.1 is already bound by 192\.168\.100\.1:8285 \(pid \d+ \(node\)\)/);
    assert.equal((await tb.run(null, ['ip', '-n', hosts[0].ns, '-d', 'link', 'show', 'flannel0'])).stdout, queuesBefore);
    assert.equal(first.proc.exitCode, null, 'the first still runs');
  });

  test('a foreign socket in the port\'s reuseport group is refused with its owner; nothing is left on the host', async () => {
    const h = hosts[1];
    const socat = await holdPort(tb, h.ns, 8285, true);
    try {
      const was = await hostState(tb, h.ns);
      const r = await runToExit(tb, h, dir, 'foreign', UDP, ['--ip-masq']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`UDP port 8285 on 192\\.168\\.100\\.2 is already bound by 0\\.0\\.0\\.0:8285 \\(pid ${socat.pid} \\(socat\\)\\)`));
      assert.deepEqual(await hostState(tb, h.ns), was, 'no device, route or rule left');
    } finally {
      socat.kill('SIGKILL');
    }
  });
});

describe('item 2: a failed start in kernel vxlan mode leaves no device', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`kr2${process.pid % 10000}`);
  let dir = '';
  let hosts: [Host, Host];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-kr2-'));
    ({ hosts } = await twoHosts(tb));
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const noDevice = async (what: string): Promise<void> => {
    const r = await tb.exec(hosts[0].ns, ['ip', 'link', 'show', 'flannel.1']);
    assert.notEqual(r.code, 0, `${what}: flannel.1 is left: ${r.stdout}`);
  };

  test('subnet.env cannot be written: flannel.1 and the rules removed', async () => {
    const was = await hostState(tb, hosts[0].ns);
    await writeFile(join(dir, 'a-file'), 'x');
    const r = await runToExit(tb, hosts[0], dir, 'subnetenv', KERNEL_VXLAN, ['--ip-masq', `--subnet-file=${join(dir, 'a-file', 'subnet.env')}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /stopped during start-up|^F/m);
    await noDevice('subnet.env');
    assert.deepEqual(await hostState(tb, hosts[0].ns), was);
  });

  test('--ip-masq without iptables: flannel.1 removed', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    for (const t of ['ip', 'bridge']) await symlink(findTool(t)!, join(bin, t)).catch(() => undefined);
    const r = await runToExit(tb, hosts[0], dir, 'noiptables', KERNEL_VXLAN, ['--ip-masq'], ['env', `PATH=${bin}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /iptables/);
    await noDevice('no iptables');
  });

  test('UDP 8472 already bound: the message names the port and its owner; no device', async () => {
    const socat = await holdPort(tb, hosts[0].ns, 8472, false);
    try {
      const r = await runToExit(tb, hosts[0], dir, 'port', KERNEL_VXLAN);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`VXLAN device flannel\\.1 cannot bind UDP port 8472: it is already bound by 0\\.0\\.0\\.0:8472 \\(pid ${socat.pid} \\(socat\\)\\)`));
      assert.match(r.stderr, /another Backend\.Port/);
      await noDevice('port in use');
    } finally {
      socat.kill('SIGKILL');
    }
  });
});

describe('item 8: signals', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`kr8${process.pid % 10000}`);
  let dir = '';
  let hosts: [Host, Host];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-kr8-'));
    ({ hosts } = await twoHosts(tb));
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('SIGTERM while start-up waits for etcd: gone within 2 s, exit 0, what it removed and kept said', async () => {
    const log = join(dir, 'etcd-wait.log');
    await writeFile(join(dir, 'nc.json'), UDP);
    // Nothing listens on 2379 in this namespace: the store retries for 10 s.
    const p = tb.spawn(hosts[0].ns, [process.execPath, WEFT_BIN, `--iface=${hosts[0].underlayIf}`, '--etcd-endpoints=http://127.0.0.1:2379',
      `--subnet-file=${join(dir, 'etcd.subnet.env')}`, `--control-socket=${join(dir, 'etcd.sock')}`], { logFile: log });
    await within(10_000, async () => (await readFile(log, 'utf8').catch(() => '')).includes('starting'), async () => readFile(log, 'utf8'));
    await sleep(1000);
    const t0 = Date.now();
    p.kill('SIGTERM');
    const code = await exited(p, 60_000, log);
    const ms = Date.now() - t0;
    const text = await readFile(log, 'utf8');
    assert.ok(ms < 2000, `exited ${ms} ms after SIGTERM:\n${text}`);
    assert.equal(code, 0, text);
    assert.match(text, /SIGTERM: shutting down/);
    assert.match(text, /stopped during start-up: removed .*; kept /);
    assert.match(text, /exiting cleanly/);
    assert.doesNotMatch(text, /already closed/);
  });

  test('SIGHUP stops a running daemon with its cleanup: flannel0 and the rules gone, a last line says what was kept', async () => {
    const h = hosts[1];
    const was = await hostState(tb, h.ns);
    const n = await startWeftNode(tb, h, { dir, netConf: UDP, extraArgs: ['--ip-masq'] });
    n.proc.kill('SIGHUP');
    assert.equal(await exited(n.proc, 20_000, n.logFile), 0);
    const text = await readFile(n.logFile, 'utf8');
    assert.match(text, /SIGHUP: shutting down/);
    assert.match(text, /stopped: removed the masquerade and forward rules, flannel0 \(with its address and route\); kept the lease 10\.244\.\d+\.0\/24, \S+subnet\.env/);
    assert.deepEqual(await hostState(tb, h.ns), was);
  });

  test('a SIGTERM at any moment of start-up, up to and past ready, ends the daemon with its cleanup', async () => {
    const h = hosts[1];
    const was = await hostState(tb, h.ns);
    const envDir = join(dir, 'any');
    await mkdir(envDir, { recursive: true });
    await writeFile(join(dir, 'any.net-conf.json'), UDP);
    const subnetFile = join(envDir, 'subnet.env');
    // A number: ms after the start line; 'ready': at the ready line; 'subnet.env': the moment that file appears (a step before ready).
    const run = async (i: number, when: number | 'ready' | 'subnet.env'): Promise<number> => {
      const log = join(dir, `any-${i}.log`);
      const watcher = when === 'subnet.env' ? watch(envDir) : null;
      const appeared = watcher ? once(watcher, 'change', { signal: AbortSignal.timeout(20_000) }) : null;
      appeared?.catch(() => undefined);
      const p = tb.spawn(h.ns, [process.execPath, WEFT_BIN, `--iface=${h.underlayIf}`, `--net-config-path=${join(dir, 'any.net-conf.json')}`,
        `--subnet-file=${subnetFile}`, `--lease-dir=${join(dir, 'any-leases')}`, `--control-socket=${join(dir, 'any.sock')}`, '--ip-masq'],
      { logFile: log });
      const text = async (): Promise<string> => readFile(log, 'utf8').catch(() => '');
      let at = 0;
      try {
        await within(10_000, async () => (await text()).includes(' starting '), text);
        const t0 = Date.now();
        if (when === 'ready') await within(15_000, async () => /\] ready: /.test(await text()), text);
        else if (when === 'subnet.env') await appeared;
        else await sleep(when);
        at = Date.now() - t0;
        p.kill('SIGTERM');
      } finally {
        watcher?.close();
      }
      const code = await exited(p, 15_000, log);
      const out = await text();
      const said = `SIGTERM ${at} ms after the start line (${when}):\n${out}`;
      assert.equal(code, 0, said);
      assert.match(out, /exiting cleanly/, said);
      // Stopped while starting: start-up undoes all but the lease; once running, subnet.env stays, as flanneld's.
      const duringStartUp = /stopped during start-up: /.test(out);
      assert.ok(duringStartUp || /\] stopped: /.test(out), said);
      assert.equal(await readFile(subnetFile, 'utf8').then(() => true, () => false), !duringStartUp, said);
      assert.deepEqual(await hostState(tb, h.ns), was, said);
      await rm(subnetFile, { force: true });
      return at;
    };
    const full = await run(0, 'ready');
    for (let i = 1; i <= 8; i++) await run(i, Math.round((full * i) / 7));
    for (let i = 9; i <= 11; i++) await run(i, 'subnet.env');
  });

  test('a second SIGTERM while the cleanup hangs exits at once, with 143 and a line saying so', async () => {
    // iptables-save that hangs once the marker exists: the teardown's rule removal never finishes.
    const bin = join(dir, 'stall-bin');
    const mark = join(dir, 'stall');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'iptables-save'), `#!/bin/sh\n[ -e ${mark} ] && sleep 20\nexec ${findTool('iptables-save')!} "$@"\n`, { mode: 0o755 });
    const n = await startWeftNode(tb, hosts[0], { dir, netConf: UDP, extraArgs: ['--ip-masq'], env: { PATH: `${bin}:${process.env.PATH ?? ''}` } });
    await writeFile(mark, '');
    n.proc.kill('SIGTERM');
    await within(5_000, async () => (await readFile(n.logFile, 'utf8')).includes('SIGTERM: shutting down'), async () => readFile(n.logFile, 'utf8'));
    await sleep(300);
    assert.equal(n.proc.exitCode, null, 'the cleanup is stalled in iptables-save');
    const t0 = Date.now();
    n.proc.kill('SIGTERM');
    const code = await exited(n.proc, 60_000, n.logFile);
    const ms = Date.now() - t0;
    const text = await readFile(n.logFile, 'utf8');
    assert.equal(code, 143, text);
    assert.ok(ms < 1000, `exited ${ms} ms after the second SIGTERM`);
    assert.match(text, /^W.*\] SIGTERM again: exiting at once, without cleaning up$/m);
  });

  test('a net-conf that is a FIFO: refused at once instead of hanging start-up', async () => {
    const fifo = join(dir, 'fifo.json');
    await tb.run(null, ['mkfifo', fifo]);
    const t0 = Date.now();
    const r = await tb.exec(hosts[0].ns, [process.execPath, WEFT_BIN, `--net-config-path=${fifo}`, `--lease-dir=${join(dir, 'fl')}`,
      `--control-socket=${join(dir, 'fifo.sock')}`], { timeoutMs: 15_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /network config \S+fifo\.json is a FIFO, not a file/);
    assert.ok(Date.now() - t0 < 10_000);
  });
});

describe('item 5: a node whose IP changed keeps its subnet', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`kr5${process.pid % 10000}`);
  let dir = '';
  let hosts: [Host, Host];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-kr5-'));
    ({ hosts } = await twoHosts(tb));
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('restarted with a new address: the same subnet, its lease rewritten, the peer follows, pods reach each other', async () => {
    const [h1, h2] = hosts;
    const a = await startWeftNode(tb, h1, { dir, netConf: UDP });
    const b = await startWeftNode(tb, h2, { dir, netConf: UDP });
    const subnet = a.subnet;
    a.proc.kill('SIGTERM');
    await new Promise((r) => a.proc.once('exit', r));
    // The node's address changes while weft is down (its subnet.env stays, as on a real node).
    await tb.run(null, ['ip', '-n', h1.ns, 'addr', 'del', '192.168.100.1/24', 'dev', h1.underlayIf]);
    await tb.run(null, ['ip', '-n', h1.ns, 'addr', 'add', '192.168.100.11/24', 'dev', h1.underlayIf]);
    const a2 = await startWeftNode(tb, h1, { dir, netConf: UDP });
    assert.equal(a2.subnet, subnet, `the subnet is kept\n${await readFile(a2.logFile, 'utf8')}`);
    const key = subnet.replace('.1/', '.0-');
    assert.equal(await readFile(join(dir, 'leases', key), 'utf8'), '{"PublicIP":"192.168.100.11","PublicIPv6":null}');
    assert.match(await readFile(a2.logFile, 'utf8'), /this node's address changed to 192\.168\.100\.11; the lease is kept/);
    type S = { peers: { subnet: string; publicIp: string }[] };
    await within(5_000, async () => (await weftStatus(tb, b) as S).peers.some((p) => p.publicIp === '192.168.100.11'),
      async () => JSON.stringify((await weftStatus(tb, b) as S).peers));
    assert.deepEqual((await weftStatus(tb, a2) as S).peers.map((p) => p.publicIp), ['192.168.100.2'], 'its old lease is not its peer');
    await pingBoth(tb, await attachWeftPod(tb, a2), await attachWeftPod(tb, b), 'after the address change');
  });
});

describe('item 7: messages that name their subject and the fix', { skip: rootSkip(), timeout: 120_000 }, () => {
  const tb = new Testbed(`kr7${process.pid % 10000}`);
  let dir = '';
  let host: Host;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-kr7-'));
    host = (await nHosts(tb, 1)).hosts[0]!;
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The run's F line: what stopped start-up. */
  const fatal = (r: Run): string => {
    assert.equal(r.code, 1, r.stderr);
    const line = r.stderr.split('\n').find((l) => l.startsWith('F'));
    assert.ok(line, `no F line in:\n${r.stderr}`);
    return line;
  };

  test('an immutable lease directory: names it and chattr -i, not a .tmp file', async () => {
    const leases = join(dir, 'immutable', 'leases');
    await mkdir(leases, { recursive: true });
    await tb.run(null, ['chattr', '+i', leases]);
    cleanups.push(() => tb.run(null, ['chattr', '-i', leases]));
    const f = fatal(await runToExit(tb, host, dir, 'immutable', UDP));
    assert.match(f, new RegExp(`cannot write the lease directory ${leases} \\(--lease-dir\\): operation not permitted: .*chattr -i`));
  });

  test('a lease directory that is a file, a subnet file whose parent is a file: "is a file, not a directory"', async () => {
    await mkdir(join(dir, 'leasefile'), { recursive: true });
    await writeFile(join(dir, 'leasefile', 'leases'), 'x');
    const f1 = fatal(await runToExit(tb, host, dir, 'leasefile', UDP));
    assert.match(f1, new RegExp(`cannot create the lease directory ${join(dir, 'leasefile', 'leases')} \\(--lease-dir\\): `
      + `${join(dir, 'leasefile', 'leases')} is a file, not a directory: remove it or choose another path`));
    await writeFile(join(dir, 'a-file'), 'x');
    const env = join(dir, 'a-file', 'run', 'subnet.env');
    const f2 = fatal(await runToExit(tb, host, dir, 'envparent', UDP, [`--subnet-file=${env}`]));
    assert.match(f2, new RegExp(`cannot create the subnet file ${env} \\(--subnet-file\\): ${join(dir, 'a-file')} is a file, not a directory`));
  });

  test('a full disk under the lease directory: names it and df; no temp file left behind', async () => {
    const mnt = join(dir, 'full-mnt');
    await mkdir(mnt, { recursive: true });
    await tb.run(null, ['mount', '-t', 'tmpfs', '-o', 'size=64k', 'weft-kr7-full', mnt]);
    cleanups.push(() => tb.run(null, ['umount', mnt]));
    // Fill every block; empty files and directories still fit (inodes).
    await tb.exec(null, ['dd', 'if=/dev/zero', `of=${join(mnt, 'fill')}`, 'bs=4k', 'count=64']);
    const leases = join(mnt, 'leases');
    const f = fatal(await runToExit(tb, host, dir, 'full', UDP, [`--lease-dir=${leases}`]));
    assert.match(f, new RegExp(`cannot write the lease directory ${leases} \\(--lease-dir\\): no space left on the device: .*\\(df\\)`));
    const left = (await readdir(leases).catch(() => [])).filter((n) => n.startsWith('.tmp'));
    assert.deepEqual(left, [], 'temp files left in the lease directory');
  });

  test('bad JSON and a bad Network name the file; a UTF-8 BOM is at line 1 column 1', async () => {
    const cases: [string, string, RegExp][] = [
      ['json', '{"Network":"10.244.0.0/16",\n "Backend":{"Type":"udp",}}', /the network config is not valid JSON: .*at line 2 column 26/],
      ['network', '{"Network":"10.244.0.0/33"}', /Network "10\.244\.0\.0\/33" is not an IPv4 CIDR/],
      ['bom', '\ufeff{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}', /byte-order mark \(EF BB BF\) at line 1 column 1/],
    ];
    for (const [name, conf, want] of cases) {
      const f = fatal(await runToExit(tb, host, dir, name, conf));
      assert.match(f, new RegExp(`\\] ${join(dir, name, 'net-conf.json')}: `), `${name}: the file is named`);
      assert.match(f, want, name);
    }
  });

  test('Backend.MTU 500 is blamed, not the underlay', async () => {
    const f = fatal(await runToExit(tb, host, dir, 'mtu', '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","MTU":500}}'));
    assert.match(f, /Backend\.MTU 500 in \S+net-conf\.json is below 576.*set it to 576 or more, or remove it/);
    assert.doesNotMatch(f, /underlay \S+ has MTU/);
  });
});

describe('item 1: the TUN data plane repairs itself, or the daemon says so and exits', { skip: rootSkip(), timeout: 180_000 }, () => {
  const tb = new Testbed(`kr1${process.pid % 10000}`);
  let dir = '';
  let hosts: [Host, Host];
  const nodes: WeftNode[] = [];
  const pods: Pod[] = [];
  const HEALTH = 'http://127.0.0.1:8081';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-kr1-'));
    ({ hosts } = await twoHosts(tb));
    for (const h of hosts) nodes.push(await startWeftNode(tb, h, { dir, netConf: UDP, extraArgs: ['--workers=2', '--healthz-port=8081'] }));
    for (const n of nodes) pods.push(await attachWeftPod(tb, n));
  });
  after(async () => {
    await tb.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** flannel0 in h1 as start-up made it: up, its /32 address, the Network route. */
  const configured = async (): Promise<string | null> => {
    const ns = hosts[0].ns;
    const link = await tb.exec(ns, ['ip', '-j', 'link', 'show', 'dev', 'flannel0']);
    if (link.code !== 0) return 'no flannel0';
    if (!(JSON.parse(link.stdout) as { flags: string[] }[])[0]!.flags.includes('UP')) return 'down';
    const addr = (await tb.exec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'flannel0'])).stdout;
    if (!addr.includes(`${nodes[0]!.subnet.replace(/\.1\/\d+$/, '.0')}/32`)) return `address: ${addr.trim() || 'none'}`;
    const route = (await tb.exec(ns, ['ip', '-4', 'route', 'show', 'dev', 'flannel0'])).stdout;
    if (!route.includes('10.244.0.0/16')) return `route: ${route.trim() || 'none'}`;
    return null;
  };

  for (const [fault, argv, logged] of [
    ['ip link del flannel0', ['ip', 'link', 'del', 'flannel0'], /flannel0 was deleted or replaced/],
    ['ip route flush dev flannel0', ['ip', 'route', 'flush', 'dev', 'flannel0'], /flannel0: route 10\.244\.0\.0\/16 dev flannel0 missing/],
    ['ip addr flush dev flannel0', ['ip', 'addr', 'flush', 'dev', 'flannel0'], /flannel0: (.*, )?address 10\.244\.\d+\.0\/32 missing/],
    ['ip link set flannel0 down', ['ip', 'link', 'set', 'flannel0', 'down'], /flannel0: link down/],
  ] as const) {
    test(`${fault}: restored within 10 s, logged, pods reach each other again`, async (t) => {
      await pingBoth(tb, pods[0]!, pods[1]!, 'before');
      const logBefore = (await readFile(nodes[0]!.logFile, 'utf8')).length;
      const t0 = Date.now();
      await tb.run(hosts[0].ns, [...argv]);
      let why: string | null = 'not looked at';
      await within(10_000, async () => (why = await configured()) === null
        && (await ping(tb, pods[0]!.ns, pods[1]!.ip, { count: 1, intervalS: 0.2 })).received === 1,
      async () => `${fault}: flannel0 in h1 ${why ?? 'configured, but pod 0 → pod 1 gets no reply'} after 10 s; `
        + `log:\n${(await readFile(nodes[0]!.logFile, 'utf8')).split('\n').slice(-15).join('\n')}`);
      const ms = Date.now() - t0;
      t.diagnostic(`${fault}: forwarding again after ${ms} ms`);
      await pingBoth(tb, pods[0]!, pods[1]!, `after ${fault}`);
      const lines = (await readFile(nodes[0]!.logFile, 'utf8')).slice(logBefore).split('\n');
      const line = lines.find((l) => /^W.*\] .*; restored in \d+ ms$/.test(l));
      assert.ok(line !== undefined && logged.test(line), `the repair is logged as ${logged}:\n${lines.join('\n')}`);
      t.diagnostic(line);
      const s = await weftStatus(tb, nodes[0]!) as { workers: { alive: boolean }[] };
      assert.equal(s.workers.filter((w) => w.alive).length, 2, 'both workers run');
      assert.equal((await httpGet(tb, hosts[0].ns, `${HEALTH}/readyz`)).status, 200);
    });
  }

  test('flannel0 replaced by a device weft cannot take: /readyz 503 at once, /healthz 503 after 10 s, exit 1 with the reason', async (t) => {
    const ns = hosts[0].ns;
    const t0 = Date.now();
    // Renamed away rather than deleted: a deletion would wake weft at once, and
    // its new flannel0 could win the race against the bridge.
    await tb.run(ns, ['ip', '-batch', '-'], { input: 'link set flannel0 down\nlink set flannel0 name weft-old0\nlink add flannel0 type bridge\n' });
    try {
      const notReadyMs = await within(5_000, async () => (await httpGet(tb, ns, `${HEALTH}/readyz`)).status === 503,
        async () => '/readyz still 200 after 5 s');
      const ready = await httpGet(tb, ns, `${HEALTH}/readyz`);
      assert.match(ready.body, /^not ready: flannel0: gone; being restored/);
      assert.equal((await httpGet(tb, ns, `${HEALTH}/healthz`)).status, 200, 'healthz holds for the bound');
      let live = { status: 0, body: '' };
      await within(20_000, async () => (live = await httpGet(tb, ns, `${HEALTH}/healthz`)).status === 503,
        async () => `/healthz ${live.status} ${live.body} after 20 s`);
      const unhealthyMs = Date.now() - t0;
      assert.ok(unhealthyMs >= 10_000, `/healthz 503 only after the 10 s bound, not after ${unhealthyMs} ms`);
      assert.match(live.body, /^unhealthy: no worker has forwarded for \d+ s/);
      const code = await exited(nodes[0]!.proc, 45_000, nodes[0]!.logFile);
      assert.equal(code, 1, 'exit code');
      const log = await readFile(nodes[0]!.logFile, 'utf8');
      t.diagnostic(`/readyz 503 after ${notReadyMs} ms, /healthz 503 after ${unhealthyMs} ms, exit ${code} after ${Date.now() - t0} ms: `
        + `${log.split('\n').find((l) => l.includes('stopping, so that')) ?? ''}`);
      assert.match(log, /^E.*\] flannel0 was deleted or replaced; restoring it failed: .*, for \d+ s: stopping, so that the node's supervisor restarts weft$/m);
    } finally {
      await tb.exec(ns, ['ip', 'link', 'del', 'flannel0']);
    }
  });
});

/** The exit code; a process still running after `ms` fails with the end of its log, which says where it stopped. */
function exited(p: ChildProcess, ms = 60_000, logFile?: string): Promise<number | null> {
  if (p.exitCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      void (logFile ? readFile(logFile, 'utf8').catch(() => '(no log)') : Promise.resolve('(no log)')).then((log) =>
        reject(new Error(`pid ${p.pid}: still running after ${ms} ms; the end of its log:\n${log.slice(-2000)}`)));
    }, ms);
    p.once('exit', (code) => { clearTimeout(t); resolve(code); });
  });
}
