import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { generateCertificate, SyslogReceiver as TestingSyslogReceiver, type GeneratedCertificate } from '@gatehouse/testing'
import type { HttpsSinkOptions, SyslogSinkOptions } from '@gatehouse/audit-log'

export { parseSyslog, type SyslogMessage } from '@gatehouse/testing'

let cached: GeneratedCertificate | undefined
/** One self-signed certificate for localhost / 127.0.0.1, made at run time (never committed). */
export const testCertificate = (): GeneratedCertificate => (cached ??= generateCertificate())

/** Short retries, so a test sees a receiver come back within milliseconds. */
export const fast = { retryInterval: 20, maxRetryInterval: 100, closeTimeout: '3s' } as const

/** A syslog sink to a receiver of this file on `port`, trusting the test certificate. */
export const syslogSink = (port: number, extra: Partial<SyslogSinkOptions> = {}): SyslogSinkOptions => ({
  type: 'syslog',
  host: '127.0.0.1',
  port,
  servername: 'localhost',
  ca: testCertificate().cert,
  ...fast,
  ...extra,
})

/** An HTTPS sink to `url`, trusting the test certificate. */
export const httpsSink = (url: string, extra: Partial<HttpsSinkOptions> = {}): HttpsSinkOptions => ({
  type: 'https',
  url,
  ca: testCertificate().cert,
  ...fast,
  ...extra,
})

/** The syslog receiver of @gatehouse/testing, with the test certificate of this file. */
export class SyslogReceiver extends TestingSyslogReceiver {
  constructor() {
    super(testCertificate())
  }
}

export interface HttpsRequestSeen {
  headers: Record<string, string | string[] | undefined>
  body: string
  status: number
}

/** An HTTPS collector on a loopback port that answers `failFirst` requests with `failStatus`. */
export async function startHttpsCollector(
  opts: { failFirst?: number; failStatus?: number; port?: number } = {},
): Promise<{
  url: string
  requests: HttpsRequestSeen[]
  lines: () => string[]
  close: () => Promise<void>
}> {
  const cert = testCertificate()
  const requests: HttpsRequestSeen[] = []
  const server: HttpsServer = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const status = requests.length < (opts.failFirst ?? 0) ? (opts.failStatus ?? 503) : 204
      requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status })
      res.statusCode = status
      if (status === 503) res.setHeader('retry-after', '0')
      res.end()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `https://localhost:${port}/ingest?token=collector-secret-1234`,
    requests,
    lines: () =>
      requests.filter((r) => r.status === 204).flatMap((r) => r.body.replace(/\n$/, '').split('\n')),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
