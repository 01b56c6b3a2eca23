/** Command-line options shared by the benchmark and evaluation scripts (percentiles: util.ts). */

/** `--name value` from the command line, or the fallback. */
export function option(name: string, fallback: string, argv: readonly string[] = process.argv.slice(2)): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
}
