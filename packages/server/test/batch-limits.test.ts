import { readFileSync } from 'node:fs'
import OpenAI, { toFile } from 'openai'
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

describe('an OpenAI batch (an uploaded JSONL file), when the operator opens files and batches', () => {
  const ENDPOINTS = ['openai.chat', 'openai.files.create', 'openai.files.content', 'openai.batches.create', 'openai.batches.get']
  const line = (id: string, body: Record<string, unknown>, url = '/v1/chat/completions') => JSON.stringify({ custom_id: id, method: 'POST', url, body })
  const ask = (extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...extra })
  /** What an SDK call ended with: the status and the error's message, or the value. */
  const outcome = <T>(p: Promise<T>): Promise<{ status: number; message: string } | { ok: T }> =>
    p.then((ok) => ({ ok }), (e: { status?: number; error?: { message?: string } }) => ({ status: e.status ?? -1, message: e.error?.message ?? '' }))

  let h: Harness
  let sdk: OpenAI
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.providers.openai!.max_tokens = 300
      c.providers.openai!.quota = { limit: 1_000_000, reset: 'monthly' }
    })
    const { key } = await h.gateway.keyStore.create({ name: 'batcher', providers: ['openai'], endpoints: ENDPOINTS, models: ['gpt-4o-mini', 'ft:gpt-4o-mini*', 'text-embedding-3-small'] })
    sdk = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 })
  })
  afterAll(() => h.close())
  const upload = async (text: string, purpose: 'batch' | 'user_data' = 'batch') => outcome(sdk.files.create({ file: await toFile(Buffer.from(text), 'in.jsonl'), purpose }))

  it('refuses a file whose lines ask for more than one request may, name a model outside the key, or call another endpoint, before the provider sees it', async () => {
    const before = h.upstream.requests.length
    const cases: [string, number, string][] = [
      [[line('a', ask()), line('b', ask({ max_tokens: 100_000 }))].join('\n'), 400, 'file line 2: body.max_tokens: must be <= 300'],
      [line('a', ask({ n: 50 })), 400, 'file line 1: body.n: must be <= 1'],
      [line('a', ask({ model: 'gpt-4.5-preview' })), 403, 'may not use model "gpt-4.5-preview"'],
      [line('a', { model: 'gpt-4o-mini', training_file: 'file-x' }, '/v1/fine_tuning/jobs'), 400, 'file line 1: needs a custom_id, method "POST", a url among'],
      [JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: ask(), extra: 1 }), 400, 'file line 1: a line has custom_id, method, url and body, and nothing else'],
      [`${line('a', ask())}\n{"custom_id":`, 400, 'file line 2: not valid JSON'],
      [line('a', ask({ background: true }), '/v1/responses'), 400, 'file line 1: body.background: background responses are not available'],
    ]
    for (const [text, status, message] of cases) expect(await upload(text)).toEqual({ status, message: expect.stringContaining(message) })
    expect(h.upstream.requests.length).toBe(before)
    // A file of another purpose is not read as requests: it goes as it is.
    expect(await upload(line('a', ask({ max_tokens: 100_000 })), 'user_data')).toMatchObject({ ok: { purpose: 'user_data' } })
  })

  it('charges the upload its bound, and runs one batch on it: not a second, nor one on a file not uploaded as a batch input', async () => {
    const events = h.events.length
    const text = [line('a', ask()), line('b', ask({ max_tokens: 40 })), line('c', { model: 'text-embedding-3-small', input: 'hi' }, '/v1/embeddings')].join('\n')
    const file = await upload(text)
    if (!('ok' in file)) throw new Error(`upload refused: ${file.message}`)
    await waitFor(() => accessLines(h).length > 0 && h.events.slice(events).some((e) => e.event_type === 'provider_request'), 3000)
    const charged = h.events.slice(events).find((e) => e.event_type === 'provider_request')!.details as Record<string, unknown>
    // The two chat lines' bounds (the cap written into the first, 40), nothing for the embedding.
    expect(charged).toMatchObject({ usage: 'estimated', output_tokens: 300 + 40 })

    const batch = await sdk.batches.create({ input_file_id: file.ok.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    expect(batch.id).toMatch(/^batch_/)
    const sent = h.upstream.requests.length
    const again = await outcome(sdk.batches.create({ input_file_id: file.ok.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))
    expect(again).toEqual({ status: 400, message: `File '${file.ok.id}' has already run a batch through this gateway: upload it again for another batch.` })
    const plain = await upload(line('a', ask({ max_tokens: 100_000 })), 'user_data')
    if (!('ok' in plain)) throw new Error('upload refused')
    const unchecked = await outcome(sdk.batches.create({ input_file_id: plain.ok.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))
    expect(unchecked).toEqual({ status: 400, message: expect.stringContaining('was not uploaded through this gateway as a batch input') })
    // The upload of the plain file went; neither batch did.
    expect(h.upstream.requests.length).toBe(sent + 1)
    expect(h.events.slice(events).filter((e) => e.details?.code === 'GH_PROXY_BATCH_INPUT_DENIED')).toHaveLength(2)
  })

  it("refuses a file whose lines refer to another key's objects, before the provider sees it", async () => {
    const { key } = await h.gateway.keyStore.create({ name: 'other tenant', providers: ['openai'], endpoints: ENDPOINTS })
    const theirs = await new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 }).files.create({ file: await toFile(Buffer.from('private notes'), 'notes.txt'), purpose: 'user_data' })
    const before = h.upstream.requests.length
    const reading = line('a', ask({ messages: [{ role: 'user', content: [{ type: 'text', text: 'summarise' }, { type: 'file', file: { file_id: theirs.id } }] }] }))
    expect(await upload(reading)).toEqual({ status: 404, message: `File with id '${theirs.id}' not found.` })
    const continuing = line('b', { model: 'gpt-4o-mini', input: 'go on', previous_response_id: 'resp_0123456789abcdef' }, '/v1/responses')
    expect(await upload(continuing)).toEqual({ status: 404, message: "Previous response with id 'resp_0123456789abcdef' not found." })
    // A fine-tuned model is an account object too: a line may not call one the key was not granted.
    const tuned = line('c', ask({ model: 'ft:gpt-4o-mini-2024-07-18:acme:other-tenant:AbC123' }))
    expect(await upload(tuned)).toEqual({ status: 404, message: "Model with id 'ft:gpt-4o-mini-2024-07-18:acme:other-tenant:AbC123' not found." })
    expect(h.upstream.requests.length).toBe(before)
  })

  it("charges the file's bound to the key's own token limit: the next upload is refused with 429, and another key still uploads", async () => {
    const { key } = await h.gateway.keyStore.create({ name: 'small', providers: ['openai'], endpoints: ENDPOINTS, limits: { tokens_per_minute: 1000 } })
    const small = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 })
    const text = Array.from({ length: 5 }, (_, i) => line(`r${i}`, ask())).join('\n') // 5 x 300 output
    const send = async (client: OpenAI) => outcome(client.files.create({ file: await toFile(Buffer.from(text), 'in.jsonl'), purpose: 'batch' }))
    // A full bucket admits one request larger than itself; the file's whole bound is then owed.
    expect(await send(small)).toMatchObject({ ok: { purpose: 'batch' } })
    expect(await send(small)).toEqual({ status: 429, message: expect.stringContaining('for this API key: 1000 tokens per minute; this request needs up to 1675 tokens') })
    expect(await send(sdk)).toMatchObject({ ok: { purpose: 'batch' } })
  })
})
