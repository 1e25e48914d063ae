import { EXIT_OK, EXIT_USAGE, type CommandContext, type ExitCode } from './context'

/** `gatehouse config check`: the same loading, schema and package resolvers as start; warnings to stderr. */
export async function configCommand(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.sub !== 'check') {
    ctx.io.err('gatehouse: config needs: check\n')
    return EXIT_USAGE
  }
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  for (const w of loaded.warnings) ctx.io.err(`warning: ${w}\n`)
  ctx.io.out(`configuration OK (${loaded.source})\n`)
  return EXIT_OK
}
