import { createHash } from 'node:crypto'
import { parseDuration } from '@gatehouse/core'
import { FileKeyStore, loadOrCreateSalt, validateKeyScope, type ManagedKeyStore, type RedisKeyStore } from '@gatehouse/client-auth'
import { authPaths } from '../auth-paths'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, flag, reportRefusal, type CommandContext, type ExitCode, type Io } from './context'
import { describeLimits, flagNames, limitsFromFlags } from './key-flags'
import { openSharedKeyStore } from './redis'

interface KeyStores {
  /** Where the gateway reads keys: Redis in cluster mode, else the key file. */
  store: ManagedKeyStore
  file(): FileKeyStore
  shared: RedisKeyStore | undefined
}

/** `gatehouse keys create|list|revoke|rotate|migrate`: the client keys, in the key file or the cluster's Redis. */
export async function keysCommand(ctx: CommandContext): Promise<ExitCode> {
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  // The decoys need no key store: their digests only, for `gatehouse-check secrets --honeytokens FILE`.
  if (ctx.sub === 'honeytokens') return honeytokenDigests(ctx.io, loaded.config.auth.honeytokens)
  const paths = authPaths(loaded.config)
  const salt = loaded.config.auth.key_salt ?? loadOrCreateSalt(paths.dir)
  const file = (): FileKeyStore => new FileKeyStore({ file: paths.keyFile, salt, reload: 'stat' })
  // With store.type redis the keys are the cluster's, in Redis; otherwise the key file's.
  let shared: Awaited<ReturnType<typeof openSharedKeyStore>>
  try {
    shared = await openSharedKeyStore(loaded.config, salt)
  } catch (e) {
    ctx.io.err(`gatehouse: ${e instanceof Error ? e.message : String(e)}\n`)
    return EXIT_FAILURE
  }
  const stores: KeyStores = { store: shared?.store ?? file(), file, shared: shared?.store }
  try {
    const run = KEY_COMMANDS[ctx.sub ?? '']
    if (!run) {
      ctx.io.err(`gatehouse: keys needs one of: ${[...Object.keys(KEY_COMMANDS), 'honeytokens'].join(', ')}\n`)
      return EXIT_USAGE
    }
    return await run(ctx, stores)
  } catch (e) {
    return reportRefusal(ctx.io, e)
  } finally {
    await shared?.close()
  }
}

const KEY_COMMANDS: Record<string, (ctx: CommandContext, stores: KeyStores) => Promise<ExitCode>> = {
  create: createKey,
  list: async (ctx, { store }) => listKeys(ctx.io, store, ctx.flags.json === true),
  revoke: async (ctx, { store }) => {
    const id = ctx.args[0]
    if (!id) return usage(ctx.io, 'keys revoke needs a key id (key_…)')
    const r = await store.revoke(id)
    ctx.io.out(`revoked ${r.id} (${r.name})\n`)
    return EXIT_OK
  },
  rotate: async (ctx, { store }) => {
    const id = ctx.args[0]
    if (!id) return usage(ctx.io, 'keys rotate needs a key id (key_…)')
    let graceMs: number
    try {
      graceMs = parseDuration(flag(ctx.flags, 'grace') ?? '24h', '--grace')
    } catch (e) {
      return usage(ctx.io, (e as Error).message)
    }
    const r = await store.rotate(id, graceMs)
    ctx.io.err(`rotated ${r.previous.id} (${r.previous.name}) to ${r.record.id}; ${r.previous.id} stays valid until ${r.previous.expires_at}. The new key below is shown once and never stored\n`)
    ctx.io.out(`${r.key}\n`)
    return EXIT_OK
  },
  migrate: async (ctx, { file, shared }) => {
    // The key file's records (hashes and scopes) into the shared store, as they are: no key is re-issued.
    if (flag(ctx.flags, 'to') !== 'redis' || !shared) return usage(ctx.io, 'keys migrate --to redis needs store.type redis and store.url in the config')
    const records = file().list()
    const present = new Set(shared.list().map((r) => r.hash))
    const moved = await shared.importRecords(records.filter((r) => !present.has(r.hash)))
    ctx.io.out(`migrated ${moved} key${moved === 1 ? '' : 's'} to Redis (${records.length - moved} already there); the key file is left as it was\n`)
    return EXIT_OK
  },
}

/**
 * The sha256 digest of each auth.honeytokens entry, one per line: the file `gatehouse-check secrets
 * --honeytokens FILE` reads to report a decoy key found in a repository as a honeytoken. The tokens
 * themselves are never printed.
 */
function honeytokenDigests(io: Io, tokens: readonly string[]): ExitCode {
  io.out(`# sha256 digests of auth.honeytokens (${tokens.length}), for gatehouse-check secrets --honeytokens\n`)
  for (const t of tokens) io.out(`${createHash('sha256').update(t).digest('hex')}\n`)
  if (tokens.length === 0) io.err('no honeytokens in the config: add decoy keys to auth.honeytokens\n')
  return EXIT_OK
}

function usage(io: Io, message: string): ExitCode {
  io.err(`gatehouse: ${message}\n`)
  return EXIT_USAGE
}

async function createKey(ctx: CommandContext, { store }: KeyStores): Promise<ExitCode> {
  const name = flag(ctx.flags, 'name')
  if (!name) return usage(ctx.io, 'keys create needs --name NAME')
  const daysFlag = flag(ctx.flags, 'expires-days')
  const days = daysFlag !== undefined ? Number(daysFlag) : undefined
  if (days !== undefined && !(Number.isInteger(days) && days > 0)) return usage(ctx.io, `--expires-days must be a whole number of days (got ${JSON.stringify(daysFlag)})`)
  // A flag given empty (`--providers ","`) is refused, never read as "every provider".
  const list = (v: string | undefined): string[] | undefined => v?.split(',').map((p) => p.trim()).filter(Boolean)
  const providers = list(flag(ctx.flags, 'providers'))
  const endpoints = list(flag(ctx.flags, 'endpoints'))
  const models = list(flag(ctx.flags, 'models'))
  const networks = list(flag(ctx.flags, 'networks'))
  const objects = list(flag(ctx.flags, 'objects'))
  const limits = limitsFromFlags(ctx.flags)
  try {
    validateKeyScope({ providers, endpoints, models, limits, networks, objects })
  } catch (e) {
    return usage(ctx.io, flagNames((e as Error).message.replace('@gatehouse/client-auth: ', '')))
  }
  const { key, record } = await store.create({
    name,
    ...(providers ? { providers } : {}),
    ...(endpoints ? { endpoints } : {}),
    ...(models ? { models } : {}),
    ...(limits ? { limits } : {}),
    ...(networks ? { networks } : {}),
    ...(objects ? { objects } : {}),
    ...(days ? { expiresAt: new Date(Date.now() + days * 86_400_000) } : {}),
  })
  ctx.io.err(`created ${record.id} (${record.name}); the key below is shown once and never stored\n`)
  ctx.io.out(`${key}\n`)
  return EXIT_OK
}

function listKeys(io: Io, store: ManagedKeyStore, json: boolean): ExitCode {
  const keys = store.list().map(({ hash: _hash, ...r }) => r)
  if (json) {
    io.out(`${JSON.stringify(keys, null, 2)}\n`)
    return EXIT_OK
  }
  for (const k of keys) {
    const state = k.revoked_at
      ? `revoked ${k.revoked_at}`
      : k.expires_at && Date.parse(k.expires_at) < Date.now()
        ? 'expired'
        : k.rotated_to
          ? `rotated to ${k.rotated_to}, valid until ${k.expires_at}`
          : 'active'
    const scope = `providers=${k.providers?.join(',') ?? 'all'}\tendpoints=${k.endpoints?.join(',') ?? 'provider defaults'}\tmodels=${k.models?.join(',') ?? 'all'}\tlimits=${describeLimits(k.limits)}\tnetworks=${k.networks?.join(',') ?? 'any'}\tobjects=${k.objects?.join(',') ?? 'own'}`
    io.out(`${k.id}\t${k.name}\t${k.created_at}\t${state}\t${scope}\n`)
  }
  if (keys.length === 0) io.err('no client keys yet: gatehouse keys create --name NAME\n')
  return EXIT_OK
}
