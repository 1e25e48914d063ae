import express from 'express'
import { FAKE_KEYS } from '@gatehouse/testing'
import { startGuarded, type GuardedApp } from './helpers'

/**
 * File uploads (the registry's multipart endpoints): the framing is checked, the bytes are scanned
 * for credentials and handed on as they came, and no tokens are reserved; an OpenAI batch input's
 * lines are checked as the requests they are. Every refusal names its code and forwards nothing.
 */

const BOUNDARY = 'gh-test-boundary'
const upload = (content: string, boundary = BOUNDARY, purpose = 'user_data'): string =>
  `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n${content}\r\n--${boundary}--\r\n`

async function post(url: string, body: string, type = `multipart/form-data; boundary=${BOUNDARY}`, path = '/v1/files') {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': type }, body })
  const json = (await res.json()) as { locals?: { requestGuard: { rawBody: { data: number[] } }; tokenEstimate: unknown }; error?: { message: string; code: string | null } }
  return { status: res.status, json }
}

describe('file uploads', () => {
  let app: GuardedApp
  beforeAll(async () => {
    app = await startGuarded({ secrets: { rules: { 'github-token': 'mask' } } })
  })
  afterAll(() => app.close())
  beforeEach(() => app.events.splice(0))

  it('hands a framed upload on byte for byte, with no tokens to reserve', async () => {
    const body = upload('{"custom_id":"a"}\n{"custom_id":"b"}')
    const r = await post(app.url, body)
    expect(r.status).toBe(200)
    expect(Buffer.from(r.json.locals!.requestGuard.rawBody.data).toString('latin1')).toBe(body)
    expect(r.json.locals!.tokenEstimate).toEqual({ promptTokens: 0, outputTokens: 0 })
    // A quoted boundary is the same boundary.
    expect((await post(app.url, body, `multipart/form-data; boundary="${BOUNDARY}"`)).status).toBe(200)
  })

  it.each<[string, string, string, number, string]>([
    ['JSON on the upload endpoint', '{"purpose":"batch"}', 'application/json', 415, 'Content-Type must be multipart/form-data for a file upload'],
    ['no boundary', upload('x'), 'multipart/form-data', 415, 'Content-Type must name a multipart boundary of 1 to 70 characters'],
    ['a boundary over 70 characters', upload('x', 'b'.repeat(71)), `multipart/form-data; boundary=${'b'.repeat(71)}`, 415, 'Content-Type must name a multipart boundary'],
    ['two boundaries', upload('x'), `multipart/form-data; boundary=${BOUNDARY}; boundary=other`, 415, 'Content-Type names more than one multipart boundary'],
    ['a body framed by another boundary', upload('x', 'other'), `multipart/form-data; boundary=${BOUNDARY}`, 400, 'not multipart/form-data framed by the boundary'],
    ['a body that is never closed', upload('x').replace(`--${BOUNDARY}--\r\n`, ''), `multipart/form-data; boundary=${BOUNDARY}`, 400, 'not multipart/form-data framed by the boundary'],
  ])('refuses %s, naming why, and hands nothing on', async (_what, body, type, status, message) => {
    const r = await post(app.url, body, type)
    expect([r.status, r.json.locals]).toEqual([status, undefined])
    expect(r.json.error?.message).toContain(message)
    expect(app.events.map((e) => e.details?.code)).toEqual([status === 415 ? 'GH_RG_UNSUPPORTED_MEDIA_TYPE' : 'GH_RG_MALFORMED_UPLOAD'])
  })

  it('keeps JSON as the only body of every other endpoint', async () => {
    const r = await post(app.url, upload('x'), `multipart/form-data; boundary=${BOUNDARY}`, '/v1/chat/completions')
    expect([r.status, r.json.error?.code]).toEqual([415, 'unsupported_media_type'])
  })

  it('refuses a blocked credential in a file and masks a masked one where it stands', async () => {
    const pem = FAKE_KEYS['private-key']!()
    const blocked = await post(app.url, upload(`key:\n${pem}`))
    expect([blocked.status, blocked.json.error?.message]).toEqual([400, expect.stringContaining('the uploaded file holds a credential (private-key)')])
    expect(JSON.stringify(blocked.json)).not.toContain(pem.split('\n')[1])
    const token = FAKE_KEYS['github-token']!()
    const masked = await post(app.url, upload(`token=${token} "x"`))
    expect(masked.status).toBe(200)
    expect(Buffer.from(masked.json.locals!.requestGuard.rawBody.data).toString('latin1')).toBe(upload('token=[REDACTED:github-token] "x"'))
  })

  it('takes an upload a raw body parser read first, and refuses an empty one', async () => {
    const raw = await startGuarded({}, express.raw({ type: 'multipart/form-data' }))
    try {
      const body = upload('{"custom_id":"a"}')
      const r = await post(raw.url, body)
      expect([r.status, Buffer.from(r.json.locals!.requestGuard.rawBody.data).toString('latin1')]).toEqual([200, body])
      const empty = await fetch(`${raw.url}/v1/files`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': '0' } })
      expect([empty.status, ((await empty.json()) as { error: { message: string } }).error.message]).toEqual([400, 'the request body is empty'])
      expect(raw.events.map((e) => e.details?.code)).toEqual(['GH_RG_MALFORMED_UPLOAD'])
    } finally {
      await raw.close()
    }
  })
})

describe('OpenAI batch input files', () => {
  let app: GuardedApp
  beforeAll(async () => {
    app = await startGuarded({ onOverCap: 'clamp', providers: { openai: { maxTokens: 100 } } })
  })
  afterAll(() => app.close())
  beforeEach(() => app.events.splice(0))
  const line = (id: string, body: Record<string, unknown>) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...body } })
  const sent = (r: Awaited<ReturnType<typeof post>>) => Buffer.from(r.json.locals!.requestGuard.rawBody.data).toString('utf8')

  it('writes caps into its lines, lowers those over it, and reserves the bound of every line', async () => {
    const lines = [line('a', {}), line('b', { max_tokens: 5000 }), line('c', { max_completion_tokens: 7 })]
    const r = await post(app.url, upload(`${lines.join('\r\n')}\r\n`, BOUNDARY, 'batch'))
    expect(r.status).toBe(200)
    const body = sent(r)
    const file = body.slice(body.indexOf('\r\n\r\n', body.indexOf('filename=')) + 4, body.lastIndexOf(`\r\n--${BOUNDARY}--`))
    const bodies = file.split('\n').filter((l) => l.trim()).map((l) => (JSON.parse(l) as { body: Record<string, unknown> }).body)
    expect(bodies.map((b) => [b.max_tokens, b.max_completion_tokens])).toEqual([[undefined, 100], [100, undefined], [undefined, 7]])
    // The line left as it was keeps its bytes (and its line break).
    expect(file).toContain(`${lines[2]}\r\n`)
    expect(r.json.locals!.tokenEstimate).toEqual({ promptTokens: expect.any(Number), outputTokens: 100 + 100 + 7 })
    expect(r.json.locals!.requestGuard).toMatchObject({ clamped: ['line 2: max_tokens'], inserted: ['line 1: max_completion_tokens'] })
    expect(body).toMatch(new RegExp(`^--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`))
  })

  it.each<[string, string, string]>([
    ['two purposes', upload(line('a', {}), BOUNDARY, 'batch').replace(`--${BOUNDARY}\r\n`, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n--${BOUNDARY}\r\n`), 'purpose: must be sent once'],
    ['a file in another field', upload(line('a', {}), BOUNDARY, 'batch').replace('name="file"', 'name="data"'), 'file: a batch upload carries exactly one file, in the field "file"'],
    ['two files', upload(line('a', {}), BOUNDARY, 'batch').replace(`--${BOUNDARY}--`, `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="b.jsonl"\r\n\r\n{}\r\n--${BOUNDARY}--`), 'an upload carries one file and a few fields'],
    ['a file with no request', upload('\n\n', BOUNDARY, 'batch'), 'file: a batch file holds at least one request'],
    ['a byte order mark', upload(`\ufeff${line('a', {})}`, BOUNDARY, 'batch'), 'without a byte order mark'],
    ['a line nested too deep', upload(line('a', { metadata: JSON.parse('['.repeat(80) + ']'.repeat(80)) as unknown }), BOUNDARY, 'batch'), 'file line 1: '],
    ['a line with a duplicate key', upload('{"custom_id":"a","custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{}}', BOUNDARY, 'batch'), 'file line 1: custom_id: the same key appears twice'],
  ])('refuses a batch file with %s, naming why, and hands nothing on', async (_what, body, message) => {
    const r = await post(app.url, body)
    expect([r.status, r.json.locals]).toEqual([400, undefined])
    expect(r.json.error?.message).toContain(message)
    expect(app.events).toHaveLength(1)
  })
})


describe('a large batch input file', () => {
  it('is checked a few hundred lines a turn, so other requests run while it is read', async () => {
    const { checkBatchUpload, MAX_BATCH_LINES } = await import('../src/batch-file')
    const { resolveRequestGuardConfig } = await import('../src/options')
    const { compileBodyValidators } = await import('../src/schemas')
    const lines = Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: `line ${i}` } }))
    const body = Buffer.from(upload(lines.join('\n'), BOUNDARY, 'batch'))
    let turns = 0
    let counting = true
    const count = (): void => {
      turns++
      if (counting) setImmediate(count)
    }
    setImmediate(count)
    const checked = await checkBatchUpload(resolveRequestGuardConfig({}), compileBodyValidators(), body, `multipart/form-data; boundary=${BOUNDARY}`, BOUNDARY)
    counting = false
    expect(checked).toMatchObject({ requests: expect.any(Array) })
    // 10 000 lines, 256 a turn: the loop turned at least 39 times while they were checked.
    expect(turns).toBeGreaterThanOrEqual(Math.floor(10_000 / 256))
    // And a file over OpenAI's limit of requests is refused, naming it.
    const over = Buffer.from(upload(Array.from({ length: MAX_BATCH_LINES + 1 }, () => lines[0]).join('\n'), BOUNDARY, 'batch'))
    expect(await checkBatchUpload(resolveRequestGuardConfig({ bodyLimit: 64 * 1024 * 1024 }), compileBodyValidators(), over, `multipart/form-data; boundary=${BOUNDARY}`, BOUNDARY)).toMatchObject({ status: 400, message: `file: a batch holds at most ${MAX_BATCH_LINES} requests` })
  })
})
