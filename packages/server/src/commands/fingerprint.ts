import { resolveDeviceFingerprintConfig, rotateDeviceFingerprint } from '@gatehouse/device-fingerprint'
import { authPaths } from '../auth-paths'
import { EXIT_OK, EXIT_USAGE, reportRefusal, type CommandContext, type ExitCode } from './context'

/** `gatehouse fingerprint rotate`: a new device fingerprint secret, sent from the next start. */
export async function fingerprintCommand(ctx: CommandContext): Promise<ExitCode> {
  if (ctx.sub !== 'rotate') {
    ctx.io.err('gatehouse: fingerprint needs: rotate\n')
    return EXIT_USAGE
  }
  const loaded = ctx.load()
  if (typeof loaded === 'number') return loaded
  const { config } = loaded
  try {
    rotateDeviceFingerprint(resolveDeviceFingerprintConfig({ dir: authPaths(config).dir, header: config.device_fingerprint.header }))
  } catch (e) {
    return reportRefusal(ctx.io, e)
  }
  ctx.io.out('device fingerprint rotated: restart the gateway to send the new one\n')
  return EXIT_OK
}
