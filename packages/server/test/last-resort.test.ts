import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { ensureBuilt, root } from './cli-helpers'

beforeAll(() => ensureBuilt())

it('an exception nobody caught is logged masked and the process keeps serving', async () => {
  const secret = `sk-proj-${randomBytes(30).toString('base64url')}`
  // A process with the gateway's last-resort handler: a timer throws an error quoting a secret,
  // a promise rejects; then it must still answer HTTP.
  const script = `
    const http = require('node:http')
    const { createMasker } = require(${JSON.stringify(join(root, 'packages/core/dist'))})
    const { installLastResort } = require(${JSON.stringify(join(root, 'packages/server/dist/last-resort.js'))})
    const log = (level) => (m, meta) => process.stderr.write(JSON.stringify({ level, m, ...meta }) + '\\n')
    installLastResort({ error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') }, createMasker({ knownSecrets: [process.env.SECRET] }))
    setTimeout(() => { throw new Error('boom with ' + process.env.SECRET) }, 5)
    setTimeout(() => { Promise.reject(new Error('rejected')) }, 1100)
    const server = http.createServer((req, res) => res.end('alive'))
    server.listen(0, '127.0.0.1', () => setTimeout(() => process.stdout.write(String(server.address().port) + '\\n'), 1300))
  `
  const child = spawn(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, SECRET: secret } })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d) => resolve(Number(String(d).trim())))
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)))
    })
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('alive')
    expect(stderr).toContain('uncaught exception caught by the last-resort handler; still serving')
    expect(stderr).toContain('unhandled rejection caught by the last-resort handler')
    expect(stderr).not.toContain(secret)
    expect(stderr).toContain('sk-proj-')
  } finally {
    child.kill()
  }
})
