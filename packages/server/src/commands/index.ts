import type { ParseArgsConfig } from 'node:util'
import type { CommandContext, ExitCode } from './context'

export interface Command {
  /** The options this command reads besides --config and --help. */
  readonly options: NonNullable<ParseArgsConfig['options']>
  /** Its lines of the usage text. */
  readonly usage: string
  run(ctx: CommandContext): Promise<ExitCode | undefined>
}

const KEY_OPTIONS = {
  name: { type: 'string' },
  providers: { type: 'string' },
  endpoints: { type: 'string' },
  models: { type: 'string' },
  rpm: { type: 'string' },
  tpm: { type: 'string' },
  'monthly-tokens': { type: 'string' },
  concurrency: { type: 'string' },
  'expires-days': { type: 'string' },
  networks: { type: 'string' },
  objects: { type: 'string' },
  json: { type: 'boolean' },
  grace: { type: 'string' },
  to: { type: 'string' },
} as const

/**
 * Every `gatehouse` command, by its first word. Each module is loaded when its command runs: `keys
 * list` does not load the gateway, its HTTP stack or the database driver.
 */
export const COMMANDS: Readonly<Record<string, Command>> = {
  start: { options: {}, usage: 'gatehouse [start] [--config FILE]              start the gateway (embedded default without --config)', run: (ctx) => import('./start').then((m) => m.startCommand(ctx)) },
  keys: {
    options: KEY_OPTIONS,
    usage: `gatehouse keys create --name NAME [--providers claude,openai] [--endpoints ID,ID] [--models M,M*]
                      [--rpm N] [--tpm N] [--monthly-tokens N] [--concurrency N] [--expires-days N]
                      [--networks CIDR,CIDR]  (valid only from those networks)
                      [--objects ID,ID]       (provider objects it may use besides its own: vs_…, file-…)
                                        (endpoint ids: packages/proxy/README.md; a limit may
                                        name providers: --tpm 50000,openai=20000)
gatehouse keys list [--json]
gatehouse keys revoke ID
gatehouse keys rotate ID [--grace 24h]   a successor with the same scope; the old key works until the grace ends
gatehouse keys migrate --to redis        the key file's keys into the cluster's Redis, none re-issued
gatehouse keys honeytokens               sha256 digests of auth.honeytokens, for gatehouse-check secrets --honeytokens`,
    run: (ctx) => import('./keys').then((m) => m.keysCommand(ctx)),
  },
  config: { options: {}, usage: 'gatehouse config check                   the same checks as start; exit 1 naming each bad YAML key', run: (ctx) => import('./config').then((m) => m.configCommand(ctx)) },
  doctor: { options: { json: { type: 'boolean' } }, usage: 'gatehouse doctor [--json]                the security posture; exit 1 on any high finding', run: (ctx) => import('./doctor').then((m) => m.doctorCommand(ctx)) },
  audit: {
    options: { checkpoints: { type: 'string' } },
    usage: 'gatehouse audit verify FILE [--checkpoints F]  the audit log\'s hash chain is intact (and matches the shipped checkpoints); exit 1 if not',
    run: (ctx) => import('./audit').then((m) => m.auditCommand(ctx)),
  },
  vault: {
    options: { 'dry-run': { type: 'boolean' }, to: { type: 'string' } },
    usage: `gatehouse vault migrate [--dry-run]      encrypt plaintext credential files in the auth dir
gatehouse vault migrate --to redis [--dry-run]  the auth dir's credentials into the cluster's Redis (store.type redis)
gatehouse vault rotate-key               re-encrypt every credential under auth.encryption.key (files; Redis in cluster mode)`,
    run: (ctx) => import('./vault').then((m) => m.vaultCommand(ctx)),
  },
  storage: { options: {}, usage: 'gatehouse storage migrate                create or update the PostgreSQL schema (storage.url)', run: (ctx) => import('./storage').then((m) => m.storageCommand(ctx)) },
  fingerprint: { options: {}, usage: 'gatehouse fingerprint rotate             a new device fingerprint secret (used from the next start)', run: (ctx) => import('./fingerprint').then((m) => m.fingerprintCommand(ctx)) },
}

export const USAGE = `Usage:
${Object.values(COMMANDS)
  .map((c) => c.usage.replace(/^/gm, '  '))
  .join('\n')}
Every command takes --config FILE (-c). Exit codes: 0 done, 1 failed or found a fault, 2 called wrongly.
`
