/** Byte j of message m in gso.test.ts's traffic: distinct per message and position. */
export function patternByte(m: number, j: number): number {
  return (m * 37 + j * 13 + (j >>> 8) * 5 + 3) & 0xff;
}

/** The bytes of message m (len bytes), as the sender wrote them. */
export function patternBytes(m: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let j = 0; j < len; j++) b[j] = patternByte(m, j);
  return b;
}
