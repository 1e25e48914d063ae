import http from 'node:http'
import { chat, startGuarded, type GuardedApp } from './helpers'

// A refused body is read and thrown away (bounded) rather than closing the socket under a client
// that is still uploading: the client gets its answer, and the keep-alive connection stays usable.

interface Answer {
  status: number
  connection: string | undefined
  reused: boolean
  text: string
}

function post(app: GuardedApp, agent: http.Agent, body: Buffer | string, declared?: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${app.url}/v1/chat/completions`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': declared ?? Buffer.byteLength(body) } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, reused: req.reusedSocket, text }))
      },
    )
    req.on('error', reject)
    if (declared === undefined) req.end(body)
    else req.write(body) // the rest never comes: only an answer before the body ends can arrive
  })
}

describe('request-guard: the rest of a refused body', () => {
  let app: GuardedApp
  let agent: http.Agent
  beforeAll(async () => {
    app = await startGuarded({ bodyLimit: '64kb' })
  })
  beforeEach(() => {
    agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  })
  afterEach(() => agent.destroy())
  afterAll(() => app.close())

  it('is discarded: a 413 for a 4 MiB upload keeps the connection, which serves the next request', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 0x20)
    for (let i = 0; i < 5; i++) {
      const refused = await post(app, agent, big)
      expect(refused.status).toBe(413)
      expect(refused.connection).not.toBe('close')
      expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'request_too_large' } })
    }
    const ok = await post(app, agent, JSON.stringify(chat()))
    expect(ok.status).toBe(200)
    expect(ok.reused).toBe(true)
  })

  it('past 64 MiB declared, is not read: the 413 says Connection: close', async () => {
    const refused = await post(app, agent, Buffer.alloc(1024, 0x20), 65 * 1024 * 1024)
    expect(refused.status).toBe(413)
    expect(refused.connection).toBe('close')
  })
})
