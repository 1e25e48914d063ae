import net from 'node:net'
import { generateCertificate, httpRequest, listen, rawHttp, waitFor } from '@gatehouse/testing'
import https from 'node:https'

describe('httpRequest', () => {
  it('sends the method, headers and body, and reads status, headers, text and JSON', async () => {
    const server = await listen((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        res.setHeader(
          'x-seen',
          `${req.method} ${req.url} ${req.headers['x-a']} ${req.headers['content-length']}`,
        )
        res.end(JSON.stringify({ body }))
      })
    })
    try {
      const r = await httpRequest(server.url, { path: '/p?q=1', headers: { 'x-a': 'b' }, body: 'hello' })
      expect(r.status).toBe(200)
      expect(r.headers['x-seen']).toBe('POST /p?q=1 b 5')
      expect(r.body).toBe('{"body":"hello"}')
      expect(r.json).toEqual({ body: 'hello' })
      const absolute = await httpRequest(server.url, { path: 'http://evil.example/steal' })
      expect(absolute.headers['x-seen']).toBe('GET http://evil.example/steal undefined undefined')
      const plain = await httpRequest(server.url, { method: 'GET' })
      expect(plain.headers['x-seen']).toBe('GET / undefined undefined')
    } finally {
      await server.close()
    }
  })

  it('leaves json undefined for a body that is not JSON', async () => {
    const server = await listen((_req, res) => res.end('not json'))
    try {
      expect(await httpRequest(server.url)).toMatchObject({ body: 'not json', json: undefined })
    } finally {
      await server.close()
    }
  })

  it('speaks https with the CA it is given', async () => {
    const tls = generateCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] })
    const server = await listen(
      https.createServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.end('{}')),
    )
    try {
      const r = await httpRequest(server.url.replace('http:', 'https:'), {
        ca: tls.cert,
        servername: 'localhost',
      })
      expect(r.status).toBe(200)
    } finally {
      await server.close()
    }
  })

  it('sends from the local address given', async () => {
    const server = await listen((req, res) => res.end(req.socket.remoteAddress))
    try {
      expect((await httpRequest(server.url, { localAddress: '127.0.0.2' })).body).toBe('127.0.0.2')
    } finally {
      await server.close()
    }
  })

  it('fails after its timeout when no answer comes', async () => {
    const server = await listen(() => undefined)
    try {
      await expect(httpRequest(server.url, { timeoutMs: 50 })).rejects.toThrow('no answer within 50 ms')
    } finally {
      await server.close()
    }
  })
})

describe('rawHttp', () => {
  it('writes the bytes as given, skips interim answers and parses the final head', async () => {
    let seen = ''
    const server = net.createServer((socket) => {
      socket.setEncoding('latin1')
      socket.once('data', (d: string) => {
        seen = d
        socket.end(
          'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 418 Teapot\r\nX-Kind: Tea\r\nContent-Length: 2\r\n\r\nok',
        )
      })
    })
    const running = await listen(server)
    try {
      const r = await rawHttp(running.url, 'GET / HTTP/1.1\r\n\r\n')
      expect(seen).toBe('GET / HTTP/1.1\r\n\r\n')
      expect(r).toEqual({
        status: 418,
        headers: { 'x-kind': 'Tea', 'content-length': '2' },
        body: 'ok',
        text: 'ok',
        statuses: [100, 418],
      })
    } finally {
      await running.close()
    }
  })

  it('rejects when the server never closes', async () => {
    const sockets: net.Socket[] = []
    const server = net.createServer((s) => void sockets.push(s))
    const running = await listen(server)
    try {
      await expect(rawHttp(running.url, 'GET / HTTP/1.1\r\n\r\n', { timeoutMs: 50 })).rejects.toThrow(
        'did not close within 50 ms',
      )
    } finally {
      for (const s of sockets) s.destroy()
      await running.close()
    }
  })
})

describe('rawHttp, when to stop', () => {
  it('de-chunks and decodes the final body as text', async () => {
    const server = await listen((_req, res) => {
      res.write('h\u00e9')
      res.end('llo')
    })
    try {
      const r = await rawHttp(server.url, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      expect(r.headers['transfer-encoding']).toBe('chunked')
      expect(r.body).toMatch(/^[0-9a-f]+\r\nh/)
      expect(r.text).toBe('h\u00e9llo')
    } finally {
      await server.close()
    }
  })

  it('with headOnly, resolves on the final head of an answer that never ends', async () => {
    const server = await listen((_req, res) => {
      res.writeHead(200, { 'x-a': 'b' })
      res.write('first')
    })
    try {
      const r = await rawHttp(server.url, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { headOnly: true, timeoutMs: 2000 })
      expect(r.status).toBe(200)
      expect(r.headers['x-a']).toBe('b')
    } finally {
      await server.close()
    }
  })

  it('with answers, reads pipelined answers and fails when the connection closes before all came', async () => {
    let seen = 0
    const server = await listen((req, res) => {
      seen++
      res.statusCode = req.url === '/teapot' ? 418 : 200
      if (req.url === '/bye') res.setHeader('connection', 'close')
      res.end('x')
    })
    const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`
    try {
      const r = await rawHttp(server.url, get('/') + get('/teapot') + get('/'), { answers: 3 })
      expect(r.statuses).toEqual([200, 418, 200])
      expect(seen).toBe(3)
      await expect(rawHttp(server.url, get('/bye') + get('/'), { answers: 2 })).rejects.toThrow(
        'the connection closed after 1 of 2 answers',
      )
    } finally {
      await server.close()
    }
  })

  it('with hangUpAfterMs, sends the bytes, hangs up and resolves with what came', async () => {
    let got = ''
    let closed = false
    const server = net.createServer((socket) => {
      socket.setEncoding('latin1')
      socket.on('data', (d: string) => (got += d))
      socket.on('error', () => undefined)
      socket.on('close', () => (closed = true))
    })
    const running = await listen(server)
    try {
      const text = 'POST / HTTP/1.1\r\nContent-Length: 900\r\n\r\n{"a":'
      const r = await rawHttp(running.url, text, { hangUpAfterMs: 20 })
      expect(r).toMatchObject({ status: 0, body: '', statuses: [] })
      await waitFor(() => closed, 2000)
      expect(got).toBe(text)
    } finally {
      await running.close()
    }
  })
})
