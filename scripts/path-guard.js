#!/usr/bin/env node
'use strict'
/**
 * Path guard: a pull request that changes a protected package needs the approval of a code owner of
 * every protected file it changes, given on the pull request's current head commit.
 *
 * In GitHub Actions (.github/workflows/path-guard.yml) it reads, through the GitHub API with `gh`:
 * the pull request's changed files, its reviews, and .github/CODEOWNERS as it is on the BASE commit
 * (a pull request cannot make itself an owner). Team owners (@org/team) are expanded with
 * PATH_GUARD_TEAM_TOKEN (a token that may read the organisation's team members); without one, only
 * owners named as users can be checked and the guard fails closed.
 *
 *   node scripts/path-guard.js                    in a pull_request_target or pull_request_review run
 *   node scripts/path-guard.js --input FILE.json  decide from recorded data:
 *       { files, codeowners, reviews, headSha, author, teamMembers?, requiredApprovals? }
 *
 * Exit 0: allowed (or no protected path changed); 1: blocked; 2: usage or API error.
 */
const fs = require('node:fs')
const { execFileSync } = require('node:child_process')
const { Buffer } = require('node:buffer')

/** The packages whose changes need a code owner's approval (SPEC §5). */
const PROTECTED = ['packages/credential-vault/**', 'packages/client-auth/**', 'packages/request-guard/**']

function escapeRe(s) {
  return s.replace(/[.+^${}()|[\]\\]/g, '\\$&')
}

/** A CODEOWNERS / gitignore-style pattern as a RegExp over repository-relative paths. */
function patternToRegExp(pattern) {
  let p = pattern.trim()
  const dirOnly = p.endsWith('/')
  if (dirOnly) p = p.replace(/\/+$/, '')
  const anchored = p.startsWith('/') || p.includes('/')
  p = p.replace(/^\/+/, '')
  let re = ''
  for (let i = 0; i < p.length; i++) {
    const c = p[i]
    if (c === '*' && p[i + 1] === '*') {
      if (p[i + 2] === '/') {
        re += '(?:.*/)?'
        i += 2
      } else {
        re += '.*'
        i += 1
      }
    } else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else re += escapeRe(c)
  }
  const lastSegment = p.slice(p.lastIndexOf('/') + 1)
  // `dir/` and plain names cover everything below; `dir/*` and `*.js` match files themselves only.
  const suffix = dirOnly ? '/.*' : /[*?]/.test(lastSegment) && !lastSegment.endsWith('**') ? '' : '(?:/.*)?'
  return new RegExp(`^${anchored ? '' : '(?:.*/)?'}${re}${suffix}$`)
}

/** Parse CODEOWNERS: [{pattern, owners, re}] in file order (the last match wins). */
function parseCodeowners(text) {
  const rules = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim()
    if (!line) continue
    const [pattern, ...owners] = line.split(/\s+/)
    rules.push({ pattern, owners, re: patternToRegExp(pattern) })
  }
  return rules
}

function ownersOf(rules, file) {
  let owners
  for (const r of rules) if (r.re.test(file)) owners = r.owners
  return owners || []
}

const isProtected = (file) => PROTECTED.some((p) => patternToRegExp(p).test(file))

/** The decision, from plain data. */
function decide({ files, codeowners, reviews, headSha, author, teamMembers = {}, requiredApprovals = 1 }) {
  const protectedFiles = files.filter(isProtected)
  if (protectedFiles.length === 0)
    return { ok: true, protectedFiles, problems: [], summary: 'no protected path changed' }
  const rules = parseCodeowners(codeowners || '')
  // The latest decisive review of each reviewer (comments do not change an approval).
  const latest = new Map()
  for (const r of [...reviews].sort((a, b) => String(a.submitted_at).localeCompare(String(b.submitted_at)))) {
    const login = r.user && r.user.login
    if (!login || !['APPROVED', 'CHANGES_REQUESTED', 'DISMISSED'].includes(r.state)) continue
    latest.set(login.toLowerCase(), r)
  }
  const approvers = [...latest.entries()]
    .filter(
      ([login, r]) =>
        r.state === 'APPROVED' && r.commit_id === headSha && login !== String(author).toLowerCase(),
    )
    .map(([login]) => login)
  const staleApprovals = [...latest.entries()]
    .filter(([, r]) => r.state === 'APPROVED' && r.commit_id !== headSha)
    .map(([login]) => login)
  const blocking = [...latest.entries()]
    .filter(([, r]) => r.state === 'CHANGES_REQUESTED')
    .map(([login]) => login)
  const unresolvedTeams = new Set()
  const isOwner = (login, owners) =>
    owners.some((o) => {
      const name = o.replace(/^@/, '').toLowerCase()
      if (!o.startsWith('@')) return false // e-mail owners cannot be matched to a login
      if (!name.includes('/')) return name === login
      const members = teamMembers[name]
      if (!members) {
        unresolvedTeams.add(name)
        return false
      }
      return members.map((m) => m.toLowerCase()).includes(login)
    })
  const problems = []
  for (const file of protectedFiles) {
    const owners = ownersOf(rules, file)
    if (owners.length === 0) {
      problems.push(`${file}: no code owner in CODEOWNERS`)
      continue
    }
    const ok = approvers.filter((a) => isOwner(a, owners))
    if (ok.length < requiredApprovals) {
      problems.push(
        `${file}: needs ${requiredApprovals} approval(s) on ${String(headSha).slice(0, 12)} from ${owners.join(' ')} (has ${ok.length})`,
      )
    }
  }
  const ownerBlocks = blocking.filter((login) =>
    protectedFiles.some((f) => isOwner(login, ownersOf(rules, f))),
  )
  for (const login of ownerBlocks) problems.push(`changes requested by code owner @${login}`)
  const notes = []
  if (staleApprovals.length)
    notes.push(`approvals of an earlier commit do not count: ${staleApprovals.map((l) => `@${l}`).join(' ')}`)
  if (unresolvedTeams.size)
    notes.push(
      `team membership unknown for ${[...unresolvedTeams].map((t) => `@${t}`).join(' ')}: set the PATH_GUARD_TOKEN secret (organisation members: read)`,
    )
  const ok = problems.length === 0
  return {
    ok,
    protectedFiles,
    approvers,
    problems,
    notes,
    summary: ok
      ? `${protectedFiles.length} protected file(s) changed, approved by code owners`
      : `${protectedFiles.length} protected file(s) changed without the code owners' approval`,
  }
}

// ---------------------------------------------------------------- GitHub

function gh(args, token) {
  const env = { ...process.env, ...(token ? { GH_TOKEN: token } : {}) }
  return execFileSync('gh', ['api', ...args], {
    encoding: 'utf8',
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  })
}

function ghJsonPages(path) {
  // --paginate --slurp gives one array of pages
  const pages = JSON.parse(gh(['--paginate', '--slurp', path]))
  return pages.flat()
}

function fromGitHub() {
  const repo = process.env.GITHUB_REPOSITORY
  const event = JSON.parse(fs.readFileSync(process.env.GITHUB_EVENT_PATH, 'utf8'))
  const pr = event.pull_request
  if (!repo || !pr) throw new Error('not a pull request event (GITHUB_REPOSITORY, GITHUB_EVENT_PATH)')
  const changed = ghJsonPages(`repos/${repo}/pulls/${pr.number}/files?per_page=100`)
  // A file moved out of a protected package counts under its old name too.
  const files = changed.flatMap((f) =>
    f.previous_filename ? [f.filename, f.previous_filename] : [f.filename],
  )
  const reviews = ghJsonPages(`repos/${repo}/pulls/${pr.number}/reviews?per_page=100`)
  let codeowners = ''
  for (const p of ['.github/CODEOWNERS', 'CODEOWNERS', 'docs/CODEOWNERS']) {
    try {
      const c = JSON.parse(gh([`repos/${repo}/contents/${p}?ref=${pr.base.sha}`]))
      codeowners = Buffer.from(c.content, 'base64').toString('utf8')
      break
    } catch {
      // try the next location
    }
  }
  const teamMembers = {}
  const teamToken = process.env.PATH_GUARD_TEAM_TOKEN
  const teams = new Set()
  for (const r of parseCodeowners(codeowners))
    for (const o of r.owners) if (/^@[^/]+\/.+/.test(o)) teams.add(o.slice(1).toLowerCase())
  if (teamToken) {
    for (const t of teams) {
      const [org, slug] = t.split('/')
      try {
        teamMembers[t] = JSON.parse(
          gh(['--paginate', '--slurp', `orgs/${org}/teams/${slug}/members?per_page=100`], teamToken),
        )
          .flat()
          .map((m) => m.login)
      } catch {
        // unresolved: reported in the notes
      }
    }
  }
  return {
    files,
    codeowners,
    reviews,
    headSha: pr.head.sha,
    author: pr.user.login,
    teamMembers,
    requiredApprovals: Number(process.env.REQUIRED_OWNER_APPROVALS || 1),
  }
}

function report(result) {
  const lines = [`path-guard: ${result.summary}`]
  for (const f of result.protectedFiles) lines.push(`  protected: ${f}`)
  for (const p of result.problems) lines.push(`  BLOCKED: ${p}`)
  for (const n of result.notes || []) lines.push(`  note: ${n}`)
  console.log(lines.join('\n'))
  for (const p of result.problems) console.log(`::error title=path-guard::${p}`)
  if (process.env.GITHUB_STEP_SUMMARY)
    fs.appendFileSync(
      process.env.GITHUB_STEP_SUMMARY,
      `### Path guard\n\n\`\`\`\n${lines.join('\n')}\n\`\`\`\n`,
    )
}

function main(argv) {
  let data
  try {
    const i = argv.indexOf('--input')
    if (i >= 0) {
      if (!argv[i + 1]) throw new Error('--input needs a file')
      data = JSON.parse(fs.readFileSync(argv[i + 1], 'utf8'))
    } else if (argv.length) {
      throw new Error(`unknown argument ${argv[0]}`)
    } else data = fromGitHub()
  } catch (e) {
    console.error(`path-guard: ${e.message}`)
    return 2
  }
  if (!Number.isInteger(data.requiredApprovals ?? 1) || (data.requiredApprovals ?? 1) < 1) {
    console.error('path-guard: REQUIRED_OWNER_APPROVALS must be a whole number >= 1')
    return 2
  }
  const result = decide(data)
  report(result)
  return result.ok ? 0 : 1
}

if (require.main === module) process.exitCode = main(process.argv.slice(2))

module.exports = { decide, parseCodeowners, patternToRegExp, ownersOf, isProtected, PROTECTED }
