import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import type { Writable } from 'node:stream'

// Documentation, executed as written: the ```sh blocks of a Markdown file split into the commands
// bash would run, and one long-lived bash session (as in a user's terminal: variables, `cd` and
// background jobs carry over from one command to the next) that runs them one at a time.

export interface Block {
  /** The `## ` heading the block is under. */
  section: string
  text: string
}

/** The ```sh blocks of a Markdown document (`name` is for messages), with the `## ` section each is in. */
export function shBlocks(markdown: string, name = 'the document'): Block[] {
  const blocks: Block[] = []
  let section = ''
  let fence: { lang: string; lines: string[] } | undefined
  for (const line of markdown.split('\n')) {
    const marker = /^```(\S*)\s*$/.exec(line)
    if (fence) {
      if (marker && marker[1] === '') {
        if (fence.lang === 'sh') blocks.push({ section, text: fence.lines.join('\n') })
        fence = undefined
      } else fence.lines.push(line)
    } else if (marker) fence = { lang: marker[1]!, lines: [] }
    else if (line.startsWith('## ')) section = line.slice(3).trim()
  }
  if (fence) throw new Error(`${name}: unclosed \`\`\`${fence.lang} block in "${section}"`)
  return blocks
}

/** bash accepts `text` as a whole command (no open quote, `if` or `$(`). */
export const isComplete = (text: string): boolean =>
  spawnSync('bash', ['-n'], { input: text, timeout: 5000 }).status === 0

/**
 * Split a block into the commands bash would run one after another: comment and blank lines between
 * commands dropped, backslash continuations and multi-line constructs kept together.
 */
export function commandsOf(block: Block): string[] {
  const commands: string[] = []
  let current = ''
  for (const line of block.text.split('\n')) {
    if (current === '' && /^\s*(#.*)?$/.test(line)) continue
    current = current === '' ? line : `${current}\n${line}`
    if (line.endsWith('\\') || !isComplete(current)) continue
    commands.push(current)
    current = ''
  }
  if (current !== '') throw new Error(`a command in "${block.section}" never ends:\n${current}`)
  return commands
}

export interface CommandRun {
  section: string
  command: string
  code: number
  stdout: string
  stderr: string
}

// The session reads one NUL-terminated command at a time from fd 3, runs it in the shell itself (so
// variables persist) with stdin from /dev/null, and ends its output with a marker carrying the exit
// status: stdout gets "\n\x1e<status>\n", stderr "\n\x1e\n". The umask is the usual 022, so the
// guide has to protect the files it writes itself.
const DRIVER = `umask 022
while IFS= read -r -d '' __gh_command <&3; do
  eval "$__gh_command" </dev/null 3<&-
  __gh_status=$?
  printf '\\n\\036%d\\n' "$__gh_status"
  printf '\\n\\036\\n' >&2
done`

const MARK = '\n\x1e'

/** One long-lived bash, as in an operator's terminal. */
export class ShellSession {
  private readonly child: ChildProcess
  private out = ''
  private err = ''
  private closed = false
  private wake: (() => void) | undefined

  constructor(cwd: string, env: NodeJS.ProcessEnv) {
    this.child = spawn('bash', ['--noprofile', '--norc', '-c', DRIVER], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      // Its own process group, so that close() can end a command still running with it.
      detached: true,
    })
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.out += d
      this.wake?.()
    })
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.err += d
      this.wake?.()
    })
    this.child.on('close', () => {
      this.closed = true
      this.wake?.()
    })
  }

  run(command: string, timeoutMs = 20_000): Promise<Omit<CommandRun, 'section'>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined
        reject(new Error(`no end in ${timeoutMs} ms: ${command}\nstdout: ${this.out}\nstderr: ${this.err}`))
      }, timeoutMs)
      this.wake = () => {
        const end = this.out.indexOf(MARK)
        const status = end === -1 ? -1 : this.out.indexOf('\n', end + MARK.length)
        const errEnd = this.err.indexOf(`${MARK}\n`)
        if (status !== -1 && errEnd !== -1) {
          clearTimeout(timer)
          this.wake = undefined
          const run = {
            command,
            code: Number(this.out.slice(end + MARK.length, status)),
            stdout: this.out.slice(0, end),
            stderr: this.err.slice(0, errEnd),
          }
          this.out = this.out.slice(status + 1)
          this.err = this.err.slice(errEnd + MARK.length + 1)
          resolve(run)
        } else if (this.closed) {
          clearTimeout(timer)
          this.wake = undefined
          reject(new Error(`bash exited while running: ${command}\nstderr: ${this.err}`))
        }
      }
      ;(this.child.stdio[3] as Writable).write(`${command}\0`)
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    const closed = new Promise<void>((r) => this.child.once('close', () => r()))
    ;(this.child.stdio[3] as Writable).end()
    const timer = setTimeout(() => {
      try {
        process.kill(-this.child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    }, 2000)
    await closed
    clearTimeout(timer)
    // What the session left running in the background (a server started with `&`) is in its
    // process group: end it too.
    try {
      process.kill(-this.child.pid!, 'SIGTERM')
    } catch {
      // nothing left
    }
  }
}
