import request from 'supertest'
import { MockUpstream, collectEvents } from '@gatehouse/testing'
import { createGateway } from '../../../examples/mount-credential-vault/server'
import { anthropicKey, cleanupDirs, geminiKey, newKey, tmpDir } from './helpers'

describe('examples/mount-credential-vault', () => {
  let upstream: MockUpstream
  beforeAll(async () => {
    upstream = await MockUpstream.start()
  })
  afterAll(async () => {
    await upstream.close()
    cleanupDirs()
  })

  it('injects vault credentials per provider and answers 503 for a provider without one', async () => {
    const { events, onEvent } = collectEvents()
    const { app, vault } = createGateway({
      dir: tmpDir(),
      key: newKey(),
      baseUrls: { claude: upstream.url, openai: upstream.url, gemini: upstream.url },
      onEvent,
    })
    try {
      const claude = anthropicKey()
      const gemini = geminiKey()
      await vault.add({ provider: 'claude', type: 'api_key', token: claude })
      await vault.add({ provider: 'gemini', type: 'api_key', token: gemini })
      await request(app)
        .post('/v1/messages')
        .set('x-api-key', 'client-key')
        .send({ model: 'claude-sonnet-4', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
        .expect(200)
      expect(upstream.last!.headers['x-api-key']).toBe(claude)
      await request(app).post('/gemini/v1beta/models/gemini-2.0-flash:generateContent').send({ contents: [] }).expect(200)
      expect(upstream.last!.path).toBe('/v1beta/models/gemini-2.0-flash:generateContent')
      expect(upstream.last!.headers['x-goog-api-key']).toBe(gemini)
      const res = await request(app).post('/v1/chat/completions').send({ model: 'gpt-4o', messages: [] })
      expect(res.status).toBe(503)
      expect(res.body.error.message).toContain('"openai"')
      expect(JSON.stringify(events)).not.toContain(claude)
    } finally {
      await vault.shutdown()
    }
  })
})
