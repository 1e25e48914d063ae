import { parseArgs } from 'node:util'
import { join, resolve as resolvePath } from 'node:path'
import { createMasker, isGatehouseError, parseDuration } from '@gatehouse/core'
import { FileKeyStore, loadOrCreateSalt } from '@gatehouse/client-auth'
import { ConfigError, loadConfig, type LoadedConfig } from './config/load'
import { createAppLogger } from './logger'
import { createGateway } from './gateway'
import { mustEnforceErrors, notEnforced } from './enforcement'

export interface Io {
  out: (s: string) => void
  err: (s: string) => void
}

const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }

const USAGE = `Usage: gatehouse [--config FILE]                 start the gateway (embedded default without --config)
       gatehouse keys create --name NAME [--providers claude,openai] [--expires-days N]
       gatehouse keys list [--json]
       gatehouse keys revoke ID
       gatehouse config check
Every sub-command takes --config FILE.
`

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
        'expires-days': { type: 'string' },
        json: { type: 'boolean' },
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
    const fatal = mustEnforceErrors(loaded.config)
    for (const w of loaded.warnings) io.err(`warning: ${w}\n`)
    for (const p of notEnforced(loaded.config)) io.err(`not yet enforced: ${p} is set but this build does not enforce it yet\n`)
    if (fatal.length) {
      io.err(`gatehouse: configuration cannot run (${loaded.source}):\n${fatal.map((l) => `  ${l}`).join('\n')}\n`)
      return 1
    }
    io.out(`configuration OK (${loaded.source})\n`)
    return 0
  }
  if (command === 'keys') {
    const loaded = load()
    if (typeof loaded === 'number') return loaded
    const authDir = resolvePath(loaded.config.auth.dir)
    const store = new FileKeyStore({
      file: join(authDir, 'client-keys.json'),
      salt: loaded.config.auth.key_salt ?? loadOrCreateSalt(authDir),
    })
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
        const providers = values.providers?.split(',').map((p) => p.trim()).filter(Boolean)
        const bad = providers?.filter((p) => !['claude', 'openai', 'gemini'].includes(p))
        if (bad?.length) {
          io.err(`gatehouse: --providers: unknown provider ${JSON.stringify(bad[0])} (claude, openai, gemini)\n`)
          return 2
        }
        const { key, record } = store.create({
          name: values.name,
          ...(providers?.length ? { providers } : {}),
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
            const state = k.revoked_at ? `revoked ${k.revoked_at}` : k.expires_at && Date.parse(k.expires_at) < Date.now() ? 'expired' : 'active'
            io.out(`${k.id}\t${k.name}\t${k.created_at}\t${state}${k.providers ? `\t${k.providers.join(',')}` : ''}\n`)
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
        const r = store.revoke(rest[0])
        io.out(`revoked ${r.id} (${r.name})\n`)
        return 0
      }
    } catch (e) {
      if (isGatehouseError(e)) {
        io.err(`gatehouse: ${e.message}\n`)
        return 1
      }
      throw e
    }
  }
  io.err(`gatehouse: unknown command ${JSON.stringify(positionals.join(' '))}\n${USAGE}`)
  return 2
}

async function start(loaded: LoadedConfig, io: Io): Promise<number | undefined> {
  const { config } = loaded
  const fatal = mustEnforceErrors(config)
  if (fatal.length) {
    io.err(`gatehouse: configuration cannot run (${loaded.source}):\n${fatal.map((l) => `  ${l}`).join('\n')}\n`)
    return 1
  }
  const logger = createAppLogger(config.logging.level, createMasker(), (l) => io.err(l))
  for (const w of loaded.warnings) logger.warn(w)
  for (const p of notEnforced(config)) logger.warn(`not yet enforced: ${p}`)
  if (!config.auth.client_auth.enabled) {
    logger.error(
      'CLIENT AUTH IS OFF (ENABLE_CLIENT_AUTH=false or auth.client_auth.enabled: false): anyone who can reach this gateway spends your provider credentials',
    )
  }
  const gateway = createGateway(config, { logger })
  const { url } = await gateway.listen()
  logger.info('gatehouse listening', { url, config: loaded.source })
  if (!config.management.secret_key) logger.info('management API is off: set management.secret_key to enable it')
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
  return undefined
}
