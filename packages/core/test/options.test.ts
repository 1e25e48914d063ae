import { createOptionsResolver, parseDuration, parseSize, normalizeIp, isLoopback, isGatehouseError } from '@gatehouse/core'

const resolve = createOptionsResolver<{ maxAge?: number; allow?: string[] }>({
  pkg: '@gatehouse/demo',
  codePrefix: 'GH_DEMO',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { maxAge: { type: 'integer', minimum: 0 }, allow: { type: 'array', items: { type: 'string', minLength: 3 } } },
  },
})

describe('createOptionsResolver', () => {
  it.each<[unknown, string, string]>([
    [{ maxage: 1 }, 'GH_DEMO_UNKNOWN_OPTION', 'maxage: unknown key (did you mean "maxAge"?)'],
    [{ maxAge: -1 }, 'GH_DEMO_INVALID_OPTIONS', 'maxAge: must be >= 0 (got -1)'],
    [{ allow: ['10.0.0.0/8', 'x'] }, 'GH_DEMO_INVALID_OPTIONS', 'allow[1]: must NOT have fewer than 3 characters (got "x")'],
    ['nope', 'GH_DEMO_INVALID_OPTIONS', 'options must be an object'],
    [{ headers: {}, method: 'GET', url: '/' }, 'GH_DEMO_NOT_CALLED', 'without being called'],
  ])('rejects %j with %s', (options, code, message) => {
    let err: unknown
    try {
      resolve(options)
    } catch (e) {
      err = e
    }
    expect(isGatehouseError(err)).toBe(true)
    expect(err).toMatchObject({ code })
    expect((err as Error).message).toContain('@gatehouse/demo: ')
    expect((err as Error).message).toContain(message)
  })

  it('treats undefined as absent and does not mutate the input', () => {
    const input = { maxAge: undefined, allow: ['abc'] }
    expect(resolve(input)).toEqual({ allow: ['abc'] })
    expect(Object.keys(input)).toEqual(['maxAge', 'allow'])
  })
})

describe('units and addresses', () => {
  it('parses durations and sizes, naming bad values', () => {
    expect(parseDuration('10s')).toBe(10_000)
    expect(parseDuration('5m')).toBe(300_000)
    expect(parseDuration(250)).toBe(250)
    expect(() => parseDuration('10 parsecs', 'server.timeouts.idle')).toThrow(
      'server.timeouts.idle: must be a duration such as "10s", "5m" or "250ms" (got "10 parsecs")',
    )
    expect(parseSize('10mb')).toBe(10 * 1024 * 1024)
    expect(() => parseSize('big', 'server.body_limit')).toThrow('server.body_limit')
  })

  it('normalizes IPv4-mapped IPv6 and recognises loopback', () => {
    expect(normalizeIp('::ffff:10.0.0.1')).toBe('10.0.0.1')
    expect(normalizeIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1')
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true)
    expect(isLoopback('::1')).toBe(true)
    expect(isLoopback('10.0.0.1')).toBe(false)
  })
})
