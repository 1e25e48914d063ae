import { isGatehouseError } from '@gatehouse/core'
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load'

export interface Io {
  out: (s: string) => void
  err: (s: string) => void
}

export const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }

/** The command did what was asked (the gateway, started, keeps running and returns no code). */
export const EXIT_OK = 0
/** It ran and found a fault or failed: an invalid config, a tampered audit log, a high finding, a port taken. */
export const EXIT_FAILURE = 1
/** It was called wrongly: an unknown command or option, a missing argument, a flag with a bad value. */
export const EXIT_USAGE = 2

export type ExitCode = typeof EXIT_OK | typeof EXIT_FAILURE | typeof EXIT_USAGE

/** The flags every command may read, as parsed. */
export type Flags = Record<string, string | boolean | undefined>

export interface CommandContext {
  /** The sub-command (`create` in `keys create`), if any. */
  sub: string | undefined
  /** Positional arguments after the sub-command. */
  args: string[]
  flags: Flags
  io: Io
  env: NodeJS.ProcessEnv
  /** The configuration (--config FILE, or the embedded default), or the exit code after printing why not. */
  load(): LoadedConfig | ExitCode
}

export function createContext(sub: string | undefined, args: string[], flags: Flags, io: Io, env: NodeJS.ProcessEnv): CommandContext {
  const file = typeof flags.config === 'string' ? flags.config : undefined
  return {
    sub,
    args,
    flags,
    io,
    env,
    load: () => {
      try {
        return loadConfig({ ...(file ? { file } : {}), env })
      } catch (e) {
        if (e instanceof ConfigError) {
          io.err(`gatehouse: invalid configuration (${e.source}):\n${e.errors.map((l) => `  ${l}`).join('\n')}\n`)
          return EXIT_FAILURE
        }
        throw e
      }
    },
  }
}

/** A package's refusal (a GatehouseError) as one line and EXIT_FAILURE; anything else is a bug and is thrown. */
export function reportRefusal(io: Io, e: unknown): ExitCode {
  if (isGatehouseError(e)) {
    io.err(`gatehouse: ${e.message}\n`)
    return EXIT_FAILURE
  }
  throw e
}

/** A string flag's value (undefined when not given). */
export const flag = (flags: Flags, name: string): string | undefined => (typeof flags[name] === 'string' ? (flags[name] as string) : undefined)
