/**
 * Name-based UIDs for the instances this server writes (AI reports, slide annotations): the same parts
 * always give the same UID, so writing a result twice stores it once (idempotent), and different parts
 * never collide in practice.
 */
import { createHash } from 'node:crypto';

/** A UID under 2.25 (PS3.5 B.2) from a SHA-256 of the parts: UUID version 8 ("custom") layout. */
export function derivedUid(...parts: string[]): string {
  const bytes = createHash('sha256').update(parts.join('\u0000')).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}
