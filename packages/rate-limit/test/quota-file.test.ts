import { randomBytes } from 'node:crypto'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Express, RequestHandler } from 'express'
import request from 'supertest'
import type { SecurityEvent } from '@gatehouse/core'
import { createTestApp, recordingLogger, sleep, tempDirs } from '@gatehouse/testing'
import { memoryStore, quota, type MemoryStore } from '@gatehouse/rate-limit'

const tmp = tempDirs('rl-quota-file')
let dir: string
beforeAll(() => {
  dir = tmp.make()
})
afterAll(tmp.cleanup)

/** A fresh key for each test, made at run time. */
const newKey = (): Buffer => randomBytes(32)
const NS = 'quota:key'
const SEP = '\u0000'

interface SavedFile {
  version: number
  quotas: Record<string, { period: number; used: number }>
  exhausted?: number
  hmac?: string
}
const readSaved = async (file: string): Promise<SavedFile> => JSON.parse(await readFile(file, 'utf8')) as SavedFile

/** An app whose requests come from tenant `id`, limited by `limiter`. */
const appFor = (id: string, limiter: RequestHandler): Express =>
  createTestApp((_req, res, next) => {
    res.locals.gatehouse = { ...(res.locals.gatehouse ?? {}), clientKeyId: id }
    next()
  }, limiter)

/** Spend `tokens` of tenant `id`'s quota through a real request, then write the file. */
async function spend(store: MemoryStore, id: string, tokens: number): Promise<void> {
  const limiter = quota({ scope: 'key', limit: 1000, store, defaultMaxTokens: tokens - 1 })
  await request(appFor(id, limiter)).post('/v1/messages').send('{}').expect(200)
  await store.flush()
}

/** What a tenant has used, as a quota of 1000 tokens on `store` sees it. */
const usedBy = async (store: MemoryStore, id: string): Promise<number | undefined> =>
  (await quota({ scope: 'key', limit: 1000, store }).usage(id))?.used

describe('quota file integrity: a signed file', () => {
  it('is written with an HMAC and loaded again under the same key', async () => {
    const file = join(dir, 'good.json')
    const key = newKey()
    const store = memoryStore({ quotaFile: file, quotaFileKey: key })
    await spend(store, 'key_a', 700)
    await store.shutdown()
    const saved = await readSaved(file)
    expect(saved.hmac).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(saved.quotas[`${NS}${SEP}key_a`]?.used).toBe(700)

    const logger = recordingLogger()
    const events: SecurityEvent[] = []
    const again = memoryStore({ quotaFile: file, quotaFileKey: key, logger, onEvent: (e) => events.push(e) })
    expect(await usedBy(again, 'key_a')).toBe(700)
    expect(await usedBy(again, 'key_b')).toBe(0)
    expect(logger.calls).toEqual([])
    expect(events).toEqual([])
    await again.shutdown()
  })

  it('never writes the key to the file', async () => {
    const file = join(dir, 'no-key.json')
    const key = newKey()
    const store = memoryStore({ quotaFile: file, quotaFileKey: key })
    await spend(store, 'key_a', 10)
    await store.shutdown()
    const text = await readFile(file, 'utf8')
    expect(text).not.toContain(key.toString('hex'))
    expect(text).not.toContain(key.toString('base64'))
  })
})

describe('quota file integrity: an edited file', () => {
  /** A signed file in which tenant key_a has spent 900 of 1000 tokens; the tenant then edits it. */
  async function tamperedFile(name: string, key: Buffer): Promise<string> {
    const file = join(dir, name)
    const store = memoryStore({ quotaFile: file, quotaFileKey: key })
    await spend(store, 'key_a', 900)
    await store.shutdown()
    const saved = await readSaved(file)
    saved.quotas[`${NS}${SEP}key_a`]!.used = 0 // the edit: the spent quota lowered, the HMAC kept
    await writeFile(file, JSON.stringify(saved), { mode: 0o600 })
    return file
  }

  it('is detected and refused: the spent quota stays spent, with an error naming the file and an event', async () => {
    const key = newKey()
    const file = await tamperedFile('tampered.json', key)
    const logger = recordingLogger()
    const events: SecurityEvent[] = []
    const store = memoryStore({ quotaFile: file, quotaFileKey: key, logger, onEvent: (e) => events.push(e) })

    // Fail-closed: the edited tenant, and every other, counts as having spent the month.
    expect(await usedBy(store, 'key_a')).toBe(1000)
    expect(await usedBy(store, 'key_b')).toBe(1000)
    const limiter = quota({ scope: 'key', limit: 1000, store, defaultMaxTokens: 9 })
    const refused = await request(appFor('key_a', limiter)).post('/v1/messages').send('{}').expect(429)
    expect(refused.body.error.message).toMatch(/Monthly token quota exhausted/)

    const moved = (await readdir(dir)).filter((f) => f.startsWith('tampered.json.tampered-'))
    expect(moved).toHaveLength(1)
    expect(logger.calls).toHaveLength(1)
    expect(logger.calls[0]).toMatchObject({
      level: 'error',
      meta: { code: 'GH_RL_QUOTA_FILE_TAMPERED', file, moved_to: join(dir, moved[0]!) },
    })
    expect(JSON.stringify(logger.calls)).not.toContain(key.toString('hex'))
    expect(events).toEqual([
      expect.objectContaining({
        event_type: 'security_violation',
        result: 'quota_file_refused',
        details: { code: 'GH_RL_QUOTA_FILE_TAMPERED', file, moved_to: join(dir, moved[0]!) },
      }),
    ])
    await store.shutdown()
  })

  it('stays refused after a restart, until an operator resets a counter', async () => {
    const key = newKey()
    const file = await tamperedFile('restart.json', key)
    const store = memoryStore({ quotaFile: file, quotaFileKey: key })
    await store.shutdown()
    const saved = await readSaved(file)
    expect(saved.exhausted).toEqual(expect.any(Number))
    expect(saved.hmac).toEqual(expect.any(String))

    const logger = recordingLogger()
    const restarted = memoryStore({ quotaFile: file, quotaFileKey: key, logger })
    expect(logger.calls).toEqual([]) // the file the gateway wrote is a good one
    expect(await usedBy(restarted, 'key_c')).toBe(1000)
    await restarted.quotaReset(NS, 'key_c')
    expect(await usedBy(restarted, 'key_c')).toBe(0)
    expect(await usedBy(restarted, 'key_a')).toBe(1000)
    await restarted.shutdown()
  })

  it('is refused under another key too (a file signed with a key the process does not hold)', async () => {
    const file = await tamperedFile('other-key.json', newKey())
    const saved = await readSaved(file)
    saved.quotas[`${NS}${SEP}key_a`]!.used = 900 // content as written; only the key differs
    await writeFile(file, JSON.stringify(saved), { mode: 0o600 })
    const logger = recordingLogger()
    const store = memoryStore({ quotaFile: file, quotaFileKey: newKey(), logger })
    expect(await usedBy(store, 'key_a')).toBe(1000)
    expect(logger.calls[0]?.meta?.code).toBe('GH_RL_QUOTA_FILE_TAMPERED')
    await store.shutdown()
  })
})

describe('quota file integrity: a file from before the key', () => {
  it('is accepted once and written again with an HMAC', async () => {
    const file = join(dir, 'legacy.json')
    const key = newKey()
    const period = Number(new Date().toISOString().slice(0, 7).replace('-', ''))
    await writeFile(file, JSON.stringify({ version: 1, quotas: { [`${NS}${SEP}key_a`]: { period, used: 321 } } }), {
      mode: 0o600,
    })
    const logger = recordingLogger()
    const store = memoryStore({ quotaFile: file, quotaFileKey: key, logger, quotaFlushMs: 60_000 })
    expect(await usedBy(store, 'key_a')).toBe(321)
    expect(logger.calls).toEqual([
      expect.objectContaining({ level: 'warn', meta: { file }, message: expect.stringMatching(/no integrity check/) }),
    ])
    // Written again at once, not after quotaFlushMs.
    for (let i = 0; i < 100 && (await readSaved(file)).hmac === undefined; i++) await sleep(10)
    expect((await readSaved(file)).hmac).toEqual(expect.any(String))
    await store.shutdown()
    const saved = await readSaved(file)
    expect(saved.hmac).toEqual(expect.any(String))
    expect(saved.quotas[`${NS}${SEP}key_a`]?.used).toBe(321)

    const quiet = recordingLogger()
    const again = memoryStore({ quotaFile: file, quotaFileKey: key, logger: quiet })
    expect(await usedBy(again, 'key_a')).toBe(321)
    expect(quiet.calls).toEqual([])
    await again.shutdown()
  })

  it('refuses a signed file when no key is given to check it', async () => {
    const file = join(dir, 'signed-no-key.json')
    const store = memoryStore({ quotaFile: file, quotaFileKey: newKey() })
    await spend(store, 'key_a', 10)
    await store.shutdown()
    expect(() => memoryStore({ quotaFile: file })).toThrow(
      expect.objectContaining({ code: 'GH_RL_QUOTA_FILE_INVALID', message: expect.stringMatching(/no quotaFileKey/) }),
    )
  })
})

describe('quotaFileKey option', () => {
  it.each<[string, unknown, RegExp]>([
    ['a short key', 'k'.repeat(31), /quotaFileKey must be at least 32 bytes \(got 31\)/],
    ['a short Buffer', Buffer.alloc(16), /quotaFileKey must be at least 32 bytes \(got 16\)/],
    ['a number', 12345, /quotaFileKey must be a string or a Buffer/],
  ])('rejects %s with GH_RL_INVALID_OPTIONS and never quotes it', (_what, quotaFileKey, message) => {
    const run = (): unknown => memoryStore({ quotaFile: join(dir, 'opt.json'), quotaFileKey } as never)
    expect(run).toThrow(expect.objectContaining({ code: 'GH_RL_INVALID_OPTIONS', message: expect.stringMatching(message) }))
    expect(run).not.toThrow(/kkkk|12345/)
  })

  it('needs quotaFile', () => {
    expect(() => memoryStore({ quotaFileKey: newKey() })).toThrow(
      expect.objectContaining({ code: 'GH_RL_INVALID_OPTIONS', message: expect.stringMatching(/quotaFileKey needs quotaFile/) }),
    )
  })

  it('takes a 32-byte string', async () => {
    const store = memoryStore({ quotaFile: join(dir, 'string-key.json'), quotaFileKey: randomBytes(16).toString('hex') })
    await store.shutdown()
  })
})
