// Preloaded into an agent by a test (NODE_OPTIONS=--import=…): as a bug would, on SIGUSR2 the
// process throws an exception nothing catches, on SIGWINCH it rejects a promise nothing awaits.
process.on('SIGUSR2', () => {
  setImmediate(() => {
    throw new Error('an exception thrown for a test')
  })
})
process.on('SIGWINCH', () => {
  Promise.reject(new Error('a rejection made for a test'))
})
