import net from 'node:net'
import os from 'node:os'

/** True when the loopback interface has ::1 (tests over IPv6 are skipped otherwise). */
export const hasIpv6Loopback = Object.values(os.networkInterfaces()).some((list) =>
  (list ?? []).some((a) => a.family === 'IPv6' && a.address === '::1'),
)

/** A loopback port nothing listens on (a listener opened and closed again): free to bind, refused to connect. */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Whether something accepts a connection on `port` now (a connection opened and closed again). */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
