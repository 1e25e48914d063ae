import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, cpSync, readFileSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { commandsOf, MockUpstream, ShellSession, shBlocks } from '@gatehouse/testing'
import { ensureBuilt, holdDocumentedPort, root } from './cli-helpers'

const exec = promisify(execFile)
const curl = async (...args: string[]): Promise<string> => (await exec('curl', ['-s', ...args])).stdout

function startScript(script: string, env: NodeJS.ProcessEnv, cwd = root): Promise<{ child: ChildProcess; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { cwd, env: { ...process.env, ...env } })
    const lines: string[] = []
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`${script} did not start`)), 10_000)
    child.stdout!.on('data', (d) => {
      buf += d
      const parts = buf.split('\n')
      buf = parts.pop()!
      lines.push(...parts)
      if (lines.length >= (script.includes('mount-client-auth') ? 2 : 1)) {
        clearTimeout(timer)
        resolve({ child, lines })
      }
    })
    child.on('exit', (code) => code && reject(new Error(`${script} exited ${code}`)))
  })
}

beforeAll(() => ensureBuilt())

describe('examples', () => {
  it('mount-client-auth: the key works, no key is 401, a key in the URL is 400', async () => {
    const { child, lines } = await startScript(join(root, 'examples/mount-client-auth/server.js'), { PORT: '0' })
    try {
      const url = /listening on (\S+)/.exec(lines[0]!)![1]!
      const key = /: (gate_live_\S+)$/.exec(lines[1]!)![1]!
      expect(JSON.parse(await curl('-H', `Authorization: Bearer ${key}`, `${url}/v1/whoami`))).toEqual({ key_id: expect.stringMatching(/^key_/) })
      expect(await curl('-o', '/dev/null', '-w', '%{http_code}', `${url}/v1/whoami`)).toBe('401')
      expect(await curl('-o', '/dev/null', '-w', '%{http_code}', `${url}/v1/whoami?key=${key}`)).toBe('400')
    } finally {
      child.kill()
    }
  })

  it('mount-proxy: a model call goes through with the key applied, a file listing is refused before the provider', async () => {
    const upstream = await MockUpstream.start()
    const apiKey = `sk-proj-${randomBytes(30).toString('base64url')}`
    const { child, lines } = await startScript(join(root, 'examples/mount-proxy/server.js'), { PORT: '0', OPENAI_API_KEY: apiKey, OPENAI_BASE_URL: upstream.url })
    try {
      const url = /listening on (\S+)/.exec(lines[0]!)![1]!
      const answer = JSON.parse(await curl(`${url}/v1/chat/completions`, '-H', 'content-type: application/json', '-d', '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'))
      expect(answer.object).toBe('chat.completion')
      expect(upstream.last!.headers.authorization).toBe(`Bearer ${apiKey}`)
      expect(await curl('-o', '/dev/null', '-w', '%{http_code}', `${url}/v1/files`)).toBe('403')
      expect(upstream.requests).toHaveLength(1)
    } finally {
      child.kill()
      await upstream.close()
    }
  })

  it('quickstart: the README block runs as written, waits for readiness, and its stop command stops the gateway', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-quickstart-'))
    cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true })
    // A checkout after `npm ci && npm run build`: node_modules (bins included) is the repository's.
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
    const readme = join(root, 'examples/quickstart/README.md')
    const [block, ...others] = shBlocks(readFileSync(readme, 'utf8'), readme)
    expect(others).toEqual([])
    const commands = commandsOf(block!)
    expect(commands[0]).toBe('npm ci && npm run build') // left to this run's own build
    const release = await holdDocumentedPort()
    const session = new ShellSession(dir, {
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: dir,
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
    })
    const out: string[] = []
    try {
      for (const command of commands.slice(1)) {
        const run = await session.run(command, 40_000)
        if (run.code !== 0) throw new Error(`"${command}" exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`)
        out.push(run.stdout)
      }
      const all = out.join('\n')
      expect(all).toContain('{"status":"ready"}')
      expect(all).not.toContain('the gateway is not ready')
      expect(all).toMatch(/"type":"message"/)
      expect(all).toContain('data: [DONE]')
      expect(all).toMatch(/^HTTP\/1\.1 401/m)
      expect(all).toMatch(/^HTTP\/1\.1 400/m)
      expect(out.at(-1)).toContain('gateway stopped')
      // Nothing is left listening on the documented ports.
      expect(await curl('-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:8317/healthz').catch(() => 'refused')).toMatch(/^(000|refused)$/)
    } finally {
      await session.close()
      release()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
