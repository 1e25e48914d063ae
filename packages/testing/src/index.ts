export * from './app'
export * from './certs'
export * from './mock-upstream'
export * from './docs'
