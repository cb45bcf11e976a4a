/** Next.js settings of the example. */
const config = {
  // Next's gzip would buffer an event stream until enough bytes pile up: serve it as it comes.
  compress: false,
  // This folder is the project, even inside a repository with other lockfiles above it.
  turbopack: { root: import.meta.dirname },
  outputFileTracingRoot: import.meta.dirname,
};

export default config;
