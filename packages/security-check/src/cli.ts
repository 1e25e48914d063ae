#!/usr/bin/env node
import { main } from './main'

export { main } from './main'
export type { CliIo } from './main'

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      console.error(`gatehouse-check: ${err instanceof Error ? err.message : String(err)}`)
      process.exitCode = 2
    },
  )
}
