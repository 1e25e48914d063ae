/**
 * CRC-32 (IEEE 802.3, the checksum of zlib, gzip and PNG), for the checksum in Gatehouse client
 * keys. Written here rather than taken from node:zlib, whose crc32 exists only from Node 20.15 and
 * 22.2 (Gatehouse supports every Node 20), or from a package: a table and a loop are all it takes.
 */
const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 of a string's UTF-8 bytes (or of bytes), as an unsigned 32-bit number. */
export function crc32(data: string | Uint8Array): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
