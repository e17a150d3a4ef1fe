/**
 * The `weft` command. Without a subcommand it is the daemon and takes
 * flanneld's flags as written in existing DaemonSets, so it can stand where
 * /opt/bin/flanneld stood.
 */
import { isWeftError } from '../errors.js';
import { formatEffectiveFlags, formatHelp, parseFlags, type Flags } from '../config/flags.js';
import { createLog, type LogFormat } from '../log.js';
import { Daemon, VERSION } from '../control/daemon.js';
import { runStatus, STATUS_COMMAND } from './status.js';
import { DEMO_COMMAND, runDemo } from './demo.js';
import { runTop, TOP_COMMAND } from './top.js';
import { commandUsage, parseCommandArgs, type Command } from './args.js';
import { runInstallCni } from './install-cni.js';

const SUBCOMMANDS = ['status', 'top', 'demo', 'install-cni', 'version', 'help'] as const;

const VERSION_COMMAND: Command = { name: 'version', summary: 'Print weft\'s version (the same as --version).', specs: [] };

export async function main(argv: string[]): Promise<number> {
  const sub = (SUBCOMMANDS as readonly string[]).includes(argv[0] ?? '') ? argv[0] : null;
  try {
    switch (sub) {
      case 'version': {
        const args = parseCommandArgs(VERSION_COMMAND, argv.slice(1));
        process.stdout.write(args === 'help' ? commandUsage(VERSION_COMMAND) : `${VERSION}\n`);
        return 0;
      }
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
  const line = (left: string, text: string): string => `  ${left.padEnd(22)} ${text}`;
  const commands = [STATUS_COMMAND, TOP_COMMAND, DEMO_COMMAND, VERSION_COMMAND].map((c) => line(`weft ${c.name}`, c.summary));
  return `weft ${VERSION} — flannel-compatible overlay daemon with a userspace data plane

usage:
${line('weft [flags]', 'run the daemon (flanneld\'s flags, below)')}
${commands.join('\n')}
${line('weft install-cni', 'install the CNI conflist (the DaemonSet\'s init step)')}
${line('weft <command> --help', 'that command\'s flags')}

flags:
${formatHelp()}`;
}

async function runDaemon(argv: string[]): Promise<number> {
  let parsed: { flags: Flags; positionals: string[] };
  try {
    parsed = parseFlags(argv, process.env);
  } catch (e) {
    // The flags that would pick the log format did not parse: klog's text.
    if (!isWeftError(e)) throw e;
    createLog({ format: 'text', verbosity: 0 }).fatal(e.message);
    return e.code === 'EUSAGE' ? 2 : 1;
  }
  const { flags, positionals } = parsed;
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
  const log = createLog({ format: flags.logFormat as LogFormat, verbosity: flags.v });
  log.info(`weft ${VERSION} starting (node ${process.version}): ${formatEffectiveFlags(flags)}`);
  const daemon = new Daemon(flags, log);
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      // A second signal: the operator does not want to wait for the cleanup.
      log.warn(`${sig} again: exiting at once, without cleaning up`);
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15));
    }
    signalled = true;
    log.info(`${sig}: shutting down`);
    void daemon.stop(0);
  };
  // SIGHUP too: a daemon has no terminal to reload for, and dying on it skipped the cleanup.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  try {
    await daemon.start();
  } catch (e) {
    if (isWeftError(e, 'ESTOPPED')) {
      log.info('exiting cleanly');
      return 0;
    }
    // Start-up errors are F lines with the message they always had.
    log.fatal(e instanceof Error ? e.message : String(e));
    return isWeftError(e) && e.code === 'EUSAGE' ? 2 : 1;
  }
  const code = await daemon.finished;
  log.info(code === 0 ? 'exiting cleanly' : `exiting with code ${code}`);
  return code;
}
