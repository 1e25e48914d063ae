import { Pool } from 'pg'
import { createMasker } from '@gatehouse/core'
import { migrate, resolveDatabaseUrl } from '@gatehouse/storage'
import { configSecrets } from '../gateway'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CommandContext, type ExitCode } from './context'

/** `gatehouse storage migrate`: create or update the PostgreSQL schema at storage.url. */
export async function storageCommand(ctx: CommandContext): Promise<ExitCode> {
  const { io } = ctx
  if (ctx.sub !== 'migrate') {
    io.err('gatehouse: storage needs: migrate\n')
    return EXIT_USAGE
  }
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  const url = loaded.config.storage.url
  if (!url) {
    io.err('gatehouse: storage.url is not set (postgresql://…)\n')
    return EXIT_USAGE
  }
  let pool: Pool | undefined
  try {
    pool = new Pool({ connectionString: resolveDatabaseUrl(url, 'storage.url').connectionString, max: 1, connectionTimeoutMillis: 10_000 })
    pool.on('error', () => undefined)
    const r = await migrate(pool, 'gatehouse')
    io.out(r.applied.length ? `schema ${r.schema}: applied ${r.applied.join(', ')}; now at version ${r.version}\n` : `schema ${r.schema} is up to date (version ${r.version})\n`)
    return EXIT_OK
  } catch (e) {
    const masker = createMasker({ knownSecrets: configSecrets(loaded.config) })
    io.err(`gatehouse: storage migrate failed: ${masker.text(e instanceof Error ? e.message : String(e))}\n`)
    return EXIT_FAILURE
  } finally {
    await pool?.end().catch(() => undefined)
  }
}
