/*
 * Credential injection alone in front of a proxy: clients call the provider's own paths without
 * any provider key; the gateway strips whatever credential they sent and injects one from the
 * encrypted vault in ./auths.
 *
 *   GATEHOUSE_ENCRYPTION_KEY="$(openssl rand -base64 32)" npx ts-node examples/mount-credential-vault/server.ts
 *
 * Add a credential with add-credential.ts (below), then:
 *   curl http://127.0.0.1:8317/v1/messages -H 'content-type: application/json' \
 *     -d '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
 *
 * This example has no client authentication: mount it behind @gatehouse/client-auth (or keep it on
 * loopback) before anyone else can reach it.
 */
import type { Server } from 'node:http'
import express, { type Express } from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { gatehouseLocals, resolveProviderRoute, type ProviderName, type SecurityEvent } from '@gatehouse/core'
import {
  applyUpstreamCredential,
  createCredentialVault,
  credentialInjection,
  reportUpstreamStatus,
  type CredentialVault,
} from '@gatehouse/credential-vault'

export interface GatewayOptions {
  /** The credential directory. */
  dir: string
  /** The encryption key: 32 bytes, raw, hex or base64. */
  key: string
  /** Where each provider lives (the mock upstream in tests). */
  baseUrls: Record<ProviderName, string>
  onEvent?: (event: SecurityEvent) => void
}

export function createGateway(options: GatewayOptions): { app: Express; vault: CredentialVault } {
  const vault = createCredentialVault({
    dir: options.dir,
    encryption: { key: options.key },
    onEvent: options.onEvent ?? ((event) => console.log(JSON.stringify(event))),
  })
  const app = express()
  app.disable('x-powered-by')

  // Route: which provider is this request for? (The reference server does this in its own layer.)
  app.use((req, res, next) => {
    const route = resolveProviderRoute(req.path)
    if (!route) {
      res.status(404).json({ error: { message: 'not a provider path' } })
      return
    }
    gatehouseLocals(res).provider = route.provider
    req.url = route.upstreamPath + (req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '')
    next()
  })

  // The credential lives only in a symbol slot of res.locals, applied to the outgoing request.
  app.use(credentialInjection({ vault, setRequestHeaders: false, autoReport: false }))

  app.use(
    createProxyMiddleware({
      changeOrigin: true,
      router: (req) => {
        const provider = gatehouseLocals((req as unknown as { res: express.Response }).res).provider as ProviderName
        return options.baseUrls[provider]
      },
      on: {
        proxyReq: (proxyReq, _req, res) => void applyUpstreamCredential(proxyReq, res),
        proxyRes: (proxyRes, _req, res) => void reportUpstreamStatus(res, proxyRes.statusCode ?? 0),
      },
    }),
  )
  return { app, vault }
}

if (require.main === module) {
  const key = process.env.GATEHOUSE_ENCRYPTION_KEY
  if (!key) {
    console.error('Set GATEHOUSE_ENCRYPTION_KEY (e.g. "$(openssl rand -base64 32)")')
    process.exit(2)
  }
  const { app, vault } = createGateway({
    dir: process.env.AUTH_DIR ?? './auths',
    key,
    baseUrls: {
      claude: process.env.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com',
      openai: process.env.OPENAI_BASE_URL ?? 'https://api.openai.com',
      gemini: process.env.GEMINI_BASE_URL ?? 'https://generativelanguage.googleapis.com',
    },
  })
  const port = Number(process.env.PORT ?? 8317)
  const server: Server = app.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`))
  process.on('SIGTERM', () => {
    server.close()
    void vault.shutdown()
  })
}
