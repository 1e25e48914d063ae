import OpenAI, { toFile } from 'openai'
import { FAKE_KEYS } from '@gatehouse/testing'
import { startHarness, type Harness } from './helpers'

/**
 * Files and batches, opened by the operator for two tenants, through the gateway with the official
 * OpenAI SDK: uploads work (multipart, checked and scanned by the gateway), and each tenant's
 * uploads, batches and the files its batches wrote are its own. The mock provider keeps files and
 * batches per account, as OpenAI does: without the gateway's checks, either tenant would reach
 * the other's.
 */

const FILE_ENDPOINTS = ['openai.chat', 'openai.files.create', 'openai.files.get', 'openai.files.content', 'openai.files.delete', 'openai.batches.create', 'openai.batches.get']

let h: Harness
let mine: OpenAI
let theirs: OpenAI
beforeAll(async () => {
  // GitHub tokens masked (the default logs them), private keys blocked (the default).
  h = await startHarness((c) => {
    c.secret_detection = { enabled: true, rules: { 'github-token': 'mask' } }
  })
  const sdk = async (name: string): Promise<OpenAI> =>
    new OpenAI({ baseURL: `${h.url}/v1`, apiKey: (await h.gateway.keyStore.create({ name, providers: ['openai'], endpoints: FILE_ENDPOINTS })).key, maxRetries: 0 })
  mine = await sdk('tenant a')
  theirs = await sdk('tenant b')
})
afterAll(() => h.close())

const jsonl = ['a', 'b'].map((id) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `question ${id}` }] } })).join('\n')

/** The status an SDK call failed with, or 'ok'. */
const statusOf = (p: Promise<unknown>): Promise<number | 'ok'> => p.then(() => 'ok' as const, (e: { status?: number }) => e.status ?? -1)

describe('files and batches through the gateway', () => {
  it("uploads a file, runs a batch on it and reads the batch's output with the SDK; the other tenant reaches none of them, and nothing it sends for them reaches the provider", async () => {
    const input = await mine.files.create({ file: await toFile(Buffer.from(jsonl), 'questions.jsonl'), purpose: 'batch' })
    // The gateway read every line as the request it is, and wrote the cap into each (none set one).
    const checked = jsonl.split('\n').map((l) => { const e = JSON.parse(l) as { body: Record<string, unknown> }; return JSON.stringify({ ...e, body: { ...e.body, max_completion_tokens: 4096 } }) }).join('\n')
    expect(input).toMatchObject({ object: 'file', filename: 'questions.jsonl', purpose: 'batch', bytes: Buffer.byteLength(checked) })
    expect(h.upstream.last!.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/)
    expect(h.upstream.last!.headers.authorization).toBe(`Bearer ${h.providerKeys.openai}`)
    const batch = await mine.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    const done = await mine.batches.retrieve(batch.id)
    expect(done.status).toBe('completed')
    const output = await (await mine.files.content(done.output_file_id!)).text()
    expect(output.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { custom_id: string }).custom_id)).toEqual(['a', 'b'])

    const sent = h.upstream.requests.length
    const events = h.events.length
    expect(
      await Promise.all([
        statusOf(theirs.files.content(input.id)),
        statusOf(theirs.files.retrieve(done.output_file_id!)),
        statusOf(theirs.files.content(done.output_file_id!)),
        statusOf(theirs.files.delete(input.id)),
        statusOf(theirs.batches.retrieve(batch.id)),
        statusOf(theirs.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' })),
      ]),
    ).toEqual([404, 404, 404, 404, 404, 404])
    expect(h.upstream.requests).toHaveLength(sent)
    expect(h.events.slice(events).filter((e) => e.result === 'object_denied')).toHaveLength(6)
    // Still there for its maker.
    expect((await mine.files.retrieve(input.id)).id).toBe(input.id)
  })

  it('refuses an upload that is not the multipart its Content-Type declares, and one holding a credential, before the provider sees it', async () => {
    const key = (mine as unknown as { apiKey: string }).apiKey
    const sent = h.upstream.requests.length
    const post = (type: string, body: string) => fetch(`${h.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': type }, body })
    const json = await post('application/json', '{"purpose":"batch"}')
    expect([json.status, ((await json.json()) as { error: { code: string } }).error.code]).toEqual([415, 'unsupported_media_type'])
    const unframed = await post('multipart/form-data; boundary=abc', '--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--xyz--\r\n')
    expect(unframed.status).toBe(400)
    const pem = FAKE_KEYS['private-key']!()
    const blocked = await mine.files.create({ file: await toFile(Buffer.from(`deploy key:\n${pem}\n`), 'notes.txt'), purpose: 'user_data' }).then(
      () => 'sent',
      (e: { status?: number; error?: unknown }) => ({ status: e.status, error: JSON.stringify(e.error) }),
    )
    expect(blocked).toEqual({ status: 400, error: expect.stringContaining('the uploaded file holds a credential (private-key)') })
    expect(JSON.stringify(blocked)).not.toContain(pem.split('\n')[1])
    expect(h.upstream.requests).toHaveLength(sent)
    expect(h.events.filter((e) => e.result === 'secret_detected').pop()?.details).toMatchObject({ secrets: [{ rule: 'private-key', json_path: '$', action: 'block' }] })
  })

  it('masks a credential in an uploaded file where it stands, every other byte as sent', async () => {
    const secret = FAKE_KEYS['github-token']!()
    const text = `line one\ntoken=${secret} "quoted"\nline three\n`
    const file = await mine.files.create({ file: await toFile(Buffer.from(text), 'notes.txt'), purpose: 'user_data' })
    expect(h.upstream.last!.body.toString('latin1')).not.toContain(secret)
    expect(await (await mine.files.content(file.id)).text()).toBe(text.replace(secret, '[REDACTED:github-token]'))
    expect(file.bytes).toBe(text.length - secret.length + '[REDACTED:github-token]'.length)
    expect(h.events.filter((e) => e.result === 'secret_masked').pop()?.details).toMatchObject({ secrets: [{ rule: 'github-token', json_path: '$', action: 'mask' }] })
  })
})
