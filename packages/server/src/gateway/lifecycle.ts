import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { parseDuration } from '@gatehouse/core'
import { FileKeyStore, RedisKeyStore } from '@gatehouse/client-auth'
import { credentialFiles } from '@gatehouse/credential-vault'
import { startMetricsServer, type MetricsServer } from '@gatehouse/metrics'
import { startReplicaHeartbeat } from '../cluster/replicas'
import type { GatewayHttpServer } from './http-server'
import type { GatewayServices } from './services'

/** Start-up and shutdown: the shared state first, then the listeners, all or nothing; the drain and the closing of every store. */
export interface Lifecycle {
  listen(): Promise<{ url: string; port: number }>
  close(graceMs?: number): Promise<void>
  metricsUrl(): string | undefined
}

export function createLifecycle(s: GatewayServices, http: GatewayHttpServer): Lifecycle {
  let heartbeat: { stop(): Promise<void> } | undefined
  let metricsServer: MetricsServer | undefined
  const { config, logger, masker } = s
  const errorText = (err: unknown): string => masker.text(String(err))

  const startShared = async (): Promise<void> => {
    const { redis, keyStore, control } = s.state
    if (redis && redis.status !== 'ready') {
      // Give Redis a moment before taking traffic, so the first requests meet a working store.
      const ready = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 5000)
        redis.once('ready', () => {
          clearTimeout(timer)
          resolve(true)
        })
      })
      if (!ready) logger.error(`redis is not reachable yet; store.on_error (${config.store.on_error}) applies until it is`)
    }
    await s.ipFilter.ready().catch(() => undefined)
    if (keyStore instanceof RedisKeyStore) {
      // Until the first copy is read no key authenticates (and /readyz says so); it keeps trying.
      await keyStore.start().catch((err: unknown) => logger.error('the shared key store cannot be read yet; no client key authenticates until it can', { error: errorText(err) }))
      warnUnmigratedKeys(s, keyStore)
    }
    await control.start().catch((err: unknown) => logger.error('the shared maintenance state cannot be read yet; this config applies until it can', { error: errorText(err) }))
    if (redis) {
      // Until the first copy is read no vault credential is served (static keys are); it keeps trying.
      await s.upstream.vault.start().catch((err: unknown) => logger.error('the shared credential records cannot be read yet; no vault credential is served until they can', { error: errorText(err) }))
      warnUnmigratedCredentials(s)
    }
    if (redis && keyStore instanceof RedisKeyStore && !heartbeat) {
      heartbeat = startReplicaHeartbeat({
        client: redis,
        prefix: s.state.prefix,
        status: () => ({
          keys_version: keyStore.version,
          runtime_version: control.version() ?? 0,
          credentials_version: s.upstream.vault.recordsVersion() ?? 0,
          degraded: !s.state.fresh(),
        }),
      })
    }
  }

  const listen = async (): Promise<{ url: string; port: number }> => {
    await startShared()
    // The gateway's own port first, then the metrics port: either taken, nothing stays listening
    // and the error names the config key.
    const { server } = http
    const address = await new Promise<{ url: string; port: number }>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.server.port, config.server.host, () => {
        server.off('error', reject)
        const { port } = server.address() as AddressInfo
        const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host
        resolve({ url: `${http.tls ? 'https' : 'http'}://${host}:${port}`, port })
      })
    }).catch((err: unknown) => {
      throw listenError('server.port', config.server.host, config.server.port, err)
    })
    const metrics = s.events.metrics
    if (metrics && !metricsServer) {
      try {
        metricsServer = await startMetricsServer({ metrics, host: config.metrics.host, allowedHosts: config.metrics.allowed_hosts, port: config.metrics.port, path: config.metrics.path, logger })
      } catch (err) {
        await new Promise((r) => server.close(r))
        throw listenError('metrics.port', config.metrics.host, config.metrics.port, err)
      }
    }
    return address
  }

  const close = async (graceMs = parseDuration(config.server.timeouts.shutdown_grace)): Promise<void> => {
    s.state.runtime.shuttingDown = true
    http.stopWatching()
    const { server } = http
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeIdleConnections()
    const deadline = Date.now() + graceMs
    while (http.inflight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
    server.closeAllConnections()
    await closed
    s.upstream.proxy.close()
    const settle = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        logger.error(`shutdown: ${what} failed`, { error: errorText(err) })
      }
    }
    await settle('alerts', () => s.alerts?.shutdown())
    await settle('metrics listener', () => metricsServer?.close())
    await settle('ip filter', () => s.ipFilter.shutdown())
    await settle('denylist store', () => s.denylistStore?.shutdown())
    for (const l of [...s.limits.perAddress, ...s.limits.perRequest]) await settle('rate limiter', () => l.shutdown?.())
    await settle('rate-limit store', () => s.limits.store.shutdown())
    await settle('vault', () => s.upstream.vault.shutdown())
    await settle('replica report', () => heartbeat?.stop())
    await settle('key store', () => s.state.keyStore.close())
    await settle('shared runtime', () => s.state.control.close())
    await settle('storage', () => s.events.storage?.close())
    await settle('audit log', () => s.events.audit?.close())
    const redis = s.state.redis
    if (redis) await settle('redis', () => redis.quit())
  }

  return { listen, close, metricsUrl: () => metricsServer?.url }
}

/** An install moving into cluster mode: its key file is not read any more; say so when the shared store is empty. */
function warnUnmigratedKeys(s: GatewayServices, keyStore: RedisKeyStore): void {
  const file = s.paths.keyFile
  if (keyStore.version !== 0 || !existsSync(file)) return
  let holdsKeys = false
  try {
    holdsKeys = new FileKeyStore({ file, salt: s.secrets.salt, reload: 'stat' }).list().length > 0
  } catch {
    holdsKeys = false
  }
  if (holdsKeys) {
    s.logger.warn(`the shared key store in Redis is empty, but ${file} holds client keys, which cluster mode does not read: run \`gatehouse keys migrate --to redis\` to move them (none is re-issued)`)
  }
}

/** An install moving into cluster mode: its credential files are not read any more; say so when Redis holds no records. */
function warnUnmigratedCredentials(s: GatewayServices): void {
  if (s.upstream.vault.recordsVersion() !== 0) return
  const files = credentialFiles(s.paths.dir).length
  if (files > 0) s.logger.warn(`the shared credential records in Redis are empty, but ${s.paths.dir} holds ${files} credential file${files === 1 ? '' : 's'}, which cluster mode does not read: run \`gatehouse vault migrate --to redis\` to move them`)
}

/** A listener that could not bind, named by the config key that chose its port. */
function listenError(key: string, host: string, port: number, err: unknown): Error {
  // The system's code (EADDRINUSE…), on the error or on what a package wrapped.
  const errno = (e: unknown): string | undefined => {
    const c = (e as NodeJS.ErrnoException | undefined)?.code
    return typeof c === 'string' && /^E[A-Z]+$/.test(c) ? c : undefined
  }
  const code = errno(err) ?? errno((err as Error | undefined)?.cause) ?? /\b(E[A-Z]{4,})\b/.exec(String((err as Error)?.message))?.[1]
  const why = code === 'EADDRINUSE' ? 'the port is taken by another process' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : code === 'EADDRNOTAVAIL' ? 'the address is not one of this host' : String((err as Error)?.message ?? err)
  return new Error(`${key}: cannot listen on ${host}:${port}: ${why}${code ? ` (${code})` : ''}`, { cause: err })
}

