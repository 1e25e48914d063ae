import { createSecureContext } from 'node:tls'
import { GatehouseConfigError, parseDuration } from '@gatehouse/core'
import { AuditLogErrorCodes } from '../errors'
import { SYSLOG_FACILITIES, type AuditSinkDrop, type AuditSinkOptions, type Pem } from './options'
import type { OverflowPolicy } from './queue'

const PKG = '@gatehouse/audit-log'

/** The resolved, frozen configuration of one sink: what `sinks[i]` became after validation. */
interface SinkCommonConfig {
  readonly name: string
  readonly maxQueue: number
  readonly overflow: OverflowPolicy
  readonly retryIntervalMs: number
  readonly maxRetryIntervalMs: number
  readonly closeTimeoutMs: number
  readonly tls: { readonly ca?: Pem | Pem[]; readonly cert?: Pem; readonly key?: Pem }
  readonly onDrop: ((drop: AuditSinkDrop) => void) | undefined
}

export interface SyslogSinkConfig extends SinkCommonConfig {
  readonly type: 'syslog'
  readonly host: string
  readonly port: number
  readonly servername: string | undefined
  readonly hostname: string | undefined
  readonly appName: string
  readonly facility: number
  readonly connectTimeoutMs: number
  readonly resendWindowMs: number
}

export interface HttpsSinkConfig extends SinkCommonConfig {
  readonly type: 'https'
  readonly url: URL
  readonly headers: Readonly<Record<string, string>>
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly timeoutMs: number
}

export type AuditSinkConfig = SyslogSinkConfig | HttpsSinkConfig

export function invalidSink(path: string, message: string): GatehouseConfigError {
  return new GatehouseConfigError(AuditLogErrorCodes.GH_AUDIT_INVALID_OPTIONS, `${PKG}: ${path}.${message}`)
}

function ms(path: string, name: string, value: string | number | undefined, fallback: string): number {
  try {
    return parseDuration(value ?? fallback, name)
  } catch {
    throw invalidSink(
      path,
      `${name} must be a duration such as "10s", "5m" or "250ms" (got ${JSON.stringify(value)})`,
    )
  }
}

const isPem = (v: unknown): boolean => typeof v === 'string' || Buffer.isBuffer(v)

function resolveCommon(path: string, o: AuditSinkOptions, defaultName: string): SinkCommonConfig {
  if (o.ca !== undefined && !(isPem(o.ca) || (Array.isArray(o.ca) && o.ca.length > 0 && o.ca.every(isPem)))) {
    throw invalidSink(path, 'ca must be PEM text or a Buffer, or a list of them')
  }
  if (o.cert !== undefined && !isPem(o.cert)) throw invalidSink(path, 'cert must be PEM text or a Buffer')
  if (o.key !== undefined && !isPem(o.key)) throw invalidSink(path, 'key must be PEM text or a Buffer')
  if ((o.cert === undefined) !== (o.key === undefined))
    throw invalidSink(path, 'cert and key go together (mutual TLS): set both or neither')
  if (o.onDrop !== undefined && typeof o.onDrop !== 'function')
    throw invalidSink(path, 'onDrop must be a function')
  // OpenSSL skips CA text that is not a certificate; refuse it here instead of failing every handshake.
  const cas = o.ca === undefined ? [] : Array.isArray(o.ca) ? o.ca : [o.ca]
  if (cas.some((c) => !c.toString().includes('-----BEGIN CERTIFICATE-----')))
    throw invalidSink(path, 'ca is not usable PEM (no certificate in it)')
  try {
    createSecureContext({
      ...(o.ca !== undefined ? { ca: o.ca } : {}),
      ...(o.cert !== undefined ? { cert: o.cert, key: o.key } : {}),
    })
  } catch {
    // The PEM is never quoted: `key` is a secret.
    throw invalidSink(
      path,
      `${o.cert !== undefined ? 'ca, cert or key' : 'ca'} is not usable PEM (or the key does not match the certificate)`,
    )
  }
  const retryIntervalMs = Math.max(1, ms(path, 'retryInterval', o.retryInterval, '1s'))
  const maxRetryIntervalMs = Math.max(
    retryIntervalMs,
    ms(path, 'maxRetryInterval', o.maxRetryInterval, '30s'),
  )
  const tls: { ca?: Pem | Pem[]; cert?: Pem; key?: Pem } = {}
  if (o.ca !== undefined) tls.ca = o.ca
  if (o.cert !== undefined) tls.cert = o.cert
  if (o.key !== undefined) tls.key = o.key
  return {
    name: o.name ?? defaultName,
    maxQueue: o.maxQueue ?? 10_000,
    overflow: o.overflow ?? 'drop-oldest',
    retryIntervalMs,
    maxRetryIntervalMs,
    closeTimeoutMs: ms(path, 'closeTimeout', o.closeTimeout, '5s'),
    tls: Object.freeze(tls),
    onDrop: o.onDrop,
  }
}

/** Resolve one sink whose data-shaped options already passed the schema. `path` is e.g. `sinks[0]`. */
export function resolveSinkConfig(path: string, o: AuditSinkOptions): AuditSinkConfig {
  if (o.type === 'syslog') {
    const port = o.port ?? 6514
    const facility =
      o.facility === undefined
        ? 10
        : typeof o.facility === 'number'
          ? o.facility
          : SYSLOG_FACILITIES.indexOf(o.facility as (typeof SYSLOG_FACILITIES)[number])
    return Object.freeze({
      ...resolveCommon(path, o, `syslog://${o.host}:${port}`),
      type: 'syslog',
      host: o.host,
      port,
      servername: o.servername,
      hostname: o.hostname,
      appName: o.appName ?? 'gatehouse',
      facility,
      connectTimeoutMs: Math.max(1, ms(path, 'connectTimeout', o.connectTimeout, '10s')),
      resendWindowMs: ms(path, 'resendWindow', o.resendWindow, '5s'),
    })
  }
  let url: URL
  try {
    url = new URL(o.url)
  } catch {
    throw invalidSink(path, 'url is not a valid URL')
  }
  // The URL is never quoted: its query or userinfo may hold a token.
  if (url.protocol !== 'https:')
    throw invalidSink(path, 'url must be an https:// URL (audit lines never travel in clear text)')
  return Object.freeze({
    ...resolveCommon(path, o, `${url.origin}${url.pathname}`),
    type: 'https',
    url,
    headers: Object.freeze({ ...(o.headers ?? {}) }),
    batchSize: o.batchSize ?? 500,
    flushIntervalMs: ms(path, 'flushInterval', o.flushInterval, '1s'),
    timeoutMs: Math.max(1, ms(path, 'timeout', o.timeout, '10s')),
  })
}
