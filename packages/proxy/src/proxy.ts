import type http from 'node:http'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { gatehouseLocals, type ProviderName } from '@gatehouse/core'
import { admit } from './admission'
import { batchedStage } from './batch'
import { headerPolicy, type HeaderPolicy } from './headers'
import { resolveProxyConfig, type ProxyOptions, type ResolvedProvider } from './options'
import { secretsOf } from './provider-options'
import type { Flight } from './relay'
import { prepareSecrets, type InjectedSecrets } from './mask'
import { checkObjectOwners } from './references'
import { sender } from './send'
import { upstreamFailure, upstreamProxies } from './upstream'

export interface GatehouseProxy extends RequestHandler {
  /**
   * Routing and the endpoint allowlist alone, for a pipeline that wants refusals before it reads
   * bodies or spends limits. The proxy runs the same check itself when this did not run first.
   */
  admission: RequestHandler
  /** Close the upstream keep-alive sockets. */
  close(): void
}

/**
 * The data plane (SPEC §3 "What crosses the proxy"): one Express middleware that forwards
 * admitted provider requests with http-proxy-middleware. The upstream request's headers are
 * computed before it is created, from the header allowlist plus the credential, so no event a
 * client can suppress decides what leaves; a request without a credential is never sent.
 */
export function gatehouseProxy(options: ProxyOptions): GatehouseProxy {
  const config = resolveProxyConfig(options)
  const agents: http.Agent[] = []
  const policies = new Map<ProviderName, HeaderPolicy>()
  const proxies = new Map<ProviderName, RequestHandler>()
  // A credential's header object lives as long as the credential: its secrets are prepared once.
  const prepared = new WeakMap<object, InjectedSecrets>()
  const injectedOf = (headers: Readonly<Record<string, string>>): InjectedSecrets => {
    let got = prepared.get(headers)
    if (!got) prepared.set(headers, (got = prepareSecrets(secretsOf(headers))))
    return got
  }

  // The response flush stage (batching only): first chunks written corked, uncorked together next turn.
  const flushLater = config.batching
    ? batchedStage<[Flight, http.ServerResponse]>(
        (f, res) => {
          const action = f.flush
          f.flush = undefined
          if (action === 'end') res.end()
          else if (action === 'uncork') res.uncork()
        },
        (_err, _f, res) => void res.destroy(),
      )
    : undefined

  const fail = upstreamFailure(config)
  const build = upstreamProxies(config, agents, fail, flushLater)
  for (const p of config.providers.values()) {
    policies.set(p.name, headerPolicy(p.name, p.relayRateLimits))
    proxies.set(p.name, build(p))
  }
  const send = sender(config, policies, proxies, injectedOf, fail)

  const dispatch = config.batching
    ? batchedStage<[Request, Response, NextFunction, ResolvedProvider, string]>(
        (req, res, next, p, path) => {
          // A client that left while its request waited is not proxied.
          if (!res.destroyed) send(req, res, next, p, path)
        },
        (err, _req, _res, next) => next(err),
      )
    : send

  const handler = function gatehouseProxyMiddleware(req: Request, res: Response, next: NextFunction): void {
    try {
      const admitted = admit(config, req, res)
      if (admitted === 'not-ours') return next()
      if (admitted === 'answered') return
      // Nothing has left the gateway yet: a request answered before it does costs no tokens.
      gatehouseLocals(res).upstreamReached = false
      const path = admitted.route.upstreamPath
      const go = (): void => checkObjectOwners(config, admitted.provider.name, req, res, next, path, () => dispatch(req, res, next, admitted.provider, path))
      if (config.body && !req.readableEnded) {
        // A body is given but nobody read the stream: read it to its end first, so that the proxy's
        // pipe of the request stream appends nothing to the body written.
        req.resume()
        req.once('end', go)
        return
      }
      go()
    } catch (err) {
      next(err)
    }
  } as GatehouseProxy
  handler.admission = function endpointAdmissionMiddleware(req, res, next) {
    const admitted = admit(config, req, res)
    if (admitted !== 'answered') next()
  }
  handler.close = () => {
    for (const a of agents) a.destroy()
  }
  return handler
}
