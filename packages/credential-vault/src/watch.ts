import * as fs from 'node:fs'
import type { Logger } from '@gatehouse/core'
import { PKG } from './errors'

export interface WatchOptions {
  dir: string
  /** fs.watch the directory (else only the periodic rescan runs). */
  watch: boolean
  /** Wait this long after the last fs.watch event. */
  debounceMs: number
  /** Rescan this often; 0: never. */
  intervalMs: number
  logger: Logger
}

/**
 * Hot reload: `fs.watch` on the directory, debounced, plus a rescan every `intervalMs` for the
 * platforms and file systems where fs.watch misses events. Timers are unref'ed.
 */
export class DirectoryWatcher {
  private watcher: fs.FSWatcher | undefined
  private rescanTimer: NodeJS.Timeout | undefined
  private debounceTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly options: WatchOptions,
    private readonly rescan: () => void,
  ) {
    if (options.watch) this.startWatching()
    if (options.intervalMs > 0) {
      this.rescanTimer = setInterval(() => this.rescan(), options.intervalMs)
      this.rescanTimer.unref()
    }
  }

  /** Stop watching and rescanning. Idempotent. */
  close(): void {
    this.closed = true
    this.watcher?.close()
    this.watcher = undefined
    if (this.rescanTimer) clearInterval(this.rescanTimer)
    if (this.debounceTimer) clearTimeout(this.debounceTimer)
  }

  private startWatching(): void {
    const { logger } = this.options
    try {
      this.watcher = fs.watch(this.options.dir, { persistent: false }, () => this.scheduleRescan())
      this.watcher.on('error', (err) => {
        logger.warn(`${PKG}: watching the credential directory failed; relying on the periodic rescan`, { code: (err as NodeJS.ErrnoException).code })
        this.watcher?.close()
        this.watcher = undefined
      })
    } catch (err) {
      logger.warn(`${PKG}: cannot watch the credential directory; relying on the periodic rescan`, { code: (err as NodeJS.ErrnoException).code })
    }
  }

  private scheduleRescan(): void {
    if (this.closed) return
    if (this.debounceTimer) clearTimeout(this.debounceTimer)
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined
      this.rescan()
    }, this.options.debounceMs)
    this.debounceTimer.unref()
  }
}
