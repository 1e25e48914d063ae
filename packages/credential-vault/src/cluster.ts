import { randomBytes } from 'node:crypto'
import { isGatehouseError, type ReplicatedHashClient } from '@gatehouse/core'
import { open, seal, isEnvelopeShaped } from './envelope'
import type { Keyring } from './keyring'
import { CredentialVaultErrorCodes } from './errors'
import { TokenRefreshError } from './oauth'
import type { ReencryptResult } from './types'

/** The commands the refresh coordination and the shared records need of a Redis client (an ioredis client fits). */
export interface VaultClusterClient extends ReplicatedHashClient {
  get(key: string): Promise<string | null>
  set(key: string, value: string): Promise<unknown>
  set(key: string, value: string, px: 'PX', milliseconds: number, nx: 'NX'): Promise<unknown>
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

export interface VaultClusterOptions {
  /** The Redis every gateway of the cluster uses. */
  client: VaultClusterClient
  /** Prefix of the Redis keys. @default 'gatehouse:' */
  prefix?: string
  /**
   * How long a refresh lock is held at most: a process that dies holding it blocks the others no
   * longer than this. @default refreshTimeout + 5 s
   */
  leaseMs?: number
  /**
   * Keep the credential records in Redis (hash `<prefix>vault:records`, each value the envelope a
   * file would hold) instead of the directory: every gateway serves what any of them added,
   * changed or revoked, within a second. Call `start()` before serving. @default false
   */
  records?: boolean
  /** With `records`: how often each gateway checks the shared version itself (heals a lost notification). @default 1000 */
  resyncMs?: number
}

/** An OAuth credential's current tokens, as every process of the cluster should use them. */
export interface SharedTokens {
  access_token: string
  refresh_token?: string
  expires_at?: number
}

// Deletes the lock only if it is still ours (its lease may have run out and another taken it).
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`

// Replaces shared tokens only while they are still the value read: a refresh in between wins.
const RESEAL_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end`

const POLL_MS = 50

const sameTokens = (a: SharedTokens, b: SharedTokens): boolean =>
  a.access_token === b.access_token && a.refresh_token === b.refresh_token

/**
 * OAuth refresh, single-flight across every process that shares a Redis: one refreshes (holding a
 * lock with a lease), the others wait for and use its result. The tokens are kept in Redis as an
 * envelope encrypted under the vault's key (bound to the credential id), never in plaintext.
 * Needed because providers rotate refresh tokens: two processes refreshing the same one race, and
 * the loser's `invalid_grant` takes the credential out.
 */
export class RefreshCoordinator {
  private readonly client: VaultClusterClient
  private readonly prefix: string
  private readonly leaseMs: number

  constructor(
    options: VaultClusterOptions,
    private readonly keyring: Keyring,
    refreshTimeoutMs: number,
  ) {
    this.client = options.client
    this.prefix = options.prefix ?? 'gatehouse:'
    this.leaseMs = options.leaseMs ?? refreshTimeoutMs + 5000
  }

  /**
   * The tokens to use for credential `id` after a refresh was found due with `mine`: those another
   * process stored since (when they are newer and not expired), or those `refresh` gets, called in
   * one process of the cluster at a time with the newest refresh token known.
   */
  async run(id: string, mine: SharedTokens, refresh: (from: SharedTokens) => Promise<SharedTokens>): Promise<{ tokens: SharedTokens; refreshedHere: boolean }> {
    const dataKey = `${this.prefix}vault:oauth:${id}`
    const lockKey = `${dataKey}:lock`
    const deadline = Date.now() + 2 * this.leaseMs
    const newer = async (): Promise<SharedTokens | undefined> => {
      const shared = await this.read(id, dataKey)
      return shared && !sameTokens(shared, mine) && (shared.expires_at === undefined || shared.expires_at > Date.now() + 1000) ? shared : undefined
    }
    while (Date.now() < deadline) {
      const early = await newer()
      if (early) return { tokens: early, refreshedHere: false }
      const token = randomBytes(16).toString('hex')
      if ((await this.client.set(lockKey, token, 'PX', this.leaseMs, 'NX')) === 'OK') {
        try {
          // Another process may have finished between the read and the lock.
          const late = await newer()
          if (late) return { tokens: late, refreshedHere: false }
          const from = (await this.read(id, dataKey)) ?? mine
          const next = await refresh(from)
          await this.client.set(dataKey, JSON.stringify(seal(this.keyring, `oauth:${id}`, Buffer.from(JSON.stringify(next), 'utf8'))))
          return { tokens: next, refreshedHere: true }
        } finally {
          await this.client.eval(RELEASE_SCRIPT, 1, lockKey, token).catch(() => undefined)
        }
      }
      // Another process refreshes: wait for its tokens, or for its lock to go (released after a
      // failure, or its lease run out because it died), then try again.
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, POLL_MS))
        const done = await newer()
        if (done) return { tokens: done, refreshedHere: false }
        if ((await this.client.get(lockKey)) === null) break
      }
    }
    throw new TokenRefreshError('timeout', 'no process of the cluster completed the OAuth refresh in time')
  }

  /**
   * Re-seal the shared tokens of these credentials under the keyring's current key (key rotation),
   * each with a compare-and-set, so tokens another process refreshed meanwhile are read again, never
   * overwritten. Tokens under a key the keyring lacks, or altered, are reported and left as they are
   * (every process reads them as absent and refreshes with its own).
   */
  async reseal(ids: readonly string[]): Promise<ReencryptResult> {
    const result: ReencryptResult = { reencrypted: [], skipped: [], failed: [] }
    for (const id of ids) {
      const name = `vault:oauth:${id}`
      const dataKey = `${this.prefix}${name}`
      const fail = (code: string, message: string): void => void result.failed.push({ id, file: name, code, message })
      for (let attempt = 0; ; attempt++) {
        const raw = await this.client.get(dataKey)
        if (raw === null) break // nothing shared yet: the first refresh seals under the current key
        let opened: { plaintext: Buffer; kid: string }
        try {
          opened = this.openShared(id, raw)
        } catch (err) {
          fail(isGatehouseError(err) ? err.code : CredentialVaultErrorCodes.GH_VAULT_INVALID_FILE, err instanceof Error ? err.message : 'the shared tokens cannot be read')
          break
        }
        if (opened.kid === this.keyring.current.kid) {
          result.skipped.push(id)
          break
        }
        const next = JSON.stringify(seal(this.keyring, `oauth:${id}`, opened.plaintext))
        if (Number(await this.client.eval(RESEAL_SCRIPT, 1, dataKey, raw, next)) === 1) {
          result.reencrypted.push(id)
          break
        }
        if (attempt === 4) {
          fail(CredentialVaultErrorCodes.GH_VAULT_WRITE_FAILED, 'the shared tokens kept changing during re-encryption')
          break
        }
      }
    }
    return result
  }

  private async read(id: string, dataKey: string): Promise<SharedTokens | undefined> {
    const raw = await this.client.get(dataKey)
    if (raw === null) return undefined
    try {
      const t = JSON.parse(this.openShared(id, raw).plaintext.toString('utf8')) as SharedTokens
      return typeof t.access_token === 'string' ? t : undefined
    } catch {
      // Unreadable (another key, tampered): as if absent; this process refreshes with its own.
      return undefined
    }
  }

  /** Shared tokens as stored → their plaintext and key id; throws when they are not an envelope of this keyring for `id`. */
  private openShared(id: string, raw: string): { plaintext: Buffer; kid: string } {
    const env = JSON.parse(raw) as unknown
    if (!isEnvelopeShaped(env)) throw new Error('the shared tokens are not an envelope')
    return open(this.keyring, `oauth:${id}`, env)
  }
}
