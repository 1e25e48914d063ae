import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ts from 'typescript'

const PACKAGES_DIR = join(__dirname, '..', '..')

/**
 * Transpile core's and this package's sources plus a fixture into a temp dir, once, so that child
 * processes run the current sources as plain JavaScript (see fixtures/run-built.js). Returns the
 * argv for `node`.
 */
export async function buildForChild(fixture: string): Promise<{ dir: string; args: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'gh-rl-child-'))
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.CommonJS,
    target: ts.ScriptTarget.ES2022,
    esModuleInterop: true,
  }
  const emit = async (from: string, to: string): Promise<void> => {
    const out = ts.transpileModule(await readFile(from, 'utf8'), {
      compilerOptions: options,
      fileName: from,
    }).outputText
    await writeFile(to, out)
  }
  for (const pkg of ['core', 'rate-limit']) {
    await mkdir(join(dir, pkg, 'src'), { recursive: true })
    for (const file of await readdir(join(PACKAGES_DIR, pkg, 'src'))) {
      if (file.endsWith('.ts'))
        await emit(join(PACKAGES_DIR, pkg, 'src', file), join(dir, pkg, 'src', file.replace(/\.ts$/, '.js')))
    }
  }
  await mkdir(join(dir, 'rate-limit', 'test', 'fixtures'), { recursive: true })
  const entry = join(dir, 'rate-limit', 'test', 'fixtures', `${fixture}.js`)
  await emit(join(__dirname, 'fixtures', `${fixture}.ts`), entry)
  return { dir, args: [join(__dirname, 'fixtures', 'run-built.js'), dir, PACKAGES_DIR, entry] }
}
