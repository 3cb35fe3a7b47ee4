// Preloaded into an agent by a test (NODE_OPTIONS=--import=…): on SIGUSR2 the process throws an
// exception nothing catches, as a bug would.
process.on('SIGUSR2', () => {
  setImmediate(() => {
    throw new Error('an exception thrown for a test')
  })
})
