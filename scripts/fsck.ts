/**
 * `npm run fsck [-- --repair] [-- --min-age SECONDS] [-- --size-only]`: checks that the index and the
 * blob store of the configured deployment agree (same environment variables as the server). The
 * command is server/src/archive/fsck-command.ts; the checks are server/src/archive/fsck.ts.
 */
import { runFsckCommand } from '../server/src/archive/fsck-command.js';

process.exit(await runFsckCommand(process.argv.slice(2)));
