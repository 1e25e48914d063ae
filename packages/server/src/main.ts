import { parseArgs, type ParseArgsConfig } from 'node:util'
import { COMMANDS, USAGE } from './commands'
import { createContext, EXIT_OK, EXIT_USAGE, stdio, type Flags, type Io } from './commands/context'

export type { Io } from './commands/context'
export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './commands/context'

/** The options every command takes. */
const COMMON = { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } as const

/** Runs a command; returns the exit code (undefined while the server keeps running). */
export async function main(argv: string[], io: Io = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number | undefined> {
  // Every command's options are known to the first pass, which finds the command; the second
  // refuses an option that command does not take.
  const all = Object.assign({}, COMMON, ...Object.values(COMMANDS).map((c) => c.options)) as NonNullable<ParseArgsConfig['options']>
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: all })
  } catch (e) {
    io.err(`gatehouse: ${(e as Error).message}\n${USAGE}`)
    return EXIT_USAGE
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.out(USAGE)
    return EXIT_OK
  }
  const [name = 'start', sub, ...args] = positionals
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!command) {
    io.err(`gatehouse: unknown command ${JSON.stringify(positionals.join(' '))}\n${USAGE}`)
    return EXIT_USAGE
  }
  const foreign = Object.keys(values).filter((o) => !Object.hasOwn(COMMON, o) && !Object.hasOwn(command.options, o))
  if (foreign.length) {
    io.err(`gatehouse: ${name} does not take ${foreign.map((o) => `--${o}`).join(', ')}\n${USAGE}`)
    return EXIT_USAGE
  }
  if (name === 'start' && sub !== undefined) {
    io.err(`gatehouse: unknown command ${JSON.stringify(positionals.join(' '))}\n${USAGE}`)
    return EXIT_USAGE
  }
  return command.run(createContext(sub, args, values as Flags, io, env))
}
