/**
 * Vitest global setup: gives the run a folder for every server log line (log-capture.ts) and, when the
 * run ends, checks all of it for every patient name and ID in the test corpus (phi-corpus.ts). Any hit
 * fails the run (issue "Security and reliability": application logs stay free of patient data).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TEST_LOG_DIR_ENV } from './log-capture.js';
import { collectPhiCorpus, findPhi } from './phi-corpus.js';

export default function setup(): () => Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pacs-test-logs-'));
  process.env[TEST_LOG_DIR_ENV] = dir;
  return async () => {
    const files = readdirSync(dir).filter((name) => name.endsWith('.log'));
    const corpus = await collectPhiCorpus();
    let lines = 0;
    const findings: string[] = [];
    for (const file of files) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      lines += text.split('\n').length - 1;
      for (const finding of findPhi(text, corpus)) findings.push(`${file}: "${finding.value}" in ${finding.line}`);
    }
    const summary = `log PHI check: ${lines} log lines from ${files.length} processes against ${corpus.names.size} patient names and ${corpus.ids.size} IDs (${corpus.files} DICOM files + test sources)`;
    if (findings.length > 0) {
      // Keep the folder for whoever investigates.
      throw new Error(`${summary}: ${findings.length} lines name a patient (logs kept in ${dir}):\n${findings.slice(0, 20).join('\n')}`);
    }
    console.log(summary);
    rmSync(dir, { recursive: true, force: true });
  };
}
