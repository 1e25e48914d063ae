import request from 'supertest'
import { collectEvents } from '@gatehouse/testing'
import { memoryStore } from '@gatehouse/rate-limit'
import { createApp } from '../../../examples/mount-rate-limit/app'

describe('examples/mount-rate-limit', () => {
  it('admits a burst of 20 per address, then answers 429 in the OpenAI shape with headers and an event', async () => {
    const { events, onEvent } = collectEvents()
    const frozen = Date.now() // no refill while the test runs, however slow the machine
    const { app, store } = createApp({ onEvent, store: memoryStore({ clock: () => frozen }) })
    const body = { model: 'gpt-4o', max_tokens: 16, messages: [] }
    for (let i = 0; i < 20; i++) {
      const ok = await request(app)
        .post('/v1/chat/completions')
        .set('x-forwarded-for', '198.51.100.20')
        .send(body)
      expect(ok.status).toBe(200)
    }
    const refused = await request(app)
      .post('/v1/chat/completions')
      .set('x-forwarded-for', '198.51.100.20')
      .send(body)
    expect(refused.status).toBe(429)
    expect(refused.body.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' })
    expect(refused.headers['retry-after']).toBe('1')
    expect(refused.headers['ratelimit-limit']).toBe('20')
    expect(events).toEqual([
      expect.objectContaining({
        result: 'rate_limited',
        ip: '198.51.100.20',
        details: expect.objectContaining({ scope: 'ip' }),
      }),
    ])
    // Another address still gets through; the quota saw 20 settled requests of 12 + 16 tokens.
    await request(app).get('/v1/models').set('x-forwarded-for', '198.51.100.21').expect(200)
    expect(
      await store.quotaGet({ namespace: 'quota:provider', key: 'openai', limit: 1_000_000 }),
    ).toMatchObject({ used: 20 * 28 })
    await store.shutdown()
  })
})
