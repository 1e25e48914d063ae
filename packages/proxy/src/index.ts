export { gatehouseProxy, type GatehouseProxy } from './proxy'
export type { ProxyOptions, ProxyProviderOptions, UpstreamCredential } from './options'
export { ProxyErrorCodes, type ProxyErrorCode } from './errors'
export { composeLayers, createPipelineServer, type PipelineServerOptions } from './pipeline'
