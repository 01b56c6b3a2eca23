/**
 * "Add to report" of the stack viewer: measurements go to the study's radiology draft through the
 * reports API (reports-client.ts): the open draft (the latest version a draft, the last changed first),
 * else a new radiology report created with them. Saved with the draft's revision; a draft changed by
 * someone else meanwhile (409: saved, signed) is looked up again and the measurements added once more.
 */
import type { Measurement, ReportJson } from '../../../server/src/contracts/reports.js';
import { openRadiologyDraft, withMeasurements } from './measurement-report.js';
import { createReport, ReportApiError, saveReport, studyReports } from './reports-client.js';

export interface AddedToReport {
  reportId: string;
  /** The page of the report (`#/study/{uid}/report/{id}`). */
  href: string;
  /** A new radiology report was created for them. */
  created: boolean;
  added: number;
  /** Measurements the draft already held (added before). */
  already: number;
}

export async function addMeasurementsToReport(study: string, measurements: readonly Measurement[]): Promise<AddedToReport> {
  const result = (report: ReportJson, created: boolean, added: number, already: number): AddedToReport => ({ reportId: report.id, href: `#/study/${study}/report/${report.id}`, created, added, already });
  for (let attempt = 0; ; attempt += 1) {
    const draft = openRadiologyDraft(await studyReports(study));
    if (draft === undefined) {
      const { content, added } = withMeasurements(undefined, measurements);
      return result(await createReport(study, 'radiology', content), true, added, 0);
    }
    const { content, added, already } = withMeasurements(draft.version.content, measurements);
    if (added === 0) return result(draft, false, 0, already);
    try {
      return result(await saveReport(draft.id, content, draft.version.revision), false, added, already);
    } catch (err) {
      // Saved, signed or amended by someone else since it was read: once more from the study's reports.
      if (attempt > 0 || !(err instanceof ReportApiError) || err.status !== 409) throw err;
    }
  }
}
