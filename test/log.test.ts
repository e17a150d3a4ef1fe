import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLog, klogHeader } from '../src/log.js';

// klog prints local time; pin the zone so the expected bytes are fixed.
process.env.TZ = 'UTC';
const T = Date.UTC(2026, 11, 2, 5, 0, 0, 123) + 0.456; // 05:00:00.123456

function sink(): { lines: string[]; write: (l: string) => void } {
  const lines: string[] = [];
  return { lines, write: (l) => { lines.push(l); } };
}

/** The TypeScript line holding `marker` in this file (the caller a log line must name). */
function lineOf(marker: string): number {
  const src = readFileSync(fileURLToPath(new URL('../../test/log.test.ts', import.meta.url)), 'utf8').split('\n');
  return src.findIndex((l) => l.includes(marker) && !l.includes('lineOf(')) + 1;
}

test('klogHeader: klog\'s bytes — severity, month-day, time to the µs, pid right-aligned in 7, file:line', () => {
  assert.equal(klogHeader('I', T, 1, 'main.go:211'), 'I1202 05:00:00.123456       1 main.go:211] ');
  assert.equal(klogHeader('W', Date.UTC(2026, 0, 9, 23, 4, 5, 0), 4242, 'x.ts:9'), 'W0109 23:04:05.000000    4242 x.ts:9] ');
  assert.equal(klogHeader('F', T, 12345678, 'a.ts:1'), 'F1202 05:00:00.123456 12345678 a.ts:1] ', 'a pid wider than 7 is not cut');
});

test('text log: each severity as a klog line naming the TypeScript caller; fields appended as key=value', () => {
  const s = sink();
  const log = createLog({ format: 'text', verbosity: 0, write: s.write, now: () => T, pid: 1 });
  log.info('hello'); // caller-marker-1
  log.warn('careful', { subnet: '10.244.1.0/24', n: 3 });
  log.error('broke');
  log.fatal('cannot start');
  const line = lineOf('caller-marker-1');
  assert.deepEqual(s.lines, [
    `I1202 05:00:00.123456       1 log.test.ts:${line}] hello\n`,
    `W1202 05:00:00.123456       1 log.test.ts:${line + 1}] careful subnet="10.244.1.0/24" n=3\n`,
    `E1202 05:00:00.123456       1 log.test.ts:${line + 2}] broke\n`,
    `F1202 05:00:00.123456       1 log.test.ts:${line + 3}] cannot start\n`,
  ]);
});

test('-v gates v(N) messages: written at verbosity ≥ N only', () => {
  for (const [verbosity, want] of [[0, []], [1, ['one']], [2, ['one', 'two']]] as const) {
    const s = sink();
    const log = createLog({ format: 'text', verbosity, write: s.write, now: () => T, pid: 1 });
    log.v(1, 'one');
    log.v(2, 'two');
    assert.deepEqual(s.lines.map((l) => l.slice(l.indexOf('] ') + 2, -1)), want, `-v=${verbosity}`);
    assert.ok(s.lines.every((l) => l.startsWith('I')), 'verbose lines are info');
  }
});

test('json log: one object per line with ts (UTC, µs), level, msg, caller and fields', () => {
  const s = sink();
  const log = createLog({ format: 'json', verbosity: 0, write: s.write, now: () => T, pid: 1 });
  log.warn('careful', { subnet: '10.244.1.0/24' }); // caller-marker-2
  log.info('plain');
  assert.equal(s.lines.length, 2);
  assert.ok(s.lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
  assert.deepEqual(JSON.parse(s.lines[0]!), {
    ts: '2026-12-02T05:00:00.123456Z', level: 'warning', msg: 'careful', caller: `log.test.ts:${lineOf('caller-marker-2')}`,
    fields: { subnet: '10.244.1.0/24' },
  });
  assert.deepEqual(JSON.parse(s.lines[1]!).fields, {});
  const f = sink();
  createLog({ format: 'json', verbosity: 0, write: f.write, now: () => T }).fatal('x');
  assert.equal(JSON.parse(f.lines[0]!).level, 'fatal');
});
