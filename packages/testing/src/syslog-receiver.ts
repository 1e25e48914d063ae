import type { AddressInfo, Socket } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import type { GeneratedCertificate } from './certs'

// A syslog receiver for tests of audit shipping (the audit-log sink's own tests and the server's,
// through a running gateway): RFC 5425 octet-counted RFC 5424 messages over TLS.

export interface SyslogMessage {
  pri: number
  version: string
  timestamp: string
  hostname: string
  appName: string
  procId: string
  msgId: string
  sd: string
  msg: string
  /** The whole syslog message (without the octet count). */
  raw: string
}

/** Split one RFC 5424 message into its header fields and MSG. */
export function parseSyslog(raw: string): SyslogMessage {
  const m = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$/s.exec(raw)
  if (!m) throw new Error(`not an RFC 5424 message: ${raw.slice(0, 80)}`)
  return {
    pri: Number(m[1]),
    version: m[2]!,
    timestamp: m[3]!,
    hostname: m[4]!,
    appName: m[5]!,
    procId: m[6]!,
    msgId: m[7]!,
    sd: m[8]!,
    msg: m[9]!,
    raw,
  }
}

/**
 * A TLS syslog receiver (RFC 5425 octet counting) on a loopback port. `stop()` closes it and every
 * connection; `start(port)` listens again, on the same port when given.
 */
export class SyslogReceiver {
  readonly messages: SyslogMessage[] = []
  /** Every decrypted byte received, for the secrecy checks. */
  plaintext = ''
  port = 0
  /** Crash after this many messages: drop the connection with whatever it still had unread. */
  crashAfter: number | undefined
  private server: TlsServer | undefined
  private readonly sockets = new Set<Socket>()

  /** `cert`: the receiver's certificate and key (the sink must trust `cert.cert`). */
  constructor(private readonly cert: GeneratedCertificate) {}

  async start(port = 0): Promise<number> {
    const cert = this.cert
    const server = createTlsServer({ cert: cert.cert, key: cert.key, minVersion: 'TLSv1.2' }, (socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
      socket.on('error', () => undefined)
      let buf = Buffer.alloc(0)
      socket.on('data', (chunk: Buffer) => {
        this.plaintext += chunk.toString('utf8')
        buf = Buffer.concat([buf, chunk])
        for (;;) {
          const sp = buf.indexOf(0x20)
          if (sp < 0) return
          const len = Number(buf.subarray(0, sp).toString('ascii'))
          if (!Number.isInteger(len) || len <= 0) throw new Error('bad octet count')
          if (buf.length < sp + 1 + len) return
          this.messages.push(parseSyslog(buf.subarray(sp + 1, sp + 1 + len).toString('utf8')))
          buf = buf.subarray(sp + 1 + len)
          if (this.crashAfter !== undefined && this.messages.length >= this.crashAfter) {
            this.crashAfter = undefined
            socket.destroy()
            return
          }
        }
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    this.server = server
    this.port = (server.address() as AddressInfo).port
    return this.port
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    for (const s of this.sockets) s.destroy()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** The audit lines received, duplicates (same seq) removed, in the order first seen. */
  lines(): string[] {
    const seen = new Set<number>()
    const out: string[] = []
    for (const m of this.messages) {
      const seq = (JSON.parse(m.msg) as { seq: number }).seq
      if (seen.has(seq)) continue
      seen.add(seq)
      out.push(m.msg)
    }
    return out
  }
}
