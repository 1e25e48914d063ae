import http from 'node:http'
import os from 'node:os'
import type { Express } from 'express'
import { listen, type RunningServer } from '@gatehouse/testing'

/** True when the loopback interface has ::1 (IPv6 tests are skipped otherwise). */
export const hasIpv6Loopback = Object.values(os.networkInterfaces()).some((list) =>
  (list ?? []).some((a) => a.family === 'IPv6' && a.address === '::1'),
)

export interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  json: unknown
}

/** One real HTTP request over loopback (a fresh connection each time, so nothing is pooled). */
export function send(url: string, path = '/', headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try {
          json = JSON.parse(body)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json })
      })
      res.on('error', reject)
    })
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}

/** Serve an app on a loopback address; close them all with closeAll(). */
export function servers(): { serve(app: Express, host?: string): Promise<RunningServer>; closeAll(): Promise<void> } {
  const running: RunningServer[] = []
  return {
    async serve(app, host = '127.0.0.1') {
      const s = await listen(app, host)
      running.push(s)
      return s
    },
    async closeAll() {
      await Promise.all(running.splice(0).map((s) => s.close()))
    },
  }
}

export function fakeLogger(): { error: jest.Mock; warn: jest.Mock; info: jest.Mock; debug: jest.Mock } {
  return { error: jest.fn(), warn: jest.fn(), info: jest.fn(), debug: jest.fn() }
}
