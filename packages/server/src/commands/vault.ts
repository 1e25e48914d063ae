import { migrate, moveRecordsToRedis, rotateKey, type CredentialVaultOptions } from '@gatehouse/credential-vault'
import type { GatehouseConfig } from '../config/types'
import { authPaths } from '../auth-paths'
import { resolveGeneratedSecrets } from '../gateway'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, flag, reportRefusal, type CommandContext, type ExitCode, type Io } from './context'
import { connectCliRedis } from './redis'

/**
 * `gatehouse vault migrate [--to redis] [--dry-run]` and `vault rotate-key`: the credential files
 * of the auth directory, and with store.type redis (rotate-key) the cluster's records and shared tokens.
 */
export async function vaultCommand(ctx: CommandContext): Promise<ExitCode> {
  const { io, sub } = ctx
  if (sub !== 'migrate' && sub !== 'rotate-key') {
    io.err('gatehouse: vault needs one of: migrate, rotate-key\n')
    return EXIT_USAGE
  }
  const to = flag(ctx.flags, 'to')
  if (to !== undefined && (sub !== 'migrate' || to !== 'redis')) {
    io.err('gatehouse: --to takes one value, redis, and only with vault migrate\n')
    return EXIT_USAGE
  }
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  const { config } = loaded
  if (!config.auth.encryption.enabled) {
    io.err('gatehouse: auth.encryption.enabled is false: nothing to encrypt\n')
    return EXIT_FAILURE
  }
  const paths = authPaths(config)
  const key = config.auth.encryption.key ?? resolveGeneratedSecrets(config, paths).encryptionKey
  const options = {
    dir: paths.dir,
    encryption: { enabled: true, key, ...(config.auth.encryption.previous_keys?.length ? { previousKeys: config.auth.encryption.previous_keys } : {}) },
  }
  const dryRun = ctx.flags['dry-run'] === true
  try {
    if (to === 'redis') return await toRedis(io, config, options, dryRun)
    if (sub === 'migrate') {
      const r = await migrate({ ...options, ...(dryRun ? { dryRun: true } : {}) })
      for (const m of r.migrated) io.out(`${dryRun ? 'would encrypt' : 'encrypted'} ${m.file} -> ${m.id} (${m.provider})\n`)
      for (const x of r.skipped) io.err(`skipped ${x.file}: ${x.reason}\n`)
      for (const x of r.failed) io.err(`FAILED ${x.file}: ${x.message}\n`)
      io.out(`${r.migrated.length} migrated, ${r.skipped.length} skipped, ${r.failed.length} failed\n`)
      return r.failed.length ? EXIT_FAILURE : EXIT_OK
    }
    const r = await rotateKey(options)
    for (const x of r.failed) io.err(`FAILED ${x.file}: ${x.message}\n`)
    io.out(`${r.reencrypted.length} re-encrypted under the current key, ${r.skipped.length} already current, ${r.failed.length} failed\n`)
    const shared = await rotateShared(io, config, options)
    return r.failed.length || shared === EXIT_FAILURE ? EXIT_FAILURE : EXIT_OK
  } catch (e) {
    return reportRefusal(io, e)
  }
}

/**
 * `vault rotate-key` in cluster mode (store.type redis): the credential records in Redis and the
 * OAuth tokens the gateways share there, re-sealed under the current key, each with a
 * compare-and-set (a gateway's write in between is re-read, never overwritten). Without it, the
 * records would stay under the old key until next written, and the old key could never be dropped.
 * By id only: no secret is printed. Undefined (nothing to do) outside cluster mode.
 */
async function rotateShared(io: Io, config: GatehouseConfig, options: Pick<CredentialVaultOptions, 'dir' | 'encryption'>): Promise<ExitCode | undefined> {
  const client = await connectCliRedis(config)
  if (!client) return undefined
  try {
    const r = await rotateKey({ ...options, cluster: { client, prefix: config.store.key_prefix, records: true } })
    for (const x of r.failed) io.err(`FAILED ${x.file} (Redis): ${x.message}\n`)
    const tokens = r.tokens ?? { reencrypted: [], skipped: [] }
    io.out(
      `Redis: ${r.reencrypted.length} records re-encrypted under the current key, ${r.skipped.length} already current; ` +
        `shared OAuth tokens: ${tokens.reencrypted.length} re-encrypted, ${tokens.skipped.length} already current; ${r.failed.length} failed\n`,
    )
    return r.failed.length ? EXIT_FAILURE : EXIT_OK
  } finally {
    client.disconnect()
  }
}

/**
 * `vault migrate --to redis`: the auth directory's encrypted credential files into the cluster's
 * records (what the gateways serve with store.type redis), by id and provider only: no secret is
 * printed. A record Redis already holds is skipped; a different one under the same id is left as it
 * is and reported (exit 1). The files are left as they were.
 */
async function toRedis(io: Io, config: GatehouseConfig, options: Pick<CredentialVaultOptions, 'dir' | 'encryption'>, dryRun: boolean): Promise<ExitCode> {
  let client: Awaited<ReturnType<typeof connectCliRedis>>
  try {
    client = await connectCliRedis(config)
  } catch (e) {
    io.err(`gatehouse: ${(e as Error).message}\n`)
    return EXIT_FAILURE
  }
  if (!client) {
    io.err('gatehouse: vault migrate --to redis needs store.type redis and store.url in the config\n')
    return EXIT_USAGE
  }
  try {
    const r = await moveRecordsToRedis({ ...options, cluster: { client, prefix: config.store.key_prefix }, dryRun })
    for (const m of r.moved) io.out(`${dryRun ? 'would move' : 'moved'} ${m.id} (${m.provider}, ${m.type})\n`)
    for (const x of r.present) io.out(`already in Redis: ${x.id}\n`)
    for (const x of r.conflicts) io.err(`CONFLICT ${x.id}: ${x.reason}; left as it is\n`)
    for (const x of r.failed) io.err(`FAILED ${x.file}: ${x.message}\n`)
    const verb = dryRun ? 'would be moved' : 'moved'
    io.out(`${r.moved.length} ${verb} to Redis, ${r.present.length} already there, ${r.conflicts.length} conflicting, ${r.failed.length} failed; the files are left as they were\n`)
    return r.conflicts.length || r.failed.length ? EXIT_FAILURE : EXIT_OK
  } finally {
    client.disconnect()
  }
}
