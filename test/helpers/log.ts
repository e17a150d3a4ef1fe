/** A Log that records "<severity letter> <message>" lines (v(N) at every level), for tests. */
import type { Log } from '../../src/log.js';

export function captureLog(lines: string[] = []): Log & { lines: string[] } {
  return {
    lines,
    info: (m) => { lines.push(`I ${m}`); },
    warn: (m) => { lines.push(`W ${m}`); },
    error: (m) => { lines.push(`E ${m}`); },
    fatal: (m) => { lines.push(`F ${m}`); },
    v: (_level, m) => { lines.push(`I ${m}`); },
  };
}
