import { rawHttp, type RawReply } from '@gatehouse/testing'

/** Value of one sample in Prometheus text, or undefined. `series` is `name{a="b"}` exactly as printed. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/**
 * Send `head` (request line and header lines, without the blank line) over a raw loopback socket
 * and read until the server closes: fetch and supertest always add a Host header, this does not.
 */
export const rawRequest = (port: number, head: string): Promise<RawReply> =>
  rawHttp(`http://127.0.0.1:${port}`, `${head}\r\n\r\n`, { end: true })
