/** Entry point of the consistency check in a built installation: `node server/dist/fsck.js [--repair]` (archive/fsck-command.ts). */
import { runFsckCommand } from './archive/fsck-command.js';

void runFsckCommand(process.argv.slice(2)).then((code) => process.exit(code));
