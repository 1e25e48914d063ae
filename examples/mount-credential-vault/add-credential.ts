/*
 * Add one upstream credential to the vault, encrypted at rest:
 *
 *   GATEHOUSE_ENCRYPTION_KEY=… npx ts-node examples/mount-credential-vault/add-credential.ts claude
 *
 * The key is read from stdin (so it stays out of the shell history and the process list).
 */
import { createCredentialVault, type CredentialInput } from '@gatehouse/credential-vault'

async function main(): Promise<void> {
  const [provider, label] = process.argv.slice(2)
  const key = process.env.GATEHOUSE_ENCRYPTION_KEY
  if (!provider || !key) {
    console.error('usage: GATEHOUSE_ENCRYPTION_KEY=… add-credential.ts <claude|openai|gemini> [label] < key-file')
    process.exit(2)
  }
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  const token = Buffer.concat(chunks).toString('utf8').trim()
  const vault = createCredentialVault({ dir: process.env.AUTH_DIR ?? './auths', encryption: { key }, watch: false, rescanInterval: 0 })
  try {
    const input: CredentialInput = { provider, type: 'api_key', token, ...(label ? { label } : {}) }
    const { id } = await vault.add(input)
    console.log(id)
  } finally {
    await vault.shutdown()
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
