import { randomBytes } from 'node:crypto'
import { SECRET_RULE_IDS, scanText } from '../src'
import { ALNUM, BASE64, FAKE_KEYS, HEX, LOWER, URLSAFE, rand } from './helpers'

// A held-out style corpus, generated afresh on every run: every rule's keys planted in eight file
// contexts and in URLs, among filler and look-alikes. Recall and precision are counted per planted
// line; the bar is the (>= 0.99 each).

type Context = (key: string) => string
const CONTEXTS: Record<string, Context> = {
  env: (k) => `SERVICE_TOKEN=${k}`,
  json: (k) => `  "api_key": ${JSON.stringify(k)},`,
  yaml: (k) => `  token: "${k}"`,
  log: (k) => `2026-01-01T00:00:00Z INFO calling upstream with credential ${k} (retry 1)`,
  markdown: (k) => `Set the key to \`${k}\` in your shell.`,
  python: (k) => `API_KEY = '${k}'`,
  typescript: (k) => `const apiKey = "${k}"`,
  shell: (k) => `export TOKEN="${k}"`,
}
// Formats that appear inside URLs (clone URLs, path segments).
const URL_CONTEXTS: Record<string, Context> = {
  'url-userinfo': (k) => `git clone https://${k}@github.com/acme/app.git`,
  'url-path': (k) => `curl https://proxy.internal/v1/${k}/models`,
}
const URL_RULES = ['github-token', 'github-fine-grained-token', 'gitlab-token', 'openai-user-key', 'anthropic-api-key', 'npm-token']

/** Lines no scanner should report: look-alikes of the planted formats, hashes, ids, base64. */
const LOOKALIKES: (() => string)[] = [
  () => `const hash = "${rand(HEX, 64)}"`,
  () => `id: ${rand(HEX, 8)}-${rand(HEX, 4)}-${rand(HEX, 4)}-${rand(HEX, 4)}-${rand(HEX, 12)}`,
  () => `data = "${rand(BASE64, 120)}"`,
  () => `OPENAI_API_KEY=sk-${rand(ALNUM, 47)}`, // one short of the 48-character format
  () => `OPENAI_API_KEY=sk-${rand(ALNUM, 49)}`, // one too long
  () => `key: sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`,
  () => `GITHUB_TOKEN=ghp_${rand(ALNUM, 20)}`, // too short
  () => `path: /usr/share/${rand(LOWER, 8)}/ghp_notes.txt`,
  () => `integrity: sha512-${rand(BASE64, 86)}==`,
  () => `blob: ${rand(BASE64, 30)}/AKIA${rand('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}${rand(BASE64, 10)}`,
  () => `const task_id = "task-${rand(URLSAFE, 30)}"`,
  () => `See https://github.com/${rand(LOWER, 8)}/${rand(LOWER, 10)}/blob/main/README.md`,
]

const FILLER = [
  'import { readFile } from "node:fs/promises"',
  '# configuration for the staging environment',
  'def handler(event, context):',
  '  retries: 3',
  'echo "deploying $SERVICE"',
  '- step two: restart the worker',
]

interface Plant {
  readonly rule: string
  readonly where: string
}

function generate(plantsPerRule: number): { text: string; planted: Map<number, Plant> } {
  const lines: string[] = []
  const planted = new Map<number, Plant>()
  const pick = <T>(xs: readonly T[]): T => xs[randomBytes(2).readUInt16BE(0) % xs.length]!
  const push = (line: string, plant?: Plant): void => {
    for (let i = 0; i < 2; i++) lines.push(pick(FILLER))
    lines.push(pick(LOOKALIKES)())
    for (const l of line.split('\n')) {
      if (plant && !planted.has(lines.length + 1)) planted.set(lines.length + 1, plant)
      lines.push(l)
      plant = undefined // a multi-line key (PEM) is counted on its first line
    }
  }
  for (const rule of SECRET_RULE_IDS) {
    for (let n = 0; n < plantsPerRule; n++) {
      for (const [where, ctx] of Object.entries(CONTEXTS)) {
        const key = FAKE_KEYS[rule]!()
        // A multi-line key keeps its own lines in text files; JSON escapes them.
        push(where === 'json' || !key.includes('\n') ? ctx(key) : key, { rule, where })
      }
    }
  }
  for (const rule of URL_RULES) {
    for (let n = 0; n < plantsPerRule; n++) {
      for (const [where, ctx] of Object.entries(URL_CONTEXTS)) push(ctx(FAKE_KEYS[rule]!()), { rule, where })
    }
  }
  return { text: `${lines.join('\n')}\n`, planted }
}

describe('secret scan on a generated corpus', () => {
  it('finds >= 99% of planted keys with >= 99% precision, the 48-character OpenAI key and keys in URLs included', () => {
    const { text, planted } = generate(4)
    const findings = scanText(text)
    let truePositives = 0
    const falsePositives: string[] = []
    const found = new Set<number>()
    for (const f of findings) {
      const plant = planted.get(f.line)
      if (plant?.rule === f.rule && !found.has(f.line)) {
        truePositives++
        found.add(f.line)
      } else {
        falsePositives.push(`${f.rule} at line ${f.line}: ${f.match}`)
      }
    }
    const missed = [...planted].filter(([line]) => !found.has(line)).map(([, p]) => `${p.rule} in ${p.where}`)
    const recall = truePositives / planted.size
    const precision = findings.length === 0 ? 0 : truePositives / findings.length
    // GH_CORPUS_REPORT=1 prints the figures (for the closing note).
    if (process.env.GH_CORPUS_REPORT) {
      process.stdout.write(`corpus: ${planted.size} planted, ${findings.length} findings, recall ${recall.toFixed(4)}, precision ${precision.toFixed(4)}\n`)
    }
    if (recall < 0.99 || precision < 0.99) {
      throw new Error(`recall ${recall.toFixed(4)}, precision ${precision.toFixed(4)}\nmissed: ${missed.join('; ')}\nfalse positives: ${falsePositives.join('; ')}`)
    }
    expect(planted.size).toBeGreaterThan(1000)
    expect(missed.filter((m) => m.startsWith('openai-user-key'))).toEqual([])
    expect(missed.filter((m) => m.includes(' in url-'))).toEqual([])
  })
})
