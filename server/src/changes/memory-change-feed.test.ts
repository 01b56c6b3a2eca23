import { runChangeFeedContract, quietLogger } from './change-feed.contract.js';
import { InProcessChangeFeed } from './change-feed.js';

// One process: both "processes" of the fixture are the same feed (nothing crosses processes).
runChangeFeedContract(
  'in-process',
  async () => {
    const feed = new InProcessChangeFeed(quietLogger());
    const other = new InProcessChangeFeed(quietLogger());
    return { a: feed, b: other, teardown: async () => Promise.all([feed.close(), other.close()]).then(() => undefined) };
  },
  { crossProcess: false },
);
