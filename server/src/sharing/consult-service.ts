/**
 * Second opinions: a user with the `share` permission asks a named specialist (a user of this archive,
 * by sign-in subject, or someone outside reached by the consult link) about a study, with a message and,
 * by default, a de-identified copy of it (deid/: PS3.15 Annex E Basic Profile; UIDs replaced by an HMAC
 * of the consult's own secret, so the copy's instances keep referring to each other and nothing outside
 * the consult can be matched to them). The copy is stored in the archive as a new study through the
 * ordinary ingest; the re-identification map (copy UID → original UID) stays in the share store.
 *
 * The specialist opens the case through the consult link (a share link of purpose `consult` on the
 * copy: DICOMweb read-only, confined to it) or signed in, and answers with a text and regions drawn on
 * the copy's images (the viewer's measurement shapes). The answer is the consult's own record, not a
 * report: whoever answers through a link has no account to sign a report with, and a report on the copy
 * would be a report on a study that is nobody's record; the requester gets it re-identified (regions on
 * the original study's series and instances) and may take it into the original study's report. The
 * requester sees requested → viewed (the specialist's first use of the link, or first read signed in) →
 * answered, with the turnaround time.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Archive } from '../archive/archive.js';
import type { Principal } from '../auth/principal.js';
import type { AnswerConsultBody, ConsultJson, ConsultRegion, CreateConsultBody } from '../contracts/sharing.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { deidentifyPart10, DeidentificationRefusedError, replacementUid } from '../deid/deidentify.js';
import { AppError, NotFoundError } from '../errors.js';
import { personOf, type ShareActor, type ShareService } from './share-service.js';
import type { ShareStore, StoredConsult } from './share-store.js';

export interface ConsultCopySummary {
  instances: number;
  excluded: Array<{ seriesInstanceUid: string; sopInstanceUid: string; reason: string }>;
  burnedInUnknown: number;
}

/** How the principal stands to a consult: who asked, who is asked (signed in or through its link). */
type Role = 'requester' | 'specialist';

export interface ConsultServiceOptions {
  /** Largest stored file read whole to make its de-identified copy. */
  maxInstanceBytes: number;
  now?: () => number;
}

async function readAll(stream: AsyncIterable<Buffer | string>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > limit) throw new DeidentificationRefusedError('too large to de-identify here');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * The Total Pixel Matrix Columns / Rows (0048,0006 / 0048,0007) of a tiled whole-slide image, or
 * undefined for any other image.
 */
function totalPixelMatrixOf(attributes: DicomJsonDataset): { columns: number; rows: number } | undefined {
  const value = (tag: string) => {
    const v = (attributes[tag] as { Value?: unknown[] } | undefined)?.Value?.[0];
    return typeof v === 'number' && v > 0 ? v : undefined;
  };
  const columns = value('00480006');
  const rows = value('00480007');
  return columns === undefined || rows === undefined ? undefined : { columns, rows };
}

/**
 * A region on a whole-slide image is in the coordinates of the instance's total pixel matrix (PS3.3
 * C.8.12.4.1: 0,0 the top-left corner of its top-left pixel), not of one tile: it names no frame and
 * its points lie within 0…Total Pixel Matrix Columns and 0…Rows. (Regions on other images are image
 * pixels of the frame, as drawn; not bounded here.)
 */
function checkSlideRegion(region: ConsultRegion, matrix: { columns: number; rows: number }, index: number): void {
  if (region.frame !== undefined) {
    throw new AppError('BAD_REQUEST', `Body field "regions[${index}].frame": a region on a whole-slide image is in its total pixel matrix and names no frame`);
  }
  for (let i = 0; i + 1 < region.points.length; i += 2) {
    const x = region.points[i]!;
    const y = region.points[i + 1]!;
    if (!(x >= 0 && x <= matrix.columns && y >= 0 && y <= matrix.rows)) {
      throw new AppError('BAD_REQUEST', `Body field "regions[${index}].points": point ${i / 2 + 1} (${x}, ${y}) lies outside the slide's total pixel matrix (${matrix.columns} × ${matrix.rows})`);
    }
  }
}

export class ConsultService {
  private readonly now: () => number;

  constructor(
    private readonly store: ShareStore,
    private readonly archive: Archive,
    private readonly links: ShareService,
    private readonly options: ConsultServiceOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Asks for a second opinion: the copy made and stored (when `deidentify`), the consult and its link
   * written in one transaction. Returns the consult and the link's token, shown once.
   */
  async create(body: CreateConsultBody, actor: ShareActor): Promise<{ consult: StoredConsult; token: string; expiresAt: number; copyStudy: string }> {
    const lifeMs = this.links.lifeMs('consult', body.expiresInDays);
    await this.links.seriesOfStudy(body.studyInstanceUid, body.seriesInstanceUids);
    const id = randomUUID();
    const secret = randomBytes(32);
    const deidentify = body.deidentify ?? true;
    let caseStudy = body.studyInstanceUid;
    let uids = new Map<string, string>();
    let summary: ConsultCopySummary | null = null;
    let linkSeries: string[] | null = body.seriesInstanceUids === undefined ? null : [...body.seriesInstanceUids];
    if (deidentify) {
      ({ uids, summary } = await this.copy(body.studyInstanceUid, body.seriesInstanceUids, secret, id));
      caseStudy = replacementUid(secret, body.studyInstanceUid);
      linkSeries = null; // the copy holds only the chosen series
    }
    const { link, token } = await this.links.newLink(
      { purpose: 'consult', studyInstanceUid: caseStudy, seriesInstanceUids: linkSeries, includeReport: false, pin: false, lifeMs, consultId: id },
      actor,
    );
    const consult: StoredConsult = {
      id,
      originalStudyInstanceUid: body.studyInstanceUid,
      caseStudyInstanceUid: caseStudy,
      deidentified: deidentify,
      uidSecret: secret.toString('hex'),
      requestedAt: this.now(),
      requestedBy: personOf(actor),
      specialistSubject: body.specialist.subject ?? null,
      specialistName: body.specialist.name,
      specialistContact: body.specialist.contact ?? null,
      message: body.message,
      linkId: link.id,
      copySummary: summary === null ? null : JSON.stringify(summary),
      viewedAt: null,
      answeredAt: null,
      answerText: null,
      answerRegions: null,
      answeredBy: null,
    };
    // Only the UIDs of the copy's studies, series and instances are kept for re-identification, and the
    // reverse of every other replaced UID (frames of reference, references) is not needed by anyone.
    await this.store.insertConsult(consult, link, uids);
    return { consult, token, expiresAt: link.expiresAt, copyStudy: caseStudy };
  }

  /** The de-identified copy of the study (or of its chosen series), stored through the ordinary ingest. */
  private async copy(study: string, series: readonly string[] | undefined, secret: Buffer, consultId: string): Promise<{ uids: Map<string, string>; summary: ConsultCopySummary }> {
    const instances = (await this.archive.listInstances({ studyInstanceUid: study })).filter((instance) => series === undefined || series.includes(instance.seriesInstanceUid));
    if (instances.length > this.links.config.consultMaxInstances) {
      throw new AppError('BAD_REQUEST', `The study has ${instances.length} instances, more than a consult copy may hold (PACS_SHARE_CONSULT_MAX_INSTANCES ${this.links.config.consultMaxInstances}): choose series`);
    }
    const pseudonym = consultId.slice(0, 8).toUpperCase();
    const uids = new Map<string, string>();
    const summary: ConsultCopySummary = { instances: 0, excluded: [], burnedInUnknown: 0 };
    for (const instance of instances) {
      try {
        if (instance.blobSize > this.options.maxInstanceBytes) throw new DeidentificationRefusedError('too large to de-identify here');
        const original = await readAll(await this.archive.openInstance(instance), this.options.maxInstanceBytes);
        const copy = deidentifyPart10(original, { uidSecret: secret, patientName: `CONSULT^${pseudonym}`, patientId: `CONSULT-${pseudonym}` });
        const stored = await (await this.archive.scanAndStore((async function* () { yield copy.bytes; })())).completion;
        if (!stored.ok) throw new DeidentificationRefusedError(`the copy was not stored: ${stored.failure.message ?? 'refused'}`);
        // The re-identification map: the copy's study, series and instance UIDs back to the original's.
        uids.set(instance.studyInstanceUid, copy.studyInstanceUid);
        uids.set(instance.seriesInstanceUid, copy.seriesInstanceUid);
        uids.set(instance.sopInstanceUid, copy.sopInstanceUid);
        summary.instances += 1;
        if (copy.burnedIn === 'unknown') summary.burnedInUnknown += 1;
      } catch (err) {
        if (!(err instanceof DeidentificationRefusedError)) throw err;
        summary.excluded.push({ seriesInstanceUid: instance.seriesInstanceUid, sopInstanceUid: instance.sopInstanceUid, reason: err.reason });
      }
    }
    if (summary.instances === 0) {
      throw new AppError('DEIDENTIFICATION_REFUSED', `No instance of the study could be de-identified (${[...new Set(summary.excluded.map((e) => e.reason))].join('; ')})`);
    }
    return { uids, summary };
  }

  /** The consult if `principal` may see it (the requester, the named specialist, its link), else 404. */
  async visible(id: string, principal: Principal): Promise<{ consult: StoredConsult; role: Role }> {
    const consult = await this.store.consult(id);
    if (consult === undefined) throw new NotFoundError('No consult with this id');
    if (principal.kind === 'link') {
      if (principal.scope?.consultId === id) return { consult, role: 'specialist' };
    } else {
      if (consult.specialistSubject !== null && consult.specialistSubject === principal.subject) return { consult, role: 'specialist' };
      if (consult.requestedBy.subject === principal.subject) return { consult, role: 'requester' };
    }
    throw new NotFoundError('No consult with this id');
  }

  /** Reads a consult; the specialist's first read marks it viewed. */
  async read(id: string, principal: Principal): Promise<ConsultJson> {
    const { consult, role } = await this.visible(id, principal);
    if (role === 'specialist' && consult.viewedAt === null) {
      await this.store.consultViewed(id, this.now());
      return this.json((await this.store.consult(id))!, role);
    }
    return this.json(consult, role);
  }

  async list(principal: Principal, role: Role, originalStudy: string | undefined): Promise<ConsultJson[]> {
    const rows = await this.store.consults({ ...(role === 'requester' ? { requestedBy: principal.subject } : { specialist: principal.subject }), ...(originalStudy === undefined ? {} : { originalStudy }) });
    return Promise.all(rows.map((row) => this.json(row, role)));
  }

  /** The specialist's answer (once): regions checked against the case's images. */
  async answer(id: string, body: AnswerConsultBody, principal: Principal): Promise<ConsultJson> {
    const { consult, role } = await this.visible(id, principal);
    if (role !== 'specialist') throw new AppError('FORBIDDEN', 'Only the specialist asked may answer this consult');
    const regions = body.regions ?? [];
    for (const [index, region] of regions.entries()) {
      const found = await this.archive
        .findInstancesWithAttributes({ studyInstanceUid: consult.caseStudyInstanceUid, seriesInstanceUid: region.seriesInstanceUid, sopInstanceUid: region.sopInstanceUid })
        .catch((err: unknown) => {
          if (err instanceof AppError && err.code === 'NOT_FOUND') return [];
          throw err;
        });
      const instance = found[0];
      if (instance === undefined || (region.frame !== undefined && region.frame > instance.instance.numberOfFrames)) {
        throw new AppError('BAD_REQUEST', `Body field "regions[${index}]": no such image in the consult's study`);
      }
      if (region.points.length % 2 !== 0) throw new AppError('BAD_REQUEST', `Body field "regions[${index}].points": must be pairs x,y`);
      const slide = totalPixelMatrixOf(instance.attributes);
      if (slide !== undefined) checkSlideRegion(region, slide, index);
    }
    const by = principal.kind === 'link' ? { subject: principal.subject, name: consult.specialistName } : { subject: principal.subject, name: principal.name ?? null };
    const answered = await this.store.answer(id, { text: body.text, regions: JSON.stringify(regions), by, at: this.now() });
    if (!answered) throw new AppError('CONFLICT', 'This consult has been answered already');
    return this.json((await this.store.consult(id))!, role);
  }

  /** The consult as `role` sees it: the requester on the original study (answer re-identified), the specialist on the case. */
  async json(consult: StoredConsult, role: Role): Promise<ConsultJson> {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    const link = await this.links.get(consult.linkId);
    let regions: ConsultRegion[] = consult.answerRegions === null ? [] : (JSON.parse(consult.answerRegions) as ConsultRegion[]);
    if (role === 'requester' && consult.deidentified && regions.length > 0) {
      const originals = await this.store.originalUids(consult.id, regions.flatMap((r) => [r.seriesInstanceUid, r.sopInstanceUid]));
      regions = regions.map((r) => ({ ...r, seriesInstanceUid: originals.get(r.seriesInstanceUid) ?? r.seriesInstanceUid, sopInstanceUid: originals.get(r.sopInstanceUid) ?? r.sopInstanceUid }));
    }
    const status = consult.answeredAt !== null ? 'answered' : consult.viewedAt !== null ? 'viewed' : 'requested';
    return {
      id: consult.id,
      status,
      requestedAt: iso(consult.requestedAt)!,
      requestedBy: consult.requestedBy,
      specialist: { subject: consult.specialistSubject, name: consult.specialistName, contact: consult.specialistContact },
      message: consult.message,
      deidentified: consult.deidentified,
      caseStudyInstanceUid: consult.caseStudyInstanceUid,
      originalStudyInstanceUid: role === 'requester' ? consult.originalStudyInstanceUid : null,
      copy: role === 'requester' && consult.copySummary !== null ? (JSON.parse(consult.copySummary) as ConsultCopySummary) : null,
      linkId: consult.linkId,
      expiresAt: iso(link.expiresAt)!,
      viewedAt: iso(consult.viewedAt),
      answeredAt: iso(consult.answeredAt),
      turnaroundSeconds: consult.answeredAt === null ? null : Math.round((consult.answeredAt - consult.requestedAt) / 1000),
      answer:
        consult.answeredAt === null || consult.answerText === null
          ? null
          : { text: consult.answerText, regions, answeredAt: iso(consult.answeredAt)!, answeredBy: consult.answeredBy ?? { subject: 'unknown', name: null } },
    };
  }
}
