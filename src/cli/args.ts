/**
 * The subcommands' own flags (status, top, demo, version), in the daemon's
 * Go syntax: --name=value, --name value, -name; booleans bare or =true /
 * =false. Each subcommand has a small table; --help or -h anywhere asks
 * for its usage, which the caller prints without doing anything else.
 */
import { WeftError } from '../errors.js';
import { FLAGS, flagEnvName, parseGoBool } from '../config/flags.js';

export interface ArgSpec {
  readonly name: string;
  readonly type: 'bool' | 'string' | 'number';
  readonly default: boolean | string | number;
  /** For a string: the values allowed (others are a usage error). */
  readonly oneOf?: readonly string[];
  readonly help: string;
}

export type ArgValues = Record<string, boolean | string | number>;

export interface Command {
  readonly name: string;
  /** One line: what it does. */
  readonly summary: string;
  readonly specs: readonly ArgSpec[];
}

export function commandUsage(c: Command): string {
  const lines = [`usage: weft ${c.name}${c.specs.length > 0 ? ' [flags]' : ''}`, '', c.summary];
  if (c.specs.length > 0) lines.push('', 'flags:');
  for (const s of c.specs) {
    const value = s.type === 'bool' ? '' : s.oneOf ? `=${s.oneOf.join('|')}` : `=${s.type === 'number' ? 'N' : 'VALUE'}`;
    lines.push(`  --${s.name}${value}`, `        ${s.help} (default ${JSON.stringify(s.default)})`);
  }
  return `${lines.join('\n')}\n`;
}

function usage(c: Command, why: string): never {
  throw new WeftError('EUSAGE', `${c.name}: ${why} (weft ${c.name} --help lists its flags)`);
}

/** The values, or 'help' when --help / -h was given. Throws EUSAGE naming the command. */
export function parseCommandArgs(c: Command, argv: readonly string[]): ArgValues | 'help' {
  if (argv.some((a) => a === '--help' || a === '-help' || a === '-h' || a === '--h')) return 'help';
  const out: ArgValues = {};
  for (const s of c.specs) out[s.name] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(a);
    if (m === null) usage(c, `unexpected argument ${JSON.stringify(a)}`);
    const spec = c.specs.find((s) => s.name === m[1]);
    if (spec === undefined) usage(c, `unknown flag --${m[1]}`);
    let text = m[2];
    if (spec.type === 'bool') {
      const b = parseGoBool(text ?? 'true');
      if (b === undefined) usage(c, `--${spec.name}=${text}: expected true or false`);
      out[spec.name] = b;
      continue;
    }
    if (text === undefined) {
      if (i + 1 >= argv.length) usage(c, `--${spec.name} needs a value (--${spec.name}=…)`);
      text = argv[++i]!;
    }
    if (spec.type === 'number') {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) usage(c, `--${spec.name}=${text}: expected a number`);
      out[spec.name] = n;
    } else {
      if (spec.oneOf !== undefined && !spec.oneOf.includes(text)) usage(c, `--${spec.name}=${text}: use one of ${spec.oneOf.join(', ')}`);
      out[spec.name] = text;
    }
  }
  return out;
}

/** --control-socket for the commands that talk to a daemon: the daemon's default, or FLANNELD_CONTROL_SOCKET as the daemon reads it. */
export function controlSocketArg(env: Record<string, string | undefined> = process.env): ArgSpec {
  const daemonDefault = String(FLAGS.find((f) => f.name === 'control-socket')!.default);
  const fromEnv = env[flagEnvName('control-socket')];
  return {
    name: 'control-socket', type: 'string', default: fromEnv !== undefined && fromEnv !== '' ? fromEnv : daemonDefault,
    help: 'the daemon\'s control socket (its --control-socket)',
  };
}
