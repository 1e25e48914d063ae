/**
 * A minimal LLM gateway: @gatehouse/request-guard in front of http-proxy-middleware.
 *
 *   npx tsc -b packages/request-guard
 *   OPENAI_BASE_URL=https://api.openai.com npx ts-node -P tsconfig.test.json examples/mount-request-guard/server.ts
 *
 * then, from another shell:
 *
 *   curl -s localhost:8317/v1/chat/completions -H 'content-type: application/json' \
 *     -d '{"model":"gpt-4o-mini","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}'
 *   → 400 {"error":{"message":"max_tokens: must be <= 4096 (got 100000)","param":"max_tokens",…}}
 */
import type { Server } from 'node:http'
import express, { type Express } from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { resolveProviderRoute, type ProviderName, type SecurityEventHandler } from '@gatehouse/core'
import { forwardBody, requestGuard, type RequestGuardOptions } from '@gatehouse/request-guard'

export interface GatewayOptions {
  /** Base URL of each provider (the server's `providers.<name>.base_url`). */
  targets: Record<ProviderName, string>
  guard?: Omit<RequestGuardOptions, 'onEvent'>
  onEvent?: SecurityEventHandler
}

export function createGateway({ targets, guard = {}, onEvent }: GatewayOptions): Express {
  const app = express()
  app.disable('x-powered-by')
  // 1. The guard reads and checks the raw body. No body parser before it.
  app.use(requestGuard({ ...guard, ...(onEvent ? { onEvent } : {}) }))
  // 2. The proxy sends each provider path to that provider and writes exactly the validated bytes.
  app.use(
    createProxyMiddleware<express.Request, express.Response>({
      changeOrigin: true,
      router: (req) => targets[resolveProviderRoute(req.path)?.provider ?? 'openai'],
      pathRewrite: (path) => resolveProviderRoute(path.split('?')[0] ?? path)?.upstreamPath ?? path,
      on: { proxyReq: forwardBody },
    }),
  )
  return app
}

if (require.main === module) {
  const app = createGateway({
    targets: {
      openai: process.env.OPENAI_BASE_URL ?? 'https://api.openai.com',
      claude: process.env.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com',
      gemini: process.env.GEMINI_BASE_URL ?? 'https://generativelanguage.googleapis.com',
    },
    guard: { bodyLimit: '10mb', providers: { claude: { maxTokens: 8192 } } },
    onEvent: (event) => console.log(JSON.stringify(event)),
  })
  const server: Server = app.listen(Number(process.env.PORT ?? 8317), '127.0.0.1', () => {
    const address = server.address()
    console.log(`gateway on http://127.0.0.1:${typeof address === 'object' && address ? address.port : ''}`)
  })
  process.on('SIGINT', () => server.close())
}
