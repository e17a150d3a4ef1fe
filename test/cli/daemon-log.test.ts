/**
 * The daemon's log as an operator sees it: the banner first, a start-up
 * error as one F line with its message, usage errors the same, and the
 * JSON format. Start-ups here fail before touching the host (no root).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WEFT_BIN } from '../../src/testbed/weft-node.js';
import { VERSION } from '../../src/control/daemon.js';

function weft(args: string[]): { code: number | null; lines: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-log-'));
  try {
    const r = spawnSync(process.execPath, [WEFT_BIN, `--lease-dir=${join(dir, 'leases')}`, `--net-config-path=${join(dir, 'missing.json')}`,
      `--subnet-file=${join(dir, 'subnet.env')}`, `--control-socket=${join(dir, 'weft.sock')}`, ...args], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, lines: r.stderr.split('\n').filter((l) => l !== '') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const KLOG = /^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ ([\w.-]+\.ts):\d+\] (.*)$/;

test('daemon log: banner with version and effective flags, then the start-up error as one F line; exit 1', () => {
  const r = weft(['--ip-masq', '--etcd-password=hunter2']);
  assert.equal(r.code, 1, r.lines.join('\n'));
  const parsed = r.lines.map((l) => KLOG.exec(l));
  assert.ok(parsed.every((m) => m !== null), `every line is a klog line:\n${r.lines.join('\n')}`);
  const [first, last] = [parsed[0]!, parsed.at(-1)!];
  assert.equal(first[1], 'I');
  assert.equal(first[2], 'main.ts', 'the caller is the TypeScript source');
  assert.match(first[3]!, new RegExp(`^weft ${VERSION.replace(/\./g, '\\.')} starting \\(node v\\d+\\.\\d+\\.\\d+\\): --etcd-endpoints=`));
  assert.ok(first[3]!.includes('--ip-masq=true') && first[3]!.includes('--etcd-password=<redacted>') && !r.lines.join('').includes('hunter2'));
  assert.equal(last[1], 'F');
  assert.match(last[3]!, /^network config \S+missing\.json does not exist: create it/);
});

test('daemon log: an unknown flag is one F line naming it; exit 2', () => {
  const r = weft(['--kube-subnet']);
  assert.equal(r.code, 2);
  assert.equal(r.lines.length, 1, r.lines.join('\n'));
  assert.match(r.lines[0]!, /^F\d{4} .*\] unknown flag --kube-subnet; did you mean --kube-subnet-mgr\?/);
});

test('daemon log: --log-format=json writes one object per line, the error at level fatal', () => {
  const r = weft(['--log-format=json', '-v=2']);
  assert.equal(r.code, 1);
  const objs = r.lines.map((l) => JSON.parse(l) as { level: string; msg: string; ts: string; caller: string });
  assert.match(objs[0]!.msg, /^weft \S+ starting/);
  assert.ok(objs[0]!.msg.includes('--v=2') && objs[0]!.msg.includes('--log-format=json'));
  assert.equal(objs.at(-1)!.level, 'fatal');
  assert.match(objs.at(-1)!.msg, /does not exist/);
  assert.ok(objs.every((o) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(o.ts) && /\.ts:\d+$/.test(o.caller)));
});
