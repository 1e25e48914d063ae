#!/usr/bin/env node
import { main } from './main'

export { main } from './main'
export type { CliIo } from './main'

/** Run the command line and set the exit code: what the `gatehouse-check` command does. */
export function runCli(argv: readonly string[]): void {
  main([...argv]).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      console.error(`gatehouse-check: ${err instanceof Error ? err.message : String(err)}`)
      process.exitCode = 2
    },
  )
}

if (require.main === module) runCli(process.argv.slice(2))
