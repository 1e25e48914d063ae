import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, cpSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import { MockUpstream } from '@gatehouse/testing'
import { ensureBuilt, holdDocumentedPort, root, runCli, startCli } from './cli-helpers'

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

  it('quickstart: every step of the README runs as written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-quickstart-'))
    cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true })
    const mock = await startScript(join(root, 'examples/quickstart/mock-upstream.js'), {}, dir)
    let gw: Awaited<ReturnType<typeof startCli>> | undefined
    const release = await holdDocumentedPort()
    try {
      const created = await runCli(['keys', 'create', '--name', 'quickstart', '--config', 'examples/quickstart/config.yaml'], { cwd: dir })
      const key = created.stdout.trim()
      expect(key).toMatch(/^gate_live_/)
      gw = await startCli(['--config', 'examples/quickstart/config.yaml'], { cwd: dir })
      expect(gw.url).toBe('http://127.0.0.1:8317')
      const message = JSON.parse(
        await curl('http://127.0.0.1:8317/v1/messages', '-H', `x-api-key: ${key}`, '-H', 'content-type: application/json', '-d',
          '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}'),
      )
      expect(message.type).toBe('message')
      const stream = await curl('-N', 'http://127.0.0.1:8317/v1/chat/completions', '-H', `Authorization: Bearer ${key}`, '-H', 'content-type: application/json', '-d',
        '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}')
      expect(stream).toContain('data: [DONE]')
      expect(await curl('-i', 'http://127.0.0.1:8317/v1/messages', '-X', 'POST')).toMatch(/^HTTP\/1\.1 401/)
      expect(await curl('-i', `http://127.0.0.1:8317/v1beta/models/gemini-2.5-flash:generateContent?key=${key}`, '-X', 'POST')).toMatch(/^HTTP\/1\.1 400/)
    } finally {
      gw?.child.kill('SIGTERM')
      await gw?.exited
      release()
      mock.child.kill()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
