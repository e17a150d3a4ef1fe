/**
 * Runs inside a test-created namespace (see tun.test.ts):
 * `node child-tun.js <scenario>`; prints one JSON line.
 */
import { execFileSync } from 'node:child_process';
import { WeftError } from '../../src/errors.js';
import { closeTun, openTun } from '../../src/tun/tun.js';

function errInfo(f: () => unknown): Record<string, unknown> {
  try {
    f();
    return { threw: false };
  } catch (e) {
    const x = e as Error & { code?: string; cause?: { code?: string } };
    return { threw: true, weft: e instanceof WeftError, code: x.code, causeCode: x.cause?.code,
      message: x.message };
  }
}

const scenario = process.argv[2];
const out: Record<string, unknown> = {};
if (scenario === 'open') {
  const dev = openTun('wt0', 2);
  out.name = dev.name;
  out.fds = dev.fds.length;
  out.link = execFileSync('ip', ['-o', 'link', 'show', 'wt0'], { encoding: 'utf8' }).includes('wt0');
  closeTun(dev.fds);
  out.closeAgain = errInfo(() => closeTun(dev.fds));
  const auto = openTun('', 1);
  out.autoName = auto.name;
  closeTun(auto.fds);
  execFileSync('ip', ['tuntap', 'add', 'dev', 'wt1', 'mode', 'tun']);
  out.existing = errInfo(() => openTun('wt1', 2));
  out.badQueues = errInfo(() => openTun('wt3', 0));
  out.longName = errInfo(() => openTun('x'.repeat(16), 1));
} else if (scenario === 'eperm' || scenario === 'enoent') {
  out.err = errInfo(() => openTun('wt4', 1));
} else {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
console.log(JSON.stringify(out));
