import { checkPermissions, checkTls, installHook, runAll, scanSecrets, SecurityCheckErrorCodes } from '../src'
import { tempDir } from './helpers'

type Call = (options: never) => Promise<unknown>

describe('options of the exported functions', () => {
  const { INVALID_OPTIONS, UNKNOWN_OPTION } = {
    INVALID_OPTIONS: SecurityCheckErrorCodes.GH_SC_INVALID_OPTIONS,
    UNKNOWN_OPTION: SecurityCheckErrorCodes.GH_SC_UNKNOWN_OPTION,
  }

  it.each<[string, Call, unknown, string, RegExp]>([
    [
      'checkPermissions',
      checkPermissions as Call,
      {},
      INVALID_OPTIONS,
      /checkPermissions\(\): paths: is required/,
    ],
    [
      'checkPermissions',
      checkPermissions as Call,
      { paths: [] },
      INVALID_OPTIONS,
      /paths: must NOT have fewer than 1 items/,
    ],
    [
      'checkPermissions',
      checkPermissions as Call,
      { paths: ['a'], fileMode: 0o10000 },
      INVALID_OPTIONS,
      /fileMode: must be <= 4095 \(got 4096\)/,
    ],
    [
      'checkPermissions',
      checkPermissions as Call,
      { paths: ['a'], fixx: true },
      UNKNOWN_OPTION,
      /fixx: unknown key \(did you mean "fix"\?\)/,
    ],
    [
      'scanSecrets',
      scanSecrets as Call,
      { maxFileSize: 'lots' },
      INVALID_OPTIONS,
      /maxFileSize: must be a number of bytes or a size such as "5mb" \(got "lots"\)/,
    ],
    ['scanSecrets', scanSecrets as Call, { paths: 'src' }, INVALID_OPTIONS, /paths: must be array/],
    ['scanSecrets', scanSecrets as Call, { stagd: true }, UNKNOWN_OPTION, /did you mean "staged"/],
    ['scanSecrets', scanSecrets as Call, 'src', INVALID_OPTIONS, /options must be an object \(got "src"\)/],
    [
      'scanSecrets',
      scanSecrets as Call,
      () => undefined,
      INVALID_OPTIONS,
      /scanSecrets\(\) takes an options object, not a function/,
    ],
    ['checkTls', checkTls as Call, {}, INVALID_OPTIONS, /cert: is required/],
    [
      'checkTls',
      checkTls as Call,
      { cert: 'a', minDays: -1 },
      INVALID_OPTIONS,
      /minDays: must be >= 0 \(got -1\)/,
    ],
    [
      'runAll',
      runAll as Call,
      { auditTimeout: 'forever' },
      INVALID_OPTIONS,
      /auditTimeout: must be a number of milliseconds or a duration/,
    ],
    ['runAll', runAll as Call, { env: 'PATH=/bin' }, INVALID_OPTIONS, /env: must be an object/],
    ['installHook', installHook as Call, { force: 'yes' }, INVALID_OPTIONS, /force: must be boolean/],
  ])('%s(%j) throws %s', async (_name, call, options, code, message) => {
    const err = await call(options as never).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ code, name: 'GatehouseConfigError' })
    expect((err as Error).message).toMatch(/^@gatehouse\/security-check: /)
    expect((err as Error).message).toMatch(message)
  })

  it("treats undefined like an omitted option and never changes the caller's object", async () => {
    const { dir, cleanup } = tempDir()
    try {
      const options = Object.freeze({ cwd: dir, paths: undefined, maxFileSize: undefined, staged: undefined })
      const result = await scanSecrets(options as never)
      expect(result).toMatchObject({ ok: true, files: 0, staged: false })
      expect(options).toEqual({ cwd: dir, paths: undefined, maxFileSize: undefined, staged: undefined })
    } finally {
      cleanup()
    }
  })
})
