import net from 'node:net'
import tls from 'node:tls'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateCertificate, httpRequest, waitFor } from '@gatehouse/testing'
import { defaultMaxConnections } from '@gatehouse/server'
import { openaiBody, startHarness, type Harness } from './helpers'

/**
 * A hostile client holding idle connections (no key, not a byte sent) against the listener's
 * connection limits: the other tenants keep being answered. Each "address" is another loopback
 * address (Linux routes all of 127/8 to lo).
 */

const portOf = (url: string): number => Number(new URL(url).port)

/** A raw TCP connection from `localAddress`, resolved once connected; `closed` settles when the server drops it. */
function hold(port: number, localAddress: string): Promise<{ socket: net.Socket; closed: Promise<{ data: string }> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress })
    let data = ''
    socket.on('data', (c: Buffer) => (data += c.toString()))
    const closed = new Promise<{ data: string }>((r) => socket.on('close', () => r({ data })))
    socket.on('error', () => undefined) // a reset is one way the server closes it
    socket.once('connect', () => resolve({ socket, closed }))
    socket.once('error', reject)
  })
}

/** A chat completion with the harness's key, from `localAddress`, on a fresh connection. */
const chat = (h: Harness, localAddress: string) =>
  httpRequest(h.url, {
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', 'x-api-key': h.key },
    body: JSON.stringify(openaiBody()),
    localAddress,
  })

/** Whether `localAddress` is served again (a chat completion answered 200), once its sockets closed. */
const servedAgain = async (h: Harness, localAddress: string): Promise<void> => {
  await waitFor(async () => (await chat(h, localAddress).catch(() => ({ status: 0 }))).status === 200)
}

const refusals = (h: Harness) => h.events.filter((e) => e.result === 'connection_limit')

describe('connection limits: one address holding idle sockets cannot shut the others out', () => {
  it('closes an address\'s connection over server.security.connections.per_ip at once, and the other tenants are still answered', async () => {
    const h = await startHarness((c) => {
      c.server.security.connections = { per_ip: 4 }
    })
    const held: net.Socket[] = []
    try {
      const port = portOf(h.url)
      for (let i = 0; i < 4; i++) held.push((await hold(port, '127.0.0.1')).socket)
      // The fifth from the same address: closed by the server without a byte of answer.
      const over = await hold(port, '127.0.0.1')
      over.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      expect(await over.closed).toEqual({ data: '' })
      // Another tenant, another address: answered while the four are held.
      const other = await chat(h, '127.0.0.2')
      expect(other.status).toBe(200)
      // The event names the address and the limit, and nothing about any key.
      await waitFor(() => refusals(h).length >= 1)
      const [event] = refusals(h)
      expect(event).toMatchObject({ event_type: 'security_violation', ip: '127.0.0.1', result: 'connection_limit', details: { code: 'GH_SERVER_CONNECTION_LIMIT', scope: 'ip', limit: 4 } })
      expect(event!.user_id).toBeUndefined()
      expect(JSON.stringify(h.events)).not.toContain(h.key)
      // One held socket closed: the address may connect again.
      held.pop()!.destroy()
      await servedAgain(h, '127.0.0.1')
    } finally {
      for (const s of held) s.destroy()
      await h.close()
    }
  })

  it('caps the connections of all addresses together (server.security.connections.max), and serves again when they close', async () => {
    const h = await startHarness((c) => {
      c.server.security.connections = { max: 6, per_ip: 100 }
    })
    const held: net.Socket[] = []
    try {
      const port = portOf(h.url)
      for (let i = 0; i < 6; i++) held.push((await hold(port, `127.0.0.${3 + (i % 3)}`)).socket)
      const over = await hold(port, '127.0.0.9')
      expect(await over.closed).toEqual({ data: '' })
      await waitFor(() => refusals(h).length >= 1)
      expect(refusals(h)[0]).toMatchObject({ ip: '127.0.0.9', result: 'connection_limit', details: { scope: 'total', limit: 6 } })
      for (const s of held.splice(0)) s.destroy()
      await servedAgain(h, '127.0.0.9')
    } finally {
      for (const s of held) s.destroy()
      await h.close()
    }
  })

  it('holds never_block and trust_proxy addresses (a load balancer carries many clients) to the total only', async () => {
    const h = await startHarness((c) => {
      c.server.security.connections = { per_ip: 2 }
      c.server.security.never_block = ['127.0.0.6']
      c.server.trust_proxy = ['127.0.0.7']
    })
    const held: net.Socket[] = []
    try {
      const port = portOf(h.url)
      for (const address of ['127.0.0.6', '127.0.0.7']) {
        for (let i = 0; i < 4; i++) held.push((await hold(port, address)).socket)
        expect([address, (await chat(h, address)).status]).toEqual([address, 200])
      }
      expect(refusals(h)).toEqual([])
      // An address on neither list is still held to per_ip beside them.
      for (let i = 0; i < 2; i++) held.push((await hold(port, '127.0.0.8')).socket)
      const over = await hold(port, '127.0.0.8')
      expect(await over.closed).toEqual({ data: '' })
      await waitFor(() => refusals(h).length >= 1)
      expect(refusals(h).map((e) => e.ip)).toEqual(['127.0.0.8'])
    } finally {
      for (const s of held) s.destroy()
      await h.close()
    }
  })

  it('closes the connection before the TLS handshake on a TLS listener', async () => {
    const cert = generateCertificate({ commonName: 'limits.gatehouse.test' })
    let dir = ''
    const h = await startHarness((c) => {
      dir = join(c.auth.dir, '..')
      writeFileSync(join(dir, 'server.crt'), cert.cert)
      writeFileSync(join(dir, 'server.key'), cert.key, { mode: 0o600 })
      c.server.tls = { enabled: true, cert_file: join(dir, 'server.crt'), key_file: join(dir, 'server.key'), min_version: '1.2' }
      c.server.security.connections = { per_ip: 1 }
    })
    const held: net.Socket[] = []
    try {
      const port = portOf(h.url)
      held.push((await hold(port, '127.0.0.1')).socket)
      const refused = await new Promise<string>((resolve) => {
        const socket = tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' }), rejectUnauthorized: false }, () => resolve('handshake completed'))
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
      })
      expect(refused).toMatch(/ECONNRESET|socket disconnected/)
      const other = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }), rejectUnauthorized: false }, () => {
          resolve(socket.getProtocol() ?? '')
          socket.destroy()
        })
        socket.on('error', reject)
      })
      expect(other).toMatch(/^TLSv1\.[23]$/)
    } finally {
      for (const s of held) s.destroy()
      await h.close()
    }
  })
})

describe('the default total', () => {
  it('is half the descriptors the process may open after a reserve of 256, between 64 and 16384', () => {
    const limits = (n: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${n}                 1048576              files\n`
    expect(defaultMaxConnections(limits('1024'))).toBe(384)
    expect(defaultMaxConnections(limits('20000'))).toBe(9872)
    expect(defaultMaxConnections(limits('1048576'))).toBe(16384)
    expect(defaultMaxConnections(limits('300'))).toBe(64)
    expect(defaultMaxConnections(limits('unlimited'))).toBe(16384)
    expect(defaultMaxConnections('nothing to read')).toBe(4096)
    // This machine's own limit gives a number in range.
    const own = defaultMaxConnections()
    expect(own).toBeGreaterThanOrEqual(64)
    expect(own).toBeLessThanOrEqual(16384)
  })
})
