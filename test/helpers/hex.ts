/** Golden bytes written as hex text (whitespace ignored), as a Uint8Array. */
export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}
