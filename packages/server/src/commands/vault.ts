import { migrate, rotateKey } from '@gatehouse/credential-vault'
import { authPaths } from '../auth-paths'
import { resolveGeneratedSecrets } from '../gateway'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, reportRefusal, type CommandContext, type ExitCode } from './context'

/** `gatehouse vault migrate [--dry-run]` and `vault rotate-key`: the credential files of the auth directory. */
export async function vaultCommand(ctx: CommandContext): Promise<ExitCode> {
  const { io, sub } = ctx
  if (sub !== 'migrate' && sub !== 'rotate-key') {
    io.err('gatehouse: vault needs one of: migrate, rotate-key\n')
    return EXIT_USAGE
  }
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  const { config } = loaded
  if (!config.auth.encryption.enabled) {
    io.err('gatehouse: auth.encryption.enabled is false: nothing to encrypt\n')
    return EXIT_FAILURE
  }
  const paths = authPaths(config)
  const key = config.auth.encryption.key ?? resolveGeneratedSecrets(config, paths).encryptionKey
  const options = {
    dir: paths.dir,
    encryption: { enabled: true, key, ...(config.auth.encryption.previous_keys?.length ? { previousKeys: config.auth.encryption.previous_keys } : {}) },
  }
  const dryRun = ctx.flags['dry-run'] === true
  try {
    if (sub === 'migrate') {
      const r = await migrate({ ...options, ...(dryRun ? { dryRun: true } : {}) })
      for (const m of r.migrated) io.out(`${dryRun ? 'would encrypt' : 'encrypted'} ${m.file} -> ${m.id} (${m.provider})\n`)
      for (const x of r.skipped) io.err(`skipped ${x.file}: ${x.reason}\n`)
      for (const x of r.failed) io.err(`FAILED ${x.file}: ${x.message}\n`)
      io.out(`${r.migrated.length} migrated, ${r.skipped.length} skipped, ${r.failed.length} failed\n`)
      return r.failed.length ? EXIT_FAILURE : EXIT_OK
    }
    const r = await rotateKey(options)
    for (const x of r.failed) io.err(`FAILED ${x.file}: ${x.message}\n`)
    io.out(`${r.reencrypted.length} re-encrypted under the current key, ${r.skipped.length} already current, ${r.failed.length} failed\n`)
    return r.failed.length ? EXIT_FAILURE : EXIT_OK
  } catch (e) {
    return reportRefusal(io, e)
  }
}
