/**
 * ip-masq and forward rules, as flanneld installs them (pkg/trafficmngr).
 *
 * iptables: chain FLANNEL-POSTRTG (nat, jumped to from POSTROUTING, every
 * rule commented "flanneld masq") and FLANNEL-FWD (filter, jumped to from
 * FORWARD, "flanneld forward"). nftables (EnableNFTables): table
 * `ip flannel-ipv4` with base chains `postrtg` and `forward`.
 *
 * The rule text is produced by pure functions and compared with what
 * `iptables-save` / `nft list table` print, so the expected lists here are
 * in the tools' own output form (byte for byte what they print back).
 *
 * One rebuild is one atomic batch: `iptables-restore --noflush` (a `:CHAIN`
 * line flushes our chain, `-D` lines remove every copy of our jump, then
 * the jump and the chain's rules are appended), or one `nft -f` transaction
 * (add + delete + re-create the table). Anything carrying our comment that
 * is not in the current set — rules of an old Network or lease, the
 * pre-0.20 flannel rules that sat directly in POSTROUTING — goes with it.
 *
 * Where weft differs from flanneld's nftables code, on purpose:
 * - the kube-proxy mark is matched under its mask (`meta mark & 0x4000 ==
 *   0x4000`), as the iptables rule `--mark 0x4000/0x4000` does; flanneld's
 *   nft rule compares the whole mark.
 * - the third return rule is `saddr != Network daddr lease`, as in the
 *   iptables set (DESIGN §1: !Network→pod); flanneld's nft rule has
 *   `saddr != lease daddr Network`, which makes the last masquerade rule
 *   unreachable.
 */
import { runBounded } from '../child.js';
import { WeftError } from '../errors.js';
import { formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import type { Log } from '../log.js';

export interface CommandResult { code: number; stdout: string; stderr: string }
/** Runs argv (argv[0] looked up in PATH), writing `input` to its stdin when given. */
export type CommandRunner = (argv: readonly string[], input?: string) => Promise<CommandResult>;

const COMMAND_TIMEOUT_MS = 30_000;

/**
 * Runs argv bounded in time and output; rejects only when it cannot be
 * started. One that hangs is killed and reported as a failed run (code 128,
 * stderr says so).
 */
export const defaultRunner: CommandRunner = async (argv, input) => {
  const r = await runBounded(argv, { timeoutMs: COMMAND_TIMEOUT_MS, input });
  const stderr = r.timedOut ? `${r.stderr}(timed out after ${COMMAND_TIMEOUT_MS} ms, killed)` : r.stderr;
  return { code: r.code, stdout: r.stdout, stderr };
};

export const MASQ_COMMENT = 'flanneld masq';
export const FORWARD_COMMENT = 'flanneld forward';
export const POSTRTG_CHAIN = 'FLANNEL-POSTRTG';
export const FORWARD_CHAIN = 'FLANNEL-FWD';
/** kube-proxy's masquerade mark: its packets are masqueraded by kube-proxy, not twice. */
export const KUBE_PROXY_MARK = '0x4000/0x4000';
const MULTICAST = '224.0.0.0/4';
export const NFT_TABLE = 'flannel-ipv4';
export const NFT_POSTRTG = 'postrtg';
export const NFT_FORWARD = 'forward';

export interface RuleSetOptions {
  network: Ipv4Prefix;
  lease: Ipv4Prefix;
  /** --ip-masq: the FLANNEL-POSTRTG set. */
  masq: boolean;
  /** --iptables-forward-rules: the FLANNEL-FWD set. */
  forwardRules: boolean;
  /** Add --random-fully / fully-random (decided by probing, see MasqRules). */
  randomFully: boolean;
}

/** One of our chains and the jump to it, in iptables-save form (text after `-A <chain> `). */
export interface IptablesChainSpec {
  table: 'nat' | 'filter';
  parent: 'POSTROUTING' | 'FORWARD';
  chain: string;
  comment: string;
  /** false: the chain and its jump must not exist (flag off, or stop). */
  wanted: boolean;
  jump: string;
  rules: string[];
}

const c = (comment: string) => `-m comment --comment "${comment}"`;

/** flanneld's masqRules() for IPv4, in order; rules[] excludes the jump. */
export function iptablesMasqSpec(o: RuleSetOptions): IptablesChainSpec {
  const n = formatIpv4Prefix(o.network);
  const l = formatIpv4Prefix(o.lease);
  const masq = o.randomFully ? '-j MASQUERADE --random-fully' : '-j MASQUERADE';
  const m = c(MASQ_COMMENT);
  return {
    table: 'nat', parent: 'POSTROUTING', chain: POSTRTG_CHAIN, comment: MASQ_COMMENT, wanted: o.masq,
    jump: `${m} -j ${POSTRTG_CHAIN}`,
    rules: [
      `-m mark --mark ${KUBE_PROXY_MARK} ${m} -j RETURN`,
      `-s ${l} -d ${n} ${m} -j RETURN`,
      `-s ${n} -d ${l} ${m} -j RETURN`,
      `! -s ${n} -d ${l} ${m} -j RETURN`,
      `-s ${n} ! -d ${MULTICAST} ${m} ${masq}`,
      `! -s ${n} -d ${n} ${m} ${masq}`,
    ],
  };
}

/** flanneld's forwardRules(). */
export function iptablesForwardSpec(o: RuleSetOptions): IptablesChainSpec {
  const n = formatIpv4Prefix(o.network);
  const f = c(FORWARD_COMMENT);
  return {
    table: 'filter', parent: 'FORWARD', chain: FORWARD_CHAIN, comment: FORWARD_COMMENT, wanted: o.forwardRules,
    jump: `${f} -j ${FORWARD_CHAIN}`,
    rules: [`-s ${n} ${f} -j ACCEPT`, `-d ${n} ${f} -j ACCEPT`],
  };
}

export function iptablesSpecs(o: RuleSetOptions): IptablesChainSpec[] {
  return [iptablesMasqSpec(o), iptablesForwardSpec(o)];
}

/** The full expected `-A` lines of a spec (jump first), as iptables-save prints them. */
export function iptablesLines(spec: IptablesChainSpec): string[] {
  if (!spec.wanted) return [];
  return [`-A ${spec.parent} ${spec.jump}`, ...spec.rules.map((r) => `-A ${spec.chain} ${r}`)];
}

export interface SavedTable {
  chains: Set<string>;
  rules: { chain: string; spec: string }[];
}

/** Parses `iptables-save` output into tables → chains and `-A` rules. */
export function parseIptablesSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let cur: SavedTable | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      cur = { chains: new Set(), rules: [] };
      tables.set(line.slice(1), cur);
    } else if (line === 'COMMIT') {
      cur = null;
    } else if (cur !== null && line.startsWith(':')) {
      cur.chains.add(line.slice(1).split(' ')[0]!);
    } else if (cur !== null && line.startsWith('-A ')) {
      const sp = line.indexOf(' ', 3);
      cur.rules.push(sp < 0 ? { chain: line.slice(3), spec: '' } : { chain: line.slice(3, sp), spec: line.slice(sp + 1) });
    }
  }
  return tables;
}

export interface IptablesDiff {
  intact: boolean;
  /** Expected `-A` lines not present. */
  missing: string[];
  /** Present `-A` lines that are ours but not expected (old Network/lease, duplicates, order). */
  stale: string[];
  /** Our rules in the parent chain (jumps and old-style rules), as `-A` specs to delete. */
  parentOurs: string[];
  chainExists: boolean;
}

function isOursInParent(spec: IptablesChainSpec, ruleSpec: string): boolean {
  return ruleSpec.includes(`--comment "${spec.comment}"`) || ruleSpec.endsWith(`-j ${spec.chain}`)
    || ruleSpec.includes(`-j ${spec.chain} `);
}

/** Compares one spec with a parsed table (undefined = table empty/absent). */
export function diffIptables(spec: IptablesChainSpec, saved: SavedTable | undefined): IptablesDiff {
  const parentOurs = (saved?.rules ?? []).filter((r) => r.chain === spec.parent && isOursInParent(spec, r.spec))
    .map((r) => r.spec);
  const chainRules = (saved?.rules ?? []).filter((r) => r.chain === spec.chain).map((r) => r.spec);
  const chainExists = saved?.chains.has(spec.chain) ?? false;
  const have = [...parentOurs.map((s) => `-A ${spec.parent} ${s}`), ...chainRules.map((s) => `-A ${spec.chain} ${s}`)];
  const want = iptablesLines(spec);
  const missing = want.filter((l) => !have.includes(l));
  // Multiset difference: a duplicate of an expected rule is stale too.
  const pool = [...want];
  const stale: string[] = [];
  for (const l of have) {
    const i = pool.indexOf(l);
    if (i >= 0) pool.splice(i, 1); else stale.push(l);
  }
  const exact = spec.wanted
    ? chainExists && parentOurs.length === 1 && parentOurs[0] === spec.jump
      && chainRules.length === spec.rules.length && chainRules.every((r, i) => r === spec.rules[i])
    : !chainExists && parentOurs.length === 0;
  return { intact: exact, missing, stale, parentOurs, chainExists };
}

/**
 * The `iptables-restore --noflush` input that makes the live table equal
 * the specs (all specs must be of `table`). `:CHAIN - [0:0]` creates or
 * flushes our chain; every copy of our parent-chain rules is deleted
 * (exact text from iptables-save, so -D matches) and the one jump appended,
 * as flanneld does (-A).
 */
export function iptablesRestoreTable(table: string, specs: IptablesChainSpec[], saved: SavedTable | undefined): string {
  const out: string[] = [`*${table}`];
  for (const s of specs) if (s.wanted) out.push(`:${s.chain} - [0:0]`);
  for (const s of specs) {
    const d = diffIptables(s, saved);
    for (const p of d.parentOurs) out.push(`-D ${s.parent} ${p}`);
    if (s.wanted) {
      out.push(`-A ${s.parent} ${s.jump}`);
      for (const r of s.rules) out.push(`-A ${s.chain} ${r}`);
    } else if (d.chainExists) {
      out.push(`-F ${s.chain}`, `-X ${s.chain}`);
    }
  }
  out.push('COMMIT');
  return out.join('\n') + '\n';
}

// ---- nftables ----

export interface NftChainSpec {
  name: string;
  /** The chain's declaration body (type, hook, priority, comment). */
  decl: string;
  rules: string[];
}

/** Our chains of table ip flannel-ipv4; rules in `nft list` form. */
export function nftChains(o: RuleSetOptions): NftChainSpec[] {
  const n = formatIpv4Prefix(o.network);
  const l = formatIpv4Prefix(o.lease);
  const masq = o.randomFully ? 'masquerade fully-random' : 'masquerade';
  const chains: NftChainSpec[] = [];
  if (o.masq) {
    chains.push({
      name: NFT_POSTRTG,
      decl: 'type nat hook postrouting priority srcnat ; comment "chain to manage traffic masquerading by flannel" ;',
      rules: [
        'meta mark & 0x00004000 == 0x00004000 return',
        `ip saddr ${l} ip daddr ${n} return`,
        `ip saddr ${n} ip daddr ${l} return`,
        `ip saddr != ${n} ip daddr ${l} return`,
        `ip saddr ${n} ip daddr != ${MULTICAST} ${masq}`,
        `ip saddr != ${n} ip daddr ${n} ${masq}`,
      ],
    });
  }
  if (o.forwardRules) {
    chains.push({
      name: NFT_FORWARD,
      decl: 'type filter hook forward priority filter ; comment "chain to accept flannel traffic" ;',
      rules: [`ip saddr ${n} accept`, `ip daddr ${n} accept`],
    });
  }
  return chains;
}

/**
 * One `nft -f` transaction: `add` then `delete` makes the delete safe when
 * the table is absent, and re-creating it in the same transaction leaves no
 * moment without rules. With no chains wanted the table is just removed.
 */
export function nftScript(chains: NftChainSpec[]): string {
  const t = `ip ${NFT_TABLE}`;
  const out = [`add table ${t}`, `delete table ${t}`];
  if (chains.length > 0) {
    out.push(`add table ${t} { comment "rules for ${NFT_TABLE}" ; }`);
    for (const ch of chains) {
      out.push(`add chain ${t} ${ch.name} { ${ch.decl} }`);
      for (const r of ch.rules) out.push(`add rule ${t} ${ch.name} ${r}`);
    }
  }
  return out.join('\n') + '\n';
}

/** Parses `nft list table ip flannel-ipv4` into chain → rule lines (declarations skipped). */
export function parseNftTable(text: string): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  let cur: string[] | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim().replace(/\s+/g, ' ');
    if (line === '') continue;
    const m = /^chain (\S+) \{$/.exec(line);
    if (m) { cur = []; chains.set(m[1]!, cur); continue; }
    if (line === '}') { cur = null; continue; }
    if (cur === null) continue;
    if (/^(comment |type |policy )/.test(line)) continue;
    cur.push(line);
  }
  return chains;
}

export function nftIntact(chains: NftChainSpec[], listed: Map<string, string[]> | null): boolean {
  if (listed === null) return chains.length === 0;
  if (chains.length === 0) return false;
  if (listed.size !== chains.length) return false;
  return chains.every((ch) => {
    const got = listed.get(ch.name);
    return got !== undefined && got.length === ch.rules.length && got.every((r, i) => r === ch.rules[i]);
  });
}

// ---- the manager ----

export interface MasqOptions {
  network: Ipv4Prefix;
  lease: Ipv4Prefix;
  /** net-conf EnableNFTables. */
  nftables: boolean;
  /** --ip-masq (default true): the masquerade set. */
  masq?: boolean;
  /** --iptables-forward-rules. */
  forwardRules: boolean;
  /** false = --ip-masq-fully-random-disable; otherwise used when the tools support it. */
  randomFully?: boolean;
  /** --iptables-resync. */
  resyncSeconds: number;
  log: Log;
  /** Injected in tests to run the tools inside a namespace. */
  run?: CommandRunner;
}

/** iptables ≥ 1.6.2 has --random-fully and iptables-restore --wait (go-iptables' test). */
export function iptablesVersionAtLeast162(versionText: string): boolean {
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(versionText);
  if (!m) return false;
  const [a, b, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return a > 1 || (a === 1 && (b > 6 || (b === 6 && d >= 2)));
}

const NFT_PROBE = 'add table ip weft-probe\n'
  + 'add chain ip weft-probe p { type nat hook postrouting priority srcnat ; }\n'
  + 'add rule ip weft-probe p ip saddr != 127.0.0.1 masquerade fully-random\n';

export class MasqRules {
  private readonly run: CommandRunner;
  private readonly opts: RuleSetOptions;
  private hasWait = false;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private started = false;
  private stopped = false;
  /** Times the rules were found broken and rebuilt after start. */
  rebuilds = 0;

  constructor(private readonly o: MasqOptions) {
    this.run = o.run ?? defaultRunner;
    if (!Number.isFinite(o.resyncSeconds) || o.resyncSeconds <= 0) {
      throw new WeftError('EUSAGE', `--iptables-resync ${o.resyncSeconds}: give a number of seconds ≥ 1`);
    }
    this.opts = {
      network: o.network, lease: o.lease, masq: o.masq ?? true, forwardRules: o.forwardRules, randomFully: false,
    };
  }

  /** The rule set in force (randomFully decided at start()). */
  get ruleSet(): Readonly<RuleSetOptions> { return this.opts; }

  /** Probes the tools, removes stale rules, installs ours and starts the resync timer. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.o.nftables) {
      await this.exec(['nft', '--version']);
      this.opts.randomFully = this.o.randomFully !== false
        && (await this.tryRun(['nft', '-c', '-f', '-'], NFT_PROBE)).code === 0;
      // A node moved from iptables mode: flanneld's chains would masquerade twice.
      await this.removeIptablesBestEffort();
    } else {
      const v = await this.exec(['iptables', '--version']);
      const modern = iptablesVersionAtLeast162(v.stdout + v.stderr);
      this.hasWait = modern;
      this.opts.randomFully = this.o.randomFully !== false && modern;
      await this.removeNftBestEffort();
    }
    const what = [this.opts.masq ? 'masquerade' : '', this.opts.forwardRules ? 'forward' : ''].filter(Boolean).join(' and ');
    this.o.log.info(`${this.o.nftables ? 'nftables' : 'iptables'}: ${what || 'no'} rules for ${formatIpv4Prefix(this.o.network)}`
      + ` (lease ${formatIpv4Prefix(this.o.lease)})${this.opts.randomFully ? ', random-fully' : ''}`);
    await this.serial(() => this.ensure(true));
    this.schedule();
  }

  /** Checks the live rules; rebuilds them when anything is missing or differs. True = they were intact. */
  check(): Promise<boolean> {
    return this.serial(() => this.ensure(false));
  }

  /** Stops the resync and removes our rules (current flanneld cleans up on exit too). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.started) return;
    await this.serial(async () => {
      const off: RuleSetOptions = { ...this.opts, masq: false, forwardRules: false };
      if (this.o.nftables) await this.applyNft(nftChains(off), true);
      else await this.applyIptables(iptablesSpecs(off));
    });
  }


  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.check().catch((e: unknown) => {
        this.o.log.warn(`masq rules check failed (will retry): ${e instanceof Error ? e.message : String(e)}`);
      }).finally(() => this.schedule());
    }, this.o.resyncSeconds * 1000);
    this.timer.unref();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async ensure(first: boolean): Promise<boolean> {
    if (this.o.nftables) {
      const chains = nftChains(this.opts);
      const listed = await this.listNft();
      if (nftIntact(chains, listed)) return true;
      if (!first) this.o.log.warn('nftables: table ip flannel-ipv4 is missing rules or differs; rebuilding it');
      await this.applyNft(chains, false);
    } else {
      const specs = iptablesSpecs(this.opts);
      const saved = await this.save();
      const diffs = specs.map((s) => diffIptables(s, saved.get(s.table)));
      if (diffs.every((d) => d.intact)) return true;
      const missing = diffs.flatMap((d) => d.missing);
      const stale = diffs.flatMap((d) => d.stale);
      if (!first || stale.length > 0) {
        this.o.log.warn(`iptables: rebuilding flannel rules (${missing.length} missing${missing.length ? `: ${missing[0]}` : ''}`
          + `${stale.length ? `; ${stale.length} stale removed: ${stale[0]}` : ''})`);
      }
      await this.applyIptables(specs, saved);
    }
    if (!first) this.rebuilds++;
    return false;
  }

  private async save(): Promise<Map<string, SavedTable>> {
    const out = new Map<string, SavedTable>();
    for (const t of ['nat', 'filter']) {
      const r = await this.exec(['iptables-save', '-t', t]);
      const parsed = parseIptablesSave(r.stdout).get(t);
      if (parsed) out.set(t, parsed);
    }
    return out;
  }

  private async applyIptables(specs: IptablesChainSpec[], saved?: Map<string, SavedTable>): Promise<void> {
    const s = saved ?? await this.save();
    let input = '';
    for (const table of ['nat', 'filter'] as const) {
      const mine = specs.filter((x) => x.table === table);
      const t = s.get(table);
      // Nothing wanted and nothing there: do not even create the table.
      if (mine.every((x) => !x.wanted && diffIptables(x, t).intact)) continue;
      input += iptablesRestoreTable(table, mine, t);
    }
    if (input === '') return;
    await this.exec(['iptables-restore', ...(this.hasWait ? ['-w'] : []), '--noflush'], input);
  }

  private async listNft(): Promise<Map<string, string[]> | null> {
    const r = await this.tryRun(['nft', 'list', 'table', 'ip', NFT_TABLE]);
    if (r.code !== 0) {
      if (/No such file|does not exist/i.test(r.stderr)) return null;
      throw new WeftError('EMASQ', `nft list table ip ${NFT_TABLE} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
    return parseNftTable(r.stdout);
  }

  private async applyNft(chains: NftChainSpec[], onlyIfPresent: boolean): Promise<void> {
    if (onlyIfPresent && (await this.listNft()) === null) return;
    await this.exec(['nft', '-f', '-'], nftScript(chains));
  }

  private async removeIptablesBestEffort(): Promise<void> {
    try {
      const off: RuleSetOptions = { ...this.opts, masq: false, forwardRules: false };
      await this.applyIptables(iptablesSpecs(off));
    } catch { /* no iptables on this node: nothing of flanneld's to remove */ }
  }

  private async removeNftBestEffort(): Promise<void> {
    try {
      if ((await this.listNft()) !== null) {
        this.o.log.info(`nftables: removing table ip ${NFT_TABLE} left from EnableNFTables mode`);
        await this.exec(['nft', '-f', '-'], nftScript([]));
      }
    } catch { /* no nft on this node */ }
  }

  private async tryRun(argv: readonly string[], input?: string): Promise<CommandResult> {
    try {
      return await this.run(argv, input);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') {
        const pkg = argv[0] === 'nft' ? 'nftables' : 'iptables';
        const alt = argv[0] === 'nft' ? 'or remove "EnableNFTables" from the net-conf' : 'or run with --ip-masq=false --iptables-forward-rules=false';
        throw new WeftError('EMASQ', `${argv[0]} is not installed: install ${pkg} (Debian: apt-get install ${pkg}) ${alt}`);
      }
      throw new WeftError('EMASQ', `cannot run ${argv.join(' ')}: ${err.message}`, { cause: e });
    }
  }

  private async exec(argv: readonly string[], input?: string): Promise<CommandResult> {
    const r = await this.tryRun(argv, input);
    if (r.code !== 0) {
      const why = (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`).slice(0, 1000);
      const hint = r.code === 4 || /Permission denied|Operation not permitted/i.test(why)
        ? ' (weft needs CAP_NET_ADMIN for its masquerade/forward rules)' : '';
      throw new WeftError('EMASQ', `${argv.join(' ')} failed: ${why}${hint}`);
    }
    return r;
  }
}
