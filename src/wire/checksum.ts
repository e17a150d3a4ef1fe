/**
 * The Internet checksum (RFC 1071): the ones-complement of the
 * ones-complement sum of the data taken as big-endian 16-bit words.
 *
 * Sums are carried in plain Numbers and folded every few thousand words so
 * they stay small integers (V8 Smis): exact for any length and no heap
 * numbers in the loop. Nothing here allocates.
 */

/** Words added between folds: 8192 * 0xffff + 0x1ffff < 2^30 (Smi range). */
const FOLD_EVERY_BYTES = 16384;

/**
 * Adds the bytes buf[off .. off+len) to a running ones-complement sum, as
 * big-endian 16-bit words; an odd trailing byte is padded with a zero low
 * byte. `sum` is a previous result (or any non-negative safe integer). The
 * result is partially folded (< 0x20000): pass it on to another onesSum or
 * to foldChecksum. Summing a region in pieces gives the same folded result
 * as summing it at once only if every piece but the last has even length.
 */
export function onesSum(buf: Uint8Array, off: number, len: number, sum = 0): number {
  let s = sum;
  while (s > 0x1ffff) s = s > 0xffffffff ? (s % 0x10000) + Math.floor(s / 0x10000) : (s & 0xffff) + (s >>> 16);
  let i = off;
  const end = off + len;
  while (i + 1 < end) {
    // Inner loop over at most FOLD_EVERY_BYTES, four bytes per turn.
    let chunkEnd = i + FOLD_EVERY_BYTES;
    if (chunkEnd > end) chunkEnd = end;
    while (i + 3 < chunkEnd) {
      s += ((buf[i]! << 8) | buf[i + 1]!) + ((buf[i + 2]! << 8) | buf[i + 3]!);
      i += 4;
    }
    if (i + 1 < chunkEnd) {
      s += (buf[i]! << 8) | buf[i + 1]!;
      i += 2;
    }
    s = (s & 0xffff) + (s >>> 16);
  }
  if (i < end) s += buf[i]! << 8;
  return (s & 0xffff) + (s >>> 16);
}

/**
 * Folds a running sum to 16 bits with end-around carry and complements it:
 * the value to store in a checksum field. Storing it makes the sum over the
 * covered data (field included) 0xffff, which is what a verifier checks.
 */
export function foldChecksum(sum: number): number {
  let s = sum;
  // Bit ops are exact below 2^32; larger (caller-accumulated) sums divide.
  while (s > 0xffff) s = s > 0xffffffff ? (s % 0x10000) + Math.floor(s / 0x10000) : (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * Checksum of the IPv4 header at buf[off .. off+headerLen), computed as if
 * the checksum field (bytes 10..11) were zero. Store it at off+10.
 */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number, headerLen: number): number {
  return foldChecksum(onesSum(buf, off + 12, headerLen - 12, onesSum(buf, off, 10)));
}

/**
 * Sum of the IPv4 pseudo-header that UDP and TCP checksums cover (RFC 768,
 * RFC 793): source, destination, zero byte + protocol, and the UDP/TCP
 * length. `src`/`dst` are uint32 host-order addresses.
 */
export function pseudoHeaderSum(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/**
 * Incremental update (RFC 1624 eqn. 3) when one 16-bit word covered by a
 * checksum changes from `oldWord` to `newWord`: HC' = ~(~HC + ~m + m').
 * Returns the new checksum field value.
 *
 * Why eqn. 3 and not RFC 1141's HC' = HC + m + ~m' (or eqn. 2, HC - ~m - m'):
 * ones-complement arithmetic has two zeros, 0x0000 and 0xffff. A checksum
 * computed from scratch is never 0xffff (the sum of data that is not all
 * zero is never +0), but the RFC 1141 form can yield 0xffff where a full
 * recompute gives 0x0000. Eqn. 3 updates the *sum* (~HC) and complements
 * at the end, so it always agrees with a full recompute.
 */
export function updateChecksum16(oldCsum: number, oldWord: number, newWord: number): number {
  let s = (~oldCsum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
