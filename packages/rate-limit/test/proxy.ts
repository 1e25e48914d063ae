import http from 'node:http'
import type { RequestHandler } from 'express'
import type { MockUpstream } from '@gatehouse/testing'
import { meterUpstreamUsage } from '@gatehouse/rate-limit'

/** A tiny streaming proxy to the mock upstream, metering usage the way the gateway's proxy does. */
export function proxyTo(upstream: MockUpstream): RequestHandler {
  return function testProxy(req, res) {
    const up = http.request(
      `${upstream.url}${req.originalUrl}`,
      {
        method: req.method,
        headers: {
          ...(req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}),
          ...(req.headers['content-length'] ? { 'content-length': req.headers['content-length'] } : {}),
        },
      },
      (upRes) => {
        res.status(upRes.statusCode ?? 502)
        if (upRes.headers['content-type']) res.setHeader('content-type', upRes.headers['content-type'])
        meterUpstreamUsage(res, upRes)
        upRes.on('close', () => {
          if (!upRes.complete) res.destroy() // a dropped upstream drops the client stream too
        })
        upRes.pipe(res)
      },
    )
    up.on('error', () => res.destroy())
    req.pipe(up)
  }
}
