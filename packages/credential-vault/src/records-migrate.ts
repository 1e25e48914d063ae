import * as fs from 'node:fs'
import { join } from 'node:path'
import { isGatehouseError, ReplicatedHash, type ProviderName } from '@gatehouse/core'
import type { VaultClusterOptions } from './cluster'
import { decodeCredentialFile, stableStringify } from './codec'
import { CredentialVaultErrorCodes, configError } from './errors'
import { resolveCredentialVaultConfig, type CredentialVaultOptions } from './options'
import { FILE_PATTERN, type CredentialRecord, type CredentialType } from './record'
import { encodeRecord, readRecord, recordsKey } from './records'
import { readSecureFileSync } from './secure-fs'

/** What `moveRecordsToRedis` did (or, dry, would do), by credential id; never a secret. */
export interface MoveToRedisResult {
  /** Written to Redis (with `dryRun`: would be). */
  moved: { id: string; provider: ProviderName; type: CredentialType }[]
  /** Redis already holds the same record: nothing to do (a re-run). */
  present: { id: string }[]
  /** Redis holds a different record (or one it cannot read) under this id: left as it is. */
  conflicts: { id: string; reason: string }[]
  /** Files that cannot be read (plaintext, another key, insecure, altered): not moved. */
  failed: { file: string; code: string; message: string }[]
}

/**
 * `gatehouse vault migrate --to redis`: the encrypted credential files of `dir` into the cluster's
 * records hash (see `cluster.records`), each re-sealed under the current key and bound to its id,
 * in one atomic step; the files are left as they were. Idempotent: a record Redis already holds is
 * skipped, and a different one under the same id is never overwritten (reported as a conflict).
 * Plaintext files are refused (encrypt them first with `gatehouse vault migrate`).
 */
export async function moveRecordsToRedis(options: CredentialVaultOptions & { cluster: VaultClusterOptions; dryRun?: boolean | undefined }): Promise<MoveToRedisResult> {
  const { dryRun, cluster, ...rest } = options
  const config = resolveCredentialVaultConfig({ ...rest, watch: false, rescanInterval: 0, createDir: false })
  if (!config.keyring) throw configError('encryption: must be on to move records to Redis (they are kept there encrypted)')
  const state = { config }
  const result: MoveToRedisResult = { moved: [], present: [], conflicts: [], failed: [] }
  const files = readRecords(config, result)
  let shared: ReadonlyMap<string, string> = new Map()
  const hash = new ReplicatedHash({ client: cluster.client, key: recordsKey(cluster.prefix), onChange: (entries) => (shared = entries) })
  try {
    await hash.readOnce()
    const changes: Record<string, string> = {}
    for (const record of files) {
      const there = shared.get(record.id)
      if (there === undefined) {
        changes[record.id] = encodeRecord(state, record)
        result.moved.push({ id: record.id, provider: record.provider, type: record.type })
        continue
      }
      const read = readRecord(state, record.id, there)
      if ('record' in read && stableStringify(read.record) === stableStringify(record)) result.present.push({ id: record.id })
      else result.conflicts.push({ id: record.id, reason: 'record' in read ? 'Redis holds a different record under this id' : `Redis holds a record under this id that cannot be read (${read.code})` })
    }
    if (!dryRun && Object.keys(changes).length > 0) await hash.update(changes)
  } finally {
    await hash.close()
  }
  return result
}

/** The directory's credential files, decrypted; those that cannot be read go to `failed`. */
function readRecords(config: ReturnType<typeof resolveCredentialVaultConfig>, result: MoveToRedisResult): CredentialRecord[] {
  const out: CredentialRecord[] = []
  for (const name of fs.readdirSync(config.dir).sort()) {
    if (!FILE_PATTERN.test(name)) continue
    try {
      const read = readSecureFileSync(join(config.dir, name), { allowInsecure: config.allowInsecurePermissions, maxBytes: config.maxFileBytes })
      out.push(decodeCredentialFile(config, name.slice(0, -'.json'.length), read.data).record)
    } catch (err) {
      const code = isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE
      result.failed.push({ file: name, code, message: err instanceof Error ? err.message : 'the file cannot be read' })
    }
  }
  return out
}
