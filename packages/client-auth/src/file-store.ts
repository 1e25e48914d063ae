import { createHmac, timingSafeEqual } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { GatehouseConfigError, insecureFileReason, noopLogger, writeFileAtomicSync, type Logger } from '@gatehouse/core'
import { ClientAuthErrorCodes } from './errors'
import { hashClientKey } from './keys'
import { checkStoredRecord } from './scope'
import { IndexedKeyStore, type ClientKeyRecord } from './store'

interface KeyFile {
  version: 1
  /**
   * HMAC-SHA256(salt, SALT_CHECK_LABEL), first 16 hex: tells whether the salt in use is the one
   * the keys were hashed under (it says nothing about the salt itself). Absent in older files.
   */
  salt_check?: string
  /**
   * HMAC-SHA256 of the `keys` array as written, under a key derived from the salt: an edit made
   * outside the gateway (a scope widened, a key added, a revocation undone) does not match.
   * Absent in files written before it existed.
   */
  mac?: string
  keys: ClientKeyRecord[]
}

const SALT_CHECK_LABEL = 'gatehouse client-key salt check'
const MAC_KEY_LABEL = 'gatehouse client-key file integrity'

export interface FileKeyStoreOptions {
  /** Path of the key file (created 0600, its directory 0700). */
  file: string
  salt: string | Buffer
  logger?: Logger
  /** Accept a key file readable by group or others. @default false */
  allowInsecurePermissions?: boolean
  /**
   * How a lookup learns that another process changed the file. `watch`: a change notification
   * from the operating system (inotify, FSEvents) marks the file for re-reading, and a lookup
   * checks the file itself at most once a second besides; `stat`: every lookup checks the file's
   * identity, which costs a system call per request. `watch` falls back to `stat` where the file
   * system gives no notifications. @default "watch"
   */
  reload?: 'watch' | 'stat'
}

/** With a watcher, a lookup still checks the file itself this often, should a notification be lost. */
const BACKSTOP_MS = 1000

/**
 * Keys in a 0600 JSON file, reloaded when it changes, so a key revoked by `gatehouse keys revoke`
 * in another process stops working on the next request, kept-alive connections included. The
 * directory is watched: the kernel queues the change notification before the revoking command
 * returns, and the event loop handles it before any request that arrives later. Where there are
 * no notifications (`reload: 'stat'`, or a file system without them), every lookup compares the
 * file's identity (inode, size, times, mode) instead. A file that becomes unreadable, insecure or
 * corrupt fails closed: no key authenticates until it is fixed.
 */
export class FileKeyStore extends IndexedKeyStore {
  readonly file: string
  private readonly logger: Logger
  private readonly allowInsecure: boolean
  private signature = ''
  private watcher: FSWatcher | undefined
  private changed = true
  /** The file loaded at start had no integrity check (written before it existed). */
  private unsealed = false
  private lastCheck = 0
  /** The last load error, or undefined when the file loaded. */
  lastError: string | undefined

  constructor(options: FileKeyStoreOptions) {
    super(options.salt)
    this.file = options.file
    this.logger = options.logger ?? noopLogger
    this.allowInsecure = options.allowInsecurePermissions ?? false
    const dir = dirname(this.file)
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (!existsSync(this.file)) this.save([])
    this.load(true)
    if (this.unsealed) {
      this.logger.warn(`@gatehouse/client-auth: key file ${this.file} had no integrity check (written by an older version, or edited); it is sealed now, and edits made outside Gatehouse from here on are refused`)
      this.save([...this.byHash.values()])
      this.unsealed = false
    }
    if ((options.reload ?? 'watch') === 'watch') this.watch(dir)
  }

  /** Stop watching the key file's directory (lookups then check the file every time). */
  close(): void {
    this.watcher?.close()
    this.watcher = undefined
  }

  private watch(dir: string): void {
    const name = basename(this.file)
    try {
      // persistent: false, so a store never keeps a process alive on its own.
      this.watcher = watch(dir, { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name) this.changed = true
      })
      this.watcher.on('error', () => this.close())
    } catch {
      this.watcher = undefined
    }
  }

  protected refresh(force: boolean): void {
    const now = Date.now()
    if (this.watcher && !force && !this.changed && now - this.lastCheck < BACKSTOP_MS) return
    this.changed = false
    this.lastCheck = now
    let sig: string
    try {
      // One stat per lookup (a few microseconds): a change by another process is seen at once.
      const st = statSync(this.file)
      sig = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`
    } catch {
      sig = 'missing'
    }
    if (sig !== this.signature) {
      this.signature = sig
      this.load(false)
    }
  }

  private load(atStart: boolean): void {
    try {
      const reason = this.allowInsecure ? undefined : insecureFileReason(this.file)
      if (reason) {
        throw new GatehouseConfigError('GH_AUTH_KEYFILE_INSECURE', `@gatehouse/client-auth: key file ${this.file} ${reason}`)
      }
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<KeyFile>
      if (parsed.version !== 1 || !Array.isArray(parsed.keys)) {
        throw new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', `@gatehouse/client-auth: key file ${this.file} is not a Gatehouse key file`)
      }
      for (const r of parsed.keys) checkStoredRecord(r, `key file ${this.file}`)
      // Another salt would silently invalidate every key (each still listed as active): refused.
      if (parsed.keys.length > 0 && parsed.salt_check !== undefined && parsed.salt_check !== this.saltCheck()) {
        throw new GatehouseConfigError(
          ClientAuthErrorCodes.GH_AUTH_SALT_CHANGED,
          `@gatehouse/client-auth: key file ${this.file} holds ${parsed.keys.length} key(s) hashed under another salt, so none of them would authenticate: restore the salt they were issued under (auth.key_salt / GATEHOUSE_KEY_SALT, or the generated one in the auth directory), or move the key file away and issue new keys`,
        )
      }
      // Edited outside the gateway: trusted with no key at all, as a corrupt file is.
      const mac = this.macOf(JSON.stringify(parsed.keys))
      // A file without its check while running is one whose check was stripped; at start it may be
      // one written before checks existed: accepted then, logged, and sealed (see the constructor).
      const unsealed = parsed.mac === undefined && parsed.keys.length > 0
      if ((unsealed && !atStart) || (parsed.keys.length > 0 && parsed.mac !== undefined && !(typeof parsed.mac === 'string' && parsed.mac.length === mac.length && timingSafeEqual(Buffer.from(parsed.mac), Buffer.from(mac))))) {
        throw new GatehouseConfigError(
          ClientAuthErrorCodes.GH_AUTH_KEYFILE_TAMPERED,
          `@gatehouse/client-auth: key file ${this.file} was changed outside Gatehouse (its integrity check does not match): no key authenticates until it is restored from a backup, or moved away and the keys issued again`,
        )
      }
      if (unsealed) this.unsealed = true
      this.index(parsed.keys)
      const st = statSync(this.file)
      this.signature = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`
      this.lastError = undefined
    } catch (err) {
      const message =
        err instanceof GatehouseConfigError ? err.message : `@gatehouse/client-auth: cannot read key file ${this.file}`
      if (atStart) throw err instanceof GatehouseConfigError ? err : new GatehouseConfigError('GH_AUTH_KEYFILE_CORRUPT', message, { cause: err })
      // Fail closed: a key file we cannot trust authenticates nobody.
      this.index([])
      if (this.lastError !== message) this.logger.error(message)
      this.lastError = message
    }
  }

  /** The integrity check of a `keys` array as written. */
  private macOf(keysJson: string): string {
    return createHmac('sha256', Buffer.from(hashClientKey(MAC_KEY_LABEL, this.salt), 'hex')).update(keysJson).digest('hex')
  }

  private saltCheck(): string {
    return hashClientKey(SALT_CHECK_LABEL, this.salt).slice(0, 16)
  }

  protected save(records: ClientKeyRecord[]): void {
    const body: KeyFile = { version: 1, salt_check: this.saltCheck(), mac: this.macOf(JSON.stringify(records)), keys: records }
    writeFileAtomicSync(this.file, `${JSON.stringify(body, null, 2)}\n`, 0o600)
    chmodSync(this.file, 0o600)
    this.index(records)
    this.signature = ''
  }
}
