import { countBySeverity, diagnose } from '../doctor'
import { EXIT_FAILURE, EXIT_OK, type CommandContext, type ExitCode } from './context'
import { readClusterStatus } from './redis'

/** `gatehouse doctor [--json]`: the security posture, and in cluster mode each replica's view; EXIT_FAILURE on a high finding. */
export async function doctorCommand(ctx: CommandContext): Promise<ExitCode> {
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  const findings = await diagnose(loaded.config)
  // Cluster mode: which replica holds which version of the shared state.
  const cluster = await readClusterStatus(loaded.config)
  if (cluster) findings.push(...cluster.findings)
  const { io } = ctx
  if (ctx.flags.json === true) {
    io.out(`${JSON.stringify({ findings, ...(cluster ? { cluster: { shared: cluster.shared, replicas: cluster.replicas } } : {}) }, null, 2)}\n`)
  } else {
    if (cluster) {
      io.out(`cluster: keys version ${cluster.shared.keys_version}, runtime version ${cluster.shared.runtime_version}, credentials version ${cluster.shared.credentials_version}, ${cluster.replicas.length} replica${cluster.replicas.length === 1 ? '' : 's'} reporting\n`)
      for (const r of cluster.replicas) io.out(`  ${r.id} ${r.host} pid ${r.pid}: keys ${r.keys_version}, runtime ${r.runtime_version}, credentials ${r.credentials_version ?? '?'}, ${r.state}\n`)
    }
    for (const x of findings) io.out(`${x.severity.toUpperCase().padEnd(6)} ${x.message}\n       fix: ${x.fix}\n`)
    const c = countBySeverity(findings)
    io.out(`${findings.length} findings: ${c.high} high, ${c.medium} medium, ${c.low} low (${loaded.source})\n`)
  }
  return findings.some((x) => x.severity === 'high') ? EXIT_FAILURE : EXIT_OK
}
