/**
 * `npm run fsck [-- --repair] [-- --min-age SECONDS] [-- --size-only]`: checks that the index and the
 * blob store of the configured deployment agree (same environment variables as the server). The
 * command is the entry point server/src/fsck.ts; the checks are server/src/archive/fsck.ts.
 */
await import('../server/src/fsck.js');
