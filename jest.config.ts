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
  // Two workers on the 2-core machine: most suites wait on sockets, Redis, PostgreSQL and child
  // processes, so two run side by side in 311 s where one at a time took 427-638 s.
  maxWorkers: 2,
  // Fails the run, naming them, when test files leave listeners, sockets, processes or timers open
  // (they would keep jest from exiting).
  globalTeardown: '<rootDir>/scripts/jest-open-handles.js',
}

export default config
