/** Cheap identities for resume keys and reports: what a result was computed from. */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A model file's identity: name, size and modification time (hashing multi-GB files per run is too slow). */
export async function modelFingerprint(path: string): Promise<string> {
  const st = await stat(path);
  return `${basename(path)}:${st.size}:${Math.floor(st.mtimeMs)}`;
}

export function tokensFingerprint(tokens: Int32Array): string {
  return sha256(new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength)).slice(0, 16);
}

/** JSON with sorted keys, for keys that do not depend on property order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value as object)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
