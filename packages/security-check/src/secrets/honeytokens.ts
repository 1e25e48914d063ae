import { readFileSync } from 'node:fs'
import { GatehouseError } from '@gatehouse/core'
import { PKG, SecurityCheckErrorCodes } from '../errors'

/**
 * Read a honeytoken digest file: one sha256 (64 hex characters) of a honeytoken per line, `#`
 * comments and blank lines ignored. The file holds digests, never the tokens, so it can sit in CI
 * beside the code it checks. A missing file or a line that is not a digest is
 * GH_SC_HONEYTOKENS_INVALID; the line is named by number, never shown (it could be a token).
 */
export function readHoneytokenDigests(path: string, shown = path): Set<string> {
  const invalid = (why: string): GatehouseError =>
    new GatehouseError(SecurityCheckErrorCodes.GH_SC_HONEYTOKENS_INVALID, `${PKG}: honeytokens file ${JSON.stringify(shown)} ${why}`, 400)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw invalid((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be read')
  }
  const digests = new Set<string>()
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    if (!/^[0-9a-fA-F]{64}$/.test(line)) {
      throw invalid(`line ${i + 1} is not a sha256 digest (64 hex characters): the file holds digests of the honeytokens, never the tokens`)
    }
    digests.add(line.toLowerCase())
  })
  return digests
}
