/**
 * Network namespaces for the native/tun/conn tests. Nothing here touches the
 * host's namespace: the test creates a namespace, runs a child node process
 * inside it (`ip netns exec`), reads the JSON line it prints, and deletes the
 * namespace afterwards.
 */
import { spawnSync } from 'node:child_process';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr || r.error}`);
}

/** Creates `<prefix>-<pid>` (removing a stale one first) with lo up. */
export function createNetns(prefix: string): string {
  const ns = `${prefix}-${process.pid}`;
  deleteNetns(ns);
  ip(['netns', 'add', ns]);
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

export function deleteNetns(ns: string): void {
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
}

/**
 * Runs `node <script> <args...>` inside `ns` and returns the parsed last
 * stdout line. The child is killed after `timeoutMs`. `wrap` is a command
 * prefix placed before node (e.g. setpriv to drop a capability).
 */
export function runInNetns<T = Record<string, unknown>>(ns: string, script: string,
  args: string[], timeoutMs = 15_000, wrap: string[] = []): T {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...wrap, process.execPath, script, ...args], {
    encoding: 'utf8', timeout: timeoutMs,
  });
  const lines = (r.stdout ?? '').trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    throw new Error(`child ${args.join(' ')} in ${ns} failed (status ${r.status}, ` +
      `signal ${r.signal}): ${r.stderr}\n${r.stdout}`);
  }
  return JSON.parse(last) as T;
}

/** Prefix for runInNetns: run without CAP_NET_ADMIN and CAP_NET_BIND_SERVICE. */
export const WITHOUT_NET_CAPS = ['setpriv', '--bounding-set=-net_admin,-net_bind_service'];

/** Prefix for runInNetns: a private mount namespace where /dev/net/tun does not exist. */
export const WITHOUT_DEV_NET_TUN = ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
  'mount -t tmpfs tmpfs /dev/net && exec "$0" "$@"'];
