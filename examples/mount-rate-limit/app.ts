// An Express app that mounts only @gatehouse/rate-limit in front of a stand-in LLM endpoint.
import express, { type Express } from 'express'
import { gatehouseLocals, type SecurityEventHandler } from '@gatehouse/core'
import { memoryStore, quota, rateLimit, tokenLimit, type RateLimitStore } from '@gatehouse/rate-limit'

export interface ExampleOptions {
  store?: RateLimitStore
  onEvent?: SecurityEventHandler
}

export function createApp(options: ExampleOptions = {}): { app: Express; store: RateLimitStore } {
  const store = options.store ?? memoryStore()
  const common = { store, ...(options.onEvent ? { onEvent: options.onEvent } : {}) }
  const app = express()
  app.disable('x-powered-by')
  // Only loopback proxies may tell us the client address (X-Forwarded-For).
  app.set('trust proxy', 'loopback')

  app.use(rateLimit({ ...common, scope: 'global', requestsPerSecond: 100, burst: 200 }))
  app.use(rateLimit({ ...common, scope: 'ip', requestsPerSecond: 10, burst: 20 }))
  app.use(express.json({ limit: '1mb' })) // lets the token estimate read max_tokens
  app.use(tokenLimit({ ...common, scope: 'provider', providers: { openai: { tokensPerMinute: 20_000 } } }))
  app.use(
    quota({ ...common, scope: 'provider', providers: { openai: { limit: 1_000_000, reset: 'monthly' } } }),
  )

  // The stand-in for a provider: answers and reports its usage, as a real proxy would.
  app.post('/v1/chat/completions', (req, res) => {
    const body = (req.body ?? {}) as { max_tokens?: number }
    const usage = { prompt_tokens: 12, completion_tokens: Math.min(body.max_tokens ?? 16, 16) }
    gatehouseLocals(res).usage = { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens }
    res.json({
      id: 'chatcmpl-example',
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello.' } }],
      usage,
    })
  })
  app.get('/v1/models', (_req, res) => void res.json({ object: 'list', data: [] }))
  return { app, store }
}
