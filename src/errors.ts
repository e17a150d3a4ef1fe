/**
 * One error class for every failure a user can act on. `code` is stable
 * (tests and callers switch on it); the message says what is wrong and
 * what to do about it. Native errors use the errno name as `code`.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export class WeftError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeftError';
    this.code = code;
  }
}

export function isWeftError(e: unknown, code?: string): e is WeftError {
  return e instanceof WeftError && (code === undefined || e.code === code);
}

/** What to do about a file-system errno, by code. */
const FS_FIXES: Readonly<Record<string, string>> = {
  EACCES: 'permission denied: run weft as root or give it write access there',
  EPERM: 'operation not permitted: the directory may be immutable or append-only (lsattr -d; chattr -i) or a read-only mount',
  EROFS: 'the file system is read-only: use a writable one',
  ENOSPC: 'no space left on the device: free some space there (df)',
  EDQUOT: 'the disk quota is exhausted: free some space or raise the quota',
  EIO: 'an I/O error: check the device (dmesg)',
};

/** The deepest existing component of `path` that is not a directory, or null. */
function fileInTheWay(path: string): string | null {
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      return statSync(p).isDirectory() ? null : p;
    } catch {
      if (dirname(p) === p) return null;
    }
  }
}

/**
 * A file-system error as a WeftError that names `subject` (what weft was
 * writing, with its flag) and the fix; anything else is returned as is.
 */
export function fsError(e: unknown, subject: string): unknown {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  if (typeof code !== 'string' || typeof err.syscall !== 'string') return e;
  const op = `${err.syscall}${err.path !== undefined ? ` ${err.path}` : ''}`;
  if ((code === 'EEXIST' && err.syscall === 'mkdir') || code === 'ENOTDIR') {
    const file = fileInTheWay(err.path ?? '');
    if (file !== null) {
      return new WeftError(code, `cannot create ${subject}: ${file} is a file, not a directory: remove it or choose another path`, { cause: e });
    }
  }
  const fix = FS_FIXES[code];
  if (fix === undefined) return new WeftError(code, `cannot write ${subject}: ${err.message}`, { cause: e });
  return new WeftError(code, `cannot write ${subject}: ${fix} (${op})`, { cause: e });
}
