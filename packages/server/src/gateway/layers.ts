import type { RequestHandler } from 'express'
import { keyModelScope } from '@gatehouse/client-auth'
import { credentialInjection } from '@gatehouse/credential-vault'
import { accessLogLayer } from '../layers/access-log'
import { clientAuthLayer } from '../layers/client-auth'
import { unconfiguredProviderGuard } from '../layers/credential-check'
import { hostGuardLayer } from '../layers/host-guard'
import { maintenanceLayer } from '../layers/maintenance'
import { pathGuard } from '../layers/path-guard'
import { requestId } from '../layers/request-id'
import { requestGuardLayer } from '../layers/request-guard'
import { routingLayer } from '../layers/routing'
import { securityHeadersLayer } from '../layers/security-headers'
import { shutdownLayer } from '../layers/shutdown'
import { storeBodyLayer } from '../layers/store-body'
import type { GatewayServices } from './services'

/**
 * One layer of the request pipeline. `front` layers run for every request (management and health
 * included); `admission` layers only for provider requests, after the management and health routes.
 */
export interface LayerSpec {
  readonly name: string
  readonly stage: 'front' | 'admission'
  /** Left out when false. @default always */
  readonly enabled?: (s: GatewayServices) => boolean
  readonly build: (s: GatewayServices) => RequestHandler | readonly RequestHandler[] | undefined
}

/** The layers in SPEC §3 order. */
export const LAYERS: readonly LayerSpec[] = [
  // Every request gets an id, and no ambiguous path gets past this point.
  { name: 'request-id', stage: 'front', build: () => requestId() },
  { name: 'host-guard', stage: 'front', build: (s) => hostGuardLayer(s.config.server.host, s.config.server.allowed_hosts, s.events.emit) },
  { name: 'path-guard', stage: 'front', build: () => pathGuard() },
  { name: 'shutdown', stage: 'front', build: (s) => shutdownLayer(s.state.runtime) },
  { name: 'access-log', stage: 'front', build: (s) => accessLogLayer(s.events.emit, s.knownSecrets, s.logger) },
  { name: 'security-headers', stage: 'front', build: (s) => securityHeadersLayer(s.config, s.logger) },
  { name: 'maintenance', stage: 'admission', build: (s) => maintenanceLayer(s.state.runtime, s.retryAfter) },
  { name: 'ip-filter', stage: 'admission', build: (s) => s.ipFilter },
  { name: 'address-limits', stage: 'admission', build: (s) => s.limits.perAddress },
  {
    name: 'client-auth',
    stage: 'admission',
    enabled: (s) => s.config.auth.client_auth.enabled,
    build: (s) => clientAuthLayer(s.config, s.state.keyStore, s.ipFilter, s.events.emit, s.logger),
  },
  { name: 'routing', stage: 'admission', build: (s) => routingLayer(s.providers, s.state.runtime, s.retryAfter) },
  // A provider with no credential at all: a non-retryable 403 naming the setting.
  { name: 'credential-check', stage: 'admission', build: (s) => unconfiguredProviderGuard(s.config, s.upstream.vault, s.events.emit) },
  // The endpoint allowlist (provider defaults, or the key's own scope): refused before any limit is spent.
  { name: 'endpoint-allowlist', stage: 'admission', build: (s) => s.upstream.proxy.admission },
  // The body is read and checked (caps bound the output) before any token is reserved, so a request
  // refused here, or one that never finishes its body, costs nothing.
  { name: 'request-guard', stage: 'admission', build: (s) => requestGuardLayer(s.config, s.events.emit, s.logger) },
  // The key's models, wherever the request names them (body, path, nested batch entries).
  { name: 'model-scope', stage: 'admission', build: (s) => keyModelScope({ onEvent: s.events.emit, logger: s.logger }) },
  { name: 'request-limits', stage: 'admission', build: (s) => s.limits.perRequest },
  // storage.store_bodies: the admitted request's body, masked by storage.
  {
    name: 'store-body',
    stage: 'admission',
    enabled: (s) => s.config.storage.store_bodies && s.events.storage !== undefined,
    build: (s) => storeBodyLayer(s.events.storage!),
  },
  {
    name: 'credential-injection',
    stage: 'admission',
    build: (s) => credentialInjection({ vault: s.upstream.vault, setRequestHeaders: false, autoReport: false, grantEventInterval: 300_000, onEvent: s.events.emit, logger: s.logger }),
  },
  { name: 'proxy', stage: 'admission', build: (s) => s.upstream.proxy },
]

/** The enabled layers of each stage, built in table order. */
export function buildLayers(s: GatewayServices, table: readonly LayerSpec[] = LAYERS): Record<LayerSpec['stage'], RequestHandler[]> {
  const out: Record<LayerSpec['stage'], RequestHandler[]> = { front: [], admission: [] }
  for (const layer of table) {
    if (layer.enabled && !layer.enabled(s)) continue
    let built: ReturnType<LayerSpec['build']>
    try {
      built = layer.build(s)
    } catch (err) {
      // The package's own message names its option; the layer's name says where in the pipeline.
      throw new Error(`layer ${layer.name}: ${(err as Error).message}`, { cause: err })
    }
    if (built === undefined) continue
    out[layer.stage].push(...(Array.isArray(built) ? built : [built as RequestHandler]))
  }
  return out
}
