import { parseArgs, type ParseArgsConfig } from 'node:util'
import { GatehouseError, parseSize } from '@gatehouse/core'
import { SecurityCheckErrorCodes } from './errors'

// The command line's words: the usage text, each command's options, and the parsing of values
// (sizes, day counts) into what the library functions take. The commands themselves are in main.ts.

export const USAGE = `Usage: gatehouse-check <command> [options]

Commands:
  permissions DIR... [--fix] [--owner UID]
      Every file 0600, every directory 0700, owned by you; symlinks and special files reported.
      --fix repairs the modes and says what it changed.
  secrets [PATH...] [--staged] [--format text|json|sarif] [--baseline FILE]
          [--write-baseline FILE] [--exclude PATTERN]... [--max-size SIZE] [--no-gitignore]
          [--honeytokens FILE]
      Leaked credentials in files (default: the current directory, honouring .gitignore) or in
      the lines that the staged changes add. Every finding is masked. --honeytokens: a file of
      sha256 digests of decoy keys; a finding that is one is reported as a honeytoken.
      Files of any size are read (large ones in chunks); --max-size sets a hard limit, and a
      file over it fails the scan (exit 1).
  tls --cert FILE [--key FILE] [--min-days N]
      The certificate is readable, valid, not expiring within N days (default 30), not weak, and
      the key matches it.
  all [PATH...] [--auth-dir DIR] [--fix] [--cert FILE] [--key FILE] [--min-days N]
      [--baseline FILE] [--max-size SIZE] [--no-audit] [--audit-timeout DURATION]
      Auth directory permissions, secrets, TLS (when --cert or tls/tls.crt) and
      npm audit --omit=dev --audit-level=high, with one summary.
  install-hook [--force]
      Write .git/hooks/pre-commit to run \`gatehouse-check secrets --staged\`.

Silence a finding on purpose with a \`gatehouse-check:allow\` comment on its line (or
\`gatehouse-check:allow-next-line\` on the line before), or with a baseline file.

Exit codes: 0 clean, 1 findings, 2 usage error.
`

export class UsageError extends GatehouseError {
  constructor(message: string) {
    super(SecurityCheckErrorCodes.GH_SC_USAGE, message, 400)
  }
}

export type Values = Record<string, string | boolean | string[] | undefined>

const COMMON = { help: { type: 'boolean', short: 'h' } } as const

const COMMANDS: Record<string, ParseArgsConfig['options']> = {
  permissions: { ...COMMON, fix: { type: 'boolean' }, owner: { type: 'string' } },
  secrets: {
    ...COMMON,
    staged: { type: 'boolean' },
    format: { type: 'string' },
    baseline: { type: 'string' },
    honeytokens: { type: 'string' },
    'write-baseline': { type: 'string' },
    exclude: { type: 'string', multiple: true },
    'max-size': { type: 'string' },
    'no-gitignore': { type: 'boolean' },
  },
  tls: { ...COMMON, cert: { type: 'string' }, key: { type: 'string' }, 'min-days': { type: 'string' } },
  all: {
    ...COMMON,
    'auth-dir': { type: 'string' },
    fix: { type: 'boolean' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'min-days': { type: 'string' },
    baseline: { type: 'string' },
    'max-size': { type: 'string' },
    'no-audit': { type: 'boolean' },
    'audit-timeout': { type: 'string' },
  },
  'install-hook': { ...COMMON, force: { type: 'boolean' } },
}

export function parse(command: string, args: readonly string[]): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: COMMANDS[command]!,
      allowPositionals: true,
      strict: true,
    })
    return { values: values as Values, positionals }
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message.split('\n')[0] ?? 'bad arguments'}`)
  }
}

export const str = (v: Values[string]): string | undefined => (typeof v === 'string' ? v : undefined)

export function minDays(v: Values[string]): number | undefined {
  const s = str(v)
  if (s === undefined) return undefined
  if (!/^\d+(\.\d+)?$/.test(s))
    throw new UsageError(`--min-days must be a number of days (got ${JSON.stringify(s)})`)
  return Number(s)
}

export function maxSize(v: Values[string]): number | undefined {
  const s = str(v)
  if (s === undefined) return undefined
  try {
    const n = parseSize(s, '--max-size')
    if (n < 1) throw new Error('zero')
    return n
  } catch {
    throw new UsageError(`--max-size must be a size such as 5mb or 512kb (got ${JSON.stringify(s)})`)
  }
}

export function noPositionals(command: string, positionals: readonly string[]): void {
  if (positionals.length > 0)
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(positionals[0])}`)
}
