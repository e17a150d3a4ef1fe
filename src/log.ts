/**
 * The daemon's log, as flanneld writes it through klog:
 *
 *   I1202 05:00:00.000000       1 daemon.ts:123] message
 *
 * severity (I, W, E, F), local month-day and time to the microsecond, the
 * pid right-aligned in 7, the calling source file and line — so log
 * pipelines that parse flanneld's lines parse weft's. Or, with
 * --log-format=json, one object per line: ts, level, msg, caller, fields.
 * v(N, …) messages are written only with -v ≥ N (docs/configuration.md
 * lists the levels).
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Fields = Readonly<Record<string, string | number | boolean | null>>;

export interface Log {
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Start-up cannot go on; the caller exits. */
  fatal(msg: string, fields?: Fields): void;
  /** Info written only when -v is at least `level`. */
  v(level: number, msg: string, fields?: Fields): void;
}

/** For library callers that log nowhere. */
export const SILENT: Log = { info() {}, warn() {}, error() {}, fatal() {}, v() {} };

export type LogFormat = 'text' | 'json';

export interface LogOptions {
  format: LogFormat;
  /** -v. */
  verbosity: number;
  /** One whole line at a time, newline included; default stderr. */
  write?: (line: string) => void;
  /** Wall clock in ms with a fraction; default performance.timeOrigin + performance.now(). */
  now?: () => number;
  pid?: number;
}

type Severity = 'I' | 'W' | 'E' | 'F';
const LEVEL: Record<Severity, string> = { I: 'info', W: 'warning', E: 'error', F: 'fatal' };

const two = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** klog's header: "I1202 05:00:00.000000       1 file.ts:12] ". */
export function klogHeader(sev: Severity, ms: number, pid: number, caller: string): string {
  const d = new Date(Math.floor(ms));
  const micros = String(Math.floor((ms - Math.floor(ms / 1000) * 1000) * 1000)).padStart(6, '0');
  return `${sev}${two(d.getMonth() + 1)}${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
    + `.${micros} ${String(pid).padStart(7, ' ')} ${caller}] `;
}

/** ISO 8601 in UTC with microseconds, for the JSON format. */
function isoMicros(ms: number): string {
  const iso = new Date(Math.floor(ms)).toISOString(); // …:00.123Z
  const micros = String(Math.floor((ms - Math.floor(ms / 1000) * 1000) * 1000)).padStart(6, '0');
  return `${iso.slice(0, 20)}${micros}Z`;
}

// Caller lookup: the first frame outside this file, mapped back to the
// TypeScript line through the compiled file's source map when it has one.
const maps = new Map<string, SourceMap | null>();
const SELF = import.meta.url;

function mapFor(file: string): SourceMap | null {
  let m = maps.get(file);
  if (m !== undefined) return m;
  try {
    m = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    m = null;
  }
  maps.set(file, m);
  return m;
}

export function callerOf(sites: readonly NodeJS.CallSite[]): string {
  for (const s of sites) {
    const url = s.getFileName() ?? '';
    if (url === SELF || url === '') continue;
    const file = url.startsWith('file:') ? fileURLToPath(url) : url;
    const line = s.getLineNumber() ?? 0;
    const entry = mapFor(file)?.findEntry(line - 1, (s.getColumnNumber() ?? 1) - 1);
    if (entry !== undefined && entry !== null && 'originalSource' in entry) {
      return `${basename(entry.originalSource)}:${entry.originalLine + 1}`;
    }
    return `${basename(file)}:${line}`;
  }
  return '???:1';
}

function captureCaller(): string {
  const saved = Error.prepareStackTrace;
  const holder: { stack?: unknown } = {};
  Error.prepareStackTrace = (_e, sites) => sites;
  try {
    Error.captureStackTrace(holder);
    return callerOf(holder.stack as NodeJS.CallSite[]);
  } finally {
    Error.prepareStackTrace = saved;
  }
}

export function createLog(o: LogOptions): Log {
  const write = o.write ?? ((line: string) => { process.stderr.write(line); });
  const now = o.now ?? (() => performance.timeOrigin + performance.now());
  const pid = o.pid ?? process.pid;
  const emit = (sev: Severity, msg: string, fields: Fields | undefined): void => {
    const ms = now();
    const caller = captureCaller();
    if (o.format === 'json') {
      write(`${JSON.stringify({ ts: isoMicros(ms), level: LEVEL[sev], msg, caller, fields: fields ?? {} })}\n`);
      return;
    }
    let extra = '';
    if (fields !== undefined) for (const [k, v] of Object.entries(fields)) extra += ` ${k}=${JSON.stringify(v)}`;
    write(`${klogHeader(sev, ms, pid, caller)}${msg}${extra}\n`);
  };
  return {
    info: (msg, fields) => emit('I', msg, fields),
    warn: (msg, fields) => emit('W', msg, fields),
    error: (msg, fields) => emit('E', msg, fields),
    fatal: (msg, fields) => emit('F', msg, fields),
    v: (level, msg, fields) => { if (o.verbosity >= level) emit('I', msg, fields); },
  };
}
