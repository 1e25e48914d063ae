import net from 'node:net'
import https from 'node:https'
import { freePort, generateCertificate, listen, portOpen } from '@gatehouse/testing'

describe('freePort', () => {
  it('gives a loopback port that refuses connections', async () => {
    const port = await freePort()
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.on('connect', () => (s.destroy(), resolve('connected')))
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
    })
    expect(refused).toBe('ECONNREFUSED')
  })
})

describe('portOpen', () => {
  it('is true while something listens on the port and false once nothing does', async () => {
    const running = await listen(net.createServer((s) => s.destroy()))
    expect(await portOpen(running.port)).toBe(true)
    await running.close()
    expect(await portOpen(running.port)).toBe(false)
  })
})

describe('listen', () => {
  it('serves a server of any kind (here https) and closes it with its connections', async () => {
    const tls = generateCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] })
    const running = await listen(
      https.createServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.end('ok')),
    )
    const status = await new Promise<number>((resolve, reject) => {
      https
        .get(
          `https://127.0.0.1:${running.port}/`,
          { ca: tls.cert, servername: 'localhost', agent: false },
          (res) => {
            res.resume()
            res.on('end', () => resolve(res.statusCode ?? 0))
          },
        )
        .on('error', reject)
    })
    expect(status).toBe(200)
    await running.close()
    expect(running.server.listening).toBe(false)
  })
})
