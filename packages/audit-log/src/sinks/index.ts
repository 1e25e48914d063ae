import type { QueuedSink, SinkHooks } from './base'
import { HttpsSink } from './https'
import type { AuditSinkConfig } from './config'
import { SyslogSink } from './syslog'

export function createSink(cfg: AuditSinkConfig, hooks: SinkHooks): QueuedSink {
  return cfg.type === 'syslog' ? new SyslogSink(cfg, hooks) : new HttpsSink(cfg, hooks)
}
