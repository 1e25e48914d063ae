import * as fs from 'node:fs'
import { join } from 'node:path'
import { isEnvelopeShaped } from './envelope'
import { FILE_PATTERN } from './record'

/** The names of the vault's credential files in `dir` (none when it cannot be read), sorted. */
export function credentialFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((n) => FILE_PATTERN.test(n)).sort()
  } catch {
    return []
  }
}

/**
 * The vault files in `dir` that are plaintext (not an encrypted envelope). With encryption on the
 * vault refuses each of them (`GH_VAULT_PLAINTEXT_REFUSED`); `gatehouse doctor` lists them. Reads
 * names and shapes only, never follows a link, and says nothing of the contents.
 */
export function plaintextCredentialFiles(dir: string): string[] {
  return credentialFiles(dir).filter((name) => {
    try {
      const fd = fs.openSync(join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
      try {
        if (!fs.fstatSync(fd).isFile()) return false
        return !isEnvelopeShaped(JSON.parse(fs.readFileSync(fd, 'utf8')))
      } finally {
        fs.closeSync(fd)
      }
    } catch {
      return false // unreadable, a link, or not JSON: the vault reports those itself
    }
  })
}
