import { Writable } from 'node:stream'
import { parseDuration } from '@gatehouse/core'
import { createAppLogger } from '../logging/app-logger'
import type { LoadedConfig } from '../config/load'
import { countBySeverity, diagnose } from '../doctor'
import { configSecrets, createGateway } from '../gateway'
import { installLastResort } from '../last-resort'
import { EXIT_FAILURE, type CommandContext, type ExitCode, type Io } from './context'

/** `gatehouse [start]`: the gateway, until SIGTERM or SIGINT (undefined: it keeps running). */
export async function startCommand(ctx: CommandContext): Promise<ExitCode | undefined> {
  const loaded = ctx.load()
  return typeof loaded === 'number' ? loaded : start(loaded, ctx.io)
}

async function start(loaded: LoadedConfig, io: Io): Promise<ExitCode | undefined> {
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
  let gateway: ReturnType<typeof createGateway>
  try {
    gateway = createGateway(config, { logger })
  } catch (err) {
    // All or nothing: a layer that cannot be built stops the start with one message.
    logger.error(`cannot start: ${(err as Error).message}`)
    return EXIT_FAILURE
  }
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
    return EXIT_FAILURE
  }
  logger.info('gatehouse listening', { url, config: loaded.source })
  if (!config.management.secret_key) logger.info('management API is off: set management.secret_key to enable it')
  return undefined
}
