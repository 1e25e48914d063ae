import {
  createOptionsResolver,
  GatehouseConfigError,
  isLogger,
  noopLogger,
  type Logger,
  type SecurityEventHandler,
} from '@gatehouse/core'
import { isCidrError, parseCidr, type CidrEntry } from './address'
import { isDenylistStore, MemoryDenylistStore, type DenylistStore } from './store'

const PKG = '@gatehouse/ip-filter'

/** `server.security.ip_allowlist` */
export interface IpAllowlistOptions {
  /**
   * Turn the allowlist on. When on, every address it does not match is refused.
   * The section being present means you want it: `enabled` defaults to true here (the server
   * passes the YAML's value, whose default is false).
   * @default true
   */
  enabled?: boolean | undefined
  /** IPv4/IPv6 addresses and CIDRs that may connect. @default [] */
  allowedIps?: string[] | undefined
  /**
   * "Block all except allowedIps" (the seed's `deny_all`). An enabled allowlist already refuses what
   * it does not match; `denyAll: true` also accepts an empty allowlist (every address refused: a
   * lockdown). It is the way to say "deny everything else": a denylist entry of 0.0.0.0/0 or ::/0
   * next to an allowlist is refused, because deny rules always win and it would block the
   * allowlist too.
   * @default false
   */
  denyAll?: boolean | undefined
}

/** `server.security.ip_denylist` (the object form) */
export interface IpDenylistOptions {
  /** Turn the static denylist on. @default true */
  enabled?: boolean | undefined
  /** IPv4/IPv6 addresses and CIDRs that are always refused. @default [] */
  deniedIps?: string[] | undefined
}

export interface IpFilterOptions {
  /** The allowlist (`server.security.ip_allowlist`). @default undefined (no allowlist) */
  allowlist?: IpAllowlistOptions | undefined
  /**
   * The static denylist (`server.security.ip_denylist`): the object form or a bare list of
   * addresses and CIDRs. Deny rules always win over the allowlist.
   * @default undefined (no static denylist)
   */
  denylist?: IpDenylistOptions | string[] | undefined
  /**
   * Whether an IPv6 address that embeds an IPv4 address (IPv4-compatible `::a.b.c.d`, NAT64
   * `64:ff9b::/96`, 6to4 `2002::/16`) is allowed when its embedded IPv4 address is on the
   * allowlist. Deny rules match every notation regardless; IPv4-mapped addresses (`::ffff:a.b.c.d`)
   * are the IPv4 address itself and always match as such.
   * @default true
   */
  allowEmbeddedIpv4?: boolean | undefined
  /** Where runtime denylist entries live. @default a new MemoryDenylistStore */
  store?: DenylistStore | undefined
  /**
   * What the middleware does while the store cannot be reached: `'allow'` serves (with the last
   * entries it loaded) and logs at error; `'deny'` answers 503. Mirrors `store.on_error`.
   * @default 'allow'
   */
  onStoreError?: 'allow' | 'deny' | undefined
  /** Receives a `security_violation` event for every refusal. */
  onEvent?: SecurityEventHandler | undefined
  /** @default a no-op logger */
  logger?: Logger | undefined
}

/** A compiled list entry with where it came from, for events and `res.locals`. */
export interface ListRule {
  readonly list: 'allowlist' | 'denylist'
  /** `allowlist.allowedIps[2]` */
  readonly rule: string
  /** The entry as written. */
  readonly original: string
  readonly cidr: CidrEntry
}

export interface IpFilterConfig {
  readonly allowlistEnabled: boolean
  readonly allow: readonly ListRule[]
  readonly deny: readonly ListRule[]
  readonly allowEmbeddedIpv4: boolean
  readonly store: DenylistStore
  /** True when the store was created by the filter (and is shut down with it). */
  readonly ownStore: boolean
  readonly onStoreError: 'allow' | 'deny'
  readonly onEvent: SecurityEventHandler | undefined
  readonly logger: Logger
}

const cidrList = { type: 'array', items: { type: 'string' }, maxItems: 1_000_000 } as const

/** The JSON schema of the data-shaped options (the server composes its config schema from it). */
export const ipFilterOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    allowlist: {
      type: 'object',
      additionalProperties: false,
      properties: { enabled: { type: 'boolean' }, allowedIps: cidrList, denyAll: { type: 'boolean' } },
    },
    denylist: {
      anyOf: [
        cidrList,
        {
          type: 'object',
          additionalProperties: false,
          properties: { enabled: { type: 'boolean' }, deniedIps: cidrList },
        },
      ],
    },
    allowEmbeddedIpv4: { type: 'boolean' },
    onStoreError: { enum: ['allow', 'deny'] },
  },
} as const

const resolve = createOptionsResolver<IpFilterOptions>({
  pkg: PKG,
  codePrefix: 'GH_IPF',
  schema: ipFilterOptionsSchema,
  handChecked: ['store', 'onEvent', 'logger'],
})

function compile(list: 'allowlist' | 'denylist', path: string, entries: readonly string[], logger: Logger): ListRule[] {
  return entries.map((text, i) => {
    const rule = `${path}[${i}]`
    const parsed = parseCidr(text)
    if (isCidrError(parsed)) {
      throw new GatehouseConfigError('GH_IPF_INVALID_CIDR', `${PKG}: ${rule} ${parsed.error} (${JSON.stringify(text)})`)
    }
    if (parsed.hostBitsSet) {
      logger.warn(`${PKG}: ${rule} (${JSON.stringify(text)}) has host bits set; it is read as ${parsed.text}`)
    }
    return { list, rule, original: text, cidr: parsed }
  })
}

/** Validate options, compile the lists, and return the frozen config. Throws GatehouseConfigError. */
export function resolveIpFilterConfig(options: IpFilterOptions = {}): IpFilterConfig {
  const o = resolve(options)
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') {
    throw new GatehouseConfigError('GH_IPF_INVALID_OPTIONS', `${PKG}: onEvent must be a function`)
  }
  if (o.logger !== undefined && !isLogger(o.logger)) {
    throw new GatehouseConfigError('GH_IPF_INVALID_OPTIONS', `${PKG}: logger must have error, warn, info and debug methods`)
  }
  if (o.store !== undefined && !isDenylistStore(o.store)) {
    throw new GatehouseConfigError(
      'GH_IPF_STORE_INVALID',
      `${PKG}: store must implement list, add, remove, subscribe and shutdown (MemoryDenylistStore, RedisDenylistStore or your own)`,
    )
  }
  const logger = o.logger ?? noopLogger

  const allowSection = o.allowlist
  const allowlistEnabled = allowSection !== undefined && allowSection.enabled !== false
  const allow = allowlistEnabled ? compile('allowlist', 'allowlist.allowedIps', allowSection.allowedIps ?? [], logger) : []
  if (allowSection && !allowlistEnabled && allowSection.denyAll === true) {
    logger.warn(`${PKG}: allowlist.denyAll is set but the allowlist is disabled; nothing is denied by it`)
  }
  if (allowlistEnabled && allow.length === 0 && allowSection.denyAll !== true) {
    throw new GatehouseConfigError(
      'GH_IPF_EMPTY_ALLOWLIST',
      `${PKG}: allowlist is enabled but allowlist.allowedIps is empty, which refuses every address; ` +
        'list the addresses to allow, or set allowlist.denyAll: true if refusing everyone is intended',
    )
  }

  const denySection = o.denylist
  const denyEntries = Array.isArray(denySection) ? denySection : denySection?.enabled === false ? [] : (denySection?.deniedIps ?? [])
  const denyPath = Array.isArray(denySection) ? 'denylist' : 'denylist.deniedIps'
  const deny = compile('denylist', denyPath, denyEntries, logger)

  for (const d of deny) {
    if (d.cidr.prefix !== 0) continue
    if (allowlistEnabled) {
      throw new GatehouseConfigError(
        'GH_IPF_DENY_EVERYTHING',
        `${PKG}: ${d.rule} (${JSON.stringify(d.original)}) denies every ` +
          `IPv${d.cidr.family} address, and deny rules always win, so it would block the allowlist too; ` +
          'remove it and set allowlist.denyAll: true (ip_allowlist.deny_all) to refuse every address the allowlist does not match',
      )
    }
    logger.warn(`${PKG}: ${d.rule} (${d.cidr.text}) refuses every IPv${d.cidr.family} address`)
  }
  const ownStore = o.store === undefined
  return Object.freeze({
    allowlistEnabled,
    allow: Object.freeze(allow),
    deny: Object.freeze(deny),
    allowEmbeddedIpv4: o.allowEmbeddedIpv4 ?? true,
    store: o.store ?? new MemoryDenylistStore(),
    ownStore,
    onStoreError: o.onStoreError ?? 'allow',
    onEvent: o.onEvent,
    logger,
  })
}
