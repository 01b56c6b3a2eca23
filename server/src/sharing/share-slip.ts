/**
 * The result slip handed to the patient instead of film: a printable PDF (A5 or A4) with the hospital's
 * name and logo, the patient and the study, the QR code of the share link and its short URL, the PIN
 * when the link has one, how long it works, and how to use it, in Vietnamese and English.
 *
 * The QR code is drawn by `qrcode` (npm, MIT, maintained: the QR Code Model 2 encoder of ISO/IEC 18004)
 * as a PNG, error correction M; the PDF by pdfkit with the embedded Noto Sans of the report PDF
 * (reports/report-pdf.ts: same font files, NFC text, no `ccmp`), so Vietnamese prints and extracts
 * exactly.
 */
import PDFDocument from 'pdfkit';
import QRCode from 'qrcode';
import { displayPersonName, embeddedFonts } from '../reports/report-pdf.js';

export interface SlipInput {
  size: 'A5' | 'A4';
  url: string;
  /** The PIN to print, `separate` when the link has one given to the patient apart from the slip, null without a PIN. */
  pin: string | 'separate' | null;
  expiresAt: Date;
  hospital: { name: string; logo: Buffer | null };
  patient: { name: string | null; id: string | null; birthDate: string | null };
  study: { date: string | null; description: string | null; modalities: string[]; accessionNumber: string | null };
  includesReport: boolean;
}

const FEATURES = { ccmp: false } as unknown as [];

const viDate = (da: string | null): string => (da === null || !/^\d{8}$/.test(da) ? (da ?? '') : `${da.slice(6, 8)}/${da.slice(4, 6)}/${da.slice(0, 4)}`);
const viDay = (d: Date): string => `${String(d.getUTCDate()).padStart(2, '0')}/${String(d.getUTCMonth() + 1).padStart(2, '0')}/${d.getUTCFullYear()}`;

/** The QR code of `url` as a PNG (also used by tests to compare with what they decode). */
export function qrPng(url: string): Promise<Buffer> {
  return QRCode.toBuffer(url, { type: 'png', errorCorrectionLevel: 'M', margin: 4, scale: 10 });
}

export async function renderSlip(input: SlipInput): Promise<Buffer> {
  const { regular, bold } = embeddedFonts();
  const a5 = input.size === 'A5';
  const margin = a5 ? 36 : 50;
  const doc = new PDFDocument({
    size: input.size,
    margins: { top: margin, bottom: margin, left: margin, right: margin },
    info: { Title: 'Phiếu kết quả / Result slip', Creator: 'filmless-pacs', Producer: 'filmless-pacs (pdfkit)', CreationDate: new Date(0) },
    lang: 'vi',
  });
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  doc.registerFont('regular', regular);
  doc.registerFont('bold', bold);
  const width = doc.page.width - 2 * margin;
  const text = (value: string, options: PDFKit.Mixins.TextOptions = {}) => doc.text(value.normalize('NFC'), { ...options, features: FEATURES });
  const scale = a5 ? 1 : 1.25;

  // Header: logo and hospital name.
  let top = margin;
  if (input.hospital.logo !== null) {
    try {
      doc.image(input.hospital.logo, margin, top, { fit: [48 * scale, 48 * scale] });
    } catch {
      // An unreadable logo file is left out rather than failing the slip.
    }
  }
  const titleLeft = input.hospital.logo === null ? margin : margin + 56 * scale;
  doc.font('bold').fontSize(13 * scale);
  doc.text((input.hospital.name || 'filmless-pacs').normalize('NFC'), titleLeft, top + 4, { width: width - (titleLeft - margin), features: FEATURES });
  doc.font('regular').fontSize(10 * scale);
  text('PHIẾU KẾT QUẢ CHẨN ĐOÁN HÌNH ẢNH · IMAGING RESULT SLIP', { width: width - (titleLeft - margin) });
  top = Math.max(doc.y, top + 52 * scale) + 8;
  doc.moveTo(margin, top).lineTo(margin + width, top).strokeColor('#999999').stroke();

  // Patient and study.
  doc.x = margin;
  doc.y = top + 8;
  const field = (vi: string, en: string, value: string | null) => {
    if (value === null || value === '') return;
    doc.font('bold').fontSize(10 * scale);
    text(`${vi} / ${en}: `, { continued: true });
    doc.font('regular');
    text(value);
  };
  field('Họ tên', 'Patient', displayPersonName(input.patient.name));
  field('Mã bệnh nhân', 'Patient ID', input.patient.id);
  field('Ngày sinh', 'Date of birth', viDate(input.patient.birthDate));
  field('Ngày chụp', 'Study date', viDate(input.study.date));
  field('Loại chụp', 'Study', [input.study.modalities.join(', '), input.study.description ?? ''].filter((s) => s !== '').join(' · ') || null);
  field('Số phiếu', 'Accession number', input.study.accessionNumber);

  // The QR code, centred, with the short URL and the PIN under it.
  const qr = await qrPng(input.url);
  const qrSize = a5 ? 170 : 230;
  const qrTop = doc.y + 12;
  doc.image(qr, margin + (width - qrSize) / 2, qrTop, { width: qrSize, height: qrSize });
  doc.y = qrTop + qrSize + 6;
  doc.x = margin;
  // The short URL on one line (typed by hand when a phone cannot scan): the font shrinks to fit.
  doc.font('regular').fontSize(9 * scale);
  doc.fontSize(Math.min(9 * scale, (9 * scale * width) / (doc.widthOfString(input.url) + 1)));
  text(input.url, { width, align: 'center', lineBreak: false });
  doc.moveDown(1);
  if (input.pin !== null) {
    doc.moveDown(0.4);
    doc.font('bold').fontSize(14 * scale);
    text(input.pin === 'separate' ? 'Mã PIN: được cung cấp riêng / PIN: given separately' : `Mã PIN / PIN: ${input.pin}`, { width, align: 'center' });
  }
  doc.moveDown(0.6);
  doc.font('regular').fontSize(9 * scale);
  const what = input.includesReport ? 'hình ảnh và kết quả đọc' : 'hình ảnh';
  const whatEn = input.includesReport ? 'the images and the report' : 'the images';
  text(`Quét mã QR bằng điện thoại để xem ${what}${input.pin === null ? '' : ' (nhập mã PIN)'}. Có hiệu lực đến ${viDay(input.expiresAt)}.`, { width });
  text(`Scan the QR code with your phone to see ${whatEn}${input.pin === null ? '' : ' (enter the PIN)'}. Valid until ${input.expiresAt.toISOString().slice(0, 10)}.`, { width });
  doc.moveDown(0.4);
  doc.fillColor('#555555').fontSize(8 * scale);
  text('Ảnh xem trên điện thoại chỉ để tham khảo, không dùng để chẩn đoán. Giữ phiếu này cẩn thận: ai có phiếu đều xem được kết quả.', { width });
  text('Images on a phone are for reference, not for diagnosis. Keep this slip private: whoever holds it can see the results.', { width });
  doc.fillColor('black');
  doc.end();
  return done;
}
