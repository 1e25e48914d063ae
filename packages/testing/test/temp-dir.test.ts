import { existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { tempDir, tempDirs } from '@gatehouse/testing'

describe('tempDir', () => {
  it('makes a fresh gh-<label>- directory under the temp dir and removes it with its contents', () => {
    const a = tempDir('unit')
    const b = tempDir('unit')
    expect(a.dir).not.toBe(b.dir)
    expect(dirname(a.dir)).toBe(tmpdir())
    expect(basename(a.dir)).toMatch(/^gh-unit-/)
    writeFileSync(join(a.dir, 'f'), 'x')
    a.cleanup()
    b.cleanup()
    expect(existsSync(a.dir)).toBe(false)
    expect(existsSync(b.dir)).toBe(false)
  })
})

describe('tempDirs', () => {
  it('removes every directory it made, once', () => {
    const dirs = tempDirs('unit')
    const made = [dirs.make(), dirs.make()]
    expect(made.every((d) => existsSync(d))).toBe(true)
    dirs.cleanup()
    expect(made.some((d) => existsSync(d))).toBe(false)
    expect(() => dirs.cleanup()).not.toThrow()
  })
})
