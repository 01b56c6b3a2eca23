/**
 * `npm run restore [-- --backup ID] [-- --force] [-- --skip-index] [-- --report FILE]`: restores the
 * configured deployment from its backup store (same environment variables as the server, which must be
 * stopped): the newest index backup, blobs copied back, instances stored after the backup re-indexed
 * from their copies, then fsck. The command is the entry point server/src/restore.ts; the procedure is
 * server/src/backup/restore-procedure.ts; docs/operations.md describes when and how to run it.
 */
await import('../server/src/restore.js');
