/**
 * MAC addresses for the control plane: VtepMAC text as flannel publishes it
 * (Go's net.HardwareAddr: lower-case, colon-separated) and the 6 bytes.
 */
import { randomBytes } from 'node:crypto';
import { WeftError } from '../errors.js';

export const MAC_LEN = 6;

const MAC_TEXT = /^([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})[:-]([0-9a-fA-F]{2})$/;

export function parseMac(text: string): Uint8Array {
  const m = MAC_TEXT.exec(text);
  if (m === null) throw new WeftError('EBADMAC', `"${text}" is not a MAC address (expected aa:bb:cc:dd:ee:ff)`);
  const mac = new Uint8Array(MAC_LEN);
  for (let i = 0; i < MAC_LEN; i++) mac[i] = parseInt(m[i + 1] as string, 16);
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  if (mac.length !== MAC_LEN) throw new WeftError('EBADMAC', `a MAC address has ${MAC_LEN} bytes, got ${mac.length}`);
  let s = '';
  for (let i = 0; i < MAC_LEN; i++) s += (i === 0 ? '' : ':') + (mac[i] as number).toString(16).padStart(2, '0');
  return s;
}

/** A random unicast, locally administered MAC, as flannel's VTEP MAC. */
export function randomVtepMac(): Uint8Array {
  const mac = new Uint8Array(randomBytes(MAC_LEN));
  // Bit 0 of the first octet clear = unicast; bit 1 set = locally administered.
  mac[0] = ((mac[0] as number) & 0xfe) | 0x02;
  return mac;
}

/** A VTEP MAC must be unicast and not all zeros (the kernel rejects both as a device address). */
export function checkVtepMac(mac: Uint8Array): void {
  if (mac.length !== MAC_LEN) throw new WeftError('EBADMAC', `a MAC address has ${MAC_LEN} bytes, got ${mac.length}`);
  if (((mac[0] as number) & 1) !== 0) throw new WeftError('EBADMAC', `VTEP MAC ${formatMac(mac)} is a multicast address`);
  if (mac.every((b) => b === 0)) throw new WeftError('EBADMAC', 'VTEP MAC 00:00:00:00:00:00 is not an address');
}
