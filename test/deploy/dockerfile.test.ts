/**
 * The Dockerfile, parsed with dockerfile-ast (CI builds it for real with
 * scripts/image-build.sh): a builder and a slim runtime on Node 24 whose
 * bases are build arguments, the build and install steps are the scripts CI
 * runs, flannel's /opt/bin entry points exist, the entrypoint is weft,
 * nothing is downloaded outside the package managers.
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

/** The image's Node: the current LTS, which CI also runs the unit tests on (scripts/node24.sh). */
const IMAGE_NODE_MAJOR = 24;

/** The ARGs before the first FROM, name → default. */
function initialArgs(df: Dockerfile): Map<string, string | null> {
  return new Map(df.getInitialARGs().map((a) => [a.getProperty()?.getName() ?? '', a.getProperty()?.getValue() ?? null]));
}

/** A FROM's image as built with the ARG defaults: `${X}` replaced by X's default. */
function resolvedImage(df: Dockerfile, image: string): string {
  const args = initialArgs(df);
  return image.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, name: string) => {
    const v = args.get(name);
    assert.ok(typeof v === 'string' && v !== '', `ARG ${name} has a default before the first FROM`);
    return v;
  });
}

function runs(df: Dockerfile): string[] {
  return df.getInstructions().filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
}

type Flag = { getName(): string; getValue(): string | null };
function flags(i: unknown): Flag[] {
  return (i as { getFlags(): Flag[] }).getFlags();
}

test('Dockerfile: parses; the bases are build arguments defaulting to node:24 bookworm and bookworm-slim', () => {
  const df = parse();
  const froms = df.getFROMs();
  assert.equal(froms.length, 2, 'builder and runtime');
  const [builder, runtime] = froms as [typeof froms[0], typeof froms[0]];
  assert.equal(builder.getBuildStage(), 'builder');
  assert.equal(builder.getImage(), '${BUILDER_IMAGE}');
  assert.equal(runtime.getImage(), '${RUNTIME_IMAGE}');
  const args = initialArgs(df);
  assert.deepEqual([...args.keys()], ['BUILDER_IMAGE', 'RUNTIME_IMAGE']);
  // Defaults that a docker host pulls as they are.
  assert.equal(resolvedImage(df, builder.getImage()!), `node:${IMAGE_NODE_MAJOR}-bookworm`);
  assert.equal(resolvedImage(df, runtime.getImage()!), `node:${IMAGE_NODE_MAJOR}-bookworm-slim`);
  // Same Debian release in both, so the addon links against the runtime's glibc.
  const release = (img: string) => /^node:\d+-([a-z]+)/.exec(img)?.[1];
  assert.equal(release(resolvedImage(df, builder.getImage()!)), release(resolvedImage(df, runtime.getImage()!)));
  for (const f of froms) assert.equal(f.getImageDigest(), null);
  assert.deepEqual(df.getDirectives().map((d) => d.getName()), ['syntax']);
});

test('Dockerfile: Node 24 is a Node weft supports and CI tests; image-build.sh builds the same bases', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const floor = Number(/(\d+)\.\d+/.exec(pkg.engines.node as string)?.[1]);
  assert.ok(floor > 0 && floor <= IMAGE_NODE_MAJOR, `engines.node ${pkg.engines.node} admits Node ${IMAGE_NODE_MAJOR}`);
  assert.match(readFileSync(join(ROOT, 'scripts', 'node24.sh'), 'utf8'), /node@24/);
  const build = readFileSync(join(ROOT, 'scripts', 'image-build.sh'), 'utf8');
  assert.match(build, new RegExp(`WEFT_IMAGE_NODE:-${IMAGE_NODE_MAJOR}\\}`));
  // It passes its bases under the Dockerfile's ARG names and builds the Dockerfile as it is.
  for (const name of initialArgs(parse()).keys()) assert.match(build, new RegExp(`--build-arg ${name}=`));
  assert.match(build, /-f "\$repo\/Dockerfile"/);
  assert.match(build, /suite=bookworm/);
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
  const mounts = flags(install).filter((f) => f.getName() === 'mount').map((f) => f.getValue() ?? '');
  assert.ok(mounts.some((m) => /type=bind/.test(m) && /from=builder/.test(m)), mounts.join(' '));
  // Both npm steps read the optional npmrc secret (a mirror, token or proxy CA), never a layer.
  const build = df.getInstructions().find((i) => i.getKeyword() === 'RUN' && /docker-build\.sh/.test(i.getArgumentsContent() ?? ''));
  assert.ok(build);
  for (const step of [build, install]) {
    assert.ok(flags(step).some((f) => f.getName() === 'mount' && f.getValue() === 'type=secret,id=npmrc'));
    assert.match(step.getArgumentsContent() ?? '', /NPM_CONFIG_USERCONFIG=\/run\/secrets\/npmrc /);
  }
  // The runtime stage copies nothing from the build context.
  const runtimeStart = df.getFROMs().at(-1)!.getRange().start.line;
  for (const c of df.getCOPYs()) {
    if (c.getRange().start.line > runtimeStart) assert.match(c.getArgumentsContent() ?? '', /--from=builder/);
  }
});

test('Dockerfile: flannel\'s entry points /opt/bin/flanneld and /opt/bin/install-conf; iptables follows the host', () => {
  const df = parse();
  const runtimeStart = df.getFROMs().at(-1)!.getRange().start.line;
  const install = df.getInstructions().find((i) => i.getKeyword() === 'RUN' && i.getRange().start.line > runtimeStart && /docker-install\.sh/.test(i.getArgumentsContent() ?? ''));
  assert.ok(install);
  const text = install.getArgumentsContent() ?? '';
  // kube-flannel.yml runs these paths (the init container since v0.28.6: install-conf SRC DEST).
  assert.match(text, /ln -s \/opt\/weft\/bin\/weft\.js \/opt\/bin\/flanneld(\s|$)/);
  assert.match(text, /ln -s \/opt\/weft\/bin\/install-conf\.js \/opt\/bin\/install-conf(\s|$)/);
  for (const bin of ['weft.js', 'install-conf.js']) {
    const st = statSync(join(ROOT, 'bin', bin));
    assert.ok(st.isFile() && (st.mode & 0o111) !== 0, `bin/${bin} is an executable file`);
    assert.match(readFileSync(join(ROOT, 'bin', bin), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  }
  assert.match(readFileSync(join(ROOT, 'bin', 'install-conf.js'), 'utf8'), /dist\/src\/cli\/install-conf\.js/);
  // The iptables commands go through the mode-picking wrapper, installed from the builder's tree.
  assert.match(text, /install -m 0755 \/tmp\/weft-build\/scripts\/image-iptables-wrapper\.sh \/usr\/sbin\/iptables-wrapper/);
  assert.match(text, /\/usr\/sbin\/iptables-wrapper install/);
  const wrapper = readFileSync(join(ROOT, 'scripts', 'image-iptables-wrapper.sh'), 'utf8');
  assert.match(wrapper, /^#!\/bin\/sh\n/);
  for (const chain of ['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY']) assert.ok(wrapper.includes(chain), chain);
  for (const cmd of ['iptables-legacy-save', 'iptables-nft-save', 'update-alternatives']) assert.ok(wrapper.includes(cmd), cmd);
});

test('Dockerfile: the runtime has the tools the daemon calls; no downloads outside apt and npm', () => {
  const df = parse();
  const all = runs(df).join('\n');
  for (const pkg of ['iproute2', 'iptables', 'nftables']) assert.match(all, new RegExp(`\\b${pkg}\\b`));
  assert.doesNotMatch(all, /\b(curl|wget)\b/);
  assert.equal(df.getInstructions().filter((i) => i.getKeyword() === 'ADD').length, 0, 'ADD can fetch URLs; COPY cannot');
  const scripts = ['docker-build.sh', 'docker-install.sh', 'image-iptables-wrapper.sh'].map((s) => readFileSync(join(ROOT, 'scripts', s), 'utf8')).join('\n');
  assert.doesNotMatch(scripts, /\b(curl|wget)\b|https?:\/\//);
});

test('.dockerignore keeps host builds out of the context', () => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['node_modules', 'dist', 'native/build', '.git']) assert.ok(lines.includes(p), p);
});
