import * as fs from 'node:fs'
import { tempDirs } from '@gatehouse/testing'

/** Temp dirs for this package's tests: `tmpDir()` makes one, `cleanupDirs()` removes them all. */
export const { make: tmpDir, cleanup: cleanupDirs } = tempDirs('dfp')

export const modeOf = (p: string): number => fs.statSync(p).mode & 0o777
