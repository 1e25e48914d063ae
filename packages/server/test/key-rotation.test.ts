import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { MockUpstream, sleep } from '@gatehouse/testing'
import { ensureBuilt, runCli, startCli } from './cli-helpers'

/** gatehouse keys rotate ID --grace: a successor with the same scope, both valid until the grace ends. */

beforeAll(() => ensureBuilt())

// Long enough that the CLI runs and calls of the grace check fit in it on a loaded 2-core machine
// (each CLI start takes 1-2 s there); a 3 s grace ran out before the check once.
const GRACE_S = 10

describe('key rotation with grace', () => {
  it('keeps the old key working until its grace ends, then only the successor; keys list and the events tell them apart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-rotate-'))
    const upstream = await MockUpstream.start()
    try {
      writeFileSync(join(dir, 'c.yaml'), `server: { port: 0 }\nmetrics: { enabled: false }\nproviders:\n  openai: { base_url: "${upstream.url}", api_key: "sk-proj-${randomBytes(30).toString('base64url')}" }\n`)
      const made = await runCli(['keys', 'create', '--name', 'ci', '--providers', 'openai', '--models', 'gpt-4o*', '--config', 'c.yaml'], { cwd: dir })
      const oldKey = made.stdout.trim()
      const oldId = /created (key_[0-9a-f]+)/.exec(made.stderr)![1]!
      const gw = await startCli(['--config', 'c.yaml'], { cwd: dir })
      const call = async (key: string): Promise<number> => {
        const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) })
        await res.text()
        return res.status
      }
      try {
        expect(await call(oldKey)).toBe(200)
        const rotated = await runCli(['keys', 'rotate', oldId, '--grace', `${GRACE_S}s`, '--config', 'c.yaml'], { cwd: dir })
        expect(rotated.code).toBe(0)
        const newKey = rotated.stdout.trim()
        expect(newKey).toMatch(/^gate_live_/)
        expect(newKey).not.toBe(oldKey)
        const rotatedAt = Date.now()
        const list = JSON.parse((await runCli(['keys', 'list', '--json', '--config', 'c.yaml'], { cwd: dir })).stdout) as Array<{ id: string; rotated_to?: string; rotated_from?: string; models?: string[]; providers?: string[] }>
        const successor = list.find((k) => k.rotated_from === oldId)!
        expect(list.find((k) => k.id === oldId)?.rotated_to).toBe(successor.id)
        // The same scope.
        expect([successor.providers, successor.models]).toEqual([['openai'], ['gpt-4o*']])
        expect((await runCli(['keys', 'list', '--config', 'c.yaml'], { cwd: dir })).stdout).toMatch(new RegExp(`${oldId}\\tci\\t\\S+\\trotated to ${successor.id}, valid until `))
        // During the grace, both work.
        expect(await call(oldKey)).toBe(200)
        expect(await call(newKey)).toBe(200)
        // After it, only the successor.
        await sleep(Math.max(0, GRACE_S * 1000 + 200 - (Date.now() - rotatedAt)))
        expect(await call(oldKey)).toBe(401)
        expect(await call(newKey)).toBe(200)
        // A rotated key cannot be rotated again.
        const again = await runCli(['keys', 'rotate', oldId, '--config', 'c.yaml'], { cwd: dir })
        expect(again.code).toBe(1)
        expect(again.stderr).toMatch(/revoked, expired or already rotated/)
      } finally {
        gw.child.kill('SIGTERM')
        await gw.exited
      }
      // The audit log names which key each request used, and why the old one was refused at the end.
      const lines = readFileSync(join(dir, 'logs', 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event_type: string; user_id?: string; result?: string })
      expect(lines.some((l) => l.event_type === 'auth_failure' && l.user_id === oldId && l.result === 'expired_key')).toBe(true)
    } finally {
      await upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 45_000)
})
