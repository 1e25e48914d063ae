import { createPublicKey } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { listAuditFiles, verifyAuditLog } from '@gatehouse/audit-log'
import { authPaths } from '../auth-paths'
import type { GatehouseConfig } from '../config/types'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, flag, type CommandContext, type ExitCode, type Io } from './context'

/** `gatehouse audit verify FILE [--checkpoints F]`: the hash chain is intact (and matches the shipped checkpoints). */
export async function auditCommand(ctx: CommandContext): Promise<ExitCode> {
  const { io } = ctx
  if (ctx.sub !== 'verify') return usage(io, 'audit needs: verify FILE')
  const file = ctx.args[0]
  if (!file) return usage(io, 'audit verify needs the audit log file')
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  const key = auditKey(loaded.config, io)
  if (typeof key === 'number') return key
  if (!existsSync(file)) return usage(io, `${file}: no such file`)
  // --checkpoints: the checkpoints a collector received (syslog or HTTPS export); a log cut or
  // replaced after the newest one fails.
  const checkpoints = flag(ctx.flags, 'checkpoints')
  if (checkpoints !== undefined && !existsSync(checkpoints)) return usage(io, `${checkpoints}: no such file`)
  const cp = loaded.config.logging.audit.checkpoints
  const signingKey = cp?.signing_key_file ? resolvePath(cp.signing_key_file) : undefined
  // The files are the whole log: it must begin at seq 1 or where a retention record says the deleted files ended.
  const result = await verifyAuditLog(listAuditFiles(resolvePath(file)), key, {
    whole: true,
    ...(checkpoints !== undefined ? { checkpoints: resolvePath(checkpoints) } : {}),
    // Ed25519-signed checkpoints are checked with the public half of the configured key (when it is there).
    ...(checkpoints !== undefined && signingKey && existsSync(signingKey) ? { checkpointPublicKey: createPublicKey(readFileSync(signingKey, 'utf8')) } : {}),
    ...(cp?.log_id ? { logId: cp.log_id } : {}),
  })
  if (result.ok) {
    const vouched = result.checkpoints ? `; matches ${result.checkpoints.count} checkpoint(s), the newest at seq ${result.checkpoints.newestSeq}` : ''
    io.out(`audit log intact: ${result.lines} lines in ${result.files.length} file(s), seq ${result.firstSeq ?? '-'}..${result.lastSeq ?? '-'}${vouched}\n`)
    return EXIT_OK
  }
  const f = result.failure!
  io.out(`audit log TAMPERED: ${f.file} line ${f.line}: ${f.reason}\n`)
  return EXIT_FAILURE
}

/** logging.audit.key, or the key the gateway generated into the auth directory. */
function auditKey(config: GatehouseConfig, io: Io): string | ExitCode {
  if (config.logging.audit.key) return config.logging.audit.key
  const keyFile = authPaths(config).auditKeyFile
  if (!existsSync(keyFile)) return usage(io, `no audit key: set logging.audit.key (GATEHOUSE_AUDIT_KEY) or run where ${keyFile} exists`)
  return readFileSync(keyFile, 'utf8').trim()
}

function usage(io: Io, message: string): ExitCode {
  io.err(`gatehouse: ${message}\n`)
  return EXIT_USAGE
}
