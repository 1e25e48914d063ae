#!/usr/bin/env node
'use strict'
/**
 * Stage what the Gatehouse server needs at run time, and nothing else: the Dockerfile's build stage
 * runs this, and the deploy tests run the same script to check the result as uid 65534.
 *
 *   node scripts/stage-runtime.js DEST               DEST/ gets node_modules/ and packages/<name>/{package.json,dist}
 *   node scripts/stage-runtime.js --container DEST   DEST/app (as above), DEST/config/config.yaml (the image's
 *                                                    default config), empty DEST/auths, DEST/logs (0700), DEST/tls
 *
 * The package set is the dependency closure of packages/server in package-lock.json, resolved the way
 * Node resolves it (nested node_modules first), from an installed tree (npm ci, then npm run build):
 * exactly the production dependencies of the server, so `npm ci --omit=dev` is not needed and dev
 * tools (jest, typescript, eslint, ...) and @gatehouse/testing never reach the image.
 */
const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..')
const START = 'packages/server'

/** The default /config/config.yaml of the image: every writable path on a volume. */
const CONTAINER_CONFIG = `# Gatehouse in a container: the image's default /config/config.yaml.
# Mount your own over /config (read-only) to change it; keep the paths below, they are the volumes.
# Secrets come from the environment: GATEHOUSE_ENCRYPTION_KEY, GATEHOUSE_KEY_SALT, GATEHOUSE_MANAGEMENT_KEY,
# ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY (unset ones are generated into /auths, or left off).
server:
  host: 0.0.0.0                   # GATEHOUSE_HOST (set to 0.0.0.0 in the image) overrides this too
  port: 8317
  tls:
    enabled: false                # put server.crt and server.key in the /tls volume, then enable
    cert_file: /tls/server.crt
    key_file: /tls/server.key
    min_version: "1.2"
auth:
  dir: /auths                     # volume, owned by 65534, 0700
logging:
  audit:
    file: /logs/audit.log         # volume, owned by 65534, 0700
metrics:
  enabled: true
  host: 0.0.0.0                   # publish 9090 on the host's loopback only (see docker-compose.yml)
  port: 9090
`

function usage(msg) {
  if (msg) console.error(`stage-runtime: ${msg}`)
  console.error('usage: node scripts/stage-runtime.js [--container] DEST')
  return 2
}

/** Where `name`, required from the lockfile path `from`, resolves: the nearest node_modules up the tree. */
function resolveIn(packages, from, name) {
  let dir = from
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`
    if (packages[candidate]) return candidate
    if (!dir) return undefined
    const i = dir.lastIndexOf('/node_modules/')
    dir = i >= 0 ? dir.slice(0, i) : ''
  }
}

/** Lockfile paths of everything `start` needs at run time: external packages and workspace packages. */
function runtimeClosure(lock, start = START) {
  const packages = lock.packages
  if (!packages || !packages[start])
    throw new Error(`package-lock.json has no entry for ${start} (lockfileVersion 2 or 3 needed)`)
  const external = new Set()
  const workspaces = new Set([start])
  const links = new Map()
  const queue = [start]
  while (queue.length) {
    const from = queue.shift()
    const entry = packages[from]
    const optional = new Set(Object.keys(entry.optionalDependencies || {}))
    const peerMeta = entry.peerDependenciesMeta || {}
    for (const [name, meta] of Object.entries(peerMeta)) if (meta && meta.optional) optional.add(name)
    const names = new Set([
      ...Object.keys(entry.dependencies || {}),
      ...Object.keys(entry.optionalDependencies || {}),
      ...Object.keys(entry.peerDependencies || {}),
    ])
    for (const name of names) {
      const at = resolveIn(packages, from, name)
      if (!at) {
        if (optional.has(name)) continue
        throw new Error(`${from} needs ${name}, which package-lock.json does not resolve: run npm install`)
      }
      const target = packages[at]
      if (target.link) {
        links.set(at, target.resolved)
        if (!workspaces.has(target.resolved)) {
          workspaces.add(target.resolved)
          queue.push(target.resolved)
        }
      } else if (!external.has(at)) {
        external.add(at)
        queue.push(at)
      }
    }
  }
  return { external: [...external].sort(), workspaces: [...workspaces].sort(), links }
}

/** Copy a directory tree, leaving out nested node_modules (staged on their own) and build caches. */
function copyTree(src, dest) {
  fs.cpSync(src, dest, {
    recursive: true,
    dereference: false,
    verbatimSymlinks: true,
    filter: (p) => {
      const base = path.basename(p)
      if (p !== src && base === 'node_modules') return false
      return !base.endsWith('.tsbuildinfo')
    },
  })
}

function stage(dest, { root = ROOT } = {}) {
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8'))
  const { external, workspaces, links } = runtimeClosure(lock)
  fs.mkdirSync(dest, { recursive: true })
  for (const at of external) {
    const src = path.join(root, at)
    if (!fs.existsSync(src)) {
      const optional = lock.packages[at].optional
      if (optional) continue // an optional dependency for another platform
      throw new Error(`${at} is in package-lock.json but not installed: run npm ci`)
    }
    copyTree(src, path.join(dest, at))
  }
  for (const ws of workspaces) {
    const dist = path.join(root, ws, 'dist')
    if (!fs.existsSync(dist)) throw new Error(`${ws}/dist is missing: run npm run build`)
    fs.mkdirSync(path.join(dest, ws), { recursive: true })
    fs.copyFileSync(path.join(root, ws, 'package.json'), path.join(dest, ws, 'package.json'))
    copyTree(dist, path.join(dest, ws, 'dist'))
  }
  for (const [at, target] of links) {
    const link = path.join(dest, at)
    fs.mkdirSync(path.dirname(link), { recursive: true })
    fs.rmSync(link, { force: true, recursive: true })
    fs.symlinkSync(path.relative(path.dirname(link), path.join(dest, target)), link)
  }
  for (const f of ['LICENSE'])
    if (fs.existsSync(path.join(root, f))) fs.copyFileSync(path.join(root, f), path.join(dest, f))
  return { external, workspaces }
}

function stageContainer(dest, options) {
  const result = stage(path.join(dest, 'app'), options)
  fs.mkdirSync(path.join(dest, 'config'), { recursive: true, mode: 0o755 })
  fs.writeFileSync(path.join(dest, 'config', 'config.yaml'), CONTAINER_CONFIG, { mode: 0o644 })
  for (const d of ['auths', 'logs']) {
    fs.mkdirSync(path.join(dest, d), { recursive: true })
    fs.chmodSync(path.join(dest, d), 0o700)
  }
  fs.mkdirSync(path.join(dest, 'tls'), { recursive: true, mode: 0o755 })
  return result
}

function main(argv) {
  const container = argv.includes('--container')
  const rest = argv.filter((a) => a !== '--container')
  if (rest.length !== 1 || rest[0].startsWith('-'))
    return usage(rest.length ? `unexpected ${rest.join(' ')}` : 'DEST is missing')
  const dest = path.resolve(rest[0])
  const { external, workspaces } = container ? stageContainer(dest) : stage(dest)
  console.log(
    `staged ${workspaces.length} workspace packages and ${external.length} dependencies into ${dest}`,
  )
  return 0
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (e) {
    console.error(`stage-runtime: ${e.message}`)
    process.exitCode = 1
  }
}

module.exports = { runtimeClosure, stage, stageContainer, CONTAINER_CONFIG }
