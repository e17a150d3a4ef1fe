import type { TestContext } from 'node:test';

/**
 * Integration tests need root (namespaces, TUN). Without root they skip with
 * the reason; under CI (CI=true) a skip would hide a broken landing, so the
 * test fails instead.
 */
export function needsRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  const reason = 'needs root: network namespaces and TUN devices (run the tests as root)';
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`${reason}; CI must run integration tests, a skip there is a failure`);
  }
  t.skip(reason);
  return false;
}

/**
 * For `describe(name, { skip: rootSkip() }, …)`: false as root; the reason
 * to skip otherwise — except under CI, where it throws (a skip there fails).
 */
export function rootSkip(): string | false {
  if (process.getuid?.() === 0) return false;
  const reason = 'needs root: network namespaces and TUN devices (run the tests as root)';
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`${reason}; CI must run integration tests, a skip there is a failure`);
  }
  return reason;
}
