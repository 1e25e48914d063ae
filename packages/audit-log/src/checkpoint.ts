import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from 'node:crypto'
import { GatehouseConfigError } from '@gatehouse/core'
import { parseChainedLine, type ParsedLine } from './chain'
import { AuditLogErrorCodes } from './errors'

const PKG = '@gatehouse/audit-log'

/**
 * A signed statement of where the audit chain stood: the line with seq `seq` has hash `hash`.
 * Written to the audit file as `{"timestamp":T,"checkpoint":{…}}` (then chained like any line) and
 * shipped to every sink, so a copy kept off the box proves how far the local log went.
 */
export interface AuditCheckpoint {
  /** The log's id (`checkpoints.logId`), when set: tells the logs of several gateways apart. */
  log?: string
  /** Seq of the last line before the checkpoint. */
  seq: number
  /** Hash of that line. */
  hash: string
  /** When the checkpoint was made (ISO 8601, UTC). */
  time: string
  alg: 'hmac-sha256' | 'ed25519'
  /** base64url signature of checkpointPayload(). */
  sig: string
}

/** The signed bytes. Starts with a letter that no chain HMAC input starts with (hex or `{`). */
export function checkpointPayload(cp: Omit<AuditCheckpoint, 'alg' | 'sig'>): string {
  return `gatehouse-audit-checkpoint/1\n${cp.log ?? ''}\n${cp.seq}\n${cp.hash}\n${cp.time}`
}

export type CheckpointSigner = (cp: Omit<AuditCheckpoint, 'alg' | 'sig'>) => AuditCheckpoint

/** HMAC-SHA256 under the audit key, or Ed25519 under `signingKey` when one is configured. */
export function createCheckpointSigner(
  auditKey: Buffer,
  signingKey: KeyObject | undefined,
): CheckpointSigner {
  if (signingKey) {
    return (cp) => ({
      ...cp,
      alg: 'ed25519',
      sig: sign(null, Buffer.from(checkpointPayload(cp)), signingKey).toString('base64url'),
    })
  }
  return (cp) => ({
    ...cp,
    alg: 'hmac-sha256',
    sig: createHmac('sha256', auditKey).update(checkpointPayload(cp)).digest('base64url'),
  })
}

/** The record body of a checkpoint (the writer appends the chain fields). */
export function checkpointBody(cp: AuditCheckpoint): string {
  const inner: Record<string, unknown> = cp.log === undefined ? {} : { log: cp.log }
  Object.assign(inner, { seq: cp.seq, hash: cp.hash, time: cp.time, alg: cp.alg, sig: cp.sig })
  return `{"timestamp":${JSON.stringify(cp.time)},"checkpoint":${JSON.stringify(inner)}}`
}

const badKey = (name: string, what: string): GatehouseConfigError =>
  new GatehouseConfigError(AuditLogErrorCodes.GH_AUDIT_INVALID_KEY, `${PKG}: ${name} ${what}`)

/** An Ed25519 private key from PEM text, bytes or a KeyObject. The key is never quoted. */
export function resolveSigningKey(value: unknown, name: string): KeyObject {
  let key: KeyObject
  try {
    key = isKeyObject(value) ? value : createPrivateKey(value as string | Buffer)
  } catch {
    throw badKey(name, 'is not a readable private key (PEM, e.g. from `openssl genpkey -algorithm ed25519`)')
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519')
    throw badKey(name, 'must be an Ed25519 private key')
  return key
}

/** An Ed25519 public key (a private key is accepted and its public half used). */
export function resolvePublicKey(value: unknown, name: string): KeyObject {
  let key: KeyObject
  try {
    key = isKeyObject(value)
      ? value.type === 'private'
        ? createPublicKey(value)
        : value
      : createPublicKey(value as string | Buffer)
  } catch {
    throw badKey(name, 'is not a readable public key (PEM)')
  }
  if (key.asymmetricKeyType !== 'ed25519') throw badKey(name, 'must be an Ed25519 key')
  return key
}

const isKeyObject = (v: unknown): v is KeyObject =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as KeyObject).asymmetricKeyType !== 'undefined' &&
  typeof (v as KeyObject).export === 'function'

/** True when the checkpoint's signature verifies. An Ed25519 checkpoint needs `publicKey`. */
export function checkpointSignatureValid(
  cp: AuditCheckpoint,
  auditKey: Buffer,
  publicKey: KeyObject | undefined,
): boolean {
  const payload = Buffer.from(checkpointPayload(cp))
  const sig = Buffer.from(cp.sig, 'base64url')
  if (cp.alg === 'hmac-sha256') {
    const expected = createHmac('sha256', auditKey).update(payload).digest()
    return sig.length === expected.length && timingSafeEqual(sig, expected)
  }
  if (!publicKey) return false
  try {
    return verify(null, payload, publicKey, sig)
  } catch {
    return false
  }
}

/** A checkpoint found in a collector's export, with the chained line that carried it when there was one. */
export interface FoundCheckpoint {
  checkpoint: AuditCheckpoint
  /** The checkpoint's own audit line (seq = checkpoint.seq + 1), when the export holds the full line. */
  line: ParsedLine | undefined
  /** 1-based line number in the export. */
  at: number
}

function asCheckpoint(v: unknown): AuditCheckpoint | undefined {
  if (v === null || typeof v !== 'object') return undefined
  const o = v as Record<string, unknown>
  if (!Number.isSafeInteger(o.seq) || (o.seq as number) < 1) return undefined
  if (typeof o.hash !== 'string' || !/^[0-9a-f]{64}$/.test(o.hash)) return undefined
  if (typeof o.time !== 'string' || typeof o.sig !== 'string') return undefined
  if (o.alg !== 'hmac-sha256' && o.alg !== 'ed25519') return undefined
  if (o.log !== undefined && typeof o.log !== 'string') return undefined
  const cp: AuditCheckpoint = { seq: o.seq as number, hash: o.hash, time: o.time, alg: o.alg, sig: o.sig }
  if (typeof o.log === 'string') cp.log = o.log
  return cp
}

/**
 * The checkpoints in a collector's export: one record a line, as the audit file has it, behind a
 * syslog header (`<PRI>1 … - {…}`, with or without the octet count), or a bare checkpoint object.
 * Other lines (the events themselves) are skipped.
 */
export function findCheckpoints(text: string): FoundCheckpoint[] {
  const found: FoundCheckpoint[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const cp = checkpointInLine(lines[i]!, i + 1)
    if (cp) found.push(cp)
  }
  return found
}

/** The checkpoint on one line of an export (see findCheckpoints), if any. */
export function checkpointInLine(text: string, at: number): FoundCheckpoint | undefined {
  const raw = text.replace(/\r$/, '')
  if (!raw.includes('"sig"')) return undefined
  const start = raw.indexOf('{')
  if (start < 0) return undefined
  const json = raw.slice(start)
  let obj: unknown
  try {
    obj = JSON.parse(json)
  } catch {
    return undefined
  }
  const wrapped = asCheckpoint((obj as { checkpoint?: unknown } | null)?.checkpoint)
  const checkpoint = wrapped ?? asCheckpoint(obj)
  return checkpoint ? { checkpoint, line: wrapped ? parseChainedLine(json) : undefined, at } : undefined
}
