import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { FileKeyStore } from '@gatehouse/client-auth'
import { tempDirs } from '@gatehouse/testing'

/** The key file carries an HMAC of its keys: an edit made outside Gatehouse is refused, fail closed. */

const tmp = tempDirs('keyfile-mac')
let dir: string
beforeEach(() => {
  dir = tmp.make()
})
afterEach(tmp.cleanup)

const salt = randomBytes(32).toString('hex')
const logger = () => {
  const lines: string[] = []
  const rec = (l: string) => (m: string) => void lines.push(`${l} ${m}`)
  return { lines, error: rec('error'), warn: rec('warn'), info: rec('info'), debug: rec('debug') }
}

describe('key file integrity', () => {
  it.each([
    ['a scope widened', (f: { keys: Array<Record<string, unknown>> }) => void delete f.keys[0]!.providers],
    ['a revocation undone', (f: { keys: Array<Record<string, unknown>> }) => void delete f.keys[1]!.revoked_at],
    ['a key planted', (f: { keys: Array<Record<string, unknown>> }) => void f.keys.push({ ...f.keys[0]!, id: 'key_deadbeef', hash: 'a'.repeat(64) })],
    ['the check stripped', (f: Record<string, unknown>) => void delete f.mac],
  ])('refuses a file edited outside Gatehouse (%s): no key authenticates, while running and at the next start', (_what, edit) => {
    const file = join(dir, 'client-keys.json')
    const log = logger()
    const store = new FileKeyStore({ file, salt, reload: 'stat', logger: log })
    const a = store.create({ name: 'narrow', providers: ['openai'] })
    const b = store.create({ name: 'revoked' })
    store.revoke(b.record.id)
    expect(store.verify(a.key)?.id).toBe(a.record.id)
    const body = JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<Record<string, unknown>> } & Record<string, unknown>
    expect(body.mac).toMatch(/^[0-9a-f]{64}$/)
    edit(body as never)
    writeFileSync(file, JSON.stringify(body, null, 2))
    // The running store: fails closed.
    expect(store.verify(a.key)).toBeUndefined()
    expect(store.verify(b.key)).toBeUndefined()
    expect(store.lastError).toMatch(/changed outside Gatehouse/)
    expect(log.lines.join('\n')).toMatch(/changed outside Gatehouse/)
    // A new process: refuses to start on it, unless the check was stripped (then it is an older file: sealed with a warning).
    if (body.mac === undefined) {
      const log2 = logger()
      const reopened = new FileKeyStore({ file, salt, reload: 'stat', logger: log2 })
      expect(log2.lines.join('\n')).toMatch(/had no integrity check .* sealed now/)
      expect((JSON.parse(readFileSync(file, 'utf8')) as { mac?: string }).mac).toMatch(/^[0-9a-f]{64}$/)
      expect(reopened.verify(a.key)?.id).toBe(a.record.id)
    } else {
      expect(() => new FileKeyStore({ file, salt, reload: 'stat' })).toThrow(expect.objectContaining({ code: 'GH_AUTH_KEYFILE_TAMPERED' }))
    }
  })

  it('accepts its own changes (create, revoke, rotate) across a restart', () => {
    const file = join(dir, 'client-keys.json')
    const store = new FileKeyStore({ file, salt, reload: 'stat' })
    const a = store.create({ name: 'a' })
    store.rotate(a.record.id, 60_000)
    const reopened = new FileKeyStore({ file, salt, reload: 'stat' })
    expect(reopened.verify(a.key)?.id).toBe(a.record.id)
    expect(reopened.list()).toHaveLength(2)
  })
})
