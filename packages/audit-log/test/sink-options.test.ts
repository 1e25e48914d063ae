import { join } from 'node:path'
import { createAuditLogger, type AuditLogOptions } from '@gatehouse/audit-log'
import { newKey } from './helpers'
import { tempDir } from '@gatehouse/testing'

const key = newKey()
let dir: string
let cleanup: () => void
beforeEach(() => ({ dir, cleanup } = tempDir()))
afterEach(() => cleanup())

const build =
  (extra: Record<string, unknown>): (() => unknown) =>
  () =>
    createAuditLogger({ file: join(dir, 'a.log'), key, ...extra } as AuditLogOptions)

describe('sink and checkpoint options', () => {
  it.each<[string, Record<string, unknown>, string, RegExp]>([
    [
      'an unknown sink type',
      { sinks: [{ type: 'kafka' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.type: must be one of "syslog", "https"/,
    ],
    [
      'a syslog sink without host',
      { sinks: [{ type: 'syslog' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.host: is required/,
    ],
    [
      'a port out of range',
      { sinks: [{ type: 'syslog', host: 'h', port: 70000 }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.port: must be <= 65535 \(got 70000\)/,
    ],
    [
      'a misspelt option',
      { sinks: [{ type: 'syslog', host: 'h', maxQueu: 5 }] },
      'GH_AUDIT_UNKNOWN_OPTION',
      /sinks\[0\]\.maxQueu: unknown key \(did you mean "maxQueue"\?\)/,
    ],
    [
      'an unknown facility',
      { sinks: [{ type: 'syslog', host: 'h', facility: 'nope' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.facility: must be a facility name/,
    ],
    [
      'a bad overflow policy',
      { sinks: [{ type: 'syslog', host: 'h', overflow: 'block' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.overflow: must be one of "drop-oldest", "drop-newest"/,
    ],
    [
      'a bad duration',
      { sinks: [{ type: 'syslog', host: 'h', retryInterval: 'soon' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.retryInterval must be a duration/,
    ],
    [
      'a cert without key',
      { sinks: [{ type: 'syslog', host: 'h', cert: 'PEM' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.cert and key go together/,
    ],
    [
      'a ca that is not PEM',
      { sinks: [{ type: 'syslog', host: 'h', ca: 'not pem' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.ca is not usable PEM/,
    ],
    [
      'a key that is not PEM',
      { sinks: [{ type: 'https', url: 'https://c.example/', cert: 'x', key: 'Sup3rS3cret' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.ca, cert or key is not usable PEM/,
    ],
    [
      'onDrop not a function',
      { sinks: [{ type: 'syslog', host: 'h', onDrop: 3 }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.onDrop must be a function/,
    ],
    [
      'an http:// collector',
      { sinks: [{ type: 'https', url: 'http://collector.example/in' }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.url must be an https:\/\/ URL/,
    ],
    [
      'a batchSize of 0',
      { sinks: [{ type: 'https', url: 'https://c.example/', batchSize: 0 }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.batchSize: must be >= 1/,
    ],
    [
      'a header that is not a string',
      { sinks: [{ type: 'https', url: 'https://c.example/', headers: { a: 1 } }] },
      'GH_AUDIT_INVALID_OPTIONS',
      /sinks\[0\]\.headers\.a: must be string/,
    ],
    [
      'a bad checkpoint interval',
      { checkpoints: { interval: 'often' } },
      'GH_AUDIT_INVALID_OPTIONS',
      /checkpoints\.interval/,
    ],
    [
      'a misspelt checkpoint option',
      { checkpoints: { intervall: '1m' } },
      'GH_AUDIT_UNKNOWN_OPTION',
      /checkpoints\.intervall: unknown key \(did you mean "interval"\?\)/,
    ],
    [
      'a signing key that is not Ed25519',
      { checkpoints: { signingKey: 'not a key' } },
      'GH_AUDIT_INVALID_KEY',
      /checkpoints\.signingKey is not a readable private key/,
    ],
  ])('rejects %s', (_what, extra, code, message) => {
    expect(build(extra)).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }))
  })

  it('never quotes a secret: collector URL, headers, signing key', () => {
    const secret = 'Sup3rS3cretCollectorToken'
    for (const extra of [
      { sinks: [{ type: 'https', url: `http://u:${secret}@c.example/?token=${secret}` }] },
      { sinks: [{ type: 'https', url: `not a url ${secret}` }] },
      {
        sinks: [
          { type: 'https', url: 'https://c.example/', headers: { authorization: 5, x: secret, y: [secret] } },
        ],
      },
      { checkpoints: { signingKey: `-----BEGIN PRIVATE KEY-----\n${secret}\n-----END PRIVATE KEY-----` } },
    ]) {
      let message = ''
      try {
        build(extra)()
      } catch (err) {
        message = (err as Error).message
      }
      expect(message).not.toBe('')
      expect(message).not.toContain(secret)
    }
  })

  it('does not mutate the caller options', () => {
    const sinks = [{ type: 'syslog' as const, host: '127.0.0.1', port: 1 }]
    const options = { file: join(dir, 'a.log'), key, sinks, checkpoints: { interval: 0 } }
    const copy = JSON.parse(JSON.stringify(options)) as unknown
    const audit = createAuditLogger(options)
    expect(JSON.parse(JSON.stringify(options))).toEqual(copy)
    return audit.close()
  })
})
