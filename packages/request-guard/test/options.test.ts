import express from 'express'
import { isGatehouseError } from '@gatehouse/core'
import { createTestApp, listen } from '@gatehouse/testing'
import {
  requestGuard,
  requestGuardOptionsSchema,
  resolveRequestGuardConfig,
  type RequestGuardOptions,
} from '@gatehouse/request-guard'
import { postJson } from './helpers'

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('did not throw')
}

describe('requestGuard options', () => {
  it.each<[unknown, string, string]>([
    [{ bodylimit: '1mb' }, 'GH_RG_UNKNOWN_OPTION', 'bodylimit: unknown key (did you mean "bodyLimit"?)'],
    [{ maxToken: 10 }, 'GH_RG_UNKNOWN_OPTION', 'maxToken: unknown key (did you mean "maxTokens"?)'],
    [{ providers: { mistral: {} } }, 'GH_RG_UNKNOWN_OPTION', 'providers.mistral: unknown key'],
    [
      { providers: { claude: { max_tokens: 10 } } },
      'GH_RG_UNKNOWN_OPTION',
      'providers.claude.max_tokens: unknown key (did you mean "maxTokens"?)',
    ],
    [
      { bodyLimit: 'big' },
      'GH_RG_INVALID_OPTIONS',
      'bodyLimit: must be a size such as "10mb" or "512kb" (got "big")',
    ],
    [{ bodyLimit: 0 }, 'GH_RG_INVALID_OPTIONS', 'bodyLimit: must be >= 1 (got 0)'],
    [{ bodyLimit: '2gb' }, 'GH_RG_INVALID_OPTIONS', 'bodyLimit: must be between 1 byte and 1gb (got "2gb")'],
    [{ bodyLimit: '0kb' }, 'GH_RG_INVALID_OPTIONS', 'bodyLimit: must be between 1 byte and 1gb (got "0kb")'],
    [{ maxTokens: 0 }, 'GH_RG_INVALID_OPTIONS', 'maxTokens: must be >= 1 (got 0)'],
    [{ maxTokens: 1.5 }, 'GH_RG_INVALID_OPTIONS', 'maxTokens: must be integer (got 1.5)'],
    [{ maxTokens: true }, 'GH_RG_INVALID_OPTIONS', 'maxTokens: must be equal to constant (got true)'],
    [
      { providers: { claude: { maxTokens: -1 } } },
      'GH_RG_INVALID_OPTIONS',
      'providers.claude.maxTokens: must be >= 1 (got -1)',
    ],
    [
      { providers: { openai: { models: { 'gpt-4o*': 0 } } } },
      'GH_RG_INVALID_OPTIONS',
      'providers.openai.models.gpt-4o*: must be >= 1 (got 0)',
    ],
    [
      { providers: { openai: { models: { '': 10 } } } },
      'GH_RG_INVALID_OPTIONS',
      'providers.openai.models: must NOT have fewer than 1 characters',
    ],
    [
      { onOverCap: 'truncate' },
      'GH_RG_INVALID_OPTIONS',
      'onOverCap: must be one of "reject", "clamp" (got "truncate")',
    ],
    [{ maxDepth: 0 }, 'GH_RG_INVALID_OPTIONS', 'maxDepth: must be >= 1 (got 0)'],
    [{ maxElements: 'many' }, 'GH_RG_INVALID_OPTIONS', 'maxElements: must be integer (got "many")'],
    [{ validateSchema: 'yes' }, 'GH_RG_INVALID_OPTIONS', 'validateSchema: must be boolean (got "yes")'],
    [{ onEvent: 'audit' }, 'GH_RG_INVALID_OPTIONS', 'onEvent: must be a function'],
    [
      { logger: { info: () => undefined } },
      'GH_RG_INVALID_OPTIONS',
      'logger: must have error, warn, info and debug methods',
    ],
    ['10mb', 'GH_RG_INVALID_OPTIONS', 'options must be an object (got "10mb")'],
  ])('rejects %j with %s', (options, code, message) => {
    const err = thrown(() => requestGuard(options as RequestGuardOptions))
    expect(isGatehouseError(err)).toBe(true)
    expect(err.name).toBe('GatehouseConfigError')
    expect(err.code).toBe(code)
    expect(err.message.startsWith('@gatehouse/request-guard: ')).toBe(true)
    expect(err.message).toContain(message)
  })

  it('resolves the documented defaults', () => {
    const config = resolveRequestGuardConfig({})
    expect(config).toMatchObject({
      bodyLimit: 10 * 1024 * 1024,
      onOverCap: 'reject',
      maxDepth: 64,
      maxElements: 100_000,
      validateSchema: true,
      onEvent: undefined,
    })
    for (const p of ['claude', 'openai', 'gemini'] as const)
      expect(config.providers[p]).toEqual({ maxTokens: 4096, models: [] })
  })

  it('maps the server config keys: server.body_limit and providers.<name>.max_tokens', () => {
    const config = resolveRequestGuardConfig({
      bodyLimit: '512kb',
      providers: { claude: { maxTokens: 8192 } },
      maxTokens: 2000,
    })
    expect(config.bodyLimit).toBe(512 * 1024)
    expect(config.providers.claude.maxTokens).toBe(8192)
    expect(config.providers.openai.maxTokens).toBe(2000)
  })

  it('treats undefined like an omitted option, copies and freezes, never mutates the input', () => {
    const input: RequestGuardOptions = {
      bodyLimit: undefined,
      maxTokens: 100,
      providers: { claude: { models: { 'claude-*': 50 } } },
    }
    const snapshot = JSON.stringify(input)
    const config = resolveRequestGuardConfig(input)
    expect(config.bodyLimit).toBe(10 * 1024 * 1024)
    expect(JSON.stringify(input)).toBe(snapshot)
    expect(Object.keys(input)).toEqual(['bodyLimit', 'maxTokens', 'providers'])
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.providers)).toBe(true)
    expect(Object.isFrozen(config.providers.claude)).toBe(true)
    expect(Object.isFrozen(config.providers.claude.models)).toBe(true)
    input.providers!.claude!.models!['claude-*'] = 99_999
    expect(config.providers.claude.models[0]!.cap).toBe(50)
  })

  it('exports its JSON schema for the server to compose', () => {
    expect(requestGuardOptionsSchema).toMatchObject({ type: 'object', additionalProperties: false })
    expect(Object.keys(requestGuardOptionsSchema.properties as object).sort()).toEqual(
      [
        'allowBackground',
        'bodyLimit',
        'insertCaps',
        'maxChoices',
        'maxDepth',
        'maxElements',
        'maxTokens',
        'onOverCap',
        'providers',
        'secrets',
        'validateSchema',
      ].sort(),
    )
  })

  it('detects app.use(requestGuard) without the call', async () => {
    const app = express()
    app.use(requestGuard as unknown as express.RequestHandler)
    const server = await listen(createTestApp(app))
    try {
      const res = await postJson(server.url, '/v1/messages', { model: 'x' })
      expect(res.status).toBe(500)
      expect(res.json).toEqual({
        code: 'GH_RG_NOT_CALLED',
        message:
          '@gatehouse/request-guard: the factory was passed to app.use() without being called; use app.use(factory(options))',
      })
    } finally {
      await server.close()
    }
  })
})

describe('requestGuard secrets option', () => {
  it.each<[unknown, string, string]>([
    [
      { secrets: { default: 'drop' } },
      'GH_RG_INVALID_OPTIONS',
      'secrets.default: must be one of "block", "mask", "log", "off" (got "drop")',
    ],
    [
      { secrets: { rules: { 'github-token': 'redact' } } },
      'GH_RG_INVALID_OPTIONS',
      'secrets.rules.github-token: must be one of "block", "mask", "log", "off" (got "redact")',
    ],
    [
      { secrets: { providers: { openai: { default: 'allow' } } } },
      'GH_RG_INVALID_OPTIONS',
      'secrets.providers.openai.default: must be one of "block", "mask", "log", "off" (got "allow")',
    ],
    [
      { secrets: { rules: { 'aws-acess-key-id': 'block' } } },
      'GH_RG_UNKNOWN_OPTION',
      'secrets.rules.aws-acess-key-id: unknown key (did you mean "aws-access-key-id"?)',
    ],
    [
      { secrets: { defualt: 'log' } },
      'GH_RG_UNKNOWN_OPTION',
      'secrets.defualt: unknown key (did you mean "default"?)',
    ],
    [{ secrets: { policy: 'strict' } }, 'GH_RG_INVALID_OPTIONS', 'secrets.policy: must be a function'],
  ])('rejects %j with %s', (options, code, message) => {
    const err = thrown(() => requestGuard(options as RequestGuardOptions))
    expect(err.code).toBe(code)
    expect(err.message).toBe(`@gatehouse/request-guard: ${message}`)
  })

  it('resolves the defaults: the built-in blocks, log for the rest, overrides per provider', () => {
    const config = resolveRequestGuardConfig({
      secrets: { default: 'mask', providers: { claude: { rules: { 'private-key': 'log' } } } },
    })
    const { openai, claude } = config.secrets!.providers
    expect(openai.explicit.get('private-key')).toBe('block')
    expect(openai.explicit.get('github-token') ?? openai.fallback).toBe('mask')
    expect(claude.explicit.get('private-key')).toBe('log')
    expect(resolveRequestGuardConfig({}).secrets!.providers.gemini.fallback).toBe('log')
    expect(resolveRequestGuardConfig({ secrets: false }).secrets).toBeUndefined()
  })

  it('leaves the options object alone and accepts a policy hook', () => {
    const policy = (): undefined => undefined
    const options = { secrets: { policy, default: 'log' as const } }
    expect(resolveRequestGuardConfig(options).secrets!.policy).toBe(policy)
    expect(options).toEqual({ secrets: { policy, default: 'log' } })
  })
})
