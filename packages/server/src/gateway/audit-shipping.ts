import { readFileSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import type { AuditLogOptions, AuditSinkOptions } from '@gatehouse/audit-log'
import type { GatehouseConfig } from '../config/types'

/** logging.audit.sinks and .checkpoints as the audit logger's options (certificate and key files read here). */
export function auditShipping(config: GatehouseConfig, cwd: string): Pick<AuditLogOptions, 'sinks' | 'checkpoints'> {
  const read = (file: string | undefined): string | undefined => (file ? readFileSync(resolvePath(cwd, file), 'utf8') : undefined)
  const sinks = (config.logging.audit.sinks ?? []).map((s): AuditSinkOptions => {
    const common = {
      ...(s.name !== undefined ? { name: s.name } : {}),
      ...(s.max_queue !== undefined ? { maxQueue: s.max_queue } : {}),
      ...(s.overflow !== undefined ? { overflow: s.overflow } : {}),
      ...(s.ca_file ? { ca: read(s.ca_file)! } : {}),
      ...(s.cert_file ? { cert: read(s.cert_file)! } : {}),
      ...(s.key_file ? { key: read(s.key_file)! } : {}),
    }
    return s.type === 'syslog'
      ? { type: 'syslog', host: s.host ?? '', ...(s.port !== undefined ? { port: s.port } : {}), ...(s.servername ? { servername: s.servername } : {}), ...common }
      : { type: 'https', url: s.url ?? '', ...(s.headers ? { headers: s.headers } : {}), ...common }
  })
  const cp = config.logging.audit.checkpoints
  const checkpointing = cp?.enabled ?? sinks.length > 0
  return {
    ...(sinks.length ? { sinks } : {}),
    ...(cp
      ? {
          checkpoints: {
            ...(cp.enabled !== undefined ? { enabled: cp.enabled } : {}),
            ...(cp.interval !== undefined ? { interval: cp.interval } : {}),
            ...(cp.signing_key_file && checkpointing ? { signingKey: read(cp.signing_key_file)! } : {}),
            ...(cp.log_id ? { logId: cp.log_id } : {}),
          },
        }
      : {}),
  }
}
