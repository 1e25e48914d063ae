import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { SecurityEvent } from '@gatehouse/core'
import { rawHttp, sleep, waitFor } from '@gatehouse/testing'
import { anthropicBody, openaiBody, startHarness, type Harness } from './helpers'

/** The monthly quota the provider limiter has used, read from the quota file the gateway keeps. */
async function quotaUsed(h: Harness, provider: string): Promise<number> {
  await h.gateway.close(500) // shutdown writes the file
  const file = JSON.parse(readFileSync(join(h.dir, 'auths', 'quota.json'), 'utf8')) as { quotas: Record<string, { used: number }> }
  return file.quotas[`quota:provider-quota\u0000${provider}`]?.used ?? 0
}

const post = (h: Harness, path: string, body: unknown, headers: Record<string, string> = {}, key = h.key) =>
  fetch(`${h.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers }, body: JSON.stringify(body) })

const accessLines = (h: Harness): SecurityEvent[] => h.events.filter((e) => e.event_type === 'provider_request')

describe('limits against a hostile tenant: what a request costs', () => {
  it('charges nothing for a request that only declares a huge Content-Length and hangs up, nor for refused ones', async () => {
    const h = await startHarness((c) => {
      c.providers.openai!.quota = { limit: 50_000, reset: 'monthly' }
    })
    try {
      // 9 MB declared (under the 10 MB body limit), a few bytes sent, then gone.
      for (let i = 0; i < 3; i++) {
        const u = new URL(h.url)
        await rawHttp(
          h.url,
          `POST /v1/chat/completions HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${h.key}\r\nContent-Type: application/json\r\nContent-Length: 9000000\r\n\r\n{"model":"gpt-4o","messages":[`,
          { hangUpAfterMs: 50 },
        )
      }
      // Refused by request-guard: too many choices, a cap over the limit, a broken body.
      for (const body of [openaiBody({ n: 8 }), openaiBody({ max_tokens: 1_000_000 }), { model: 'gpt-4o', messages: 'x' }]) {
        const r = await post(h, '/v1/chat/completions', body)
        expect(r.status).toBe(400)
        await r.arrayBuffer()
      }
      // The one real request is charged what the provider reported.
      h.upstream.behave({ usage: { input: 11, output: 22 } })
      const ok = await post(h, '/v1/chat/completions', openaiBody())
      expect(ok.status).toBe(200)
      await ok.arrayBuffer()
      await waitFor(() => accessLines(h).length >= 7, 3000)
      // The three that hung up and the three refused were charged nothing; the real one its usage.
      expect(accessLines(h).map((e) => e.details?.usage)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined, 'reported'])
      expect(accessLines(h).at(-1)!.details).toMatchObject({ input_tokens: 11, output_tokens: 22, usage: 'reported' })
      expect(await quotaUsed(h, 'openai')).toBe(33)
    } finally {
      await h.close()
    }
  })

  it('writes the cap into a request without one, and bounds n: the upstream never sees an unbounded request', async () => {
    const h = await startHarness((c) => {
      c.providers.openai!.max_tokens = 300
    })
    try {
      const r = await post(h, '/v1/chat/completions', openaiBody({ max_tokens: null }))
      expect(r.status).toBe(200)
      await r.arrayBuffer()
      const seen = JSON.parse(h.upstream.requests.at(-1)!.body.toString('utf8')) as Record<string, unknown>
      expect(seen.max_tokens).toBe(300)
      const n = await post(h, '/v1/chat/completions', openaiBody({ n: 128, max_tokens: 10 }))
      expect(n.status).toBe(400)
      expect(((await n.json()) as { error: { param: string } }).error.param).toBe('n')
      const before = h.upstream.requests.length
      const nested = await post(h, '/v1/messages/batches', { requests: [{ custom_id: 'a', params: anthropicBody({ max_tokens: 100_000 }) }] }, { 'anthropic-version': '2023-06-01' })
      // Batches are not a default endpoint: refused before anything else, and never forwarded.
      expect([400, 403]).toContain(nested.status)
      expect(h.upstream.requests.length).toBe(before)
    } finally {
      await h.close()
    }
  })

  it('reads usage when the client asks for gzip, and charges the pessimistic bound for a stream the client cut short', async () => {
    const h = await startHarness((c) => {
      c.providers.claude!.quota = { limit: 1_000_000, reset: 'monthly' }
    })
    try {
      h.upstream.behave({ usage: { input: 40, output: 60 } })
      const gz = await post(h, '/v1/messages', anthropicBody(), { 'accept-encoding': 'gzip', 'anthropic-version': '2023-06-01' })
      expect(gz.status).toBe(200)
      await gz.arrayBuffer()
      await waitFor(() => accessLines(h).length >= 1, 3000)
      expect(accessLines(h)[0]!.details).toMatchObject({ input_tokens: 40, output_tokens: 60, usage: 'reported' })

      // A stream the client leaves after the first events: the provider's final usage never came.
      h.upstream.behave({ chunks: 50, chunkIntervalMs: 40, usage: { input: 40, output: 60 } })
      const controller = new AbortController()
      const body = anthropicBody({ stream: true, max_tokens: 500 })
      const res = await fetch(`${h.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': h.key, 'anthropic-version': '2023-06-01' },
        body: JSON.stringify(body),
        signal: controller.signal,
      })
      const reader = res.body!.getReader()
      await reader.read()
      controller.abort()
      await waitFor(() => accessLines(h).length >= 2, 3000)
      const cut = accessLines(h)[1]!.details as Record<string, unknown>
      // Charged the prompt estimate plus the whole output bound, never message_start's partial figures.
      expect(cut).toMatchObject({ usage: 'estimated', output_tokens: 500 })
      expect(cut.input_tokens).toBe(Math.ceil(Buffer.byteLength(JSON.stringify(body)) / 4))
      expect(await quotaUsed(h, 'claude')).toBe(100 + (cut.input_tokens as number) + 500)
    } finally {
      await h.close()
    }
  })

  it('charges a stream sent without include_usage its real usage or the pessimistic bound, never a default', async () => {
    const h = await startHarness()
    try {
      h.upstream.behave({ chunks: 3, usage: { input: 7, output: 9 } })
      const r = await post(h, '/v1/chat/completions', openaiBody({ stream: true, max_tokens: 123 }))
      expect(r.status).toBe(200)
      await r.text()
      await waitFor(() => accessLines(h).length >= 1, 3000)
      const d = accessLines(h)[0]!.details as Record<string, unknown>
      if (d.usage === 'reported') expect(d).toMatchObject({ input_tokens: 7, output_tokens: 9 })
      else expect(d).toMatchObject({ usage: 'estimated', output_tokens: 123 })
    } finally {
      await h.close()
    }
  })
})

describe('usage from a large answer', () => {
  it('charges a 5 MiB answer the usage the provider put at its end', async () => {
    const h = await startHarness()
    try {
      h.upstream.behave({ chunks: 700_000, usage: { input: 100_000, output: 300_000 } })
      const r = await post(h, '/v1/chat/completions', openaiBody({ max_tokens: 4000 }))
      expect(r.status).toBe(200)
      expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(4 * 1024 * 1024)
      await waitFor(() => accessLines(h).length >= 1, 3000)
      expect(accessLines(h)[0]!.details).toMatchObject({ input_tokens: 100_000, output_tokens: 300_000, usage: 'reported' })
    } finally {
      await h.close()
    }
  })
})

describe('per-key limits and the alert that blocks', () => {
  it("one key at its own limit gets 429 naming the key's limit; another key gets 200", async () => {
    const h = await startHarness((c) => {
      c.auth.key_limits = { requests_per_minute: 1000 }
    })
    try {
      const tight = await h.gateway.keyStore.create({ name: 'tight', limits: { requests_per_minute: 2 } })
      for (let i = 0; i < 2; i++) {
        const r = await post(h, '/v1/chat/completions', openaiBody({ max_tokens: 5 }), {}, tight.key)
        expect(r.status).toBe(200)
        await r.arrayBuffer()
      }
      const refused = await post(h, '/v1/chat/completions', openaiBody({ max_tokens: 5 }), {}, tight.key)
      expect(refused.status).toBe(429)
      expect(refused.headers.get('x-ratelimit-limit-requests')).toBe('2')
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/)
      const body = (await refused.json()) as { error: { message: string } }
      expect(body.error.message).toContain('this API key: 2 requests per minute')
      expect(JSON.stringify(body)).not.toContain(tight.key)
      for (let i = 0; i < 5; i++) {
        const other = await post(h, '/v1/chat/completions', openaiBody({ max_tokens: 5 }))
        expect(other.status).toBe(200)
        await other.arrayBuffer()
      }
      expect(h.events.find((e) => e.result === 'rate_limited')).toMatchObject({ user_id: tight.record.id, details: { scope: 'key', own_limit: true } })
    } finally {
      await h.close()
    }
  })

  it('never denylists a victim whose 429s come from a shared provider bucket; the drainer is blocked for its own', async () => {
    const h = await startHarness((c) => {
      c.server.trust_proxy = ['127.0.0.1']
      c.providers.openai!.rate_limit = { requests_per_minute: 6 }
      c.auth.key_limits = { requests_per_minute: 2 }
      c.alerts = [{ name: 'Rate limit violations', condition: 'rate_limit_violations > 2', duration: '1m', action: 'block_ip' }]
    })
    try {
      const attacker = await h.gateway.keyStore.create({ name: 'attacker' })
      const victim = await h.gateway.keyStore.create({ name: 'victim' })
      const from = (ip: string) => ({ 'x-forwarded-for': ip })
      // The attacker spends the shared provider bucket and runs into its own key limit.
      for (let i = 0; i < 8; i++) {
        const r = await post(h, '/v1/chat/completions', openaiBody({ max_tokens: 5 }), from('203.0.113.66'), attacker.key)
        await r.arrayBuffer()
        await sleep(20)
      }
      // The victim, within its own limit, is refused by the drained provider bucket again and again.
      const victimStatuses: number[] = []
      for (let i = 0; i < 10; i++) {
        const r = await post(h, '/v1/chat/completions', openaiBody({ max_tokens: 5 }), from('198.51.100.7'), i % 2 ? victim.key : h.key)
        victimStatuses.push(r.status)
        await r.arrayBuffer()
      }
      expect(victimStatuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(8)
      await sleep(200)
      const blocked = h.events.filter((e) => e.event_type === 'config_change' && e.result === 'ip_blocked').map((e) => e.ip)
      expect(blocked).toEqual(['203.0.113.66'])
      const victimRefusals = h.events.filter((e) => e.ip === '198.51.100.7' && e.result === 'rate_limited')
      expect(victimRefusals.length).toBeGreaterThanOrEqual(8)
      expect(victimRefusals.every((e) => e.details?.own_limit === false && e.details?.scope === 'provider')).toBe(true)
      const list = await h.gateway.ipFilter.list()
      expect(JSON.stringify(list)).toContain('203.0.113.66')
      expect(JSON.stringify(list)).not.toContain('198.51.100.7')
    } finally {
      await h.close()
    }
  })
})
