/**
 * The one runner for iproute2 (`ip`, `bridge`) under src/netlink. Control
 * plane only. Every call is bounded in time and output; a failure names the
 * command, and for `-batch` input the line that failed, and what iproute2
 * printed.
 *
 * `netns` runs the command against another network namespace (`ip -n`,
 * `bridge -n`): the daemon passes none, the tests pass their namespaces.
 */
import { writeFile } from 'node:fs/promises';
import { runBounded } from '../child.js';
import { WeftError } from '../errors.js';

export type IprouteTool = 'ip' | 'bridge';

export interface IprouteOptions {
  /** Network namespace name (`ip netns`); absent = ours. */
  netns?: string | undefined;
  /** Written to stdin (for `-batch -`). */
  input?: string;
  /** Default 10 000 ms; on expiry the process is killed and the call rejects. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** IFNAMSIZ − 1. */
const IFNAME_MAX = 15;

/**
 * Interface names go into `-batch` text, where whitespace separates words
 * and a newline starts a new command: reject anything that could do that.
 */
export function checkDevName(name: string): void {
  if (name.length === 0 || name.length > IFNAME_MAX || /[\s/]/.test(name) || name === '.' || name === '..') {
    throw new WeftError('EBADDEV', `interface name "${name}" must be 1-${IFNAME_MAX} characters without spaces or '/'`);
  }
}

/** The stderr of a missing device, as `ip` and `bridge` word it. */
const NO_DEVICE = /does not exist|Cannot find device|No such device/;

function failure(tool: IprouteTool, argv: readonly string[], opts: IprouteOptions, stderr: string, why: string): WeftError {
  const text = stderr.trim();
  let where = '';
  // `-batch -` reports "Command failed -:N": name the command on that line.
  const m = /Command failed -:(\d+)/.exec(text);
  if (m !== null && opts.input !== undefined) {
    const line = opts.input.split('\n')[Number(m[1]) - 1];
    if (line !== undefined) where = ` at "${line}"`;
  }
  const code = NO_DEVICE.test(text) ? 'ENODEV' : 'EIPROUTE';
  return new WeftError(code, `${tool} ${argv.join(' ')} failed${where}: ${(text || why).slice(0, 2000)}`);
}

export interface IprouteResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tool [-n netns] args…` and resolves whatever the exit code; rejects
 * only when the tool cannot run or overruns its time bound.
 */
export async function iprouteRaw(tool: IprouteTool, args: readonly string[], opts: IprouteOptions = {}): Promise<IprouteResult> {
  const argv = opts.netns !== undefined ? ['-n', opts.netns, ...args] : [...args];
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let r;
  try {
    r = await runBounded([tool, ...argv], { timeoutMs, input: opts.input });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') {
      throw new WeftError('ENOIPROUTE', `${tool} not found (install the Debian package iproute2)`, { cause: err });
    }
    throw new WeftError('EIPROUTE', `cannot run ${tool}: ${err.message}`, { cause: err });
  }
  if (r.timedOut) throw new WeftError('EIPROUTE', `${tool} ${argv.join(' ')} timed out after ${timeoutMs} ms (killed)`);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `tool [-n netns] args…`; resolves with stdout, rejects on a non-zero exit. */
export async function iproute(tool: IprouteTool, args: readonly string[], opts: IprouteOptions = {}): Promise<string> {
  const r = await iprouteRaw(tool, args, opts);
  if (r.code !== 0) {
    const argv = opts.netns !== undefined ? ['-n', opts.netns, ...args] : [...args];
    throw failure(tool, argv, opts, r.stderr, `exit ${r.code}`);
  }
  return r.stdout;
}

/** `tool -j args…` parsed. iproute2 prints nothing for some empty dumps: that is []. */
export async function iprouteJson(tool: IprouteTool, args: readonly string[], netns?: string): Promise<unknown[]> {
  const out = await iproute(tool, ['-j', ...args], { netns });
  return parseJsonArray(out, `${tool} -j ${args.join(' ')}`);
}

export function parseJsonArray(out: string, what: string): unknown[] {
  const text = out.trim();
  if (text === '') return [];
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v : [v];
  } catch (e) {
    throw new WeftError('EIPROUTE', `${what}: output is not JSON (${(e as Error).message})`);
  }
}

/**
 * Sends many commands through one process (`-batch -`). Without -force the
 * batch stops at the first failure, which the error names; callers only
 * batch commands that should all succeed (replace, or deletes of entries
 * they have just read). Empty batches cost nothing.
 */
export async function iprouteBatch(tool: IprouteTool, lines: readonly string[], netns?: string, json = false): Promise<string> {
  if (lines.length === 0) return '';
  const pre = json ? ['-j', '-batch', '-'] : ['-batch', '-'];
  return iproute(tool, pre, { netns, input: `${lines.join('\n')}\n`, timeoutMs: DEFAULT_TIMEOUT_MS + lines.length * 20 });
}

/** `-force -batch` stderr: each failure prints its error lines, then "Command failed -:N". */
export function parseBatchFailures(stderr: string): Map<number, string> {
  const failed = new Map<number, string>();
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    const m = /^Command failed -:(\d+)$/.exec(line);
    if (m === null) {
      if (line !== '') pending.push(line);
      continue;
    }
    failed.set(Number(m[1]), pending.join(' ') || 'failed');
    pending = [];
  }
  return failed;
}

/**
 * Like iprouteBatch, but with -force: every line runs even when some fail.
 * Resolves with the failed lines (1-based) and what iproute2 said of each.
 */
export async function iprouteBatchEach(tool: IprouteTool, lines: readonly string[], netns?: string): Promise<Map<number, string>> {
  let failed = new Map<number, string>();
  if (lines.length === 0) return failed;
  const r = await iprouteRaw(tool, ['-force', '-batch', '-'], {
    netns, input: `${lines.join('\n')}\n`, timeoutMs: DEFAULT_TIMEOUT_MS + lines.length * 20,
  });
  failed = parseBatchFailures(r.stderr);
  if (r.code !== 0 && failed.size === 0) {
    const argv = netns !== undefined ? ['-n', netns, '-force', '-batch', '-'] : ['-force', '-batch', '-'];
    throw failure(tool, argv, {}, r.stderr, `exit ${r.code}`);
  }
  return failed;
}

/**
 * Writes a sysctl for an interface in `netns` (/proc/sys/net is per
 * namespace of the process that opens it). Best effort: returns false when
 * it could not be written (e.g. IPv6 disabled).
 */
export async function writeNetSysctl(path: string, value: string, netns?: string): Promise<boolean> {
  if (!path.startsWith('/proc/sys/net/')) throw new WeftError('EBADSYSCTL', `not a network sysctl path: ${path}`);
  if (netns === undefined) {
    return writeFile(path, value).then(() => true, () => false);
  }
  const argv = ['ip', 'netns', 'exec', netns, 'sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sh', value, path];
  return runBounded(argv, { timeoutMs: DEFAULT_TIMEOUT_MS }).then((r) => r.code === 0 && !r.timedOut, () => false);
}

/** Whether a link of that name exists (in `netns`). */
export async function linkExists(name: string, netns?: string): Promise<boolean> {
  checkDevName(name);
  const r = await iprouteRaw('ip', ['link', 'show', 'dev', name], { netns });
  if (r.code === 0) return true;
  if (NO_DEVICE.test(r.stderr)) return false;
  throw failure('ip', ['link', 'show', 'dev', name], { netns }, r.stderr, `exit ${r.code}`);
}
