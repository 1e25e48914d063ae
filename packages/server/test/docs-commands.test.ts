import { readdirSync, readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { shBlocks } from '@gatehouse/testing'
import { root } from './cli-helpers'
import { GUIDE_SECTIONS } from './guide-helpers'

// Every ```sh block a user may copy from the README, the docs, the examples and the package
// READMEs is either executed as written by a test (EXECUTED: the test and what it leaves out), or
// listed here with the reason it is not (NOT_EXECUTED). A new block fails this test until it is one
// or the other.

const docs = [
  'README.md',
  ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ...readdirSync(join(root, 'examples')).map((d) => `examples/${d}/README.md`),
  ...readdirSync(join(root, 'packages')).map((d) => `packages/${d}/README.md`),
].filter((f) => {
  try {
    readFileSync(join(root, f))
    return true
  } catch {
    return false
  }
})

/** `file#n` (the n-th sh block of the file) → the test that runs it as written. */
const EXECUTED: Record<string, string> = {
  'README.md#2': 'sdk.test.ts',
  'examples/quickstart/README.md#0': 'examples.test.ts',
}

/** READMEs whose every sh block (from the one named) one test runs in order, as a walkthrough. */
const WALKED: Record<string, { test: string; from: number }> = {
  'examples/mount-audit-log/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'examples/mount-client-auth/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'examples/mount-credential-vault/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'examples/mount-hsts/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'examples/mount-ip-filter/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'examples/mount-proxy/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'examples/mount-rate-limit/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'examples/mount-request-guard/README.md': { test: 'readme-walkthroughs.test.ts', from: 0 },
  'packages/security-check/README.md': { test: 'readme-walkthroughs.test.ts', from: 1 },
}

/** Blocks no test runs as written, and why. */
const NOT_EXECUTED: [RegExp, string][] = [
  [/^packages\/[a-z-]+\/README\.md#0$|^examples\/ci-security-check\/README\.md#0$/, 'npm install from the registry: what a release publishes, not this checkout'],
  [/^README\.md#[03]$/, 'npm ci, npm start, npm test, lint, bench and .ci/run themselves: what CI runs'],
  [/^README\.md#1$/, 'needs a real Anthropic key; examples/quickstart runs the same steps against the mock provider'],
  [/^docs\/deployment\.md#\d+$/, 'needs a Docker engine, root or a published release; the image runtime tree runs in packages/server/test/deploy/'],
]

/**
 * The operator guide's blocks are claimed by the `## ` section they sit under, not by their index:
 * each section's test runs every block of it (GUIDE_SECTIONS), so a block added to one section
 * shifts no other's claim.
 */
const GUIDE_FILE = 'docs/operator-guide.md'

const blocks = docs.flatMap((file) =>
  shBlocks(readFileSync(join(root, file), 'utf8'), file).map((block, i) => ({ id: `${file}#${i}`, file, block })),
)

/** The test that runs a block as written, if any. */
const executedBy = (b: (typeof blocks)[number]): string | undefined => {
  if (b.file === GUIDE_FILE) return GUIDE_SECTIONS[b.block.section]
  const walked = WALKED[b.file]
  return walked && Number(b.id.split('#')[1]) >= walked.from ? walked.test : EXECUTED[b.id]
}

/** GitHub's anchor of a heading. */
const anchorOf = (heading: string): string =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-')

describe('the README points at the operator guide', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const headings = readFileSync(join(root, GUIDE_FILE), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('## '))
    .map((l) => l.slice(3).trim())

  it('links the guide section of each feature the guide walks through after the basics (networks, rotation, JWT, syslog)', () => {
    const features = Object.keys(GUIDE_SECTIONS).filter((s) => GUIDE_SECTIONS[s] === 'operator-guide-features.test.ts')
    expect(features.length).toBeGreaterThanOrEqual(4)
    for (const section of features) expect(readme).toContain(`(${GUIDE_FILE}#${anchorOf(section)})`)
  })

  it('every link into the guide names a heading it has', () => {
    const anchors = [...readme.matchAll(/\(docs\/operator-guide\.md#([^)]+)\)/g)].map((m) => m[1]!)
    expect(anchors.length).toBeGreaterThan(0)
    expect(anchors.filter((a) => !headings.map(anchorOf).includes(a))).toEqual([])
  })

  it('keeps the two newcomer commands (install and start, test) on its first screen', () => {
    const firstScreen = readme.split('\n').slice(0, 25).join('\n')
    expect(firstScreen).toMatch(/^npm ci && npm start\b/m)
    expect(firstScreen).toMatch(/^npm test\b/m)
  })
})

describe('shell commands in the docs', () => {
  it('are each executed as written by a named test, or listed with the reason they are not', () => {
    const unaccounted = blocks
      .filter((b) => executedBy(b) === undefined && !NOT_EXECUTED.some(([re]) => re.test(b.id)))
      .map((b) => `${b.id} (${b.block.section}): ${b.block.text.split('\n')[0]}`)
    expect(unaccounted).toEqual([])
    // Each named test really reads the document it is said to run, and each claim names a block.
    for (const [id, test] of Object.entries(EXECUTED)) {
      const file = id.split('#')[0]!
      expect(blocks.some((b) => b.id === id)).toBe(true)
      expect(readFileSync(join(__dirname, test), 'utf8')).toContain(basename(file))
    }
    for (const [file, { test }] of Object.entries(WALKED)) {
      expect(blocks.some((b) => b.file === file)).toBe(true)
      expect(readFileSync(join(__dirname, test), 'utf8')).toContain(file)
    }
    for (const [section, test] of Object.entries(GUIDE_SECTIONS)) {
      expect(blocks.some((b) => b.file === GUIDE_FILE && b.block.section === section)).toBe(true)
      expect(readFileSync(join(__dirname, test), 'utf8')).toContain(basename(GUIDE_FILE))
    }
  })
})
