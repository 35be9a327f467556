// Tests run from the compiled tree so piscina workers (plain JS) load the same way in tests and production.
/** @type {import('jest').Config} */
module.exports = {
  rootDir: 'dist/test',
  testMatch: ['**/*.test.js'],
  testEnvironment: 'node',
  testTimeout: 60000,
  verbose: true,
  reporters: ['default', '<rootDir>/../../test/summary-reporter.js'],
};
