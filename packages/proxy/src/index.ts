export { gatehouseProxy, type GatehouseProxy } from './proxy'
export { proxyOptionsSchema, resolveProxyConfig, type ProxyOptions, type ProxyProviderOptions, type UpstreamCredential } from './options'
export { ProxyErrorCodes, type ProxyErrorCode } from './errors'
export { composeLayers, createPipelineServer, type PipelineServerOptions } from './pipeline'
