import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type Redis from 'ioredis'
import type { PostureFinding } from '../doctor'

/** What a replica says of itself in Redis, for `gatehouse doctor`: no secret, no address. */
export interface ReplicaReport {
  id: string
  host: string
  pid: number
  started_at: string
  /** The versions of the shared key store, runtime state and vault records in this replica's copy. */
  keys_version: number
  runtime_version: number
  credentials_version: number
  /** The copy could not be confirmed current lately (Redis unreachable from this replica). */
  degraded: boolean
  at: number
}

const HEARTBEAT_MS = 2000
/** A report outlives three missed heartbeats, then the replica is gone from the listing. */
const REPORT_TTL_MS = 3 * HEARTBEAT_MS + 1000

const replicaKey = (prefix: string, id: string): string => `${prefix}replicas:${id}`

/**
 * Every two seconds, this replica's versions into `<prefix>replicas:<id>` (expiring), so that
 * `gatehouse doctor` can tell which replica holds which state and which has drifted.
 */
export function startReplicaHeartbeat(options: {
  client: Redis
  prefix: string
  status: () => Pick<ReplicaReport, 'keys_version' | 'runtime_version' | 'credentials_version' | 'degraded'>
}): { id: string; stop(): Promise<void> } {
  const id = randomBytes(6).toString('hex')
  const started = new Date().toISOString()
  const beat = (): Promise<unknown> => {
    const report: ReplicaReport = { id, host: hostname(), pid: process.pid, started_at: started, ...options.status(), at: Date.now() }
    return options.client.set(replicaKey(options.prefix, id), JSON.stringify(report), 'PX', REPORT_TTL_MS).catch(() => undefined)
  }
  void beat()
  const timer = setInterval(() => void beat(), HEARTBEAT_MS)
  timer.unref()
  return {
    id,
    stop: async () => {
      clearInterval(timer)
      await options.client.del(replicaKey(options.prefix, id)).catch(() => undefined)
    },
  }
}

export interface ClusterStatus {
  /** The shared state's versions in Redis. */
  shared: { keys_version: number; runtime_version: number; credentials_version: number }
  replicas: Array<ReplicaReport & { state: 'in step' | 'behind' | 'degraded' }>
  /** What needs attention (none when every replica is in step). */
  findings: PostureFinding[]
}

/**
 * The cluster's state for `gatehouse doctor`: the shared versions, and per replica the versions it
 * holds and whether it is in step, behind, or degraded (cannot reach Redis).
 */
export async function clusterStatus(client: Redis, prefix: string): Promise<ClusterStatus> {
  const status: ClusterStatus = { shared: { keys_version: 0, runtime_version: 0, credentials_version: 0 }, replicas: [], findings: [] }
  let reports: ReplicaReport[]
  try {
    status.shared.keys_version = Number((await client.get(`${prefix}client-keys:version`)) ?? 0)
    status.shared.runtime_version = Number((await client.get(`${prefix}runtime:version`)) ?? 0)
    status.shared.credentials_version = Number((await client.get(`${prefix}vault:records:version`)) ?? 0)
    const ids: string[] = []
    let cursor = '0'
    do {
      const [next, found] = await client.scan(cursor, 'MATCH', `${prefix}replicas:*`, 'COUNT', 200)
      cursor = next
      ids.push(...found)
    } while (cursor !== '0' && ids.length < 10_000)
    const values = ids.length ? await client.mget(...ids) : []
    reports = values.flatMap((v) => {
      try {
        return v === null ? [] : [JSON.parse(v) as ReplicaReport]
      } catch {
        return []
      }
    })
  } catch (err) {
    status.findings.push({
      id: 'cluster-redis-unreachable',
      severity: 'high',
      message: `The cluster's Redis (store.url) cannot be read: ${err instanceof Error ? err.message : String(err)}`,
      fix: 'Check that Redis runs and that store.url reaches it; while it is down, changes are refused and keys authenticate from each gateway\u2019s last copy',
    })
    return status
  }
  if (reports.length === 0) {
    status.findings.push({ id: 'cluster-no-replicas', severity: 'low', message: `No gateway of this cluster (store.key_prefix ${prefix}) has reported in the last ${REPORT_TTL_MS / 1000} s`, fix: 'Start a gateway with this config, or check that the gateways use the same store.url and store.key_prefix' })
    return status
  }
  reports.sort((a, b) => a.started_at.localeCompare(b.started_at))
  for (const r of reports) {
    // A report from before the records were shared has no credentials_version: as in step.
    const credentials = r.credentials_version ?? status.shared.credentials_version
    const behind = r.keys_version < status.shared.keys_version || r.runtime_version < status.shared.runtime_version || credentials < status.shared.credentials_version
    const state = r.degraded ? 'degraded' : behind ? 'behind' : 'in step'
    status.replicas.push({ ...r, state })
    const where = `Replica ${r.id} (${r.host}, pid ${r.pid}) holds keys version ${r.keys_version} of ${status.shared.keys_version}, runtime version ${r.runtime_version} of ${status.shared.runtime_version} and credentials version ${credentials} of ${status.shared.credentials_version}`
    if (state === 'degraded') status.findings.push({ id: 'cluster-replica-degraded', severity: 'medium', message: `${where} and cannot confirm it is current (Redis unreachable from it)`, fix: 'Check that replica\u2019s connection to Redis; it serves keys from its last copy until store.max_staleness' })
    else if (state === 'behind') status.findings.push({ id: 'cluster-replica-behind', severity: 'medium', message: `${where}: behind the shared state`, fix: 'A replica catches up within a second; if this one does not, check its Redis connection and restart it' })
  }
  return status
}
