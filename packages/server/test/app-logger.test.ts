import { PassThrough } from 'node:stream'
import { createAppLogger } from '@gatehouse/server'

function capture(): { stream: PassThrough; lines: () => Array<Record<string, unknown>>; raw: () => string } {
  const stream = new PassThrough()
  let raw = ''
  stream.on('data', (d: Buffer) => (raw += d.toString()))
  return {
    stream,
    raw: () => raw,
    lines: () =>
      raw
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('createAppLogger', () => {
  it('writes one JSON object a line: info to stdout, warn and error to stderr', async () => {
    const out = capture()
    const err = capture()
    const logger = createAppLogger({ stdout: out.stream, stderr: err.stream, defaultMeta: { service: 'gatehouse' } })
    logger.info('listening', { port: 8317 })
    logger.warn('client auth is off')
    logger.error('upstream failed', { status: 502 })
    await tick()
    expect(out.lines()).toEqual([
      { timestamp: expect.stringMatching(/^\d{4}-/), level: 'info', message: 'listening', service: 'gatehouse', port: 8317 },
    ])
    expect(err.lines().map((l) => [l.level, l.message])).toEqual([
      ['warn', 'client auth is off'],
      ['error', 'upstream failed'],
    ])
  })

  it.each([
    ['error', ['error']],
    ['warn', ['error', 'warn']],
    ['info', ['error', 'warn', 'info']],
    ['debug', ['error', 'warn', 'info', 'debug']],
  ] as const)('at level %s writes %j', async (level, expected) => {
    const out = capture()
    const logger = createAppLogger({ level, stdout: out.stream, stderr: out.stream })
    logger.debug('d')
    logger.info('i')
    logger.warn('w')
    logger.error('e')
    await tick()
    expect(out.lines().map((l) => l.level).sort()).toEqual([...expected].sort())
  })

  it('masks secrets in the message, in meta values and keys, and configured literal secrets', async () => {
    const out = capture()
    const literal = 'c0ffee'.repeat(8)
    const logger = createAppLogger({ stdout: out.stream, stderr: out.stream, knownSecrets: [literal] })
    const key = `sk-ant-api03-${'Z'.repeat(40)}`
    logger.info(`got ${key}`, { authorization: 'Bearer abcdefghijklmnop', nested: { note: `key ${literal}` }, [key]: 1 })
    await tick()
    const raw = out.raw()
    expect(raw).not.toContain('Z'.repeat(40))
    expect(raw).not.toContain('abcdefghijklmnop')
    expect(raw).not.toContain(literal)
    expect(out.lines()[0]).toMatchObject({ message: 'got sk-ant-****', authorization: 'Bearer ****', 'sk-ant-****': 1 })
  })

  it('keeps CR/LF, ANSI escapes and U+2028/2029 inside one line', async () => {
    const out = capture()
    const logger = createAppLogger({ stdout: out.stream, stderr: out.stream })
    const hostile = 'a\r\n{"level":"error"}\u001b[2J\u2028\u2029'
    logger.info(hostile, { field: hostile })
    await tick()
    const raw = Buffer.from(out.raw())
    expect(raw.filter((b) => b === 0x0a)).toHaveLength(1)
    expect(raw.includes(0x0d) || raw.includes(0x1b) || raw.includes(Buffer.from('\u2028')) || raw.includes(Buffer.from('\u2029'))).toBe(false)
    expect(out.lines()[0]).toMatchObject({ message: hostile, field: hostile })
  })

  it('rejects an unknown level and a non-stream output', () => {
    expect(() => createAppLogger({ level: 'loud' as never })).toThrow(expect.objectContaining({ code: 'GH_SERVER_INVALID_OPTIONS', message: expect.stringContaining('level') }))
    expect(() => createAppLogger({ stdout: 'stdout' as never })).toThrow(expect.objectContaining({ code: 'GH_SERVER_INVALID_OPTIONS', message: expect.stringContaining('stdout must be a writable stream') }))
  })
})
