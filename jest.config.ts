import { readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Config } from 'jest'

// One jest project per package. Tests import sibling packages by name; the mapper sends those
// imports to the sibling's src/ so a test never runs against a stale dist/.
const packagesDir = join(__dirname, 'packages')
const packages = readdirSync(packagesDir).filter((name) => existsSync(join(packagesDir, name, 'test')))

const config: Config = {
  projects: packages.map((name) => ({
    displayName: name,
    rootDir: join(packagesDir, name),
    testEnvironment: 'node',
    testMatch: ['<rootDir>/test/**/*.test.ts'],
    transform: {
      '^.+\\.ts$': ['ts-jest', { tsconfig: join(__dirname, 'tsconfig.test.json') }],
    },
    moduleNameMapper: { '^@gatehouse/([a-z-]+)$': join(packagesDir, '$1', 'src') },
    setupFiles: [],
  })),
  testTimeout: 30_000,
  // Fails the run, naming them, when test files leave listeners, sockets, processes or timers open
  // (in band, as on a 2-core machine, they would keep jest from exiting).
  globalTeardown: '<rootDir>/scripts/jest-open-handles.js',
}

export default config
