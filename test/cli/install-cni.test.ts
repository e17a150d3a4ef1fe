import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  INSTALL_CNI_DEFAULTS,
  checkConflist,
  installCni,
  parseInstallCniArgs,
  runInstallCni,
} from '../../src/cli/install-cni.js';
import { withTmpDir } from '../helpers/tmp.js';

// flannel's cni-conf.json as kube-flannel.yml ships it.
const CONFLIST = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    { "type": "flannel", "delegate": { "hairpinMode": true, "isDefaultGateway": true } },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
`;

const withTmp = (fn: (dir: string) => Promise<void>): Promise<void> => withTmpDir('weft-install-cni-', fn);

function capture(): { io: { out: (s: string) => void; err: (s: string) => void }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { out: (s) => { out += s; }, err: (s) => { err += s; } }, out: () => out, err: () => err };
}

async function setup(dir: string, bins: string[]): Promise<{ src: string; dest: string; bin: string }> {
  const src = join(dir, 'kube-flannel', 'cni-conf.json');
  await mkdir(join(dir, 'kube-flannel'));
  await writeFile(src, CONFLIST);
  const bin = join(dir, 'bin');
  await mkdir(bin);
  for (const b of bins) {
    await writeFile(join(bin, b), '#!/bin/sh\n');
    await chmod(join(bin, b), 0o755);
  }
  return { src, dest: join(dir, 'net.d', '10-flannel.conflist'), bin };
}

test('install-cni: args default to flannel paths; both Go spellings accepted', () => {
  assert.deepEqual(parseInstallCniArgs([]), { ...INSTALL_CNI_DEFAULTS });
  assert.deepEqual(INSTALL_CNI_DEFAULTS, {
    src: '/etc/kube-flannel/cni-conf.json',
    dest: '/etc/cni/net.d/10-flannel.conflist',
    cniBinDir: '/opt/cni/bin',
  });
  assert.deepEqual(parseInstallCniArgs(['--src=/a', '--dest', '/b', '-cni-bin-dir=/c']), { src: '/a', dest: '/b', cniBinDir: '/c' });
  assert.equal(parseInstallCniArgs(['--help']), 'help');
  assert.throws(() => parseInstallCniArgs(['--source=/a']), { code: 'EUSAGE', message: /unknown flag --source/ });
  assert.throws(() => parseInstallCniArgs(['--dest']), { code: 'EUSAGE', message: /needs a value/ });
  assert.throws(() => parseInstallCniArgs(['extra']), { code: 'EUSAGE' });
});

test('install-cni: conflist check names the problem', () => {
  assert.deepEqual(checkConflist(CONFLIST, 'x'), ['flannel', 'portmap']);
  assert.throws(() => checkConflist('{"name": ', 'cfg.json'), { code: 'ECONFIG', message: /cfg\.json is not valid JSON/ });
  assert.throws(() => checkConflist('[1]', 'x'), { code: 'ECONFIG', message: /conflist object/ });
  assert.throws(() => checkConflist('{"name":"cbr0","type":"flannel"}', 'x'), { code: 'ECONFIG', message: /no "plugins" array/ });
  assert.throws(() => checkConflist('{"plugins":[]}', 'x'), { code: 'ECONFIG', message: /no "plugins" array/ });
  assert.throws(() => checkConflist('{"plugins":[{"type":"../sh"}]}', 'x'), { code: 'ECONFIG', message: /plugins\[0\]/ });
});

test('install-cni: copies byte for byte with mode 0644 and no temp file left', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir, ['flannel', 'portmap', 'bridge', 'host-local']);
    const c = capture();
    const old = process.umask(0o077); // a tight umask must not make the conflist unreadable
    let code: number;
    try {
      code = await runInstallCni([`--src=${p.src}`, `--dest=${p.dest}`, `--cni-bin-dir=${p.bin}`], c.io);
    } finally {
      process.umask(old);
    }
    assert.equal(code, 0, c.err());
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
    assert.equal((await stat(p.dest)).mode & 0o777, 0o644);
    assert.deepEqual(await readdir(join(dir, 'net.d')), ['10-flannel.conflist']);
    assert.match(c.out(), /installed .*10-flannel\.conflist/);
    assert.match(c.out(), /present in .*: flannel, portmap, bridge, host-local/);
    assert.equal(c.err(), '');

    // Second run: same bytes, nothing rewritten (the runtime sees no change).
    const before = (await stat(p.dest)).mtimeMs;
    const c2 = capture();
    assert.equal(await runInstallCni([`--src=${p.src}`, `--dest=${p.dest}`, `--cni-bin-dir=${p.bin}`], c2.io), 0);
    assert.match(c2.out(), /unchanged/);
    assert.equal((await stat(p.dest)).mtimeMs, before);
  });
});

test('install-cni: replaces an older conflist', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir, ['flannel', 'portmap', 'bridge', 'host-local']);
    await mkdir(join(dir, 'net.d'));
    await writeFile(p.dest, '{"old": true}');
    const r = await installCni({ src: p.src, dest: p.dest, cniBinDir: p.bin });
    assert.equal(r.written, true);
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
  });
});

test('install-cni: a missing flannel plugin is a warning with the fix, not a failure', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir, ['portmap', 'bridge', 'host-local']);
    const c = capture();
    assert.equal(await runInstallCni([`--src=${p.src}`, `--dest=${p.dest}`, `--cni-bin-dir=${p.bin}`], c.io), 0);
    assert.match(c.err(), /warning: .*\/bin\/flannel is missing/);
    assert.match(c.err(), /flannel-cni-plugin/);
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
    const r = await installCni({ src: p.src, dest: p.dest, cniBinDir: join(dir, 'nowhere') });
    assert.deepEqual(r.missing, ['flannel', 'portmap', 'bridge', 'host-local']);
  });
});

test('install-cni: unreadable or invalid source exits 1 and writes nothing', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir, []);
    const c = capture();
    assert.equal(await runInstallCni([`--src=${join(dir, 'absent.json')}`, `--dest=${p.dest}`], c.io), 1);
    assert.match(c.err(), /cannot read .*absent\.json \(ENOENT/);
    await writeFile(p.src, '{"name":"cbr0","type":"flannel"}');
    const c2 = capture();
    assert.equal(await runInstallCni([`--src=${p.src}`, `--dest=${p.dest}`], c2.io), 1);
    assert.match(c2.err(), /no "plugins" array/);
    await assert.rejects(stat(p.dest), { code: 'ENOENT' });
  });
});

test('install-cni: unwritable destination exits 1 with the path and the fix', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir, []);
    // A file where the directory should be: root ignores chmod, not this.
    await writeFile(join(dir, 'net.d'), 'not a directory');
    const c = capture();
    assert.equal(await runInstallCni([`--src=${p.src}`, `--dest=${p.dest}`], c.io), 1);
    assert.match(c.err(), /cannot write .*net\.d\/10-flannel\.conflist \((EEXIST|ENOTDIR)/);
    assert.match(c.err(), /read-write/);

    // The destination itself a directory: rename fails, the temp file goes.
    const destDir = join(dir, 'd', '10-flannel.conflist');
    await mkdir(join(destDir, 'inside'), { recursive: true });
    const c2 = capture();
    assert.equal(await runInstallCni([`--src=${p.src}`, `--dest=${destDir}`], c2.io), 1);
    assert.match(c2.err(), /cannot write/);
    assert.deepEqual((await readdir(join(dir, 'd'))).sort(), ['10-flannel.conflist']);
  });
});

test('install-cni: bad arguments exit 2 with the usage', async () => {
  const c = capture();
  assert.equal(await runInstallCni(['--nope'], c.io), 2);
  assert.match(c.err(), /usage: weft install-cni/);
  const h = capture();
  assert.equal(await runInstallCni(['-h'], h.io), 0);
  assert.match(h.out(), /--cni-bin-dir/);
});
