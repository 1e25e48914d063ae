export { DeviceFingerprintErrorCodes, type DeviceFingerprintErrorCode } from './errors'
export {
  deviceFingerprintOptionsSchema,
  resolveDeviceFingerprintConfig,
  type DeviceFingerprintConfig,
  type DeviceFingerprintOptions,
  type InterfaceMap,
} from './options'
export {
  computeFingerprint,
  loadOrCreateDeviceFingerprint,
  pickMacAddress,
  type DeviceFingerprintResult,
  type FingerprintSource,
} from './fingerprint'
export { applyDeviceFingerprint, deviceFingerprint, stripDeviceFingerprint, type DeviceFingerprintMiddleware } from './middleware'
