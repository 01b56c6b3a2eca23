/**
 * Share links: made by a user with the `share` permission for one study (optionally chosen series, with
 * or without its signed report), opened by whoever holds the token (the patient's phone, a specialist),
 * confined by access control to what they share (auth/link-scope.ts), revoked, expired, optionally
 * protected by a PIN with attempt limiting. docs/security.md "Share links" is the threat model.
 *
 * - **Token**: 32 bytes of `crypto.randomBytes` (256 bits) as base64url (43 characters), shown once; the
 *   store keeps its SHA-256 only, so a copy of the database opens nothing. A session credential (given
 *   after the PIN check) is made and kept the same way.
 * - **PIN**: 6 digits drawn by the server (`crypto.randomInt`), shown once; kept as scrypt (N 16384, r 8,
 *   p 1, 16-byte random salt). `PACS_SHARE_PIN_MAX_ATTEMPTS` (5) wrong PINs in a row lock the link for
 *   `PACS_SHARE_PIN_LOCK_MINUTES` (15): every PIN is refused meanwhile (429 with Retry-After), sessions
 *   already given go on.
 * - **Credentials on requests**: `Authorization: Bearer share.<token or session>`; a link with a PIN is
 *   opened only through a session. Credentials are looked up by their hash, the answer kept 10 s in
 *   this process; a revocation is announced on the change feed (changes/) and drops it at once in every
 *   server process sharing the index (none is kept while the feed's subscription is lost).
 * - **Audit**: requests made with a link are recorded by the audit hook with the link as the user
 *   (`link:<id>`, kind `link`); opening a link (`POST /share/{token}/session`, the page `GET /s/{token}`)
 *   is recorded here as `share-open`, refusals (wrong PIN, locked, expired) included.
 */
import { createHash, randomBytes, randomInt, randomUUID, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Archive } from '../archive/archive.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import type { AuditRecord } from '../audit/audit-record.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { LinkCredentials, LinkScope, Principal } from '../auth/principal.js';
import type { QidoQuery } from '../catalog/qido-query.js';
import type { SharingConfig } from '../config.js';
import type { CreateShareLinkBody, LinkState, ShareLinkJson, SharedView } from '../contracts/sharing.js';
import type { DicomJsonDataset } from '../dicom/dicom-json.js';
import { AppError, NotFoundError } from '../errors.js';
import { summaryOf } from '../reports/report-content.js';
import type { ReportService } from '../reports/report-service.js';
import type { PersonRef, ShareStore, StoredLink } from './share-store.js';

const scrypt = promisify(scryptCallback) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number }) => Promise<Buffer>;
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const DAY_MS = 86_400_000;
const CACHE_MS = 10_000;
const CACHE_MAX = 2000;

export const sha256Hex = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');
/** A new credential: 256 random bits as base64url (43 characters). */
export const newToken = (): string => randomBytes(32).toString('base64url');

/** Too many wrong PINs: the link opens again after `retryAfterSeconds`. */
export class PinLockedError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('PIN_LOCKED', message);
    this.name = 'PinLockedError';
  }
}

export interface ShareActor {
  subject: string;
  name?: string;
}

/** Where a request came from, for the records this service writes itself. */
export interface RequestContext {
  clientAddress: string;
  route: string;
}

export interface ShareServiceOptions {
  config: SharingConfig;
  now?: () => number;
  /** Revocations are announced here and heard from the other processes sharing the index. */
  changes?: ChangeFeed;
}

export function personOf(actor: ShareActor): PersonRef {
  return { subject: actor.subject, name: actor.name ?? null };
}

export function linkState(link: StoredLink, now: number): LinkState {
  if (link.revokedAt !== null) return 'revoked';
  return link.expiresAt <= now ? 'expired' : 'active';
}

/** The link's principal: no permissions, confined to its scope by access control. */
export function linkPrincipal(link: StoredLink, withScope = true): Principal {
  const scope: LinkScope = {
    kind: 'link',
    linkId: link.id,
    purpose: link.purpose,
    study: link.studyInstanceUid,
    ...(link.seriesInstanceUids === null ? {} : { series: link.seriesInstanceUids }),
    includeReport: link.includeReport,
    ...(link.consultId === null ? {} : { consultId: link.consultId }),
  };
  return {
    subject: `link:${link.id}`,
    name: link.purpose === 'patient' ? 'patient link' : 'consult link',
    roles: [],
    permissions: new Set(),
    kind: 'link',
    ...(withScope ? { scope } : {}),
  };
}

/** An AppError about a known link, naming it for the audit record of the refusal. */
function refusal(error: AppError, link: StoredLink): AppError {
  return Object.assign(error, { linkPrincipal: linkPrincipal(link, false) });
}

function goneError(link: StoredLink, state: LinkState): AppError {
  return refusal(new AppError('LINK_GONE', state === 'revoked' ? 'This link has been revoked' : 'This link has expired'), link);
}

const first = (dataset: DicomJsonDataset | undefined, tag: string): string | null => {
  const value = dataset?.[tag]?.Value?.[0];
  if (value === undefined || value === null) return null;
  if (typeof value === 'object') return (value as { Alphabetic?: string }).Alphabetic ?? null;
  return String(value);
};

export class ShareService implements LinkCredentials {
  private readonly now: () => number;
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  /** Bumped by every revocation heard: an answer read from the store before one is not kept. */
  private cacheEpoch = 0;
  private readonly viewedConsults = new Set<string>();
  private logo: Buffer | null | undefined;

  constructor(
    private readonly store: ShareStore,
    private readonly archive: Archive,
    private readonly reports: ReportService | undefined,
    private readonly audit: AuditTrail | undefined,
    private readonly options: ShareServiceOptions,
  ) {
    this.now = options.now ?? Date.now;
    options.changes?.subscribe((change) => {
      if (change.kind === 'link-revoked') this.forgetLink(change.linkId);
      else if (change.kind === 'flush') this.forgetLink(undefined);
    });
  }

  /** Drops the cached credentials of a link (undefined: of every link). */
  private forgetLink(linkId: string | undefined): void {
    this.cacheEpoch += 1;
    if (linkId === undefined) this.cache.clear();
    else for (const [key, entry] of this.cache) if (entry.principal.scope?.linkId === linkId) this.cache.delete(key);
  }

  get config(): SharingConfig {
    return this.options.config;
  }

  // ------------------------------------------------------------------------------------------ making

  /** Days a link of `purpose` lives, within PACS_SHARE_MAX_DAYS. */
  lifeMs(purpose: 'patient' | 'consult', days: number | undefined): number {
    const chosen = days ?? (purpose === 'patient' ? this.config.patientDays : this.config.consultDays);
    if (chosen > this.config.maxDays) throw new AppError('BAD_REQUEST', `Body field "expiresInDays": must be at most ${this.config.maxDays} (PACS_SHARE_MAX_DAYS)`);
    return chosen * DAY_MS;
  }

  /** The series of a stored study (404 when it holds none), checked against those asked for. */
  async seriesOfStudy(studyInstanceUid: string, asked: readonly string[] | undefined): Promise<string[]> {
    const instances = await this.archive.listInstances({ studyInstanceUid });
    if (instances.length === 0) throw new NotFoundError('Study not found');
    const held = [...new Set(instances.map((instance) => instance.seriesInstanceUid))];
    if (asked !== undefined) {
      const missing = asked.find((uid) => !held.includes(uid));
      if (missing !== undefined) throw new AppError('BAD_REQUEST', 'Body field "seriesInstanceUids": names a series the study does not hold');
    }
    return held;
  }

  /** A new link row (not stored) with its token and PIN in clear, shown once. */
  async newLink(input: { purpose: 'patient' | 'consult'; studyInstanceUid: string; seriesInstanceUids: string[] | null; includeReport: boolean; pin: boolean; lifeMs: number; consultId: string | null }, actor: ShareActor): Promise<{ link: StoredLink; token: string; pin: string | null }> {
    const token = newToken();
    const pin = input.pin ? String(randomInt(0, 1_000_000)).padStart(6, '0') : null;
    const now = this.now();
    const link: StoredLink = {
      id: randomUUID(),
      tokenSha256: sha256Hex(token),
      purpose: input.purpose,
      studyInstanceUid: input.studyInstanceUid,
      seriesInstanceUids: input.seriesInstanceUids,
      includeReport: input.includeReport,
      createdAt: now,
      createdBy: personOf(actor),
      expiresAt: now + input.lifeMs,
      revokedAt: null,
      revokedBy: null,
      pinHash: pin === null ? null : await hashPin(pin),
      pinFailures: 0,
      pinLockedUntil: null,
      consultId: input.consultId,
    };
    return { link, token, pin };
  }

  async create(body: CreateShareLinkBody, actor: ShareActor): Promise<{ link: StoredLink; token: string; pin: string | null }> {
    const purpose = body.purpose ?? 'patient';
    const lifeMs = this.lifeMs(purpose, body.expiresInDays);
    const held = await this.seriesOfStudy(body.studyInstanceUid, body.seriesInstanceUids);
    const includeReport = body.includeReport ?? true;
    // Without the report, the report's own series (its SR and PDF in the study) are not shared either:
    // the link opens the series the study holds now, less those of its reports.
    let series: string[] | null = body.seriesInstanceUids === undefined ? null : [...body.seriesInstanceUids];
    if (!includeReport) {
      const reportSeries = await this.reportSeries(body.studyInstanceUid);
      series = (series ?? held).filter((uid) => !reportSeries.has(uid));
      if (series.length === 0) throw new AppError('BAD_REQUEST', 'Body field "includeReport": without the report the link would open nothing of this study');
    }
    const made = await this.newLink({ purpose, studyInstanceUid: body.studyInstanceUid, seriesInstanceUids: series, includeReport, pin: body.pin ?? false, lifeMs, consultId: null }, actor);
    await this.store.insertLink(made.link);
    return made;
  }

  private async reportSeries(studyInstanceUid: string): Promise<Set<string>> {
    const series = new Set<string>();
    if (this.reports === undefined) return series;
    for (const view of await this.reports.ofStudy(studyInstanceUid)) {
      for (const version of view.versions) {
        if (version.dicom !== null) {
          series.add(version.dicom.srSeriesInstanceUid);
          series.add(version.dicom.pdfSeriesInstanceUid);
        }
      }
    }
    return series;
  }

  async list(studyInstanceUid: string): Promise<StoredLink[]> {
    return this.store.linksOfStudy(studyInstanceUid);
  }

  async get(id: string): Promise<StoredLink> {
    const link = await this.store.link(id);
    if (link === undefined) throw new NotFoundError('No share link with this id');
    return link;
  }

  async revoke(id: string, actor: ShareActor): Promise<StoredLink> {
    await this.get(id);
    await this.store.revoke(id, personOf(actor), this.now());
    if (this.options.changes === undefined) this.forgetLink(id);
    else await this.options.changes.publish({ kind: 'link-revoked', linkId: id });
    return this.get(id);
  }

  json(link: StoredLink): ShareLinkJson {
    const iso = (ms: number) => new Date(ms).toISOString();
    const now = this.now();
    return {
      id: link.id,
      purpose: link.purpose,
      studyInstanceUid: link.studyInstanceUid,
      seriesInstanceUids: link.seriesInstanceUids,
      includeReport: link.includeReport,
      state: linkState(link, now),
      createdAt: iso(link.createdAt),
      createdBy: link.createdBy,
      expiresAt: iso(link.expiresAt),
      revokedAt: link.revokedAt === null ? null : iso(link.revokedAt),
      revokedBy: link.revokedBy,
      hasPin: link.pinHash !== null,
      lockedUntil: link.pinLockedUntil !== null && link.pinLockedUntil > now ? iso(link.pinLockedUntil) : null,
      consultId: link.consultId,
    };
  }

  // ----------------------------------------------------------------------------------------- opening

  /** LinkCredentials: the principal of a link token (a link without a PIN) or of a session. */
  async principalOf(credential: string): Promise<Principal> {
    const hash = sha256Hex(credential);
    const now = this.now();
    const cacheable = this.options.changes?.live ?? true;
    const cached = cacheable ? this.cache.get(hash) : undefined;
    if (cached !== undefined && cached.until > now) return cached.principal;
    this.cache.delete(hash);
    const epoch = this.cacheEpoch;
    let link = await this.store.linkByToken(hash);
    let until: number;
    if (link !== undefined) {
      const state = linkState(link, now);
      if (state !== 'active') throw goneError(link, state);
      if (link.pinHash !== null) throw refusal(new AppError('PIN_REQUIRED', 'This link has a PIN: open it with POST /share/{token}/session and the PIN first'), link);
      until = link.expiresAt;
    } else {
      const session = await this.store.session(hash);
      if (session === undefined) throw new AppError('UNAUTHENTICATED', 'This share link is not valid');
      link = await this.store.link(session.linkId);
      if (link === undefined) throw new AppError('UNAUTHENTICATED', 'This share link is not valid');
      if (session.expiresAt <= now) throw refusal(new AppError('UNAUTHENTICATED', 'The share session has ended: open the link again'), link);
      const state = linkState(link, now);
      if (state !== 'active') throw goneError(link, state);
      until = Math.min(session.expiresAt, link.expiresAt);
    }
    const principal = linkPrincipal(link);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    if (cacheable && epoch === this.cacheEpoch && (this.options.changes?.live ?? true)) this.cache.set(hash, { principal, until: Math.min(until, now + CACHE_MS) });
    if (link.consultId !== null) this.consultOpened(link.consultId);
    return principal;
  }

  /** The consult of a consult link is `viewed` from its first use (once per process; the store keeps the first time). */
  consultOpened(consultId: string): void {
    if (this.viewedConsults.has(consultId)) return;
    this.viewedConsults.add(consultId);
    void this.store.consultViewed(consultId, this.now()).catch(() => this.viewedConsults.delete(consultId));
  }

  /** What `GET /s/{token}` shows: the link's state and purpose (recorded as `share-open` for a known link). */
  async pageState(token: string, context: RequestContext): Promise<{ state: LinkState | 'unknown'; purpose?: StoredLink['purpose'] }> {
    const link = await this.store.linkByToken(sha256Hex(token));
    if (link === undefined) return { state: 'unknown' };
    const state = linkState(link, this.now());
    this.recordOpen(link, context, state === 'active' ? 200 : 410, { page: true, ...(state === 'active' ? {} : { state }) });
    return { state, purpose: link.purpose };
  }

  /**
   * Opens a link (`POST /share/{token}/session`): the PIN checked when it has one, then a session
   * credential (hashed in the store) that lives PACS_SHARE_SESSION_HOURS, never past the link.
   */
  async open(token: string, pin: string | undefined, context: RequestContext): Promise<{ credential: string; expiresAt: number; link: StoredLink }> {
    const link = await this.store.linkByToken(sha256Hex(token));
    if (link === undefined) throw new AppError('UNAUTHENTICATED', 'This share link is not valid');
    const now = this.now();
    const state = linkState(link, now);
    const refuse = (error: AppError, status: number, detail: Record<string, string | number | boolean> = {}): never => {
      this.recordOpen(link, context, status, { error: error.code, ...detail });
      throw error;
    };
    if (state !== 'active') refuse(goneError(link, state), 410);
    if (link.pinHash !== null) {
      const lockMinutes = this.config.pinLockMinutes;
      if (link.pinLockedUntil !== null && link.pinLockedUntil > now) {
        refuse(new PinLockedError(`Too many wrong PINs: the link is locked for ${lockMinutes} minutes`, Math.ceil((link.pinLockedUntil - now) / 1000)), 429);
      }
      if (pin === undefined) refuse(new AppError('PIN_REQUIRED', 'This link has a PIN: send it as {"pin"}'), 401);
      if (!(await verifyPin(pin!, link.pinHash))) {
        const after = await this.store.pinFailed(link.id, this.config.pinMaxAttempts, now + lockMinutes * 60_000);
        if (after?.pinLockedUntil !== null && after !== undefined && after.pinLockedUntil > now) {
          refuse(new PinLockedError(`Wrong PIN, tried too many times: the link is locked for ${lockMinutes} minutes`, lockMinutes * 60), 429, { locked: true });
        }
        const left = this.config.pinMaxAttempts - (after?.pinFailures ?? 0);
        refuse(new AppError('PIN_INVALID', `Wrong PIN: ${left} ${left === 1 ? 'try' : 'tries'} left before the link locks for ${lockMinutes} minutes`), 401);
      }
      await this.store.pinSucceeded(link.id);
    }
    const credential = newToken();
    const expiresAt = Math.min(now + this.config.sessionHours * 3_600_000, link.expiresAt);
    await this.store.insertSession({ tokenSha256: sha256Hex(credential), linkId: link.id, createdAt: now, expiresAt });
    this.recordOpen(link, context, 200, {});
    if (link.consultId !== null) this.consultOpened(link.consultId);
    return { credential, expiresAt, link };
  }

  private recordOpen(link: StoredLink, context: RequestContext, status: number, detail: Record<string, string | number | boolean>): void {
    if (this.audit === undefined) return;
    const record: AuditRecord = {
      time: this.now(),
      action: 'share-open',
      outcome: status < 400 ? 0 : 4,
      status,
      who: { subject: `link:${link.id}`, name: link.purpose === 'patient' ? 'patient link' : 'consult link', kind: 'link' },
      clientAddress: context.clientAddress,
      interface: 'share',
      route: context.route,
      objects: [{ study: link.studyInstanceUid }],
      detail: { linkId: link.id, purpose: link.purpose, ...detail },
    };
    this.audit.record(record);
  }

  // --------------------------------------------------------------------------------------- what it shows

  private async studyRow(studyInstanceUid: string): Promise<DicomJsonDataset | undefined> {
    const query: QidoQuery = { level: 'study', studyInstanceUid, matches: [], includeFields: ['00081030'], limit: 1, offset: 0, fuzzyMatching: false };
    return (await this.archive.search(query)).matches[0];
  }

  /** Everything the phone page needs besides the images: the study, its series, its signed reports. */
  async view(scope: LinkScope, link: { expiresAt: number }, origin: string, dicomwebPrefix: string): Promise<SharedView> {
    const study = await this.studyRow(scope.study);
    if (study === undefined) throw new NotFoundError('Study not found');
    const seriesQuery: QidoQuery = {
      level: 'series',
      studyInstanceUid: scope.study,
      matches: scope.series === undefined ? [] : [{ tag: '0020000E', value: scope.series.join(',') }],
      includeFields: ['0008103E'],
      limit: 10_000,
      offset: 0,
      fuzzyMatching: false,
    };
    const dicomweb = `${origin}${dicomwebPrefix}`;
    const series = (await this.archive.search(seriesQuery)).matches.map((row) => {
      const uid = first(row, '0020000E') ?? '';
      const number = first(row, '00200011');
      return {
        seriesInstanceUid: uid,
        modality: first(row, '00080060'),
        seriesNumber: number === null || !/^-?\d+$/.test(number) ? null : Number(number),
        seriesDescription: first(row, '0008103E'),
        numberOfInstances: Number(first(row, '00201209') ?? 0),
        thumbnail: `${dicomweb}/studies/${scope.study}/series/${uid}/thumbnail`,
        instances: `${dicomweb}/studies/${scope.study}/series/${uid}/instances`,
      };
    });
    const reports = scope.includeReport ? await this.signedReports(scope.study, origin) : [];
    const modalities = (study['00080061']?.Value ?? []).map(String);
    return {
      linkId: scope.linkId,
      purpose: scope.purpose,
      expiresAt: new Date(link.expiresAt).toISOString(),
      consultId: scope.consultId ?? null,
      hospital: { name: this.config.hospitalName, logo: this.config.hospitalLogoFile === '' ? null : `${origin}/share/hospital-logo` },
      study: {
        studyInstanceUid: scope.study,
        studyDate: first(study, '00080020'),
        studyTime: first(study, '00080030'),
        studyDescription: first(study, '00081030'),
        accessionNumber: first(study, '00080050'),
        modalities,
        patientName: first(study, '00100010'),
        patientId: first(study, '00100020'),
        patientBirthDate: first(study, '00100030'),
        patientSex: first(study, '00100040'),
      },
      series,
      reports,
      dicomweb,
    };
  }

  private async signedReports(studyInstanceUid: string, origin: string): Promise<SharedView['reports']> {
    if (this.reports === undefined) return [];
    const out: SharedView['reports'] = [];
    for (const { report, versions } of await this.reports.ofStudy(studyInstanceUid)) {
      const inForce = versions.filter((v) => v.status === 'final').at(-1);
      if (inForce === undefined || inForce.signature === null) continue;
      out.push({
        id: report.id,
        kind: report.kind,
        title: summaryOf(inForce.content).title,
        signedAt: new Date(inForce.signature.signedAt).toISOString(),
        pdf: `${origin}/share/view/reports/${encodeURIComponent(report.id)}/pdf`,
      });
    }
    return out;
  }

  /** The PDF of the version in force of a signed report of the link's study, when the link shares reports. */
  async reportPdf(scope: LinkScope, reportId: string): Promise<Buffer> {
    if (!scope.includeReport || this.reports === undefined) throw new NotFoundError('No report with this id');
    const view = await this.reports.get(reportId).catch(() => undefined);
    const inForce = view?.versions.filter((v) => v.status === 'final').at(-1);
    if (view === undefined || view.report.studyInstanceUid !== scope.study || inForce === undefined) throw new NotFoundError('No report with this id');
    return (await this.reports.pdf(reportId, inForce.version)).pdf;
  }

  async hospitalLogo(): Promise<{ bytes: Buffer; type: string } | undefined> {
    const file = this.config.hospitalLogoFile;
    if (file === '') return undefined;
    this.logo ??= await readFile(file).catch(() => null);
    return this.logo === null ? undefined : { bytes: this.logo, type: /\.png$/i.test(file) ? 'image/png' : 'image/jpeg' };
  }

  // -------------------------------------------------------------------------------------------- the slip

  /**
   * The result slip of a link. The token (and the PIN, to print it) come from the request: the archive
   * keeps only their hashes, so the slip is made by whoever made the link, right after; both are checked.
   */
  async slip(id: string, token: string, pin: string | undefined, size: 'A5' | 'A4', url: string): Promise<Buffer> {
    const link = await this.get(id);
    const a = Buffer.from(sha256Hex(token), 'hex');
    const b = Buffer.from(link.tokenSha256, 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new AppError('BAD_REQUEST', 'Body field "token": is not the token of this link');
    const state = linkState(link, this.now());
    if (state !== 'active') throw goneError(link, state);
    if (pin !== undefined && (link.pinHash === null || !(await verifyPin(pin, link.pinHash)))) throw new AppError('BAD_REQUEST', 'Body field "pin": is not the PIN of this link');
    const study = await this.studyRow(link.studyInstanceUid);
    const logo = await this.hospitalLogo();
    // Loaded with the first slip, like the report PDF (report-service.ts): pdfkit and qrcode stay out of
    // the memory of a server that makes none.
    const { renderSlip } = await import('./share-slip.js');
    return renderSlip({
      size,
      url,
      pin: link.pinHash === null ? null : (pin ?? 'separate'),
      expiresAt: new Date(link.expiresAt),
      hospital: { name: this.config.hospitalName, logo: logo?.bytes ?? null },
      patient: { name: first(study, '00100010'), id: first(study, '00100020'), birthDate: first(study, '00100030') },
      study: { date: first(study, '00080020'), description: first(study, '00081030'), modalities: (study?.['00080061']?.Value ?? []).map(String), accessionNumber: first(study, '00080050') },
      includesReport: link.includeReport,
    });
  }
}

async function hashPin(pin: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(pin, salt, 32, SCRYPT);
  return `scrypt$${salt.toString('hex')}$${hash.toString('hex')}`;
}

async function verifyPin(pin: string, stored: string): Promise<boolean> {
  const [kind, saltHex, hashHex] = stored.split('$');
  if (kind !== 'scrypt' || saltHex === undefined || hashHex === undefined) return false;
  const expected = Buffer.from(hashHex, 'hex');
  const actual = await scrypt(pin, Buffer.from(saltHex, 'hex'), expected.length, SCRYPT);
  return timingSafeEqual(actual, expected);
}
