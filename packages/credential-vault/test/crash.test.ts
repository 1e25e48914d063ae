import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as ts from 'typescript'
import { createCredentialVault } from '@gatehouse/credential-vault'
import { cleanupDirs, newKey, openaiKey, sleep, tmpDir } from './helpers'

afterAll(cleanupDirs)

const ROOT = path.join(__dirname, '..', '..', '..')
let buildDir = ''

/**
 * Transpile this package's and core's sources (and the fixture) to CommonJS once, so each writer
 * process starts in milliseconds instead of loading a TypeScript compiler.
 */
beforeAll(() => {
  buildDir = tmpDir('gh-vault-build-')
  const emit = (from: string, to: string): void => {
    const out = ts.transpileModule(fs.readFileSync(from, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    })
    fs.mkdirSync(path.dirname(to), { recursive: true })
    fs.writeFileSync(to, out.outputText)
  }
  for (const pkg of ['core', 'credential-vault']) {
    const src = path.join(ROOT, 'packages', pkg, 'src')
    for (const f of fs.readdirSync(src).filter((n) => n.endsWith('.ts'))) {
      emit(path.join(src, f), path.join(buildDir, pkg, 'src', f.replace(/\.ts$/, '.js')))
    }
  }
  emit(path.join(__dirname, 'fixtures', 'write-loop.ts'), path.join(buildDir, 'credential-vault', 'test', 'fixtures', 'write-loop.js'))
})

/** Start the write loop; resolves once it is writing. */
function startWriter(dir: string, key: string, round: number) {
  const child = spawn(process.execPath, [path.join(buildDir, 'credential-vault', 'test', 'fixtures', 'write-loop.js')], {
    cwd: ROOT,
    env: { ...process.env, GH_VAULT_DIR: dir, GH_VAULT_KEY: key, GH_ROUND: String(round), NODE_PATH: path.join(ROOT, 'node_modules') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => c.toString().includes('ready') && resolve())
    child.on('exit', (code) => reject(new Error(`writer exited early (${code}): ${stderr}`)))
  })
  const wrote = new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('wrote') && resolve()))
  return { child, ready, wrote, exited }
}

describe('crash safety', () => {
  it('leaves every file decryptable when the writer is killed with SIGKILL mid-write (several rounds)', async () => {
    const dir = tmpDir()
    const key = newKey()
    const seed = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
    const tokens = [openaiKey(), openaiKey(), openaiKey()]
    for (const token of tokens) await seed.add({ provider: 'openai', type: 'api_key', token, label: 'initial' })
    await seed.shutdown()

    // At least 5 rounds; more (up to 25) until one kill is seen to land mid-write, which depends on timing.
    const rounds = 5
    const maxRounds = 25
    let tempFilesSeen = 0
    for (let round = 1; round <= rounds || (tempFilesSeen === 0 && round <= maxRounds); round++) {
      const writer = startWriter(dir, key, round)
      await writer.ready
      await writer.wrote
      await sleep(Math.floor(Math.random() * 150))
      writer.child.kill('SIGKILL')
      expect(await writer.exited).toBe('SIGKILL')

      const check = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
      const files = fs.readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      tempFilesSeen = Math.max(tempFilesSeen, fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')).length)
      expect(check.status().errors).toEqual([])
      expect(check.list()).toHaveLength(files.length)
      expect(check.list().every((c) => c.status === 'active' && c.encrypted === true)).toBe(true)
      for (const f of files) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600)
      // The original secrets survived every rewrite.
      const exported = check.export({ includeSecrets: true }).credentials.map((c) => c.token)
      for (const token of tokens) expect(exported).toContain(token)
      // The loop really wrote: the labels moved on from the seed.
      expect(check.list().some((c) => c.label?.startsWith(`round-${round}-`))).toBe(true)
      await check.shutdown()
    }
    // Temporary files left behind prove the kills landed in the middle of writes.
    expect(tempFilesSeen).toBeGreaterThan(0)
  }, 120_000)

  it('ignores a leftover temporary file, and removes it once it is stale', async () => {
    const dir = tmpDir()
    const key = newKey()
    const v1 = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
    const { id } = await v1.add({ provider: 'openai', type: 'api_key', token: openaiKey() })
    await v1.shutdown()
    const leftover = path.join(dir, `.${id}.json.0123456789ab.tmp`)
    fs.writeFileSync(leftover, '{"v":1,"partial', { mode: 0o600 })
    const v2 = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
    expect(v2.list()).toHaveLength(1)
    expect(v2.status().errors).toEqual([])
    expect(fs.existsSync(leftover)).toBe(true)
    await v2.shutdown()
    const old = new Date(Date.now() - 120_000)
    fs.utimesSync(leftover, old, old)
    const v3 = createCredentialVault({ dir, encryption: { key }, watch: false, rescanInterval: 0 })
    expect(fs.existsSync(leftover)).toBe(false)
    await v3.shutdown()
  })
})
