import { existsSync, readFileSync, renameSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { GatehouseError } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from './errors'
import { resolveInstallHookConfig, type InstallHookOptions } from './options'
import { git } from './secrets/staged'

/** The line that marks a pre-commit hook as written by Gatehouse (safe to overwrite). */
export const HOOK_MARKER = '# gatehouse-check pre-commit hook'

export interface InstallHookResult {
  /** Absolute path of the hook file. */
  readonly path: string
  /** `created` (no hook before), `updated` (ours, rewritten), `replaced` (a foreign hook, with force). */
  readonly action: 'created' | 'updated' | 'replaced'
  /** Where the foreign hook was kept, when one was replaced. */
  readonly backup?: string
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

/** The hook script: the project's own gatehouse-check when installed, else this copy's CLI. */
export function hookScript(cliPath: string): string {
  return [
    '#!/bin/sh',
    HOOK_MARKER,
    '# Refuses a commit whose staged changes add a credential. Written by `gatehouse-check install-hook`.',
    '# Silence one line on purpose with a `gatehouse-check:allow` comment; bypass once with `git commit --no-verify`.',
    'if [ -x ./node_modules/.bin/gatehouse-check ]; then',
    '  exec ./node_modules/.bin/gatehouse-check secrets --staged',
    'fi',
    `if [ -f ${shellQuote(cliPath)} ]; then`,
    `  exec node ${shellQuote(cliPath)} secrets --staged`,
    'fi',
    'echo "gatehouse-check pre-commit hook: gatehouse-check is not installed (npm install -D @gatehouse/security-check)" >&2',
    'exit 1',
    '',
  ].join('\n')
}

/** This package's CLI: dist/cli.js beside src/ and dist/. */
export const defaultCliPath = (): string => resolve(__dirname, '..', 'dist', 'cli.js')

/**
 * Write `.git/hooks/pre-commit` (or wherever `core.hooksPath` points) so that every commit runs
 * `gatehouse-check secrets --staged`. A hook Gatehouse wrote is rewritten; any other hook is left
 * alone unless `force`, and then kept as `pre-commit.bak`.
 */
export async function installHook(options: InstallHookOptions = {}): Promise<InstallHookResult> {
  const config = resolveInstallHookConfig(options)
  const cwd = resolve(config.cwd)
  const rel = (await git(cwd, ['rev-parse', '--git-path', 'hooks/pre-commit'])).trim()
  const path = isAbsolute(rel) ? rel : join(cwd, rel)
  let action: InstallHookResult['action'] = 'created'
  let backup: string | undefined
  if (existsSync(path)) {
    const existing = readFileSync(path, 'utf8')
    if (existing.includes(HOOK_MARKER)) {
      action = 'updated'
    } else if (!config.force) {
      throw new GatehouseError(
        SecurityCheckErrorCodes.GH_SC_HOOK_EXISTS,
        `${PKG}: ${path} already exists and was not written by gatehouse-check; add \`gatehouse-check secrets --staged\` to it, or rerun with --force (the old hook is kept as pre-commit.bak)`,
        409,
      )
    } else {
      backup = `${path}.bak`
      for (let i = 1; existsSync(backup) && i < 100; i++) backup = `${path}.bak.${i}`
      renameSync(path, backup)
      action = 'replaced'
    }
  }
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, hookScript(config.cliPath ?? defaultCliPath()), { mode: 0o755 })
  chmodSync(path, 0o755)
  return backup === undefined ? { path, action } : { path, action, backup }
}
