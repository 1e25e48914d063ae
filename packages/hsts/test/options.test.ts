import { createTestApp, listen, thrownGatehouseError } from '@gatehouse/testing'
import { hsts, httpsOnly, resolveHstsConfig, parseHstsHeader, type HstsOptions, type HttpsOnlyOptions } from '@gatehouse/hsts'

async function headersOf(mw: ReturnType<typeof hsts>): Promise<Headers> {
  const server = await listen(createTestApp(mw))
  try {
    const r = await fetch(server.url)
    await r.arrayBuffer()
    return r.headers
  } finally {
    await server.close()
  }
}

describe('hsts options', () => {
  it.each<[unknown, string]>([
    [{ maxAge: -1 }, 'GH_HSTS_INVALID_OPTIONS'],
    [{ maxage: 10 }, 'GH_HSTS_UNKNOWN_OPTION'],
    [{ preload: true, maxAge: 60 }, 'GH_HSTS_PRELOAD_REQUIREMENTS'],
  ])('rejects %j with %s', (options, code) => {
    expect(() => hsts(options as HstsOptions)).toThrow(expect.objectContaining({ code }))
  })

  it('treats undefined like an omitted option', async () => {
    const h = await headersOf(hsts({ maxAge: undefined }))
    expect(h.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains')
  })

  it.each<[unknown, string, string]>([
    [{ maxAge: -1 }, 'GH_HSTS_INVALID_OPTIONS', '@gatehouse/hsts: maxAge: must be >= 0 (got -1)'],
    [{ maxAge: 1.5 }, 'GH_HSTS_INVALID_OPTIONS', 'maxAge: must be integer (got 1.5)'],
    [{ maxAge: '31536000' }, 'GH_HSTS_INVALID_OPTIONS', 'maxAge: must be integer (got "31536000")'],
    [{ maxage: 10 }, 'GH_HSTS_UNKNOWN_OPTION', 'maxage: unknown key (did you mean "maxAge"?)'],
    [{ includeSubdomains: true }, 'GH_HSTS_UNKNOWN_OPTION', 'did you mean "includeSubDomains"?'],
    [{ preload: true, maxAge: 60 }, 'GH_HSTS_PRELOAD_REQUIREMENTS', 'preload requires maxAge >= 31536000 and includeSubDomains (got maxAge 60, includeSubDomains true)'],
    [{ preload: true, includeSubDomains: false }, 'GH_HSTS_PRELOAD_REQUIREMENTS', 'includeSubDomains false'],
    [{ strictTransportSecurity: 'max-age=600; preload' }, 'GH_HSTS_PRELOAD_REQUIREMENTS', 'got maxAge 600, includeSubDomains false'],
    [{ strictTransportSecurity: 'includeSubDomains' }, 'GH_HSTS_INVALID_HEADER_VALUE', 'strictTransportSecurity needs max-age=<seconds>'],
    [{ strictTransportSecurity: 'max-age=-5' }, 'GH_HSTS_INVALID_HEADER_VALUE', 'needs max-age=<seconds> ("max-age=-5")'],
    [{ strictTransportSecurity: 'max-age=10; max-age=20' }, 'GH_HSTS_INVALID_HEADER_VALUE', 'repeats the max-age directive'],
    [{ strictTransportSecurity: 'max-age=10; includeSubdomain' }, 'GH_HSTS_INVALID_HEADER_VALUE', 'unknown directive "includesubdomain"'],
    [{ strictTransportSecurity: 'max-age=10; preload=yes' }, 'GH_HSTS_INVALID_HEADER_VALUE', 'directive preload takes no value'],
    [{ strictTransportSecurity: 'max-age=10\r\nSet-Cookie: a=b' }, 'GH_HSTS_INVALID_OPTIONS', 'strictTransportSecurity: must match pattern'],
    [{ strictTransportSecurity: 'max-age=10', maxAge: 20 }, 'GH_HSTS_CONFLICTING_OPTIONS', 'cannot be combined with maxAge'],
    [{ strictTransportSecurity: false, preload: true }, 'GH_HSTS_CONFLICTING_OPTIONS', 'cannot be combined with preload'],
    [{ frameOptions: 'ALLOW-FROM https://x' }, 'GH_HSTS_INVALID_OPTIONS', 'frameOptions: must match pattern'],
    [{ frameOptions: true }, 'GH_HSTS_INVALID_OPTIONS', 'frameOptions'],
    [{ xssProtection: '1; mode=report' }, 'GH_HSTS_INVALID_OPTIONS', 'xssProtection: must be one of false, "0", "1", "1; mode=block"'],
    [{ contentTypeOptions: 'sniff' }, 'GH_HSTS_INVALID_OPTIONS', 'contentTypeOptions'],
    [{ contentSecurityPolicy: '' }, 'GH_HSTS_INVALID_OPTIONS', 'contentSecurityPolicy'],
    [{ contentSecurityPolicy: ' ; ' }, 'GH_HSTS_INVALID_HEADER_VALUE', 'contentSecurityPolicy has no directives'],
    [{ contentSecurityPolicy: "script-src 'self'" }, 'GH_HSTS_INVALID_HEADER_VALUE', 'contentSecurityPolicy: Content-Security-Policy needs a default-src'],
    [{ contentSecurityPolicy: "default-src 'self'; default-src 'none'" }, 'GH_HSTS_INVALID_HEADER_VALUE', 'repeats the default-src directive'],
    [{ contentSecurityPolicy: { directives: { 'default-src': ["'self'"], 'bad name!': ['x'] } } }, 'GH_HSTS_INVALID_HEADER_VALUE', 'contentSecurityPolicy:'],
    [{ contentSecurityPolicy: { directives: { 'default-src': ["'self';script-src *"] } } }, 'GH_HSTS_INVALID_HEADER_VALUE', 'contentSecurityPolicy:'],
    [{ contentSecurityPolicy: { default: "'self'" } }, 'GH_HSTS_UNKNOWN_OPTION', 'contentSecurityPolicy.default: unknown key'],
    [{ cacheControl: '' }, 'GH_HSTS_INVALID_OPTIONS', 'cacheControl'],
    [{ cacheControl: 'no-store\nX: y' }, 'GH_HSTS_INVALID_OPTIONS', 'cacheControl'],
    [{ logger: {} }, 'GH_HSTS_INVALID_OPTIONS', 'logger must have error, warn, info and debug'],
    [{ headers: {}, method: 'GET', url: '/' }, 'GH_HSTS_NOT_CALLED', 'without being called'],
  ])('rejects %j with %s', (options, code, message) => {
    const err = thrownGatehouseError(() => hsts(options as HstsOptions))
    expect(err.code).toBe(code)
    expect(err.message.startsWith('@gatehouse/hsts: ')).toBe(true)
    expect(err.message).toContain(message)
  })

  it('detects hsts passed to app.use() uncalled', () => {
    expect(() => (hsts as (o: unknown) => unknown)(() => undefined)).toThrow(expect.objectContaining({ code: 'GH_HSTS_NOT_CALLED' }))
  })

  it.each<[HstsOptions, string | null]>([
    [{}, 'max-age=31536000; includeSubDomains'],
    [{ maxAge: 0 }, 'max-age=0; includeSubDomains'],
    [{ maxAge: 600, includeSubDomains: false }, 'max-age=600'],
    [{ maxAge: 63072000, preload: true }, 'max-age=63072000; includeSubDomains; preload'],
    [{ strictTransportSecurity: true, maxAge: 86400 }, 'max-age=86400; includeSubDomains'],
    [{ strictTransportSecurity: 'max-age=31536000; includeSubDomains' }, 'max-age=31536000; includeSubDomains'],
    [{ strictTransportSecurity: 'MAX-AGE="600" ; IncludeSubDomains;' }, 'max-age=600; includeSubDomains'],
    [{ strictTransportSecurity: 'max-age=31536000; includeSubDomains; preload' }, 'max-age=31536000; includeSubDomains; preload'],
    [{ strictTransportSecurity: false }, null],
  ])('%j sends Strict-Transport-Security %j', async (options, value) => {
    const h = await headersOf(hsts(options))
    expect(h.get('strict-transport-security')).toBe(value)
  })

  it('does not mutate the options and freezes the config', () => {
    const options: HstsOptions = { contentSecurityPolicy: { directives: { 'default-src': ["'none'"] } }, maxAge: undefined }
    const before = JSON.stringify(options)
    const config = resolveHstsConfig(options)
    expect(JSON.stringify(options)).toBe(before)
    expect(Object.keys(options)).toEqual(['contentSecurityPolicy', 'maxAge'])
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.hsts)).toBe(true)
    expect(config.contentSecurityPolicy?.directives['default-src']).not.toBe(
      (options.contentSecurityPolicy as { directives: Record<string, string[]> }).directives['default-src'],
    )
  })

  it('warns about the seed\'s X-XSS-Protection value and sends it as asked', async () => {
    const logger = { error: jest.fn(), warn: jest.fn(), info: jest.fn(), debug: jest.fn() }
    const h = await headersOf(hsts({ xssProtection: '1; mode=block', logger }))
    expect(h.get('x-xss-protection')).toBe('1; mode=block')
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('legacy XSS auditor'))
  })

  it('parses a header value the way RFC 6797 writes it', () => {
    expect(parseHstsHeader('max-age=300')).toEqual({ maxAge: 300, includeSubDomains: false, preload: false })
  })
})

describe('httpsOnly options', () => {
  it.each<[unknown, string, string]>([
    [{ action: 'block' }, 'GH_HSTS_INVALID_OPTIONS', '@gatehouse/hsts: httpsOnly: action: must be one of "refuse", "redirect"'],
    [{ action: 'redirect', redirectStatus: 302 }, 'GH_HSTS_INVALID_OPTIONS', 'redirectStatus: must be one of 301, 308'],
    [{ action: 'redirect', redirectHost: 'evil.com/path' }, 'GH_HSTS_INVALID_OPTIONS', 'redirectHost: must match pattern'],
    [{ action: 'redirect', redirectHost: 'user@evil.com' }, 'GH_HSTS_INVALID_OPTIONS', 'redirectHost'],
    [{ action: 'redirect', httpsPort: 70000 }, 'GH_HSTS_INVALID_OPTIONS', 'httpsPort: must be <= 65535'],
    [{ redirectStatus: 301 }, 'GH_HSTS_CONFLICTING_OPTIONS', "only apply with action: 'redirect'"],
    [{ redirect: true }, 'GH_HSTS_UNKNOWN_OPTION', 'redirect: unknown key'],
    [{ onEvent: 'x' }, 'GH_HSTS_INVALID_OPTIONS', 'httpsOnly: onEvent must be a function'],
    [{ logger: 1 }, 'GH_HSTS_INVALID_OPTIONS', 'httpsOnly: logger must have'],
    [{ headers: {}, method: 'GET', url: '/' }, 'GH_HSTS_NOT_CALLED', '@gatehouse/hsts: httpsOnly: the factory was passed to app.use() without being called'],
  ])('rejects %j with %s', (options, code, message) => {
    const err = thrownGatehouseError(() => httpsOnly(options as HttpsOnlyOptions))
    expect(err.code).toBe(code)
    expect(err.message).toContain(message)
  })
})
