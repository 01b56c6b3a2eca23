/**
 * A report version as a PDF for print or the patient, with pdfkit (npm `pdfkit`, MIT, maintained) and an
 * embedded Unicode font: Noto Sans (regular and bold TrueType files of the npm package
 * `@expo-google-fonts/noto-sans`, fonts under the SIL Open Font License 1.1), subset into the file, so
 * Vietnamese text prints and extracts exactly whatever fonts the reader has. Labels are Vietnamese or
 * English (the content's `language`). Key images come as JPEG (rendered by the archive) and are placed
 * two per row with their captions; a draft says so on every page.
 *
 * Text is NFC-normalised and laid out without the fonts' `ccmp` feature: fontkit (pdfkit's shaper)
 * decomposes "ị" into "i" + a combining dot there and caches the cluster's code points on the "i" glyph,
 * so every later "i" would extract as "ị" from the ToUnicode map. With precomposed characters and `ccmp`
 * off every glyph maps to exactly its own character.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import PDFDocument from 'pdfkit';
import type { EndoscopyContent, PathologyContent, RadiologyContent, ReportContent, ReportKind, VersionStatus } from '../contracts/reports.js';
import { labelsFor, type Labels } from './report-labels.js';

const require = createRequire(import.meta.url);
let fonts: { regular: Buffer; bold: Buffer } | undefined;

/** The embedded fonts, read once from the npm package (also the result slip's, sharing/share-slip.ts). */
export function embeddedFonts(): { regular: Buffer; bold: Buffer } {
  fonts ??= {
    regular: readFileSync(require.resolve('@expo-google-fonts/noto-sans/400Regular/NotoSans_400Regular.ttf')),
    bold: readFileSync(require.resolve('@expo-google-fonts/noto-sans/700Bold/NotoSans_700Bold.ttf')),
  };
  return fonts;
}

export interface PdfImage {
  /** JPEG bytes, or null when the image could not be rendered (a placeholder is printed). */
  jpeg: Buffer | null;
  caption: string;
}

export interface ReportPdfInput {
  reportId: string;
  kind: ReportKind;
  version: number;
  status: VersionStatus;
  content: ReportContent;
  patient: { name: string | null; id: string | null; birthDate: string | null; sex: string | null };
  study: { date: string | null; accessionNumber: string | null; description: string | null };
  signature: { signerName: string; signedAt: Date; contentSha256: string } | null;
  amends: number | null;
  amendmentReason: string | null;
  supersededBy: number | null;
  /** The document's date (PDF CreationDate): the signature's time, or the draft's last save. */
  documentDate: Date;
  images: PdfImage[];
  institutionName?: string;
}

const MARGIN = 50;
/** Shaping features: fontkit's defaults without ccmp (see the module comment). */
const FEATURES = { ccmp: false } as unknown as [];

/** Patient's Name (PN) for print: the first component group as Family Middle Given (Vietnamese order). */
export function displayPersonName(pn: string | null): string {
  if (pn === null || pn.trim() === '') return '';
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = pn.split('=')[0]!.split('^');
  return [prefix, family, middle, given, suffix].map((s) => s.trim()).filter((s) => s !== '').join(' ');
}

function displayDate(da: string | null, labels: Labels): string {
  if (da === null || !/^\d{8}$/.test(da)) return da ?? '';
  return labels.language === 'vi' ? `${da.slice(6, 8)}/${da.slice(4, 6)}/${da.slice(0, 4)}` : `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}`;
}

const utc = (d: Date) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;

class Writer {
  constructor(
    readonly doc: PDFKit.PDFDocument,
    readonly labels: Labels,
  ) {}

  private text(value: string, options: PDFKit.Mixins.TextOptions = {}): void {
    this.doc.text(value.normalize('NFC'), { ...options, features: FEATURES });
  }

  heading(value: string): void {
    this.doc.moveDown(0.6);
    this.doc.font('bold').fontSize(12).fillColor('#1a3d6d');
    this.text(value);
    this.doc.fillColor('black').font('regular').fontSize(10);
    this.doc.moveDown(0.2);
  }

  field(label: string, value: string | number | null | undefined): void {
    if (value === null || value === undefined || value === '') return;
    this.doc.font('bold').fontSize(10);
    this.text(`${label}: `, { continued: true });
    this.doc.font('regular');
    this.text(String(value));
  }

  paragraph(value: string | undefined): void {
    if (value === undefined || value.trim() === '') return;
    this.doc.font('regular').fontSize(10);
    this.text(value);
  }

  line(value: string, options: { bold?: boolean; size?: number; color?: string; align?: 'left' | 'center' | 'right' } = {}): void {
    this.doc.font(options.bold === true ? 'bold' : 'regular').fontSize(options.size ?? 10).fillColor(options.color ?? 'black');
    this.text(value, options.align === undefined ? {} : { align: options.align });
    this.doc.fillColor('black');
  }
}

/** The PDF of a report version. */
export function renderReportPdf(input: ReportPdfInput): Promise<Buffer> {
  const { regular, bold } = embeddedFonts();
  const labels = labelsFor(input.content.language ?? 'vi');
  const doc = new PDFDocument({
    size: 'A4',
    margins: { top: MARGIN, bottom: MARGIN, left: MARGIN, right: MARGIN },
    bufferPages: true,
    info: {
      Title: `${labels.title[input.kind]} – ${displayPersonName(input.patient.name)}`.normalize('NFC'),
      Author: input.signature?.signerName ?? '',
      Creator: 'filmless-pacs',
      Producer: 'filmless-pacs (pdfkit)',
      CreationDate: input.documentDate,
      ModDate: input.documentDate,
    },
    lang: labels.language,
  });
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  doc.registerFont('regular', regular);
  doc.registerFont('bold', bold);
  const w = new Writer(doc, labels);

  if (input.institutionName !== undefined && input.institutionName !== '') w.line(input.institutionName, { bold: true, size: 11, align: 'center' });
  w.line(labels.title[input.kind], { bold: true, size: 16, align: 'center' });
  if (input.status === 'draft') w.line(labels.draftBanner, { bold: true, size: 12, color: '#b00020', align: 'center' });
  if (input.status === 'superseded') w.line(`${labels.supersededBanner} ${input.supersededBy ?? ''}`.trim(), { bold: true, size: 12, color: '#b00020', align: 'center' });
  if (input.amends !== null) w.line(`${labels.amends} ${input.amends}${input.amendmentReason === null ? '' : `: ${input.amendmentReason}`}`, { size: 10, align: 'center' });
  doc.moveDown(0.5);

  w.heading(labels.patientSection);
  w.field(labels.patientName, displayPersonName(input.patient.name));
  w.field(labels.patientId, input.patient.id);
  w.field(labels.birthDate, displayDate(input.patient.birthDate, labels));
  w.field(labels.sex, input.patient.sex === null ? null : (labels.sexes[input.patient.sex] ?? input.patient.sex));
  w.field(labels.studyDate, displayDate(input.study.date, labels));
  w.field(labels.accessionNumber, input.study.accessionNumber);
  w.field(labels.studyDescription, input.study.description);

  const content = input.content;
  if (content.kind === 'endoscopy') endoscopy(w, content);
  else if (content.kind === 'pathology') pathology(w, content);
  else radiology(w, content);

  if (input.images.length > 0) images(w, input.images);

  w.heading(labels.signatureSection);
  if (input.signature === null) {
    w.paragraph(labels.notSigned);
  } else {
    w.field(labels.signedBy, input.signature.signerName);
    w.field(labels.signedAt, utc(input.signature.signedAt));
    w.field(labels.contentHash, input.signature.contentSha256);
  }
  w.field(labels.version, input.version);
  w.field(labels.reportId, input.reportId);

  // Page numbers (and the draft mark) on every page, in the bottom margin.
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i += 1) {
    doc.switchToPage(i);
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc.font('regular').fontSize(8).fillColor('#555555');
    const footer = `${input.status === 'draft' ? `${labels.draftBanner} · ` : ''}${labels.page} ${i + 1}/${range.count}`;
    doc.text(footer.normalize('NFC'), MARGIN, doc.page.height - MARGIN + 15, { width: doc.page.width - 2 * MARGIN, align: 'center', features: FEATURES, lineBreak: false });
    doc.page.margins.bottom = bottom;
  }
  doc.fillColor('black');
  doc.end();
  return done;
}

function endoscopy(w: Writer, content: EndoscopyContent): void {
  const L = w.labels;
  if (content.indication !== undefined) {
    w.heading(L.indication);
    w.field(L.indicationCategory, content.indication.category === undefined ? null : L.indications[content.indication.category]);
    w.paragraph(content.indication.text);
  }
  w.heading(L.procedureSection);
  const prep = content.bowelPreparation;
  if (prep !== undefined) {
    w.field(L.bowelPreparation, `${L.segmentsBbps.right} ${prep.right} · ${L.segmentsBbps.transverse} ${prep.transverse} · ${L.segmentsBbps.left} ${prep.left} · ${L.total} ${prep.total ?? prep.right + prep.transverse + prep.left}/9`);
  }
  if (content.extent !== undefined) {
    w.field(L.extent, L.segments[content.extent.reached]);
    w.field(L.extentLimitation, content.extent.limitation);
  }
  const landmarks = content.landmarks ?? [];
  if (landmarks.length > 0) {
    w.field(L.landmarks, landmarks.map((l) => `${L.landmarkNames[l.landmark]}${l.image === undefined ? '' : ` (${L.photo})`}`).join(', '));
  }
  if (content.withdrawal !== undefined && content.withdrawal.seconds !== null) {
    const s = Math.round(content.withdrawal.seconds);
    w.field(L.withdrawal, `${Math.floor(s / 60)} ${L.minutes} ${s % 60} ${L.seconds}${content.withdrawal.source === 'recording' ? ` (${L.fromRecording})` : ''}`);
  }
  const lesions = content.lesions ?? [];
  const ai = content.aiFindings ?? [];
  w.heading(L.findings);
  if (lesions.length === 0 && ai.every((f) => f.decision !== 'accepted')) w.paragraph(L.noLesion);
  lesions.forEach((lesion, i) => {
    const parts = [
      L.segments[lesion.location],
      lesion.sizeMm === undefined ? undefined : `${lesion.sizeMm} mm`,
      lesion.paris === undefined ? undefined : `Paris ${lesion.paris}`,
      lesion.resection === undefined
        ? undefined
        : `${L.resections[lesion.resection.method]}${lesion.resection.completeness === undefined ? '' : `, ${L.completeness[lesion.resection.completeness]}`}`,
      lesion.histology === undefined
        ? undefined
        : `${L.histologyLabel}: ${L.histologies[lesion.histology.type]} (${L.histologyStatus[lesion.histology.status]}${lesion.histology.dysplasia === undefined ? '' : `, ${L.dysplasia[lesion.histology.dysplasia]}`})`,
    ].filter((p): p is string => p !== undefined);
    const cited = ai.filter((f) => f.decision === 'accepted' && f.lesion === i + 1);
    w.field(`${L.lesion} ${i + 1}`, parts.join(' · '));
    for (const f of cited) w.paragraph(`  ${L.aiCited}: SR ${f.report}, ${L.frame} ${f.frame}${f.score === undefined ? '' : `, ${L.score} ${f.score.toFixed(2)}`}`);
    w.paragraph(lesion.comment);
  });
  const unlinked = ai.filter((f) => f.decision === 'accepted' && f.lesion === undefined);
  unlinked.forEach((f, i) => w.field(`${L.aiFinding} ${i + 1}`, `${f.label ?? ''} · SR ${f.report}, ${L.frame} ${f.frame}${f.score === undefined ? '' : `, ${L.score} ${f.score.toFixed(2)}`}`));
  if (ai.length > 0) {
    const accepted = ai.filter((f) => f.decision === 'accepted').length;
    const rejected = ai.filter((f) => f.decision === 'rejected').length;
    w.field(L.aiReview, `${accepted} ${L.accepted}, ${rejected} ${L.rejected}, ${ai.length - accepted - rejected} ${L.pending}`);
  }
  if ((content.conclusion ?? '') !== '' || (content.recommendation ?? '') !== '') {
    w.heading(L.conclusion);
    w.paragraph(content.conclusion);
    w.field(L.recommendation, content.recommendation);
  }
}

function pathology(w: Writer, content: PathologyContent): void {
  const L = w.labels;
  const specimen = content.specimen;
  if (specimen !== undefined) {
    w.heading(L.specimen);
    w.field(L.specimenId, specimen.identifier);
    w.field(L.collection, specimen.collection === undefined ? null : L.collections[specimen.collection]);
    w.field(L.site, specimen.siteText ?? specimen.site?.meaning);
    w.paragraph(specimen.description);
  }
  const findings = content.findings ?? [];
  if (findings.length > 0) {
    w.heading(L.findings);
    findings.forEach((finding, i) => {
      w.field(`${i + 1}`, finding.text);
      for (const region of finding.regions ?? []) {
        w.paragraph(`  ${L.region}: ${L.group} ${region.group}${region.groupLabel === undefined ? '' : ` (${region.groupLabel})`}${region.annotation === undefined ? '' : `, #${region.annotation}`}${region.ai === true ? ' · AI' : ''}`);
      }
    });
  }
  w.heading(L.diagnosis);
  w.paragraph(content.diagnosis?.text);
  w.field(L.grade, content.grade === undefined ? null : L.grades[content.grade]);
  w.paragraph(content.conclusion);
}

function radiology(w: Writer, content: RadiologyContent): void {
  const L = w.labels;
  if ((content.procedure ?? '') !== '' || (content.clinicalInformation ?? '') !== '') {
    w.heading(L.clinicalInformation);
    w.field(L.procedure, content.procedure ?? content.procedureCode?.meaning);
    w.paragraph(content.clinicalInformation);
  }
  w.heading(L.findings);
  w.paragraph(content.findings);
  const measurements = content.measurements ?? [];
  measurements.forEach((m, i) => w.field(m.label ?? `${L.measurement} ${i + 1}`, m.type === 'length' ? `${L.length} ${m.value} mm` : `${L.area} ${m.value} mm²`));
  w.heading(L.impression);
  w.paragraph(content.impression);
}

function images(w: Writer, list: PdfImage[]): void {
  const { doc, labels } = w;
  const width = (doc.page.width - 2 * MARGIN - 20) / 2;
  const height = width * 0.75;
  // The heading goes with the first row of images.
  if (doc.y + 40 + height + 30 > doc.page.height - MARGIN) doc.addPage();
  w.heading(labels.keyImages);
  for (let i = 0; i < list.length; i += 2) {
    if (doc.y + height + 30 > doc.page.height - MARGIN) doc.addPage();
    const top = doc.y;
    for (let j = 0; j < 2 && i + j < list.length; j += 1) {
      const image = list[i + j]!;
      const left = MARGIN + j * (width + 20);
      if (image.jpeg !== null) {
        doc.image(image.jpeg, left, top, { fit: [width, height], align: 'center', valign: 'center' });
      } else {
        doc.rect(left, top, width, height).stroke('#999999');
        doc.font('regular').fontSize(9).text(labels.imageUnavailable.normalize('NFC'), left, top + height / 2, { width, align: 'center', features: FEATURES });
      }
      doc.font('regular').fontSize(9).text(image.caption.normalize('NFC'), left, top + height + 4, { width, align: 'center', features: FEATURES });
    }
    doc.x = MARGIN;
    doc.y = top + height + 28;
  }
}
