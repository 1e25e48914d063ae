import { scanJson, walkValue, pathId, type ScanLimits } from '../src/scan'
import { formatField } from '../src/fields'
import { CAP_KEYS, capFor, findCapSites, requestedTokens } from '../src/caps'
import { globToRegExp, resolveRequestGuardConfig } from '../src/options'
import { resolveEndpoint } from '../src/endpoints'

const limits: ScanLimits = { maxDepth: 5, maxElements: 3 }

describe('scanJson', () => {
  it.each<[string, string]>([
    ['depth at the limit', '[[[[[]]]]]'],
    ['elements at the limit', '{"a":[1,2,3],"b":{"x":1,"y":2},"c":"]]]]]]"}'],
    ['brackets and quotes inside strings', '{"a":"{[\\"]}\\\\","b":["[[[[[[[["]}'],
    ['whitespace everywhere', ' \r\n\t{ "a" :\t[ 1 , 2 ] }\n'],
    ['scalars at the top', '"x"'],
  ])('accepts %s', (_name, text) => {
    expect(scanJson(text, limits, CAP_KEYS)).toMatchObject({ kind: 'ok' })
    expect(() => JSON.parse(text) as unknown).not.toThrow()
  })

  it.each<[string, string, string, (string | number)[]]>([
    ['one level too deep', '[[[[[[]]]]]]', 'depth', [0, 0, 0, 0, 0]],
    ['too deep under keys', '{"a":{"b":{"c":{"d":{"e":{}}}}}}', 'depth', ['a', 'b', 'c', 'd', 'e']],
    ['one element too many', '{"a":[1,2,3,4]}', 'elements', ['a']],
    ['one key too many', '{"a":{"w":1,"x":1,"y":1,"z":1}}', 'elements', ['a']],
    ['__proto__', '{"a":[{"__proto__":1}]}', 'forbidden_key', ['a', 0, '__proto__']],
    ['escaped __proto__', '{"\\u005f\\u005fproto\\u005f\\u005f":1}', 'forbidden_key', ['__proto__']],
    [
      'constructor.prototype',
      '{"constructor":{"prototype":1}}',
      'forbidden_key',
      ['constructor', 'prototype'],
    ],
    ['a duplicate key', '{"a":1,"b":2,"a":3}', 'duplicate_key', ['a']],
  ])('stops at %s', (_name, text, kind, path) => {
    expect(scanJson(text, limits, CAP_KEYS)).toEqual({ kind, path })
  })

  it.each(['{', '[', '"abc', '{"a":1}}', '[}', '{"a":"\\', ',', '{"\\uZZZZ":1}'])(
    'reports %j as a syntax error',
    (text) => {
      expect(scanJson(text, limits, CAP_KEYS)).toEqual({ kind: 'syntax' })
    },
  )

  it('scans 100k levels without recursion and 1M elements in linear time', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    expect(scanJson(deep, { maxDepth: 200_000, maxElements: 10 }, CAP_KEYS)).toMatchObject({ kind: 'ok' })
    const wide = `[${Array(1_000_000).fill('0').join(',')}]`
    const started = Date.now()
    expect(scanJson(wide, { maxDepth: 10, maxElements: 2_000_000 }, CAP_KEYS)).toMatchObject({ kind: 'ok' })
    expect(Date.now() - started).toBeLessThan(2_000)
  })

  it('records where max-token values sit so they can be rewritten in place', () => {
    const text =
      '{ "max_tokens" :  8000 ,"generationConfig":{"maxOutputTokens":"9000"},"requests":[{"params":{"max_tokens":7}}]}'
    const scan = scanJson(text, { maxDepth: 10, maxElements: 10 }, CAP_KEYS)
    if (scan.kind !== 'ok') throw new Error(scan.kind)
    const at = (path: (string | number)[]): string => {
      const span = scan.spans.get(pathId(path))!
      return text.slice(span[0], span[1])
    }
    expect(at(['max_tokens'])).toBe('8000')
    expect(at(['generationConfig', 'maxOutputTokens'])).toBe('"9000"')
    expect(at(['requests', 0, 'params', 'max_tokens'])).toBe('7')
  })

  it('agrees with walkValue on parsed documents', () => {
    const docs = [
      '{"a":[[[[1]]]]}',
      '{"a":[[[[[1]]]]]}',
      '{"a":[1,2,3,4]}',
      '{"a":{"b":{"constructor":{"prototype":{}}}}}',
      '{"x":{"__proto__":{}}}',
      '{"a":{"constructor":"x","prototype":1}}',
    ]
    for (const text of docs) {
      const scanned = scanJson(text, limits, CAP_KEYS)
      const walked = walkValue(JSON.parse(text), limits) ?? { kind: 'ok' }
      expect({ text, kind: walked.kind }).toEqual({ text, kind: scanned.kind })
      if ('path' in scanned && 'path' in walked) expect(walked.path).toEqual(scanned.path)
    }
  })

  it('walks a 100k-deep parsed value without recursion', () => {
    let value: unknown = 1
    for (let i = 0; i < 100_000; i++) value = [value]
    expect(walkValue(value, { maxDepth: 64, maxElements: 10 })).toMatchObject({ kind: 'depth' })
    expect(walkValue(value, { maxDepth: 200_000, maxElements: 10 })).toBeUndefined()
  })
})

describe('formatField', () => {
  it('shows documented field names and hides every other key', () => {
    expect(formatField(['messages', 3, 'content', 0, 'text'])).toBe('messages[3].content[0].text')
    expect(formatField(['generationConfig', 'maxOutputTokens'])).toBe('generationConfig.maxOutputTokens')
    expect(formatField(['logit_bias', 'sk-ant-api03-abcdefghijklmnop'])).toBe('logit_bias.?')
    expect(formatField(['AKIA' + 'IOSFODNN7EXAMPLE'])).toBe('?')
    expect(formatField([])).toBe('')
  })

  it('cuts long paths', () => {
    expect(formatField(Array.from({ length: 100 }, () => 0))).toBe(`${'[0]'.repeat(12)}…`)
  })
})

describe('caps', () => {
  it('turns globs into anchored, case-insensitive, escaped patterns', () => {
    expect(globToRegExp('gpt-4.1*').test('GPT-4.1-mini')).toBe(true)
    expect(globToRegExp('gpt-4.1*').test('gpt-4x1')).toBe(false)
    expect(globToRegExp('claude-?-haiku').test('claude-3-haiku')).toBe(true)
    expect(globToRegExp('claude-?-haiku').test('xclaude-3-haiku')).toBe(false)
    expect(globToRegExp('a(b)[c]').test('a(b)[c]')).toBe(true)
  })

  it('picks the exact name, then the longest pattern, then the provider cap', () => {
    const config = resolveRequestGuardConfig({
      providers: {
        openai: {
          maxTokens: 100,
          models: { 'gpt-*': 200, 'gpt-4o*': 300, 'gpt-4o-mini': 400, 'o3*': false },
        },
      },
    })
    const caps = config.providers.openai
    expect(capFor(caps, 'GPT-4O-MINI')).toBe(400)
    expect(capFor(caps, 'gpt-4o-2024')).toBe(300)
    expect(capFor(caps, 'gpt-3.5')).toBe(200)
    expect(capFor(caps, 'o3-pro')).toBe(false)
    expect(capFor(caps, 'claude')).toBe(100)
    expect(capFor(caps, undefined)).toBe(100)
    expect(config.providers.claude.maxTokens).toBe(4096)
  })

  it('reads the value a max-token field asks for', () => {
    expect(requestedTokens(10)).toBe(10)
    expect(requestedTokens(' 12 ')).toBe(12)
    expect(requestedTokens(null)).toBeNull()
    expect(requestedTokens(1.5)).toBe('invalid')
    expect(requestedTokens('1e9')).toBe('invalid')
    expect(requestedTokens(true)).toBe('invalid')
    expect(requestedTokens(Infinity)).toBe('invalid')
  })

  it('finds every max-token field, including inherited-looking keys only when own', () => {
    const endpoint = resolveEndpoint('/v1/messages/batches', {})
    const body = JSON.parse(
      '{"max_tokens":1,"max_completion_tokens":2,"max_output_tokens":3,"generationConfig":{"maxOutputTokens":4,"max_output_tokens":5},"generation_config":{"maxOutputTokens":6},"requests":[{"params":{"model":"m","max_tokens":7}},null,{"params":[]}]}',
    ) as Record<string, unknown>
    expect(findCapSites(body, endpoint).map((s) => [formatField(s.path), s.value, s.model])).toEqual([
      ['max_tokens', 1, undefined],
      ['max_completion_tokens', 2, undefined],
      ['max_output_tokens', 3, undefined],
      ['generationConfig.maxOutputTokens', 4, undefined],
      ['generationConfig.max_output_tokens', 5, undefined],
      ['generation_config.maxOutputTokens', 6, undefined],
      ['requests[0].params.max_tokens', 7, 'm'],
    ])
  })
})

describe('resolveEndpoint', () => {
  it.each<[string, Record<string, string>, string, string, string, string | undefined]>([
    ['/v1/chat/completions', {}, 'openai.chat', 'openai', 'openai', undefined],
    ['/openai/v1/responses', {}, 'openai.responses', 'openai', 'openai', undefined],
    ['/v1/messages', {}, 'claude.messages', 'claude', 'claude', undefined],
    ['/v1/messages/', {}, 'claude.messages', 'claude', 'claude', undefined],
    ['/v1/messages/batches', {}, 'claude.batches', 'claude', 'claude', undefined],
    [
      '/v1beta/models/gemini-2.5-pro:streamGenerateContent',
      {},
      'gemini.generate',
      'gemini',
      'gemini',
      'gemini-2.5-pro',
    ],
    [
      '/gemini/v1/models/gemini%2Dpro:generateContent',
      {},
      'gemini.generate',
      'gemini',
      'gemini',
      'gemini-pro',
    ],
    ['/v1beta/models/gemini-pro:countTokens', {}, 'generic', 'gemini', 'gemini', undefined],
    ['/v1beta/openai/chat/completions', {}, 'openai.chat', 'gemini', 'openai', undefined],
    ['/elsewhere', { 'anthropic-version': '2023-06-01' }, 'generic', 'claude', 'claude', undefined],
    ['/elsewhere', {}, 'generic', 'openai', 'openai', undefined],
  ])('%s', (path, headers, kind, provider, dialect, pathModel) => {
    const endpoint = resolveEndpoint(path, headers)
    expect(endpoint).toEqual({ kind, provider, dialect, ...(pathModel ? { pathModel } : {}) })
  })
})
