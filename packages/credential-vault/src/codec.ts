import { createHash } from 'node:crypto'
import type * as fs from 'node:fs'
import { GatehouseError } from '@gatehouse/core'
import { isEnvelopeShaped, open, seal } from './envelope'
import { CredentialVaultErrorCodes } from './errors'
import type { Keyring } from './keyring'
import { parseRecord, type CredentialRecord } from './record'

/** What identifies a file's version on disk without reading it: a changed signature means reload. */
export const signatureOf = (st: fs.Stats): string => `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}:${st.uid}`
export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

/** JSON with object keys sorted, to compare records whatever order their fields were set in. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>
    return `{${Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(value)
}

export interface DecodedFile {
  record: CredentialRecord
  encrypted: boolean
  kid: string | undefined
}

/**
 * File bytes → record. Throws GatehouseError with a vault code; never includes file content. With
 * encryption on, a plaintext file is refused unless `allowPlaintext` (migration only).
 */
export function decodeCredentialFile(
  crypto: { keyring: Keyring | undefined; encryptionEnabled: boolean },
  id: string,
  data: Buffer,
  allowPlaintext = false,
): DecodedFile {
  let json: unknown
  try {
    json = JSON.parse(data.toString('utf8'))
  } catch {
    throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, 'the file is not valid JSON (truncated or altered?)')
  }
  if (isEnvelopeShaped(json)) {
    if (!crypto.keyring) {
      throw new GatehouseError(CredentialVaultErrorCodes.GH_VAULT_KEY_MISSING, 'the file is encrypted and no encryption key is configured')
    }
    const opened = open(crypto.keyring, id, json)
    let inner: unknown
    try {
      inner = JSON.parse(opened.plaintext.toString('utf8'))
    } finally {
      opened.plaintext.fill(0)
    }
    return { record: parseRecord(inner, id), encrypted: true, kid: opened.kid }
  }
  // A downgrade: with encryption on, a plaintext file is what anyone who can write the directory,
  // without the key, would plant to route requests through their own account. Only `migrate`,
  // run by the operator, reads one (to encrypt it).
  if (crypto.encryptionEnabled && !allowPlaintext) {
    throw new GatehouseError(
      CredentialVaultErrorCodes.GH_VAULT_PLAINTEXT_REFUSED,
      'the file is not encrypted while encryption is on, so it is refused (it may have been planted); if it is yours, encrypt it with `gatehouse vault migrate`',
    )
  }
  return { record: parseRecord(json, id), encrypted: false, kid: undefined }
}

/** Record → file bytes: an envelope under the current key, or plaintext JSON when encryption is off. */
export function encodeCredentialFile(keyring: Keyring | undefined, record: CredentialRecord): Buffer {
  const plaintext = Buffer.from(JSON.stringify(record), 'utf8')
  if (!keyring) return Buffer.concat([plaintext, Buffer.from('\n')])
  try {
    return Buffer.from(`${JSON.stringify(seal(keyring, record.id, plaintext))}\n`, 'utf8')
  } finally {
    plaintext.fill(0)
  }
}
