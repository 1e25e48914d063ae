import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { SecurityEvent } from '@gatehouse/core'
import { waitFor } from '@gatehouse/testing'
import { startHarness, type Harness } from './helpers'

/**
 * Batch jobs an operator opens run their requests after the gateway has answered: their caps,
 * models and cost must be settled when the batch is sent. A tenant must not get through a batch
 * what it could not get through one request at a time.
 */

/** The monthly quota the provider limiter has used, read from the quota file the gateway keeps. */
async function quotaUsed(h: Harness, provider: string): Promise<number> {
  await h.gateway.close(500) // shutdown writes the file
  const file = JSON.parse(readFileSync(join(h.dir, 'auths', 'quota.json'), 'utf8')) as { quotas: Record<string, { used: number }> }
  return file.quotas[`quota:provider-quota\u0000${provider}`]?.used ?? 0
}

const accessLines = (h: Harness): SecurityEvent[] => h.events.filter((e) => e.event_type === 'provider_request')

describe('a Gemini batch (batchGenerateContent), when the operator opens it', () => {
  const BATCH_PATH = '/v1beta/models/gemini-2.0-flash:batchGenerateContent'
  const contents = [{ role: 'user', parts: [{ text: 'hi' }] }]
  const post = (h: Harness, body: unknown, key = h.key) =>
    fetch(`${h.url}${BATCH_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-goog-api-key': key }, body: JSON.stringify(body) })

  it('caps every inline request, refuses one read from a file or naming a model outside the key, and charges the batch its bound', async () => {
    const h = await startHarness((c) => {
      c.providers.gemini!.max_tokens = 500
      c.providers.gemini!.endpoints = ['gemini.v1beta.generate', 'gemini.batch_generate']
      c.providers.gemini!.quota = { limit: 1_000_000, reset: 'monthly' }
    })
    try {
      const body = { batch: { display_name: 'nightly', input_config: { requests: { requests: [{ request: { contents } }, { request: { contents, generationConfig: { maxOutputTokens: 20 } } }, { request: { contents } }] } } } }
      const ok = await post(h, body)
      expect(ok.status).toBe(200)
      expect(((await ok.json()) as { name: string }).name).toMatch(/^batches\//)
      // The provider got every request bounded: the two without a cap carry the provider's.
      const sent = h.upstream.last!.json as typeof body
      expect(sent.batch.input_config.requests.requests.map((e) => (e.request as { generationConfig?: { maxOutputTokens?: number } }).generationConfig?.maxOutputTokens)).toEqual([500, 20, 500])
      await waitFor(() => accessLines(h).length >= 1, 3000)
      // The operation reports no usage: the batch is charged its whole bound.
      const line = accessLines(h)[0]!.details as Record<string, unknown>
      expect(line).toMatchObject({ usage: 'estimated', output_tokens: 500 + 20 + 500 })

      const before = h.upstream.requests.length
      const fromFile = await post(h, { batch: { input_config: { file_name: 'files/batch-input-1' } } })
      expect(fromFile.status).toBe(400)
      const refusal = (await fromFile.json()) as { error: { code: number; status: string; message: string } }
      expect(refusal.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' })
      expect(refusal.error.message).toContain('batch.input_config.file_name: a batch read from a file cannot be checked')
      const { key: narrow } = await h.gateway.keyStore.create({ name: 'flash only', models: ['gemini-2.0-flash'] })
      const otherModel = await post(h, { batch: { model: 'models/gemini-2.5-pro', input_config: { requests: { requests: [{ request: { contents } }] } } } }, narrow)
      expect(otherModel.status).toBe(403)
      expect(((await otherModel.json()) as { error: { message: string } }).error.message).toContain('gemini-2.5-pro')
      expect(h.upstream.requests.length).toBe(before)
      expect(h.events.filter((e) => e.result === 'model_denied')).toHaveLength(1)
      expect(await quotaUsed(h, 'gemini')).toBe((line.input_tokens as number) + 1020)
    } finally {
      await h.close()
    }
  })
})
