import { join } from 'node:path'
import { createAuditLogger, type AuditLogOptions } from '@gatehouse/audit-log'
import { newKey } from './helpers'
import { tempDir } from '@gatehouse/testing'

describe('createAuditLogger options', () => {
  const key = newKey()

  it.each<[Record<string, unknown>, string, RegExp]>([
    [{}, 'GH_AUDIT_INVALID_KEY', /key is required/],
    [{ key: 'too-short-key' }, 'GH_AUDIT_INVALID_KEY', /key is too short \(13 bytes\)/],
    [{ key: 42 }, 'GH_AUDIT_INVALID_KEY', /key is required/],
    [{ key, events: ['auth_failure', 'login'] }, 'GH_AUDIT_INVALID_OPTIONS', /events\[1\]: must be one of/],
    [{ key, maxSize: 'huge' }, 'GH_AUDIT_INVALID_OPTIONS', /maxSize is invalid \(got "huge"\)/],
    [{ key, retryInterval: 'soon' }, 'GH_AUDIT_INVALID_OPTIONS', /retryInterval is invalid/],
    [{ key, maxLineBytes: 10 }, 'GH_AUDIT_INVALID_OPTIONS', /maxLineBytes: must be >= 1024/],
    [{ key, daily: 'yes' }, 'GH_AUDIT_INVALID_OPTIONS', /daily: must be boolean/],
    [{ key, onWriteError: 'log it' }, 'GH_AUDIT_INVALID_OPTIONS', /onWriteError must be a function/],
    [{ key, logger: console.log }, 'GH_AUDIT_INVALID_OPTIONS', /logger must have error, warn, info and debug/],
    [{ key, maxsize: '1mb' }, 'GH_AUDIT_UNKNOWN_OPTION', /maxsize: unknown key \(did you mean "maxSize"\?\)/],
    [{ key, maxFileAge: 'a while' }, 'GH_AUDIT_INVALID_OPTIONS', /maxFileAge is invalid \(got "a while"\)/],
    [{ key, maxFileAge: -1 }, 'GH_AUDIT_INVALID_OPTIONS', /maxFileAge: must be >= 0/],
    [{ key, retention: { maxFiles: -1 } }, 'GH_AUDIT_INVALID_OPTIONS', /retention\.maxFiles: must be >= 0/],
    [{ key, retention: { maxFiles: 2.5 } }, 'GH_AUDIT_INVALID_OPTIONS', /retention\.maxFiles: must be integer/],
    [{ key, retention: { maxAge: '30 days' } }, 'GH_AUDIT_INVALID_OPTIONS', /retention\.maxAge is invalid \(got "30 days"\)/],
    [{ key, retention: { maxage: '30d' } }, 'GH_AUDIT_UNKNOWN_OPTION', /retention\.maxage: unknown key \(did you mean "maxAge"\?\)/],
    [{ key, retention: 7 }, 'GH_AUDIT_INVALID_OPTIONS', /retention: must be object/],
  ])('rejects %j with %s', (options, code, message) => {
    let thrown: unknown
    try {
      createAuditLogger(options as unknown as AuditLogOptions)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toMatchObject({ name: 'GatehouseConfigError', code })
    expect((thrown as Error).message).toMatch(/^@gatehouse\/audit-log: /)
    expect((thrown as Error).message).toMatch(message)
    expect((thrown as Error).message).not.toContain(key)
  })

  it('never quotes the key or known secrets in an error', () => {
    const secret = `sk-ant-api03-${'q'.repeat(30)}`
    expect(() => createAuditLogger({ key: secret.slice(0, 20) })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('qqqq') }))
    expect(() => createAuditLogger({ key, knownSecrets: [secret, 7] } as never)).toThrow(
      expect.objectContaining({ code: 'GH_AUDIT_INVALID_OPTIONS', message: expect.not.stringContaining('qqqq') }),
    )
  })

  it('takes a Buffer key, treats undefined as absent and leaves the options untouched', async () => {
    const { dir, cleanup } = tempDir()
    try {
      const options = Object.freeze({ file: join(dir, 'audit.log'), key: Buffer.alloc(32, 7), maxSize: undefined, events: Object.freeze(['auth_failure'] as const) })
      const audit = createAuditLogger(options as unknown as AuditLogOptions)
      expect(audit.healthy).toBe(true)
      await audit.close()
    } finally {
      cleanup()
    }
  })
})
