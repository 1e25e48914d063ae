import type { Logger, SecurityEvent } from '@gatehouse/core'

export interface RecordingLogger extends Logger {
  calls: Array<{ level: string; message: string; meta?: Record<string, unknown> }>
  text(): string
}

export function recordingLogger(): RecordingLogger {
  const calls: RecordingLogger['calls'] = []
  const at =
    (level: string) =>
    (message: string, meta?: Record<string, unknown>): void => {
      calls.push(meta === undefined ? { level, message } : { level, message, meta })
    }
  return { calls, text: () => JSON.stringify(calls), error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }
}

export const event = (overrides: Partial<SecurityEvent> = {}): SecurityEvent => ({
  timestamp: new Date().toISOString(),
  event_type: 'auth_failure',
  provider: 'claude',
  ip: '192.168.1.100',
  result: 'invalid_token',
  ...overrides,
})

export const rateLimited = (ip: string): SecurityEvent => event({ event_type: 'security_violation', result: 'rate_limited', ip })

/** Value of one sample in Prometheus text, or undefined. `series` is `name{a="b"}` exactly as printed. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}
