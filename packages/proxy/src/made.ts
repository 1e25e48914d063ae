import type { ObjectOwners } from './owners'

/**
 * What an answer of an endpoint makes, and where its id is: the pattern (its first group is the
 * id), how far into the answer to look, a substring the request's body must hold for the answer to
 * make anything, and whether every match counts (a batch names its output and error files) or the
 * first alone (an object's own id comes before the ids of its parts).
 */
interface Made {
  readonly pattern: RegExp
  readonly bytes: number
  readonly when?: string
  readonly every?: boolean
}

const id = (prefix: string): RegExp => new RegExp(`"id"\\s*:\\s*"(${prefix}[A-Za-z0-9_-]{1,200})"`)

const MADE: ReadonlyMap<string, Made> = new Map<string, Made>([
  // A response's own id comes first (JSON) or in the first event (SSE); its items' ids have other prefixes.
  ['openai.responses', { pattern: id('resp_'), bytes: 16 * 1024 }],
  // A chat completion is kept (and readable by id) only when asked to be stored.
  ['openai.chat', { pattern: id('chatcmpl-'), bytes: 16 * 1024, when: '"store"' }],
  ['openai.files.create', { pattern: id('file-'), bytes: 16 * 1024 }],
  ['openai.batches.create', { pattern: id('batch_'), bytes: 16 * 1024 }],
  // The files a batch wrote are its maker's: seen when the maker reads its batch.
  ['openai.batches.get', { pattern: /"(?:output|error)_file_id"\s*:\s*"(file-[A-Za-z0-9_-]{1,200})"/g, bytes: 64 * 1024, every: true }],
  ['claude.files.create', { pattern: id('file_'), bytes: 16 * 1024 }],
  ['claude.batches.create', { pattern: id('msgbatch_'), bytes: 16 * 1024 }],
  // A container comes at the end of a message (JSON) or in its message_delta (SSE), and only for
  // requests with the code execution tool.
  ['claude.messages', { pattern: /"container"\s*:\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,200})"/, bytes: 8 * 1024 * 1024, when: 'code_execution' }],
])

/**
 * The owner-store ids of an OpenAI batch input file: `input` once request-guard checked its lines
 * (recorded when the file is made), `run` once a batch was created on it (claimed, once). No
 * provider object has such an id; a client naming one as an object reaches only its own marks
 * (another key's are another owner's), and never a file.
 */
export const batchInputMark = (fileId: string): { input: string; run: string } => ({ input: `batch-input:${fileId}`, run: `batch-run:${fileId}` })

/** Looks for the ids of what an answer made, in its first bytes, across chunk boundaries; records them as the tenant's. */
export class MadeObjectWatch {
  private seen = 0
  private carry = ''
  private done = false
  private readonly recorded = new Set<string>()

  private constructor(
    private readonly owners: ObjectOwners,
    private readonly tenant: string,
    private readonly made: Made,
    private readonly batchInput: boolean,
  ) {}

  /**
   * The watch for a request to `endpoint` (whose body is `body`), or undefined when its answer makes
   * nothing. `batchInput`: the request uploads a batch input file request-guard checked.
   */
  static for(owners: ObjectOwners, tenant: string, endpoint: string | undefined, body: Buffer | undefined, batchInput = false): MadeObjectWatch | undefined {
    const made = endpoint === undefined ? undefined : MADE.get(endpoint)
    if (!made || (made.when !== undefined && !body?.includes(made.when))) return undefined
    return new MadeObjectWatch(owners, tenant, made, batchInput && endpoint === 'openai.files.create')
  }

  push(chunk: Buffer): void {
    if (this.done) return
    const { pattern, bytes, every } = this.made
    const take = Math.min(chunk.length, bytes - this.seen)
    this.seen += take
    const text = this.carry + chunk.toString('latin1', 0, take)
    if (every) {
      // A match cut by the chunk's end is found whole in the carry next time; one seen twice is recorded once.
      for (const m of text.matchAll(pattern)) this.record(m[1]!)
    } else {
      const m = pattern.exec(text)
      if (m) {
        this.done = true
        this.record(m[1]!)
        return
      }
    }
    if (this.seen >= bytes) this.done = true
    // What may hold the start of a match cut by the chunk's end.
    this.carry = text.slice(-256)
  }

  private record(objectId: string): void {
    if (this.recorded.has(objectId)) return
    this.recorded.add(objectId)
    this.owners.record(objectId, this.tenant)
    if (this.batchInput) this.owners.record(batchInputMark(objectId).input, this.tenant)
  }
}
