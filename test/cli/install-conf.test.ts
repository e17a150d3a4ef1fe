import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { watch } from 'node:fs';
import { chmod, link, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { INSTALL_CONF_USAGE, installConf, installConfTempPath, runInstallConf } from '../../src/cli/install-conf.js';
import { withTmpDir } from '../helpers/tmp.js';

const ROOT = new URL('../../../', import.meta.url).pathname;

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

const withTmp = (fn: (dir: string) => Promise<void>): Promise<void> => withTmpDir('weft-install-conf-', fn);

function capture(): { io: { out: (s: string) => void; err: (s: string) => void }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { out: (s) => { out += s; }, err: (s) => { err += s; } }, out: () => out, err: () => err };
}

async function setup(dir: string, mode = 0o644): Promise<{ src: string; netd: string; dest: string }> {
  await mkdir(join(dir, 'kube-flannel'));
  const src = join(dir, 'kube-flannel', 'cni-conf.json');
  await writeFile(src, CONFLIST);
  await chmod(src, mode);
  const netd = join(dir, 'net.d');
  await mkdir(netd);
  return { src, netd, dest: join(netd, '10-flannel.conflist') };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

test('install-conf: the temp file is .NAME.tmp in DEST\'s directory', () => {
  assert.equal(installConfTempPath('/etc/cni/net.d/10-flannel.conflist'), '/etc/cni/net.d/.10-flannel.conflist.tmp');
  assert.equal(installConfTempPath('rel/x.json'), 'rel/.x.json.tmp');
  assert.equal(installConfTempPath('x.json'), '.x.json.tmp');
});

test('install-conf: copies through .NAME.tmp and a rename; the temp file is gone afterwards', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir);
    const seen: string[] = [];
    const w = watch(p.netd, (_ev, name) => { if (name !== null) seen.push(name.toString()); });
    try {
      const c = capture();
      assert.equal(await runInstallConf([p.src, p.dest], c.io), 0, c.err());
      await until(() => seen.includes('10-flannel.conflist'));
      assert.match(c.out(), /installed .*10-flannel\.conflist from .*cni-conf\.json/);
    } finally {
      w.close();
    }
    // DEST appears by the rename of the temp file, never by writing DEST itself.
    assert.ok(seen.includes('.10-flannel.conflist.tmp'), `events: ${seen.join(', ')}`);
    assert.ok(seen.indexOf('.10-flannel.conflist.tmp') < seen.indexOf('10-flannel.conflist'), `events: ${seen.join(', ')}`);
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
    assert.deepEqual(await readdir(p.netd), ['10-flannel.conflist']);
  });
});

test('install-conf: DEST gets SRC\'s mode, whatever the umask', async () => {
  for (const mode of [0o644, 0o600, 0o640, 0o755]) {
    await withTmp(async (dir) => {
      const p = await setup(dir, mode);
      const old = process.umask(0o077);
      try {
        await installConf(p.src, p.dest);
      } finally {
        process.umask(old);
      }
      assert.equal((await stat(p.dest)).mode & 0o7777, mode, `mode ${mode.toString(8)}`);
    });
  }
});

test('install-conf: overwrites DEST by replacing it; a stale temp file is replaced too', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir);
    await writeFile(p.dest, '{"old": true}\n', { mode: 0o600 });
    await link(p.dest, join(dir, 'old-link'));
    await writeFile(installConfTempPath(p.dest), 'left by a killed run');
    const before = (await stat(p.dest)).ino;
    const c = capture();
    assert.equal(await runInstallConf([p.src, p.dest], c.io), 0, c.err());
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
    assert.equal((await stat(p.dest)).mode & 0o777, 0o644);
    // A new inode: a reader holding the old file sees it whole, never half rewritten.
    assert.notEqual((await stat(p.dest)).ino, before);
    assert.equal(await readFile(join(dir, 'old-link'), 'utf8'), '{"old": true}\n');
    assert.deepEqual(await readdir(p.netd), ['10-flannel.conflist']);
    // Installing again is fine (init containers re-run on every pod restart).
    assert.equal(await runInstallConf([p.src, p.dest], c.io), 0, c.err());
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
  });
});

test('install-conf: SRC may be a symlink, as ConfigMap keys are', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir, 0o644);
    const linked = join(dir, 'kube-flannel', 'linked.json');
    await symlink(p.src, linked);
    await installConf(linked, p.dest);
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
    assert.ok((await stat(p.dest)).isFile());
  });
});

test('install-conf: a missing SRC exits 1 naming it; DEST is not touched', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir);
    await writeFile(p.dest, 'keep');
    const missing = join(dir, 'kube-flannel', 'nope.json');
    const c = capture();
    assert.equal(await runInstallConf([missing, p.dest], c.io), 1);
    assert.match(c.err(), new RegExp(`cannot read ${missing.replace(/[.]/g, '\\.')} \\(ENOENT`));
    assert.match(c.err(), /kube-flannel-cfg ConfigMap/);
    assert.equal(await readFile(p.dest, 'utf8'), 'keep');
    assert.deepEqual(await readdir(p.netd), ['10-flannel.conflist']);
    await assert.rejects(installConf(missing, p.dest), { code: 'EINSTALL' });
  });
});

test('install-conf: an unwritable or missing DEST directory exits 1 naming it and the fix', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir);
    const c = capture();
    // Missing: the host's directory was not mounted.
    const gone = join(dir, 'no-such-dir', '10-flannel.conflist');
    assert.equal(await runInstallConf([p.src, gone], c.io), 1);
    assert.match(c.err(), /cannot write .*no-such-dir\/10-flannel\.conflist \(ENOENT/);
    assert.match(c.err(), /no-such-dir does not exist: mount the host's/);
    await assert.rejects(stat(join(dir, 'no-such-dir')), { code: 'ENOENT' });

    // Not writable: root ignores directory modes, but not sysfs's refusal to create files.
    const ro = process.getuid?.() === 0 ? '/sys' : p.netd;
    if (ro === p.netd) await chmod(p.netd, 0o555);
    try {
      const c2 = capture();
      const dest = join(ro, '10-flannel.conflist');
      assert.equal(await runInstallConf([p.src, dest], c2.io), 1);
      assert.match(c2.err(), new RegExp(`cannot write ${dest.replace(/[.]/g, '\\.')} \\((EACCES|EPERM)`));
      assert.match(c2.err(), /is not writable here: mount the host's .* read-write/);
      await assert.rejects(stat(installConfTempPath(dest)), { code: 'ENOENT' });
    } finally {
      await chmod(p.netd, 0o755);
    }

    // DEST is a directory: the temp file is cleaned up.
    await mkdir(p.dest);
    const c3 = capture();
    assert.equal(await runInstallConf([p.src, p.dest], c3.io), 1);
    assert.match(c3.err(), /cannot write .*10-flannel\.conflist \((EISDIR|ENOTEMPTY|EEXIST)/);
    assert.deepEqual(await readdir(p.netd), ['10-flannel.conflist']);
  });
});

test('install-conf: wrong argument counts exit 2 with the usage; --help exits 0', async () => {
  for (const argv of [[], ['/a'], ['/a', '/b', '/c'], ['--src=/a', '--dest=/b', 'x']]) {
    const c = capture();
    assert.equal(await runInstallConf(argv, c.io), 2, JSON.stringify(argv));
    assert.match(c.err(), new RegExp(`expected 2 arguments \\(SRC DEST\\), got ${argv.length}`));
    assert.ok(c.err().includes(INSTALL_CONF_USAGE));
    assert.equal(c.out(), '');
  }
  for (const argv of [['', '/b'], ['/a', '']]) {
    const c = capture();
    assert.equal(await runInstallConf(argv, c.io), 2);
    assert.match(c.err(), /is empty/);
  }
  for (const h of ['--help', '-h', '-help']) {
    const c = capture();
    assert.equal(await runInstallConf([h], c.io), 0);
    assert.match(c.out(), /^usage: install-conf SRC DEST\n/);
    assert.equal(c.err(), '');
  }
});

test('install-conf: bin/install-conf.js runs it with the same exit codes', async () => {
  await withTmp(async (dir) => {
    const p = await setup(dir);
    const bin = join(ROOT, 'bin', 'install-conf.js');
    assert.ok(((await stat(bin)).mode & 0o111) !== 0, 'bin/install-conf.js is executable');
    const ok = spawnSync(process.execPath, [bin, p.src, p.dest], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(await readFile(p.dest, 'utf8'), CONFLIST);
    const usage = spawnSync(process.execPath, [bin], { encoding: 'utf8' });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /usage: install-conf SRC DEST/);
    const missing = spawnSync(process.execPath, [bin, join(dir, 'nope'), p.dest], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot read .*nope/);
  });
});
