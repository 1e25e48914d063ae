import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'
import { listen, type RunningServer } from '@gatehouse/testing'
import type { Logger } from '@gatehouse/core'

/** A fresh 0700 temp dir under os.tmpdir(); removed by cleanupDirs(). */
const dirs: string[] = []
export function tmpDir(prefix = 'gh-vault-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  dirs.push(d)
  return d
}
export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
}

/** A fresh 32-byte key, base64 (as `openssl rand -base64 32` prints). */
export const newKey = (): string => randomBytes(32).toString('base64')

/** Realistic-looking fake credentials, random at run time. */
export const anthropicKey = (): string => `sk-ant-api03-${randomBytes(30).toString('base64url')}`
export const openaiKey = (): string => `sk-proj-${randomBytes(30).toString('base64url')}`
export const geminiKey = (): string => `AIza${randomBytes(26).toString('base64url').slice(0, 35)}`
export const oauthToken = (): string => `sk-ant-oat01-${randomBytes(30).toString('base64url')}`
export const refreshToken = (): string => `sk-ant-ort01-${randomBytes(30).toString('base64url')}`

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Poll `check` every 20 ms until it returns true, failing after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

export const modeOf = (p: string): number => fs.statSync(p).mode & 0o777

/** A logger that records every line, to check that nothing secret is logged. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = []
  const rec = (level: string) => (msg: string, meta?: Record<string, unknown>) => void lines.push(`${level} ${msg} ${JSON.stringify(meta ?? {})}`)
  return { lines, error: rec('error'), warn: rec('warn'), info: rec('info'), debug: rec('debug') }
}

export interface TokenCall {
  contentType: string | undefined
  form: URLSearchParams
}

/**
 * A real OAuth token endpoint on 127.0.0.1. `behaviour` decides each answer: issue new tokens,
 * refuse with invalid_grant, fail with 500, or stall (never answer).
 */
export interface TokenEndpoint {
  url: string
  calls: TokenCall[]
  issued: { access_token: string; refresh_token: string }[]
  behaviour: 'ok' | 'invalid_grant' | 'error500' | 'stall' | 'no_rotation'
  delayMs: number
  expiresIn: number
  close(): Promise<void>
}

export async function startTokenEndpoint(): Promise<TokenEndpoint> {
  const stalled: ServerResponse[] = []
  const ep = {
    url: '',
    calls: [] as TokenCall[],
    issued: [] as { access_token: string; refresh_token: string }[],
    behaviour: 'ok' as TokenEndpoint['behaviour'],
    delayMs: 0,
    expiresIn: 3600,
  }
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      ep.calls.push({ contentType: req.headers['content-type'], form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')) })
      const answer = (): void => {
        switch (ep.behaviour) {
          case 'stall':
            stalled.push(res)
            return
          case 'invalid_grant':
            res.writeHead(400, { 'content-type': 'application/json' })
            res.end(JSON.stringify({ error: 'invalid_grant', error_description: `Refresh token ${ep.calls.at(-1)?.form.get('refresh_token')} is revoked` }))
            return
          case 'error500':
            res.writeHead(500, { 'content-type': 'text/plain' })
            res.end('boom')
            return
          default: {
            const issued = { access_token: oauthToken(), refresh_token: refreshToken() }
            ep.issued.push(issued)
            res.writeHead(200, { 'content-type': 'application/json' })
            res.end(
              JSON.stringify({
                access_token: issued.access_token,
                ...(ep.behaviour === 'no_rotation' ? {} : { refresh_token: issued.refresh_token }),
                expires_in: ep.expiresIn,
                token_type: 'Bearer',
              }),
            )
          }
        }
      }
      if (ep.delayMs > 0) setTimeout(answer, ep.delayMs)
      else answer()
    })
  }
  const server: RunningServer = await listen(handler)
  ep.url = `${server.url}/oauth/token`
  return Object.assign(ep, {
    close: async () => {
      for (const r of stalled) r.destroy()
      await server.close()
    },
  })
}

/** Every string in `secrets` is absent from `haystack` (serialised). */
export function expectNoSecrets(haystack: unknown, secrets: readonly string[]): void {
  const text = typeof haystack === 'string' ? haystack : JSON.stringify(haystack)
  for (const s of secrets) {
    if (text.includes(s)) throw new Error(`a secret leaked (prefix ${s.slice(0, 8)}…)`)
  }
}
