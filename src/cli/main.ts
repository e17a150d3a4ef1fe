/**
 * The `weft` command. Without a subcommand it is the daemon and takes
 * flanneld's flags as written in existing DaemonSets, so it can stand where
 * /opt/bin/flanneld stood.
 */
import { isWeftError } from '../errors.js';
import { formatHelp, parseFlags } from '../config/flags.js';
import { Daemon, VERSION } from '../control/daemon.js';
import { runStatus } from './status.js';
import { runDemo } from './demo.js';
import { runTop } from './top.js';
import { runInstallCni } from './install-cni.js';

const SUBCOMMANDS = ['status', 'top', 'demo', 'install-cni', 'version', 'help'] as const;

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} weft: ${msg}\n`);
}

export async function main(argv: string[]): Promise<number> {
  const sub = (SUBCOMMANDS as readonly string[]).includes(argv[0] ?? '') ? argv[0] : null;
  try {
    switch (sub) {
      case 'version':
        process.stdout.write(`weft ${VERSION}\n`);
        return 0;
      case 'help':
        process.stdout.write(usage());
        return 0;
      case 'status':
        return await runStatus(argv.slice(1));
      case 'top':
        return await runTop(argv.slice(1));
      case 'install-cni':
        return await runInstallCni(argv.slice(1));
      case 'demo':
        return await runDemo(argv.slice(1));
      default:
        return await runDaemon(argv);
    }
  } catch (e) {
    if (isWeftError(e)) {
      process.stderr.write(`weft: ${e.message}\n`);
      return e.code === 'EUSAGE' ? 2 : 1;
    }
    throw e;
  }
}

function usage(): string {
  return `weft ${VERSION} — flannel-compatible overlay daemon with a userspace data plane

usage:
  weft [flags]            run the daemon (flanneld's flags)
  weft status [--json] [--control-socket PATH]
  weft top [--interval=S] [--once] [--control-socket PATH]
  weft demo               two hosts in network namespaces, pod-to-pod traffic (root)
  weft install-cni [--src=PATH] [--dest=PATH] [--cni-bin-dir=DIR]
  weft version

flags:
${formatHelp()}`;
}

async function runDaemon(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags(argv, process.env);
  if (flags.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (flags.help) {
    process.stdout.write(usage());
    return 0;
  }
  if (positionals.length > 0) {
    process.stderr.write(`weft: unexpected argument "${positionals[0]}"; subcommands are ${SUBCOMMANDS.join(', ')}\n`);
    return 2;
  }
  const daemon = new Daemon(flags, log);
  const onSignal = (sig: string) => {
    log(`${sig}: shutting down`);
    void daemon.stop(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await daemon.start();
  return await daemon.finished;
}
