/**
 * `install-conf SRC DEST`: the entry point flannel's image has at
 * /opt/bin/install-conf (v0.28.6+), which the install-cni init container of
 * kube-flannel.yml and of flannel's Helm chart runs as
 * `/opt/bin/install-conf /etc/kube-flannel/cni-conf.json /etc/cni/net.d/10-flannel.conflist`.
 *
 * The copy is atomic, as flannel's: SRC is written to `.NAME.tmp` beside
 * DEST (NAME = DEST's base name), flushed, given SRC's mode and renamed over
 * DEST, so the container runtime never reads half a conflist. DEST's
 * directory is not created: in a pod it is the host's, mounted.
 *
 * Exit 0: installed. Exit 1: SRC unreadable or DEST not writable. Exit 2:
 * bad arguments.
 */
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { WeftError, isWeftError } from '../errors.js';

export const INSTALL_CONF_USAGE = `usage: install-conf SRC DEST
  Copies SRC to DEST atomically (through .NAME.tmp in DEST's directory, then a rename),
  with SRC's mode. flannel's manifests run:
    /opt/bin/install-conf /etc/kube-flannel/cni-conf.json /etc/cni/net.d/10-flannel.conflist
`;

/** The temp file flannel's install-conf writes: `.NAME.tmp` beside DEST. */
export function installConfTempPath(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.tmp`);
}

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code !== undefined ? `${err.code}: ${err.message}` : String(e);
}

/** What to do about a failed write into DEST's directory, by errno. */
function writeFix(dir: string, code: string | undefined): string {
  switch (code) {
    case 'ENOENT':
      return `${dir} does not exist: mount the host's ${dir} into this container (kube-flannel.yml's "cni" hostPath volume) or create it`;
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return `${dir} is not writable here: mount the host's ${dir} read-write and run as root (kube-flannel.yml's init container does both)`;
    case 'EISDIR':
      return 'the destination is a directory: DEST must be the file to write, e.g. /etc/cni/net.d/10-flannel.conflist';
    default:
      return `check that ${dir} is a writable directory with free space`;
  }
}

/**
 * Copies src to dest through installConfTempPath(dest) and a rename; dest
 * gets src's permission bits. Throws WeftError 'EINSTALL' naming the file
 * and the fix; the temp file never survives a failure.
 */
export async function installConf(src: string, dest: string): Promise<void> {
  let bytes: Buffer;
  let mode: number;
  try {
    // stat follows links: a ConfigMap key is a symlink into ..data/.
    mode = (await stat(src)).mode & 0o7777;
    bytes = await readFile(src);
  } catch (e) {
    throw new WeftError(
      'EINSTALL',
      `cannot read ${src} (${errnoText(e)}): check the path; in kube-flannel.yml it is the kube-flannel-cfg ConfigMap's ` +
        'cni-conf.json, mounted at /etc/kube-flannel/',
      { cause: e },
    );
  }
  const dir = dirname(dest);
  const tmp = installConfTempPath(dest);
  try {
    // A temp file left by a killed run is ours to replace (flannel does the same).
    await rm(tmp, { force: true });
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
      // Before chmod and rename: a crash then leaves the old DEST or the new, never a torn one.
      await fh.sync();
      await fh.chmod(mode);
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new WeftError(
      'EINSTALL',
      `cannot write ${dest} (${errnoText(e)}): ${writeFix(dir, (e as NodeJS.ErrnoException).code)}`,
      { cause: e },
    );
  }
  // The rename is durable once the directory is flushed; not every filesystem allows that.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* the file is in place either way */
  }
}

export interface InstallConfIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const STD_IO: InstallConfIo = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

export async function runInstallConf(argv: readonly string[], io: InstallConfIo = STD_IO): Promise<number> {
  if (argv.length === 1 && ['-h', '-help', '--help'].includes(argv[0] as string)) {
    io.out(INSTALL_CONF_USAGE);
    return 0;
  }
  if (argv.length !== 2) {
    io.err(`install-conf: expected 2 arguments (SRC DEST), got ${argv.length}\n${INSTALL_CONF_USAGE}`);
    return 2;
  }
  const [src, dest] = argv as [string, string];
  if (src === '' || dest === '') {
    io.err(`install-conf: ${src === '' ? 'SRC' : 'DEST'} is empty\n${INSTALL_CONF_USAGE}`);
    return 2;
  }
  try {
    await installConf(src, dest);
  } catch (e) {
    if (isWeftError(e)) {
      io.err(`install-conf: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  io.out(`install-conf: installed ${dest} from ${src}\n`);
  return 0;
}
