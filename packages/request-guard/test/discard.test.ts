import http from 'node:http'
import net from 'node:net'
import { chat, startGuarded, type GuardedApp } from './helpers'
import { waitFor } from '@gatehouse/testing'

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
    for (let i = 0; i < 3; i++) {
      const refused = await post(app, agent, big)
      expect(refused.status).toBe(413)
      expect(refused.connection).not.toBe('close')
      expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'request_too_large' } })
    }
    // On one raw connection (the client's pooling aside): the 413, then a request that is served.
    const { hostname: host, port } = new URL(app.url)
    const socket = net.connect(Number(port), host)
    let got = ''
    socket.setEncoding('utf8').on('data', (d: string) => (got += d))
    const head = (length: number): string =>
      `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`
    const until = (pattern: RegExp): Promise<number> =>
      waitFor(
        () => {
          if (pattern.test(got)) return true
          if (socket.destroyed) throw new Error(`the connection closed without ${pattern}; got: ${got.slice(0, 300)}`)
          return false
        },
        5000,
        { what: `${pattern} on the connection` },
      )
    try {
      await new Promise<void>((r) => socket.write(head(big.length) + big.toString('latin1'), 'latin1', () => r()))
      await until(/^HTTP\/1\.1 413/)
      const ok = JSON.stringify(chat())
      socket.write(head(Buffer.byteLength(ok)) + ok)
      await until(/HTTP\/1\.1 200/)
    } finally {
      socket.destroy()
    }
  })

  it('past 64 MiB declared, is not read: the 413 says Connection: close', async () => {
    const refused = await post(app, agent, Buffer.alloc(1024, 0x20), 65 * 1024 * 1024)
    expect(refused.status).toBe(413)
    expect(refused.connection).toBe('close')
  })
})
