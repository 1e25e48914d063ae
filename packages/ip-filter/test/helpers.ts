import type { Express } from 'express'
import { httpRequest, listen, type HttpReply, type RunningServer } from '@gatehouse/testing'

/** One real HTTP request over loopback (a fresh connection each time, so nothing is pooled). */
export const send = (url: string, path = '/', headers: Record<string, string> = {}, method = 'GET'): Promise<HttpReply> =>
  httpRequest(url, { path, headers, method, timeoutMs: 5000 })

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
