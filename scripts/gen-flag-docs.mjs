// Writes the flag table of docs/configuration.md from the FLAGS table in
// src/config/flags.ts (compiled: run after `npx tsc -p .`), between the
// markers <!-- flags:begin --> and <!-- flags:end -->.
//   node scripts/gen-flag-docs.mjs           rewrite the table
//   node scripts/gen-flag-docs.mjs --check   exit 1 when the doc is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const { FLAGS, flagEnvName } = await import(join(root, 'dist/src/config/flags.js'));
const DOC = join(root, 'docs/configuration.md');
const BEGIN = '<!-- flags:begin -->';
const END = '<!-- flags:end -->';

export function renderDefault(f) {
  if (f.type === 'list') return '(none)';
  if (f.type === 'string') return f.default === '' ? '""' : `\`${f.default}\``;
  return `\`${String(f.default)}\``;
}

function cell(s) {
  return s.replace(/\|/g, '\\|');
}

export function renderTable() {
  const rows = [
    '| flag | type | default | env | what it does |',
    '|---|---|---|---|---|',
  ];
  for (const f of FLAGS) {
    let what = f.help;
    if (f.type === 'list') what += ' Repeatable.';
    if (f.weft === true) what = `**weft only.** ${what}`;
    if (f.ignored !== undefined) what = `*Accepted for flanneld compatibility; ignored by weft: ${f.ignored}.* ${what}`;
    const env = f.env === false ? '—' : `\`${flagEnvName(f.name)}\`${f.envSplit === true ? ' (comma-separated)' : ''}`;
    rows.push(`| \`--${f.name}\` | ${f.type} | ${renderDefault(f)} | ${env} | ${cell(what)} |`);
  }
  return `${rows.join('\n')}\n`;
}

const text = readFileSync(DOC, 'utf8');
const b = text.indexOf(BEGIN);
const e = text.indexOf(END);
if (b < 0 || e < b) {
  console.error(`gen-flag-docs: ${DOC} lacks the ${BEGIN} … ${END} markers`);
  process.exit(1);
}
const next = `${text.slice(0, b + BEGIN.length)}\n${renderTable()}${text.slice(e)}`;
if (process.argv.includes('--check')) {
  if (next !== text) {
    console.error('gen-flag-docs: docs/configuration.md is stale: run `npx tsc -p . && node scripts/gen-flag-docs.mjs`');
    process.exit(1);
  }
  console.log('gen-flag-docs: docs/configuration.md matches src/config/flags.ts');
} else if (next !== text) {
  writeFileSync(DOC, next);
  console.log('gen-flag-docs: docs/configuration.md updated');
}
