import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { commandUsage, controlSocketArg, parseCommandArgs, type Command } from '../../src/cli/args.js';
import { isWeftError } from '../../src/errors.js';
import { WEFT_BIN } from '../../src/testbed/weft-node.js';

const C: Command = {
  name: 'thing', summary: 'Does a thing.', specs: [
    { name: 'json', type: 'bool', default: false, help: 'as JSON' },
    { name: 'seconds', type: 'number', default: 3, help: 'how long' },
    { name: 'backend', type: 'string', default: 'udp', oneOf: ['udp', 'vxlan'], help: 'which' },
  ],
};

function usageError(argv: string[], part: string): void {
  assert.throws(() => parseCommandArgs(C, argv), (e: unknown) =>
    isWeftError(e, 'EUSAGE') && e.message.startsWith('thing: ') && e.message.includes(part) && e.message.includes('weft thing --help'));
}

test('parseCommandArgs: defaults; Go syntax for values and booleans; --help anywhere', () => {
  assert.deepEqual(parseCommandArgs(C, []), { json: false, seconds: 3, backend: 'udp' });
  assert.deepEqual(parseCommandArgs(C, ['--json', '--seconds=5', '-backend', 'vxlan']), { json: true, seconds: 5, backend: 'vxlan' });
  assert.deepEqual(parseCommandArgs(C, ['--json=false', '--seconds', '0.5']), { json: false, seconds: 0.5, backend: 'udp' });
  assert.equal(parseCommandArgs(C, ['--seconds=5', '--help']), 'help');
  assert.equal(parseCommandArgs(C, ['-h']), 'help');
  usageError(['--bogus'], 'unknown flag --bogus');
  usageError(['extra'], 'unexpected argument "extra"');
  usageError(['--seconds=soon'], 'expected a number');
  usageError(['--seconds'], 'needs a value');
  usageError(['--backend=ipip'], 'use one of udp, vxlan');
  usageError(['--json=maybe'], 'expected true or false');
});

test('commandUsage lists every flag with its default; --control-socket follows FLANNELD_CONTROL_SOCKET like the daemon', () => {
  const u = commandUsage(C);
  assert.ok(u.startsWith('usage: weft thing [flags]\n\nDoes a thing.\n'));
  for (const s of ['--json', '--seconds=N', '--backend=udp|vxlan', '(default "udp")', '(default 3)']) assert.ok(u.includes(s), s);
  assert.equal(controlSocketArg({}).default, '/run/weft/weft.sock');
  assert.equal(controlSocketArg({ FLANNELD_CONTROL_SOCKET: '/tmp/w.sock' }).default, '/tmp/w.sock');
});

test('weft <command> --help prints that command\'s usage and does nothing else; version = --version', () => {
  for (const cmd of ['demo', 'status', 'top', 'version', 'install-cni']) {
    const r = spawnSync(process.execPath, [WEFT_BIN, cmd, '--help'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`weft ${cmd}`), cmd);
    assert.equal(r.stderr, '', `${cmd} --help wrote to stderr (did it run?)`);
  }
  const v = spawnSync(process.execPath, [WEFT_BIN, 'version'], { encoding: 'utf8' }).stdout;
  assert.equal(spawnSync(process.execPath, [WEFT_BIN, '--version'], { encoding: 'utf8' }).stdout, v);
  assert.match(v, /^\d+\.\d+\.\d+\n$/);
});
