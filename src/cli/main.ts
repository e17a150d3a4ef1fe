/** Entry point of the `weft` command. */
export async function main(argv: string[]): Promise<number> {
  process.stderr.write(`weft: not implemented yet (${argv.join(' ')})\n`);
  return 2;
}
