import { SECURITY_EVENT_TYPES } from '@gatehouse/core'
import type { GatehouseConfig } from './types'

/**
 * The embedded default: what `gatehouse` runs with no config file. Secure by default: loopback
 * bind, client auth on, audit log on, metrics on loopback, credentials encrypted at rest.
 */
export function defaultConfig(): GatehouseConfig {
  return {
    server: {
      host: '127.0.0.1',
      allowed_hosts: [],
      port: 8317,
      trust_proxy: false,
      body_limit: '10mb',
      max_choices: 1,
      timeouts: { connect: '10s', first_byte: '300s', idle: '120s', shutdown_grace: '30s' },
      tls: { enabled: false, min_version: '1.2' },
      security: {
        ip_allowlist: { enabled: false, allowed_ips: [], deny_all: false },
        ip_denylist: { enabled: false, denied_ips: [] },
        rate_limiting: { enabled: true, requests_per_second: 10, burst: 20, per_ip: true },
        never_block: [],
        headers: {
          enabled: true,
          strict_transport_security: 'max-age=31536000; includeSubDomains',
          content_type_options: 'nosniff',
          frame_options: 'DENY',
          xss_protection: '0',
          content_security_policy: "default-src 'none'; frame-ancestors 'none'",
        },
      },
      rate_limit: { enabled: false, requests_per_second: 100, burst: 200 },
      maintenance_mode: false,
      retry_after: '10s',
      message: 'Scheduled maintenance in progress',
    },
    auth: {
      client_auth: { enabled: true },
      dir: './auths',
      honeytokens: [],
      encryption: { enabled: true },
      key_limits: {},
    },
    providers: {
      claude: { enabled: true, base_url: 'https://api.anthropic.com', max_tokens: 4096 },
      openai: { enabled: true, base_url: 'https://api.openai.com', max_tokens: 4096 },
      gemini: { enabled: true, base_url: 'https://generativelanguage.googleapis.com', max_tokens: 4096 },
    },
    store: { type: 'memory', on_error: 'local', replicas: 1, key_prefix: 'gatehouse:', max_staleness: '15m' },
    logging: {
      level: 'info',
      audit: { enabled: true, file: './logs/audit.log', format: 'json', events: [...SECURITY_EVENT_TYPES], aggregate_interval: '10s' },
    },
    metrics: { enabled: true, host: '127.0.0.1', allowed_hosts: [], port: 9090, path: '/metrics', prefix: 'gatehouse_' },
    alerts: [
      { name: 'High auth failure rate', condition: 'auth_failures > 100', duration: '5m', action: 'notify_admin' },
      { name: 'Rate limit violations', condition: 'rate_limit_violations > 50', duration: '1m', action: 'block_ip' },
    ],
    notify: {},
    management: { enabled: true, allow_remote: false },
    device_fingerprint: { enabled: true, header: 'X-Device-Fingerprint' },
    storage: { enabled: false, store_bodies: false, retention_days: 30 },
    // Private keys and cloud credentials blocked, other credential formats logged (request-guard's defaults).
    secret_detection: { enabled: true },
  }
}
