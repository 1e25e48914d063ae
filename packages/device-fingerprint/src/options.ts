import {
  CLIENT_CREDENTIAL_HEADERS,
  COMMON_REQUEST_HEADERS,
  GatehouseConfigError,
  PROVIDERS,
  createOptionsResolver,
  isLogger,
  noopLogger,
  type Logger,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { DeviceFingerprintErrorCodes } from './errors'

const PKG = '@gatehouse/device-fingerprint'

export interface DeviceFingerprintOptions {
  /**
   * The directory the install secret the fingerprint is derived from is kept in (the auth dir,
   * SPEC `auth.dir`). Created 0700 when missing.
   */
  dir: string
  /** The upstream request header that carries the fingerprint (SPEC `device_fingerprint.header`). @default "X-Device-Fingerprint" */
  header?: string | undefined
  /** Mixed into the derivation, so two products sharing one install secret send different ids. @default "gatehouse" */
  salt?: string | undefined
  /** The file name inside `dir`. @default "device-fingerprint.json" */
  fileName?: string | undefined
  /**
   * Accept a fingerprint file or directory that is a symlink or owned by another user (a loose
   * mode is always fixed to 0600). @default false
   */
  allowInsecurePermissions?: boolean | undefined
  /** Receives a `config_change` event when a fingerprint is created. */
  onEvent?: SecurityEventHandler | undefined
  /** @default no-op */
  logger?: Logger | undefined
}

export interface DeviceFingerprintConfig {
  readonly dir: string
  readonly header: string
  readonly salt: string
  readonly fileName: string
  readonly allowInsecurePermissions: boolean
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

const HEADER_NAME = '^[!#$%&\'*+.^_`|~0-9A-Za-z-]{1,64}$'

/** JSON schema of the data-shaped options. */
export const deviceFingerprintOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['dir'],
  properties: {
    dir: { type: 'string', minLength: 1 },
    header: { type: 'string', pattern: HEADER_NAME },
    salt: { type: 'string', minLength: 1, maxLength: 256 },
    fileName: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' },
    allowInsecurePermissions: { type: 'boolean' },
  },
} as const

const HAND_CHECKED = ['onEvent', 'logger'] as const
const resolveData = createOptionsResolver<Omit<DeviceFingerprintOptions, (typeof HAND_CHECKED)[number]>>({
  pkg: PKG,
  codePrefix: 'GH_DFP',
  schema: deviceFingerprintOptionsSchema,
  handChecked: HAND_CHECKED,
})

/**
 * Headers the fingerprint must never replace: every client credential header, every header a
 * provider reads from clients (provider registry), and routing and framing.
 */
const RESERVED: ReadonlySet<string> = new Set([
  ...CLIENT_CREDENTIAL_HEADERS,
  ...COMMON_REQUEST_HEADERS,
  ...Object.values(PROVIDERS).flatMap((p) => [...p.requestHeaders, ...p.accountHeaders]),
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'upgrade',
  'te',
  'trailer',
  'keep-alive',
])

export function resolveDeviceFingerprintConfig(options: DeviceFingerprintOptions): DeviceFingerprintConfig {
  const data = resolveData(options)
  const raw = options as unknown as Record<string, unknown>
  const fail = (message: string): GatehouseConfigError =>
    new GatehouseConfigError(DeviceFingerprintErrorCodes.GH_DFP_INVALID_OPTIONS, `${PKG}: ${message}`)
  for (const fn of ['onEvent'] as const) {
    if (raw[fn] !== undefined && typeof raw[fn] !== 'function') throw fail(`${fn}: must be a function`)
  }
  if (raw.logger !== undefined && !isLogger(raw.logger)) throw fail('logger: must have error, warn, info and debug methods')
  const header = data.header ?? 'X-Device-Fingerprint'
  if (RESERVED.has(header.toLowerCase())) throw fail(`header: ${JSON.stringify(header)} is reserved (credentials, routing or framing); choose another name`)
  return Object.freeze({
    dir: data.dir,
    header,
    salt: data.salt ?? 'gatehouse',
    fileName: data.fileName ?? 'device-fingerprint.json',
    allowInsecurePermissions: data.allowInsecurePermissions ?? false,
    onEvent: raw.onEvent as SecurityEventHandler | undefined,
    logger: (raw.logger as Logger | undefined) ?? noopLogger,
  })
}
