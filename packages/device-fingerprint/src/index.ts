export { DeviceFingerprintErrorCodes, type DeviceFingerprintErrorCode } from './errors'
export {
  deviceFingerprintOptionsSchema,
  resolveDeviceFingerprintConfig,
  type DeviceFingerprintConfig,
  type DeviceFingerprintOptions,
} from './options'
export {
  deriveFingerprint,
  loadOrCreateDeviceFingerprint,
  rotateDeviceFingerprint,
  type DeviceFingerprintResult,
} from './fingerprint'
export { applyDeviceFingerprint, deviceFingerprint, stripDeviceFingerprint, type DeviceFingerprintMiddleware } from './middleware'
