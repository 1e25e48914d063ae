import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, cpSync, readFileSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { commandsOf, ShellSession, shBlocks } from '@gatehouse/testing'
import { ensureBuilt, holdDocumentedPort, root } from './cli-helpers'

const exec = promisify(execFile)
const curl = async (...args: string[]): Promise<string> => (await exec('curl', ['-s', ...args])).stdout

beforeAll(() => ensureBuilt())

describe('examples', () => {
  // mount-client-auth and mount-proxy: their READMEs run as written in readme-walkthroughs.test.ts.
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
