// Unit tests of the modules that have no DOM or JupyterLab runtime dependency: the SSE parser,
// the API client, the turn reducer and the panel model. They run in Node (fetch, Response and
// ReadableStream are built in from Node 18).
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.spec.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
