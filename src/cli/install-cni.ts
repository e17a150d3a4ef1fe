/**
 * `weft install-cni`: the DaemonSet's init step. flannel's manifest does it
 * with `cp -f /etc/kube-flannel/cni-conf.json /etc/cni/net.d/10-flannel.conflist`;
 * weft checks the conflist first, writes it atomically and says whether the
 * CNI plugin binaries it names are installed — weft has no CNI plugin of its
 * own, the `flannel` binary comes from flannel's flannel-cni-plugin image.
 *
 *   weft install-cni [--src=PATH] [--dest=PATH] [--cni-bin-dir=DIR]
 *
 * Exit 0: installed (or already identical); warnings for missing plugin
 * binaries. Exit 1: the source is unreadable or not a conflist, or the
 * destination cannot be written. Exit 2: bad arguments.
 */
import { constants as fsc } from 'node:fs';
import { access, chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { WeftError, isWeftError } from '../errors.js';

export const INSTALL_CNI_DEFAULTS = {
  src: '/etc/kube-flannel/cni-conf.json',
  dest: '/etc/cni/net.d/10-flannel.conflist',
  cniBinDir: '/opt/cni/bin',
} as const;

/** The image flannel's own manifest uses to install /opt/cni/bin/flannel. */
export const FLANNEL_CNI_PLUGIN_IMAGE = 'ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3';

export interface InstallCniOptions {
  src: string;
  dest: string;
  cniBinDir: string;
}

export interface InstallCniResult {
  /** false when the destination already held the same bytes (not rewritten). */
  written: boolean;
  /** Plugin types the conflist names, in order, plus flannel's delegates. */
  plugins: string[];
  /** Binaries not found (or not executable) in cniBinDir. */
  missing: string[];
}

const USAGE = `usage: weft install-cni [--src=PATH] [--dest=PATH] [--cni-bin-dir=DIR]
  --src          conflist to install (default ${INSTALL_CNI_DEFAULTS.src}, the kube-flannel-cfg ConfigMap's cni-conf.json)
  --dest         where the container runtime reads it (default ${INSTALL_CNI_DEFAULTS.dest})
  --cni-bin-dir  where the CNI plugin binaries live (default ${INSTALL_CNI_DEFAULTS.cniBinDir})
`;

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code !== undefined ? `${err.code}: ${err.message}` : String(e);
}

/** Go-flag style: --name=value, --name value, -name; -h/--help. */
export function parseInstallCniArgs(argv: readonly string[]): InstallCniOptions | 'help' {
  const opts: InstallCniOptions = { ...INSTALL_CNI_DEFAULTS };
  const keys: Record<string, keyof InstallCniOptions> = { src: 'src', dest: 'dest', 'cni-bin-dir': 'cniBinDir' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const m = /^--?([a-z-]+)(?:=(.*))?$/s.exec(a);
    if (m === null) throw new WeftError('EUSAGE', `install-cni: unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
    const name = m[1] as string;
    if (name === 'h' || name === 'help') return 'help';
    const key = keys[name];
    if (key === undefined) throw new WeftError('EUSAGE', `install-cni: unknown flag --${name}\n${USAGE}`);
    let value = m[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new WeftError('EUSAGE', `install-cni: flag --${name} needs a value (--${name}=PATH)`);
      value = argv[++i] as string;
    }
    if (value === '') throw new WeftError('EUSAGE', `install-cni: flag --${name} needs a non-empty path`);
    opts[key] = value;
  }
  return opts;
}

/** Checks conflist text; returns the plugin types. Throws WeftError 'ECONFIG'. */
export function checkConflist(text: string, where: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new WeftError('ECONFIG', `${where} is not valid JSON (${(e as Error).message}); it should be the kube-flannel-cfg ConfigMap's cni-conf.json`, { cause: e });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new WeftError('ECONFIG', `${where} must be a CNI conflist object such as {"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel",…}]}`);
  }
  const plugins = (doc as Record<string, unknown>).plugins;
  if (!Array.isArray(plugins) || plugins.length === 0) {
    throw new WeftError(
      'ECONFIG',
      `${where} has no "plugins" array: the container runtime reads ${basename(INSTALL_CNI_DEFAULTS.dest)} as a conflist ` +
        '(a single-plugin .conf file is not what the ConfigMap key cni-conf.json holds)',
    );
  }
  const types: string[] = [];
  plugins.forEach((p: unknown, i: number) => {
    const type = typeof p === 'object' && p !== null ? (p as Record<string, unknown>).type : undefined;
    if (typeof type !== 'string' || type === '' || type.includes('/')) {
      throw new WeftError('ECONFIG', `${where}: plugins[${i}] needs a "type" naming a binary in the CNI bin directory, got ${JSON.stringify(type ?? null)}`);
    }
    types.push(type);
  });
  return types;
}

async function sameBytes(path: string, want: Buffer): Promise<boolean> {
  try {
    return (await readFile(path)).equals(want);
  } catch {
    return false;
  }
}

/** Validates, copies atomically (temp + rename, 0644) and checks the plugin binaries. */
export async function installCni(opts: InstallCniOptions): Promise<InstallCniResult> {
  let bytes: Buffer;
  try {
    bytes = await readFile(opts.src);
  } catch (e) {
    throw new WeftError(
      'EINSTALL',
      `cannot read ${opts.src} (${errnoText(e)}): mount the kube-flannel-cfg ConfigMap at ${dirname(opts.src)}/ or pass --src`,
      { cause: e },
    );
  }
  const types = checkConflist(bytes.toString('utf8'), opts.src);

  let written = false;
  if (!(await sameBytes(opts.dest, bytes))) {
    const dir = dirname(opts.dest);
    // libcni loads every *.conf, *.conflist and *.json in the directory, so
    // the temp name must not end in any of those: a half-written file would
    // otherwise be a candidate network config.
    const tmp = join(dir, `.${basename(opts.dest)}.weft-tmp-${process.pid}`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      const fh = await open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await chmod(tmp, 0o644); // the umask may have narrowed open()'s mode
      await rename(tmp, opts.dest);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new WeftError(
        'EINSTALL',
        `cannot write ${opts.dest} (${errnoText(e)}): mount the host's ${dir} into this container read-write, or pass --dest`,
        { cause: e },
      );
    }
    written = true;
  }

  // The flannel plugin delegates to bridge and host-local (its "delegate").
  const needed = [...types];
  if (types.includes('flannel')) for (const d of ['bridge', 'host-local']) if (!needed.includes(d)) needed.push(d);
  const missing: string[] = [];
  for (const t of needed) {
    try {
      await access(join(opts.cniBinDir, t), fsc.X_OK);
    } catch {
      missing.push(t);
    }
  }
  return { written, plugins: needed, missing };
}

export interface InstallCniIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const STD_IO: InstallCniIo = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

export async function runInstallCni(argv: string[], io: InstallCniIo = STD_IO): Promise<number> {
  try {
    const opts = parseInstallCniArgs(argv);
    if (opts === 'help') {
      io.out(USAGE);
      return 0;
    }
    const r = await installCni(opts);
    io.out(`weft install-cni: ${r.written ? 'installed' : 'unchanged (already identical)'} ${opts.dest} from ${opts.src}\n`);
    const present = r.plugins.filter((p) => !r.missing.includes(p));
    if (present.length > 0) io.out(`weft install-cni: CNI plugins present in ${opts.cniBinDir}: ${present.join(', ')}\n`);
    for (const m of r.missing) {
      const fix =
        m === 'flannel'
          ? `weft has no CNI plugin of its own: run flannel's init container first (image ${FLANNEL_CNI_PLUGIN_IMAGE}, ` +
            `cp -f /flannel ${join(opts.cniBinDir, 'flannel')}), as deploy/kube-weft.yml does`
          : `install the CNI reference plugins (containernetworking/plugins; kubeadm's kubernetes-cni package) into ${opts.cniBinDir}`;
      io.err(`weft install-cni: warning: ${join(opts.cniBinDir, m)} is missing or not executable; pods cannot get a network until it exists: ${fix}\n`);
    }
    return 0;
  } catch (e) {
    if (isWeftError(e)) {
      io.err(`weft install-cni: ${e.message}\n`);
      return e.code === 'EUSAGE' ? 2 : 1;
    }
    throw e;
  }
}
