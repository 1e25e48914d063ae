import { parseArgs } from 'node:util'
import { createPublicKey } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import { createMasker, isGatehouseError, parseDuration, type KeyLimits, type KeyLimitScope } from '@gatehouse/core'
import { FileKeyStore, loadOrCreateSalt, RedisKeyStore, validateKeyScope, type ManagedKeyStore } from '@gatehouse/client-auth'
import { ConfigError, loadConfig, type LoadedConfig } from './config/load'
import { Writable } from 'node:stream'
import { createAppLogger } from '@gatehouse/audit-log'
import { configSecrets, createGateway, resolveGeneratedSecrets } from './gateway'
import { installLastResort } from './last-resort'
import { countBySeverity, diagnose } from './doctor'
import { listAuditFiles, verifyAuditLog } from '@gatehouse/audit-log'
import { migrate as migrateVault, rotateKey } from '@gatehouse/credential-vault'
import { resolveDeviceFingerprintConfig, rotateDeviceFingerprint } from '@gatehouse/device-fingerprint'
import { migrate as migrateStorage, resolveDatabaseUrl } from '@gatehouse/storage'
import { Pool } from 'pg'
import Redis from 'ioredis'
import type { GatehouseConfig } from './config/types'
import { clusterStatus, type ClusterStatus } from './cluster/replicas'

export interface Io {
  out: (s: string) => void
  err: (s: string) => void
}

const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }

const USAGE = `Usage: gatehouse [--config FILE]                 start the gateway (embedded default without --config)
       gatehouse keys create --name NAME [--providers claude,openai] [--endpoints ID,ID] [--models M,M*]
                             [--rpm N] [--tpm N] [--monthly-tokens N] [--concurrency N] [--expires-days N]
                             [--networks CIDR,CIDR]  (valid only from those networks)
                                               (endpoint ids: packages/proxy/README.md; a limit may
                                               name providers: --tpm 50000,openai=20000)
       gatehouse keys list [--json]
       gatehouse keys revoke ID
       gatehouse keys rotate ID [--grace 24h]   a successor with the same scope; the old key works until the grace ends
       gatehouse keys migrate --to redis   (the key file's keys into the cluster's Redis, none re-issued)
       gatehouse config check
       gatehouse doctor [--json]               the security posture; exit 1 on any high finding
       gatehouse audit verify FILE [--checkpoints F]  the audit log's hash chain is intact (and matches the shipped checkpoints); exit 1 if not
       gatehouse vault migrate [--dry-run]     encrypt plaintext credential files in the auth dir
       gatehouse vault rotate-key              re-encrypt every credential under auth.encryption.key
       gatehouse storage migrate               create or update the PostgreSQL schema (storage.url)
       gatehouse fingerprint rotate            a new device fingerprint secret (used from the next start)
Every sub-command takes --config FILE.
`

/** The limit flags of `keys create`, and the key limit each sets. */
const LIMIT_FLAGS = { rpm: 'requests_per_minute', tpm: 'tokens_per_minute', 'monthly-tokens': 'monthly_tokens', concurrency: 'concurrency' } as const

/**
 * `--tpm 50000,openai=20000` → `{ tokens_per_minute: 50000, providers: { openai: { tokens_per_minute: 20000 } } }`.
 * A value that is not digits is kept as given, so validateKeyScope names it.
 */
function limitsFromFlags(values: Record<string, unknown>): KeyLimitScope | undefined {
  let out: Record<string, unknown> | undefined
  const num = (v: string): number | string => (/^\d{1,15}$/.test(v) ? Number(v) : v)
  for (const [flag, name] of Object.entries(LIMIT_FLAGS)) {
    const raw = values[flag]
    if (typeof raw !== 'string') continue
    out ??= {}
    for (const part of raw.split(',').map((p) => p.trim())) {
      const eq = part.indexOf('=')
      if (eq === -1) {
        out[name] = num(part)
        continue
      }
      const providers = ((out.providers as Record<string, Record<string, unknown>> | undefined) ??= {})
      ;(providers[part.slice(0, eq)] ??= {})[name] = num(part.slice(eq + 1))
    }
  }
  return out as KeyLimitScope | undefined
}

/** A scope error in the CLI's words: `limits.providers.openai.tokens_per_minute` → `--tpm openai=`. */
function flagNames(message: string): string {
  const flagOf = (limit: string): string => Object.entries(LIMIT_FLAGS).find(([, n]) => n === limit)?.[0] ?? limit
  const names = 'requests_per_minute|tokens_per_minute|monthly_tokens|concurrency'
  return message
    .replace(new RegExp(`^limits\\.providers\\.(\\w+)\\.(${names})`), (_m, p: string, l: string) => `--${flagOf(l)} ${p}=…:`)
    .replace(new RegExp(`^limits\\.(${names})`), (_m, l: string) => `--${flagOf(l)}:`)
    .replace(/^limits\.providers(\.\w+)?:/, (_m, p: string | undefined) => `a limit for a provider${p ? ` (${p.slice(1)}=…)` : ''}:`)
    .replace(/^(providers|endpoints|models)\b/, '--$1')
}

/** `rpm=60 openai.tpm=20000`, or `gateway defaults`. */
function describeLimits(limits: KeyLimitScope | undefined): string {
  if (!limits) return 'gateway defaults'
  const short = (l: KeyLimits, prefix: string): string[] =>
    Object.entries(LIMIT_FLAGS).flatMap(([flag, name]) => (l[name] !== undefined ? [`${prefix}${flag}=${l[name]}`] : []))
  return [...short(limits, ''), ...Object.entries(limits.providers ?? {}).flatMap(([p, l]) => short(l ?? {}, `${p}.`))].join(' ') || 'gateway defaults'
}

/** Runs a command; returns the exit code (undefined while the server keeps running). */
export async function main(argv: string[], io: Io = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        name: { type: 'string' },
        providers: { type: 'string' },
        endpoints: { type: 'string' },
        models: { type: 'string' },
        rpm: { type: 'string' },
        tpm: { type: 'string' },
        'monthly-tokens': { type: 'string' },
        concurrency: { type: 'string' },
        'expires-days': { type: 'string' },
        json: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        networks: { type: 'string' },
        grace: { type: 'string' },
        to: { type: 'string' },
        checkpoints: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (e) {
    io.err(`gatehouse: ${(e as Error).message}\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.out(USAGE)
    return 0
  }
  const [command, sub, ...rest] = positionals

  const load = (): LoadedConfig | number => {
    try {
      return loadConfig({ ...(values.config ? { file: values.config } : {}), env })
    } catch (e) {
      if (e instanceof ConfigError) {
        io.err(`gatehouse: invalid configuration (${e.source}):\n${e.errors.map((l) => `  ${l}`).join('\n')}\n`)
        return 1
      }
      throw e
    }
  }

  if (command === undefined || command === 'start') {
    const loaded = load()
    return typeof loaded === 'number' ? loaded : start(loaded, io)
  }
  if (command === 'config' && sub === 'check') {
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    for (const w of loaded.warnings) io.err(`warning: ${w}\n`)
    io.out(`configuration OK (${loaded.source})\n`)
    return 0
  }
  if (command === 'keys') {
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    const authDir = resolvePath(loaded.config.auth.dir)
    const salt = loaded.config.auth.key_salt ?? loadOrCreateSalt(authDir)
    const file = (): FileKeyStore => new FileKeyStore({ file: join(authDir, 'client-keys.json'), salt, reload: 'stat' })
    // With store.type redis the keys are the cluster's, in Redis; otherwise the key file's.
    let shared: { store: RedisKeyStore; close(): Promise<void> } | undefined
    try {
      shared = await openSharedKeyStore(loaded.config, salt)
    } catch (e) {
      io.err(`gatehouse: ${isGatehouseError(e) ? e.message : String(e)}\n`)
      return 1
    }
    const store: ManagedKeyStore = shared?.store ?? file()
    try {
      if (sub === 'create') {
        if (!values.name) {
          io.err('gatehouse: keys create needs --name NAME\n')
          return 2
        }
        const days = values['expires-days'] !== undefined ? Number(values['expires-days']) : undefined
        if (days !== undefined && !(Number.isInteger(days) && days > 0)) {
          io.err(`gatehouse: --expires-days must be a whole number of days (got ${JSON.stringify(values['expires-days'])})\n`)
          return 2
        }
        // A flag given empty (`--providers ","`) is refused, never read as "every provider".
        const list = (v: string | undefined): string[] | undefined => v?.split(',').map((p) => p.trim()).filter(Boolean)
        const providers = list(values.providers)
        const endpoints = list(values.endpoints)
        const models = list(values.models)
        const networks = list(values.networks)
        const limits = limitsFromFlags(values)
        try {
          validateKeyScope({ providers, endpoints, models, limits, networks })
        } catch (e) {
          io.err(`gatehouse: ${flagNames((e as Error).message.replace('@gatehouse/client-auth: ', ''))}\n`)
          return 2
        }
        const { key, record } = await store.create({
          name: values.name,
          ...(providers ? { providers } : {}),
          ...(endpoints ? { endpoints } : {}),
          ...(models ? { models } : {}),
          ...(limits ? { limits } : {}),
          ...(networks ? { networks } : {}),
          ...(days ? { expiresAt: new Date(Date.now() + days * 86_400_000) } : {}),
        })
        io.err(`created ${record.id} (${record.name}); the key below is shown once and never stored\n`)
        io.out(`${key}\n`)
        return 0
      }
      if (sub === 'list') {
        const keys = store.list().map(({ hash: _hash, ...r }) => r)
        if (values.json) io.out(`${JSON.stringify(keys, null, 2)}\n`)
        else {
          for (const k of keys) {
            const state = k.revoked_at
              ? `revoked ${k.revoked_at}`
              : k.expires_at && Date.parse(k.expires_at) < Date.now()
                ? 'expired'
                : k.rotated_to
                  ? `rotated to ${k.rotated_to}, valid until ${k.expires_at}`
                  : 'active'
            const scope = `providers=${k.providers?.join(',') ?? 'all'}\tendpoints=${k.endpoints?.join(',') ?? 'provider defaults'}\tmodels=${k.models?.join(',') ?? 'all'}\tlimits=${describeLimits(k.limits)}\tnetworks=${k.networks?.join(',') ?? 'any'}`
            io.out(`${k.id}\t${k.name}\t${k.created_at}\t${state}\t${scope}\n`)
          }
          if (keys.length === 0) io.err('no client keys yet: gatehouse keys create --name NAME\n')
        }
        return 0
      }
      if (sub === 'revoke') {
        if (!rest[0]) {
          io.err('gatehouse: keys revoke needs a key id (key_…)\n')
          return 2
        }
        const r = await store.revoke(rest[0])
        io.out(`revoked ${r.id} (${r.name})\n`)
        return 0
      }
      if (sub === 'rotate') {
        if (!rest[0]) {
          io.err('gatehouse: keys rotate needs a key id (key_…)\n')
          return 2
        }
        let graceMs: number
        try {
          graceMs = parseDuration(values.grace ?? '24h', '--grace')
        } catch (e) {
          io.err(`gatehouse: ${(e as Error).message}\n`)
          return 2
        }
        const r = await store.rotate(rest[0], graceMs)
        io.err(`rotated ${r.previous.id} (${r.previous.name}) to ${r.record.id}; ${r.previous.id} stays valid until ${r.previous.expires_at}. The new key below is shown once and never stored\n`)
        io.out(`${r.key}\n`)
        return 0
      }
      if (sub === 'migrate') {
        // The key file's records (hashes and scopes) into the shared store, as they are: no key is re-issued.
        if (values.to !== 'redis' || !shared) {
          io.err('gatehouse: keys migrate --to redis needs store.type redis and store.url in the config\n')
          return 2
        }
        const records = file().list()
        const present = new Set(shared.store.list().map((r) => r.hash))
        const moved = await shared.store.importRecords(records.filter((r) => !present.has(r.hash)))
        io.out(`migrated ${moved} key${moved === 1 ? '' : 's'} to Redis (${records.length - moved} already there); the key file is left as it was\n`)
        return 0
      }
    } catch (e) {
      if (isGatehouseError(e)) {
        io.err(`gatehouse: ${e.message}\n`)
        return 1
      }
      throw e
    } finally {
      await shared?.close()
    }
  }
  if (command === 'doctor') {
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    const findings = await diagnose(loaded.config)
    // Cluster mode: which replica holds which version of the shared state.
    const cluster = await readClusterStatus(loaded.config)
    if (cluster) findings.push(...cluster.findings)
    if (values.json) io.out(`${JSON.stringify({ findings, ...(cluster ? { cluster: { shared: cluster.shared, replicas: cluster.replicas } } : {}) }, null, 2)}\n`)
    else {
      if (cluster) {
        io.out(`cluster: keys version ${cluster.shared.keys_version}, runtime version ${cluster.shared.runtime_version}, ${cluster.replicas.length} replica${cluster.replicas.length === 1 ? '' : 's'} reporting\n`)
        for (const r of cluster.replicas) io.out(`  ${r.id} ${r.host} pid ${r.pid}: keys ${r.keys_version}, runtime ${r.runtime_version}, ${r.state}\n`)
      }
      for (const x of findings) io.out(`${x.severity.toUpperCase().padEnd(6)} ${x.message}\n       fix: ${x.fix}\n`)
      const c = countBySeverity(findings)
      io.out(`${findings.length} findings: ${c.high} high, ${c.medium} medium, ${c.low} low (${loaded.source})\n`)
    }
    return findings.some((x) => x.severity === 'high') ? 1 : 0
  }
  if (command === 'audit' && sub === 'verify') {
    const file = rest[0]
    if (!file) {
      io.err('gatehouse: audit verify needs the audit log file\n')
      return 2
    }
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    const authDir = resolvePath(loaded.config.auth.dir)
    let key = loaded.config.logging.audit.key
    if (!key) {
      const keyFile = join(authDir, '.audit-key')
      if (!existsSync(keyFile)) {
        io.err(`gatehouse: no audit key: set logging.audit.key (GATEHOUSE_AUDIT_KEY) or run where ${keyFile} exists\n`)
        return 2
      }
      key = readFileSync(keyFile, 'utf8').trim()
    }
    if (!existsSync(file)) {
      io.err(`gatehouse: ${file}: no such file\n`)
      return 2
    }
    // --checkpoints: the checkpoints a collector received (syslog or HTTPS export); a log cut or
    // replaced after the newest one fails.
    const checkpoints = values.checkpoints
    if (checkpoints !== undefined && !existsSync(checkpoints)) {
      io.err(`gatehouse: ${checkpoints}: no such file\n`)
      return 2
    }
    const cp = loaded.config.logging.audit.checkpoints
    const result = await verifyAuditLog(listAuditFiles(resolvePath(file)), key, {
      ...(checkpoints !== undefined ? { checkpoints: resolvePath(checkpoints) } : {}),
      // Ed25519-signed checkpoints are checked with the public half of the configured key (when it is there).
      ...(checkpoints !== undefined && cp?.signing_key_file && existsSync(resolvePath(cp.signing_key_file)) ? { checkpointPublicKey: createPublicKey(readFileSync(resolvePath(cp.signing_key_file), 'utf8')) } : {}),
      ...(cp?.log_id ? { logId: cp.log_id } : {}),
    })
    if (result.ok) {
      const vouched = result.checkpoints ? `; matches ${result.checkpoints.count} checkpoint(s), the newest at seq ${result.checkpoints.newestSeq}` : ''
      io.out(`audit log intact: ${result.lines} lines in ${result.files.length} file(s), seq ${result.firstSeq ?? '-'}..${result.lastSeq ?? '-'}${vouched}\n`)
      return 0
    }
    const f = result.failure!
    io.out(`audit log TAMPERED: ${f.file} line ${f.line}: ${f.reason}\n`)
    return 1
  }
  if (command === 'vault' && (sub === 'migrate' || sub === 'rotate-key')) {
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    const { config } = loaded
    const authDir = resolvePath(config.auth.dir)
    if (!config.auth.encryption.enabled) {
      io.err('gatehouse: auth.encryption.enabled is false: nothing to encrypt\n')
      return 1
    }
    const key = config.auth.encryption.key ?? resolveGeneratedSecrets(config, authDir).encryptionKey
    const options = {
      dir: authDir,
      encryption: { enabled: true, key, ...(config.auth.encryption.previous_keys?.length ? { previousKeys: config.auth.encryption.previous_keys } : {}) },
    }
    try {
      if (sub === 'migrate') {
        const r = await migrateVault({ ...options, ...(values['dry-run'] ? { dryRun: true } : {}) })
        for (const m of r.migrated) io.out(`${values['dry-run'] ? 'would encrypt' : 'encrypted'} ${m.file} -> ${m.id} (${m.provider})\n`)
        for (const x of r.skipped) io.err(`skipped ${x.file}: ${x.reason}\n`)
        for (const x of r.failed) io.err(`FAILED ${x.file}: ${x.message}\n`)
        io.out(`${r.migrated.length} migrated, ${r.skipped.length} skipped, ${r.failed.length} failed\n`)
        return r.failed.length ? 1 : 0
      }
      const r = await rotateKey(options)
      for (const x of r.failed) io.err(`FAILED ${x.file}: ${x.message}\n`)
      io.out(`${r.reencrypted.length} re-encrypted under the current key, ${r.skipped.length} already current, ${r.failed.length} failed\n`)
      return r.failed.length ? 1 : 0
    } catch (e) {
      if (isGatehouseError(e)) {
        io.err(`gatehouse: ${e.message}\n`)
        return 1
      }
      throw e
    }
  }
  if (command === 'fingerprint' && sub === 'rotate') {
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    const { config } = loaded
    try {
      rotateDeviceFingerprint(resolveDeviceFingerprintConfig({ dir: resolvePath(config.auth.dir), header: config.device_fingerprint.header }))
    } catch (e) {
      if (isGatehouseError(e)) {
        io.err(`gatehouse: ${e.message}\n`)
        return 1
      }
      throw e
    }
    io.out('device fingerprint rotated: restart the gateway to send the new one\n')
    return 0
  }
  if (command === 'storage' && sub === 'migrate') {
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    if (!loaded.config.storage.url) {
      io.err('gatehouse: storage.url is not set (postgresql://…)\n')
      return 2
    }
    let pool: Pool | undefined
    try {
      pool = new Pool({ connectionString: resolveDatabaseUrl(loaded.config.storage.url, 'storage.url').connectionString, max: 1, connectionTimeoutMillis: 10_000 })
      pool.on('error', () => undefined)
      const r = await migrateStorage(pool, 'gatehouse')
      io.out(r.applied.length ? `schema ${r.schema}: applied ${r.applied.join(', ')}; now at version ${r.version}\n` : `schema ${r.schema} is up to date (version ${r.version})\n`)
      return 0
    } catch (e) {
      const masker = createMasker({ knownSecrets: configSecrets(loaded.config) })
      io.err(`gatehouse: storage migrate failed: ${masker.text(e instanceof Error ? e.message : String(e))}\n`)
      return 1
    } finally {
      await pool?.end().catch(() => undefined)
    }
  }
  io.err(`gatehouse: unknown command ${JSON.stringify(positionals.join(' '))}\n${USAGE}`)
  return 2
}

async function start(loaded: LoadedConfig, io: Io): Promise<number | undefined> {
  const { config } = loaded
  const stream = (write: (s: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer | string, _encoding, callback) {
        write(chunk.toString())
        callback()
      },
    })
  // One JSON line per entry, every field masked (configured secrets included): info to stdout, warnings and errors to stderr.
  const logger = createAppLogger({
    level: config.logging.level,
    knownSecrets: configSecrets(config),
    stdout: stream(io.out),
    stderr: stream(io.err),
  })
  for (const w of loaded.warnings) logger.warn(w)
  if (!config.auth.client_auth.enabled) {
    logger.error(
      'CLIENT AUTH IS OFF (ENABLE_CLIENT_AUTH=false or auth.client_auth.enabled: false): anyone who can reach this gateway spends your provider credentials',
    )
  }
  const gateway = createGateway(config, { logger })
  installLastResort(logger, gateway.masker)
  const findings = await diagnose(config, process.cwd(), gateway.providersWithoutCredential())
  for (const x of findings) (x.severity === 'high' ? logger.error : logger.warn)(`posture: ${x.message}`, { fix: x.fix, severity: x.severity })
  gateway.metrics?.setPostureFindings(countBySeverity(findings))
  // The signal handlers are in place before anything says "listening": a process manager may stop
  // the gateway the moment it reads that line, and must get the graceful drain.
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info('shutting down', { signal })
    void gateway.close(parseDuration(config.server.timeouts.shutdown_grace)).then(() => {
      logger.info('stopped')
      process.exit(0)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  let url: string
  try {
    ;({ url } = await gateway.listen())
  } catch (err) {
    // All or nothing: a gateway that cannot take its port stops everything it started and exits.
    logger.error(`cannot start: ${(err as Error).message}`)
    await gateway.close(0).catch(() => undefined)
    return 1
  }
  logger.info('gatehouse listening', { url, config: loaded.source })
  if (!config.management.secret_key) logger.info('management API is off: set management.secret_key to enable it')
  return undefined
}

/**
 * The cluster's key store when the config puts state in Redis (store.type redis), read once;
 * undefined otherwise. Rejects when Redis cannot be read: a key command never falls back to a
 * file the gateways do not read.
 */
async function openSharedKeyStore(config: GatehouseConfig, salt: string): Promise<{ store: RedisKeyStore; close(): Promise<void> } | undefined> {
  if (config.store.type !== 'redis' || !config.store.url) return undefined
  const client = cliRedis(config.store.url)
  const store = new RedisKeyStore({ client, salt, prefix: config.store.key_prefix })
  const close = async (): Promise<void> => {
    await store.close()
    client.disconnect()
  }
  try {
    await client.connect()
    await store.start()
  } catch (e) {
    await close()
    throw isGatehouseError(e) ? e : new Error(`the cluster's Redis (store.url) cannot be reached: ${(e as Error).message}`)
  }
  return { store, close }
}

/** The cluster's state (gatehouse doctor) when the config shares state through Redis; undefined otherwise. */
async function readClusterStatus(config: GatehouseConfig): Promise<ClusterStatus | undefined> {
  if (config.store.type !== 'redis' || !config.store.url) return undefined
  const client = cliRedis(config.store.url)
  try {
    await client.connect().catch(() => undefined)
    return await clusterStatus(client, config.store.key_prefix)
  } finally {
    client.disconnect()
  }
}

/** A command's own Redis connection: fails fast, never retries (a CLI command reports and exits). */
function cliRedis(url: string): Redis {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000, retryStrategy: () => null, lazyConnect: true })
  client.on('error', () => undefined)
  return client
}
