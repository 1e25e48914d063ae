import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import express, { type RequestHandler } from 'express'
import type { SecurityEvent } from '@gatehouse/core'
import { listen } from '@gatehouse/testing'
import { gatehouseProxy } from '@gatehouse/proxy'

/**
 * The endpoints an operator may open beyond inference (stored chat completions, files, batches,
 * fine-tuning) name objects in their paths and bodies: each is its maker's key's, as a stored
 * response is. The proxy alone, a layer before it naming the client key as client-auth would.
 */

const keys = {
  openai: `sk-proj-${randomBytes(30).toString('base64url')}`,
  claude: `sk-ant-api03-${randomBytes(30).toString('base64url')}`,
  gemini: `AIza${randomBytes(26).toString('base64url')}`,
}

const tenant: RequestHandler = (req, res, next) => {
  const id = req.headers['x-test-tenant']
  const objects = req.headers['x-test-objects']
  if (typeof id === 'string') res.locals.gatehouse = { ...(res.locals.gatehouse ?? {}), clientKeyId: id, ...(typeof objects === 'string' ? { clientKeyObjects: objects.split(',') } : {}) }
  // What request-guard leaves for an upload whose batch lines it checked.
  if (req.method === 'POST' && req.path.endsWith('/v1/files') && (req.body as { purpose?: string }).purpose === 'batch') res.locals.gatehouse = { ...res.locals.gatehouse, batchInput: { models: [], requests: [] } }
  next()
}

/** A provider that makes what each create endpoint makes, with the ids the real ones use, and answers every read. */
function provider(): Promise<{ url: string; seen: string[]; close: () => Promise<void> }> {
  const seen: string[] = []
  let n = 0
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`)
      res.writeHead(200, { 'content-type': 'application/json' })
      const url = req.url ?? ''
      if (req.method === 'POST' && url === '/v1/chat/completions') {
        return void res.end(JSON.stringify({ id: `chatcmpl-made${++n}`, object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
      }
      if (req.method === 'POST' && url === '/v1/batches') return void res.end(JSON.stringify({ id: `batch_made${++n}`, object: 'batch', status: 'validating', input_file_id: JSON.parse(body).input_file_id }))
      if (req.method === 'POST' && url === '/v1/files') return void res.end(JSON.stringify({ id: `file-made${++n}`, object: 'file', purpose: 'batch' }))
      if (req.method === 'GET' && url.startsWith('/v1/batches/')) {
        return void res.end(JSON.stringify({ id: url.split('/')[3], object: 'batch', status: 'completed', input_file_id: 'file-input', output_file_id: `file-out-${url.split('/')[3]}`, error_file_id: `file-err-${url.split('/')[3]}` }))
      }
      if (req.method === 'POST' && url === '/v1/messages/batches') return void res.end(JSON.stringify({ id: `msgbatch_made${++n}`, type: 'message_batch', processing_status: 'in_progress' }))
      res.end(JSON.stringify({ ok: true }))
    })
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise((r) => server.close(() => r())) }),
    ),
  )
}

async function gateway() {
  const upstream = await provider()
  const events: SecurityEvent[] = []
  const proxy = gatehouseProxy({
    providers: {
      openai: { baseUrl: upstream.url, apiKey: keys.openai, endpoints: ['openai.chat', 'openai.chat.get', 'openai.chat.messages', 'openai.chat.delete', 'openai.files.create', 'openai.files.content', 'openai.files.delete', 'openai.batches.create', 'openai.batches.get', 'openai.batches.cancel', 'openai.fine_tuning.create', 'openai.models.delete'] },
      claude: { baseUrl: upstream.url, apiKey: keys.claude, endpoints: ['claude.batches.create', 'claude.batches.get', 'claude.batches.results', 'claude.batches.delete'] },
      gemini: { baseUrl: upstream.url, apiKey: keys.gemini, endpoints: ['gemini.v1beta.generate', 'gemini.files.get', 'gemini.files.delete'] },
    },
    onEvent: (e) => events.push(e),
  })
  const app = express()
  app.use(express.json(), tenant, proxy)
  const server = await listen(app)
  const send = async (who: string, method: string, path: string, body?: object, objects?: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', 'x-test-tenant': who, ...(objects ? { 'x-test-objects': objects } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, json: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, unknown> }
  }
  const denied = (): Array<[string | undefined, unknown, unknown]> => events.filter((e) => e.result === 'object_denied').map((e) => [e.user_id, e.details?.kind, e.details?.param])
  return { send, upstream, denied, close: async () => (await server.close(), proxy.close(), await upstream.close()) }
}

describe('objects named in paths and bodies of the endpoints beyond inference', () => {
  it('keeps a stored chat completion its maker\'s: another key reads, lists the messages of or deletes it with 404, never forwarded', async () => {
    const gw = await gateway()
    try {
      const made = await gw.send('key_a', 'POST', '/openai/v1/chat/completions', { model: 'gpt-4o-mini', store: true, messages: [{ role: 'user', content: 'my plans' }] })
      const id = made.json.id as string
      const before = gw.upstream.seen.length
      for (const [method, path] of [['GET', `/openai/v1/chat/completions/${id}`], ['GET', `/openai/v1/chat/completions/${id}/messages`], ['DELETE', `/openai/v1/chat/completions/${id}`]] as const) {
        const r = await gw.send('key_b', method, path)
        expect([r.status, r.json]).toEqual([404, { error: { message: `Chat completion with id '${id}' not found.`, type: 'invalid_request_error', param: null, code: 'not_found' } }])
      }
      // A completion made without store is made by nobody as far as reads go: it was never kept.
      const unstored = (await gw.send('key_a', 'POST', '/openai/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })).json.id as string
      expect(gw.upstream.seen).toHaveLength(before + 1)
      expect((await gw.send('key_a', 'GET', `/openai/v1/chat/completions/${unstored}`)).status).toBe(404)
      expect((await gw.send('key_a', 'GET', `/openai/v1/chat/completions/${id}`)).status).toBe(200)
      expect(gw.upstream.seen.at(-1)).toBe(`GET /v1/chat/completions/${id}`)
      expect(gw.denied()).toEqual([...Array(3).fill(['key_b', 'chat_completion', 'path']), ['key_a', 'chat_completion', 'path']])
    } finally {
      await gw.close()
    }
  })

  it("keeps a batch, the files it wrote and its input its maker's; another key's file cannot feed a batch or a fine-tuning job", async () => {
    const gw = await gateway()
    try {
      const input = (await gw.send('key_a', 'POST', '/openai/v1/files', { purpose: 'batch' })).json.id as string
      const batch = (await gw.send('key_a', 'POST', '/openai/v1/batches', { input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })).json.id as string
      expect(batch).toMatch(/^batch_made/)
      const before = gw.upstream.seen.length
      expect((await gw.send('key_b', 'GET', `/openai/v1/batches/${batch}`)).status).toBe(404)
      expect((await gw.send('key_b', 'POST', `/openai/v1/batches/${batch}/cancel`)).status).toBe(404)
      // key_b feeds key_a's upload to its own batch, or its own fine-tuning job.
      const stolen = await gw.send('key_b', 'POST', '/openai/v1/batches', { input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })
      expect([stolen.status, (stolen.json.error as { param: string }).param]).toEqual([404, 'input_file_id'])
      expect((await gw.send('key_b', 'POST', '/openai/v1/fine_tuning/jobs', { model: 'gpt-4o-mini', training_file: input })).status).toBe(404)
      expect(gw.upstream.seen).toHaveLength(before)
      // Its maker reads it; the output and error files it names become the maker's, and only the maker's.
      expect((await gw.send('key_a', 'GET', `/openai/v1/batches/${batch}`)).status).toBe(200)
      for (const file of [`file-out-${batch}`, `file-err-${batch}`]) {
        expect((await gw.send('key_b', 'GET', `/openai/v1/files/${file}/content`)).status).toBe(404)
        expect((await gw.send('key_a', 'GET', `/openai/v1/files/${file}/content`)).status).toBe(200)
      }
      // The input file the answer also names was not recorded again for anyone: still key_a's alone.
      expect((await gw.send('key_b', 'DELETE', `/openai/v1/files/${input}`)).status).toBe(404)
      // A batch runs once on a checked input, and never on a file uploaded for another purpose.
      const sent = gw.upstream.seen.length
      const again = await gw.send('key_a', 'POST', '/openai/v1/batches', { input_file_id: input, endpoint: '/v1/chat/completions', completion_window: '24h' })
      expect([again.status, again.json.error]).toEqual([400, expect.objectContaining({ param: 'input_file_id', code: 'invalid_batch_input', message: expect.stringContaining('has already run a batch') })])
      const plain = (await gw.send('key_a', 'POST', '/openai/v1/files', { purpose: 'user_data' })).json.id as string
      const unchecked = await gw.send('key_a', 'POST', '/openai/v1/batches', { input_file_id: plain, endpoint: '/v1/chat/completions', completion_window: '24h' })
      expect([unchecked.status, unchecked.json.error]).toEqual([400, expect.objectContaining({ message: expect.stringContaining('was not uploaded through this gateway as a batch input') })])
      expect(gw.upstream.seen).toHaveLength(sent + 1)
      expect(gw.denied().map(([who, kind]) => [who, kind])).toEqual([
        ['key_b', 'batch'],
        ['key_b', 'batch'],
        ['key_b', 'file'],
        ['key_b', 'file'],
        ['key_b', 'file'],
        ['key_b', 'file'],
        ['key_b', 'file'],
        ['key_a', 'file'],
        ['key_a', 'file'],
      ])
    } finally {
      await gw.close()
    }
  })

  it("keeps an Anthropic message batch and its results its maker's", async () => {
    const gw = await gateway()
    try {
      const batch = (await gw.send('key_a', 'POST', '/claude/v1/messages/batches', { requests: [{ custom_id: 'a', params: { model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] } }] })).json.id as string
      expect(batch).toMatch(/^msgbatch_made/)
      for (const [method, path] of [['GET', `/claude/v1/messages/batches/${batch}/results`], ['GET', `/claude/v1/messages/batches/${batch}`], ['DELETE', `/claude/v1/messages/batches/${batch}`]] as const) {
        const r = await gw.send('key_b', method, path)
        expect([r.status, r.json]).toEqual([404, { type: 'error', error: { type: 'not_found_error', message: `Batch with id '${batch}' not found.` } }])
      }
      expect((await gw.send('key_a', 'GET', `/claude/v1/messages/batches/${batch}/results`)).status).toBe(200)
    } finally {
      await gw.close()
    }
  })

  it("refuses Gemini's files, never uploaded through the gateway, unless granted: one id for the path and the file URI", async () => {
    const gw = await gateway()
    try {
      const uri = (name: string) => ({ contents: [{ role: 'user', parts: [{ fileData: { mimeType: 'application/pdf', fileUri: `https://generativelanguage.googleapis.com/v1beta/${name}` } }] }] })
      expect((await gw.send('key_a', 'GET', '/gemini/v1beta/files/report')).status).toBe(404)
      expect((await gw.send('key_a', 'POST', '/gemini/v1beta/models/gemini-2.0-flash:generateContent', uri('files/report'))).status).toBe(404)
      const before = gw.upstream.seen.length
      expect((await gw.send('key_a', 'GET', '/gemini/v1beta/files/report', undefined, 'files/report')).status).toBe(200)
      expect((await gw.send('key_a', 'POST', '/gemini/v1beta/models/gemini-2.0-flash:generateContent', uri('files/report'), 'files/report')).status).toBe(200)
      expect((await gw.send('key_a', 'DELETE', '/gemini/v1beta/files/other', undefined, 'files/report')).status).toBe(404)
      expect(gw.upstream.seen).toHaveLength(before + 2)
    } finally {
      await gw.close()
    }
  })

  it('refuses an OpenAI fine-tuned model (it may hold its maker\'s training data) unless granted: to call it, tune it further or delete it', async () => {
    const gw = await gateway()
    const ft = 'ft:gpt-4o-mini-2024-07-18:acme:support:AbC123'
    const chat = { model: ft, messages: [{ role: 'user', content: 'hi' }] }
    try {
      const before = gw.upstream.seen.length
      const refused = await gw.send('key_a', 'POST', '/openai/v1/chat/completions', chat)
      expect([refused.status, refused.json.error]).toEqual([404, { message: `Model with id '${ft}' not found.`, type: 'invalid_request_error', param: 'model', code: 'not_found' }])
      expect((await gw.send('key_a', 'POST', '/openai/v1/fine_tuning/jobs', { model: ft, training_file: 'file-x' })).status).toBe(404)
      expect((await gw.send('key_a', 'DELETE', `/openai/v1/models/${encodeURIComponent(ft)}`)).status).toBe(404)
      expect((await gw.send('key_a', 'DELETE', `/openai/v1/models/${ft}`)).status).toBe(404)
      // A base model is nobody's object.
      expect((await gw.send('key_a', 'POST', '/openai/v1/chat/completions', { ...chat, model: 'gpt-4o-mini' })).status).toBe(200)
      expect(gw.upstream.seen).toHaveLength(before + 1)
      // Granted to key_a: key_a alone.
      expect((await gw.send('key_a', 'POST', '/openai/v1/chat/completions', chat, ft)).status).toBe(200)
      expect((await gw.send('key_a', 'DELETE', `/openai/v1/models/${ft}`, undefined, ft)).status).toBe(200)
      expect((await gw.send('key_b', 'POST', '/openai/v1/chat/completions', chat, 'ft:gpt-4o-mini-2024-07-18:acme:other:XyZ789')).status).toBe(404)
      expect(gw.upstream.seen).toHaveLength(before + 3)
      expect(gw.denied().map(([who, kind]) => [who, kind])).toEqual([['key_a', 'model'], ['key_a', 'model'], ['key_a', 'model'], ['key_a', 'model'], ['key_b', 'model']])
    } finally {
      await gw.close()
    }
  })
})
