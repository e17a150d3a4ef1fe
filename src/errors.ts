/**
 * One error class for every failure a user can act on. `code` is stable
 * (tests and callers switch on it); the message says what is wrong and
 * what to do about it. Native errors use the errno name as `code`.
 */
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
