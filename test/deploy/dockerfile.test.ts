/**
 * The Dockerfile, parsed with dockerfile-ast (no Docker engine here): a
 * builder and a slim runtime on the Node major CI tests, the build and
 * install steps are the scripts CI runs, the entrypoint is weft, nothing is
 * downloaded outside the package managers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DockerfileParser, type Dockerfile } from 'dockerfile-ast';

const ROOT = new URL('../../../', import.meta.url).pathname;

function parse(): Dockerfile {
  return DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
}

/** The Node major CI runs on: package.json's engines floor, which @types/node tracks. */
function ciNodeMajor(): number {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const floor = /(\d+)\.\d+/.exec(pkg.engines.node as string);
  assert.ok(floor, `engines.node ${pkg.engines.node}`);
  const major = Number(floor[1]);
  assert.equal(Number(/(\d+)/.exec(pkg.devDependencies['@types/node'] as string)?.[1]), major, '@types/node matches engines.node');
  return major;
}

function runs(df: Dockerfile): string[] {
  return df.getInstructions().filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
}

test('Dockerfile: parses; a builder stage and a slim runtime stage on the CI Node major', () => {
  const df = parse();
  const froms = df.getFROMs();
  assert.ok(froms.length >= 2, 'multi-stage');
  const major = ciNodeMajor();
  const builder = froms[0]!;
  const runtime = froms[froms.length - 1]!;
  assert.equal(builder.getImageName(), 'node');
  assert.equal(builder.getBuildStage(), 'builder');
  assert.equal(runtime.getImageName(), 'node');
  assert.match(runtime.getImageTag() ?? '', new RegExp(`^${major}-[a-z]+-slim$`), 'runtime is node:<CI major>-<debian>-slim');
  assert.match(builder.getImageTag() ?? '', new RegExp(`^${major}-`), 'builder compiles the addon with the same Node');
  // Same Debian release in both, so the addon links against the runtime's glibc.
  assert.equal(builder.getImageTag()?.split('-')[1], runtime.getImageTag()?.split('-')[1]);
  for (const f of froms) assert.equal(f.getImageDigest(), null);
  assert.deepEqual(df.getDirectives().map((d) => d.getName()), ['syntax']);
});

test('Dockerfile: ENTRYPOINT is weft in exec form, in the runtime stage', () => {
  const df = parse();
  const eps = df.getENTRYPOINTs();
  assert.equal(eps.length, 1);
  const argv = eps[0]!.getJSONStrings().map((s) => s.getJSONValue());
  assert.equal(argv.length, 1);
  assert.match(argv[0]!, /(^|\/)weft$/);
  const runtimeStart = df.getFROMs().at(-1)!.getRange().start.line;
  assert.ok(eps[0]!.getRange().start.line > runtimeStart);
});

test('Dockerfile: the RUN steps are the scripts CI runs; production install copies from the builder', () => {
  const df = parse();
  const all = runs(df).join('\n');
  assert.match(all, /scripts\/docker-build\.sh/);
  assert.match(all, /scripts\/docker-install\.sh/);
  for (const s of ['docker-build.sh', 'docker-install.sh', 'prod-install-check.sh']) {
    assert.ok(statSync(join(ROOT, 'scripts', s)).isFile(), `scripts/${s}`);
  }
  const installText = readFileSync(join(ROOT, 'scripts', 'docker-install.sh'), 'utf8');
  assert.match(installText, /npm ci --omit=dev --ignore-scripts/);
  // The install step reads the builder's tree through a bind mount, so the
  // builder's dev dependencies never become a layer of the runtime image.
  const install = df.getInstructions().find((i) => i.getKeyword() === 'RUN' && /docker-install\.sh/.test(i.getArgumentsContent() ?? ''));
  assert.ok(install);
  const flags = (install as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] }).getFlags();
  const mount = flags.find((f) => f.getName() === 'mount')?.getValue() ?? '';
  assert.match(mount, /type=bind/);
  assert.match(mount, /from=builder/);
  // The runtime stage copies nothing from the build context.
  const runtimeStart = df.getFROMs().at(-1)!.getRange().start.line;
  for (const c of df.getCOPYs()) {
    if (c.getRange().start.line > runtimeStart) assert.match(c.getArgumentsContent() ?? '', /--from=builder/);
  }
});

test('Dockerfile: the runtime has the tools the daemon calls; no downloads outside apt and npm', () => {
  const df = parse();
  const all = runs(df).join('\n');
  for (const pkg of ['iproute2', 'iptables', 'nftables']) assert.match(all, new RegExp(`\\b${pkg}\\b`));
  assert.doesNotMatch(all, /\b(curl|wget)\b/);
  assert.equal(df.getInstructions().filter((i) => i.getKeyword() === 'ADD').length, 0, 'ADD can fetch URLs; COPY cannot');
  const scripts = ['docker-build.sh', 'docker-install.sh'].map((s) => readFileSync(join(ROOT, 'scripts', s), 'utf8')).join('\n');
  assert.doesNotMatch(scripts, /\b(curl|wget)\b|https?:\/\//);
});

test('.dockerignore keeps host builds out of the context', () => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['node_modules', 'dist', 'native/build', '.git']) assert.ok(lines.includes(p), p);
});
