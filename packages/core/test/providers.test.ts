import express from 'express'
import request from 'supertest'
import { detectProvider, providerErrorBody, resolveProviderRoute, sendProviderError } from '@gatehouse/core'

describe('resolveProviderRoute', () => {
  it.each<[string, string | undefined, string | undefined]>([
    ['/v1/messages', 'claude', '/v1/messages'],
    ['/v1/messages/count_tokens', 'claude', '/v1/messages/count_tokens'],
    ['/v1/chat/completions', 'openai', '/v1/chat/completions'],
    ['/v1/models/gpt-4o', 'openai', '/v1/models/gpt-4o'],
    ['/v1/responses', 'openai', '/v1/responses'],
    ['/v1beta/models/gemini-2.5-pro:generateContent', 'gemini', '/v1beta/models/gemini-2.5-pro:generateContent'],
    ['/claude/v1/messages', 'claude', '/v1/messages'],
    ['/openai/v1/chat/completions', 'openai', '/v1/chat/completions'],
    ['/gemini/v1beta/models', 'gemini', '/v1beta/models'],
    ['/v1/messagesX', undefined, undefined],
    ['/v0/management/auths', undefined, undefined],
    ['/', undefined, undefined],
  ])('%s → %s', (path, provider, upstreamPath) => {
    const route = resolveProviderRoute(path)
    expect(route?.provider).toBe(provider)
    expect(route?.upstreamPath).toBe(upstreamPath)
  })

  it('falls back on SDK headers, then OpenAI', () => {
    expect(detectProvider({ path: '/x', headers: { 'anthropic-version': '2023-06-01' } })).toBe('claude')
    expect(detectProvider({ path: '/x', headers: { 'x-goog-api-key': 'k' } })).toBe('gemini')
    expect(detectProvider({ path: '/x', headers: {} })).toBe('openai')
  })
})

describe('providerErrorBody', () => {
  it('speaks each provider shape', () => {
    expect(providerErrorBody('openai', 400, { message: 'bad', param: 'max_tokens' })).toEqual({
      error: { message: 'bad', type: 'invalid_request_error', param: 'max_tokens', code: null },
    })
    expect(providerErrorBody('claude', 429, { message: 'slow down' })).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: 'slow down' },
    })
    expect(providerErrorBody('gemini', 401, { message: 'no key' })).toEqual({
      error: { code: 401, message: 'no key', status: 'UNAUTHENTICATED' },
    })
  })

  it('sends no-store and extra headers over real HTTP', async () => {
    const app = express()
    app.use((_req, res) => sendProviderError(res, 'claude', 401, { message: 'x' }, { 'WWW-Authenticate': 'Bearer' }))
    const res = await request(app).get('/v1/messages')
    expect(res.status).toBe(401)
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.headers['www-authenticate']).toBe('Bearer')
    expect(res.body).toEqual({ type: 'error', error: { type: 'authentication_error', message: 'x' } })
  })
})
