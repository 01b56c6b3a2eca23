/**
 * The words the report PDF prints, in Vietnamese (default) and English: titles, field labels and the
 * names of the enumerated values of the report contract (contracts/reports.ts).
 */
import type {
  ColonSegment,
  HistologyType,
  ReportKind,
} from '../contracts/reports.js';

type Names<K extends string> = Record<K, string>;

export interface Labels {
  language: 'vi' | 'en';
  title: Names<ReportKind>;
  draftBanner: string;
  supersededBanner: string;
  amends: string;
  patientSection: string;
  patientName: string;
  patientId: string;
  birthDate: string;
  sex: string;
  sexes: Record<string, string>;
  studyDate: string;
  accessionNumber: string;
  studyDescription: string;
  indication: string;
  indicationCategory: string;
  indications: Names<'screening' | 'positive-fit' | 'surveillance' | 'symptoms' | 'therapeutic' | 'other'>;
  procedureSection: string;
  bowelPreparation: string;
  segmentsBbps: { right: string; transverse: string; left: string };
  total: string;
  extent: string;
  extentLimitation: string;
  segments: Names<ColonSegment>;
  landmarks: string;
  landmarkNames: Names<'appendiceal-orifice' | 'ileocaecal-valve' | 'terminal-ileum'>;
  photo: string;
  withdrawal: string;
  minutes: string;
  seconds: string;
  fromRecording: string;
  findings: string;
  noLesion: string;
  lesion: string;
  resections: Names<'not-resected' | 'cold-snare' | 'hot-snare' | 'cold-forceps' | 'hot-forceps' | 'emr' | 'piecemeal-emr' | 'esd' | 'biopsy-only'>;
  completeness: Names<'complete' | 'incomplete' | 'unknown'>;
  histologyLabel: string;
  histologies: Names<HistologyType>;
  histologyStatus: Names<'suspected' | 'confirmed'>;
  dysplasia: Names<'low-grade' | 'high-grade'>;
  aiCited: string;
  aiFinding: string;
  aiReview: string;
  accepted: string;
  rejected: string;
  pending: string;
  frame: string;
  score: string;
  conclusion: string;
  recommendation: string;
  specimen: string;
  specimenId: string;
  collection: string;
  collections: Names<'biopsy' | 'polypectomy' | 'excision' | 'resection' | 'cytology'>;
  site: string;
  region: string;
  group: string;
  diagnosis: string;
  grade: string;
  grades: Names<'G1' | 'G2' | 'G3' | 'G4' | 'low-grade-dysplasia' | 'high-grade-dysplasia'>;
  clinicalInformation: string;
  procedure: string;
  measurement: string;
  length: string;
  area: string;
  impression: string;
  keyImages: string;
  imageUnavailable: string;
  signatureSection: string;
  notSigned: string;
  signedBy: string;
  signedAt: string;
  contentHash: string;
  version: string;
  reportId: string;
  page: string;
}

const VI: Labels = {
  language: 'vi',
  title: { endoscopy: 'KẾT QUẢ NỘI SOI ĐẠI TRÀNG', pathology: 'KẾT QUẢ GIẢI PHẪU BỆNH', radiology: 'KẾT QUẢ CHẨN ĐOÁN HÌNH ẢNH' },
  draftBanner: 'BẢN NHÁP – CHƯA KÝ',
  supersededBanner: 'ĐÃ ĐƯỢC THAY THẾ BỞI PHIÊN BẢN',
  amends: 'Sửa đổi phiên bản',
  patientSection: 'Thông tin người bệnh',
  patientName: 'Họ và tên',
  patientId: 'Mã người bệnh',
  birthDate: 'Ngày sinh',
  sex: 'Giới tính',
  sexes: { M: 'Nam', F: 'Nữ', O: 'Khác' },
  studyDate: 'Ngày thực hiện',
  accessionNumber: 'Số phiếu chỉ định',
  studyDescription: 'Mô tả',
  indication: 'Chỉ định',
  indicationCategory: 'Loại chỉ định',
  indications: {
    screening: 'Tầm soát',
    'positive-fit': 'Xét nghiệm máu ẩn trong phân (FIT) dương tính',
    surveillance: 'Theo dõi',
    symptoms: 'Có triệu chứng',
    therapeutic: 'Can thiệp điều trị',
    other: 'Khác',
  },
  procedureSection: 'Quá trình nội soi',
  bowelPreparation: 'Chuẩn bị đại tràng (thang điểm Boston)',
  segmentsBbps: { right: 'Đại tràng phải', transverse: 'Đại tràng ngang', left: 'Đại tràng trái' },
  total: 'Tổng',
  extent: 'Vị trí đưa ống soi tới',
  extentLimitation: 'Lý do không tới manh tràng',
  segments: {
    'terminal-ileum': 'Hồi tràng cuối',
    caecum: 'Manh tràng',
    ascending: 'Đại tràng lên',
    'hepatic-flexure': 'Góc gan',
    transverse: 'Đại tràng ngang',
    'splenic-flexure': 'Góc lách',
    descending: 'Đại tràng xuống',
    sigmoid: 'Đại tràng sigma',
    rectum: 'Trực tràng',
  },
  landmarks: 'Mốc manh tràng',
  landmarkNames: { 'appendiceal-orifice': 'Lỗ ruột thừa', 'ileocaecal-valve': 'Van hồi manh tràng', 'terminal-ileum': 'Hồi tràng cuối' },
  photo: 'có ảnh',
  withdrawal: 'Thời gian rút ống soi',
  minutes: 'phút',
  seconds: 'giây',
  fromRecording: 'tính từ video ghi hình',
  findings: 'Tổn thương',
  noLesion: 'Không phát hiện tổn thương.',
  lesion: 'Tổn thương',
  resections: {
    'not-resected': 'Không cắt',
    'cold-snare': 'Cắt bằng thòng lọng lạnh',
    'hot-snare': 'Cắt bằng thòng lọng nóng',
    'cold-forceps': 'Kẹp bằng kìm lạnh',
    'hot-forceps': 'Kẹp bằng kìm nóng',
    emr: 'Cắt niêm mạc qua nội soi (EMR)',
    'piecemeal-emr': 'EMR từng mảnh',
    esd: 'Bóc tách dưới niêm mạc (ESD)',
    'biopsy-only': 'Chỉ sinh thiết',
  },
  completeness: { complete: 'cắt trọn', incomplete: 'cắt không trọn', unknown: 'không rõ' },
  histologyLabel: 'Mô bệnh học',
  histologies: {
    adenoma: 'U tuyến',
    'tubular-adenoma': 'U tuyến ống',
    'tubulovillous-adenoma': 'U tuyến ống nhung mao',
    'villous-adenoma': 'U tuyến nhung mao',
    'traditional-serrated-adenoma': 'U tuyến răng cưa truyền thống',
    'sessile-serrated-lesion': 'Tổn thương răng cưa không cuống',
    hyperplastic: 'Polyp tăng sản',
    adenocarcinoma: 'Ung thư biểu mô tuyến',
    inflammatory: 'Polyp viêm',
    hamartomatous: 'Polyp hamartoma',
    'normal-mucosa': 'Niêm mạc bình thường',
    other: 'Khác',
  },
  histologyStatus: { suspected: 'dự đoán qua nội soi', confirmed: 'đã xác nhận' },
  dysplasia: { 'low-grade': 'loạn sản độ thấp', 'high-grade': 'loạn sản độ cao' },
  aiCited: 'Phát hiện của AI được chấp nhận',
  aiFinding: 'Phát hiện của AI',
  aiReview: 'Phát hiện của AI đã xem xét',
  accepted: 'chấp nhận',
  rejected: 'loại bỏ',
  pending: 'chưa xem xét',
  frame: 'khung hình',
  score: 'điểm',
  conclusion: 'Kết luận',
  recommendation: 'Khuyến nghị',
  specimen: 'Bệnh phẩm',
  specimenId: 'Mã bệnh phẩm',
  collection: 'Phương pháp lấy',
  collections: { biopsy: 'Sinh thiết', polypectomy: 'Cắt polyp', excision: 'Cắt bỏ', resection: 'Phẫu thuật cắt', cytology: 'Tế bào học' },
  site: 'Vị trí',
  region: 'Vùng chú thích',
  group: 'nhóm',
  diagnosis: 'Chẩn đoán',
  grade: 'Độ mô học',
  grades: {
    G1: 'G1 – biệt hóa tốt',
    G2: 'G2 – biệt hóa vừa',
    G3: 'G3 – biệt hóa kém',
    G4: 'G4 – không biệt hóa',
    'low-grade-dysplasia': 'Loạn sản độ thấp',
    'high-grade-dysplasia': 'Loạn sản độ cao',
  },
  clinicalInformation: 'Thông tin lâm sàng',
  procedure: 'Kỹ thuật',
  measurement: 'Đo đạc',
  length: 'chiều dài',
  area: 'diện tích',
  impression: 'Kết luận',
  keyImages: 'Hình ảnh',
  imageUnavailable: 'Không hiển thị được hình ảnh',
  signatureSection: 'Xác nhận',
  notSigned: 'Chưa ký.',
  signedBy: 'Bác sĩ ký',
  signedAt: 'Thời gian ký',
  contentHash: 'Mã băm nội dung (SHA-256)',
  version: 'Phiên bản',
  reportId: 'Mã báo cáo',
  page: 'Trang',
};

const EN: Labels = {
  language: 'en',
  title: { endoscopy: 'COLONOSCOPY REPORT', pathology: 'PATHOLOGY REPORT', radiology: 'DIAGNOSTIC IMAGING REPORT' },
  draftBanner: 'DRAFT – NOT SIGNED',
  supersededBanner: 'SUPERSEDED BY VERSION',
  amends: 'Amends version',
  patientSection: 'Patient',
  patientName: 'Name',
  patientId: 'Patient ID',
  birthDate: 'Date of birth',
  sex: 'Sex',
  sexes: { M: 'Male', F: 'Female', O: 'Other' },
  studyDate: 'Procedure date',
  accessionNumber: 'Accession number',
  studyDescription: 'Description',
  indication: 'Indication',
  indicationCategory: 'Category',
  indications: { screening: 'Screening', 'positive-fit': 'Positive FIT', surveillance: 'Surveillance', symptoms: 'Symptoms', therapeutic: 'Therapeutic', other: 'Other' },
  procedureSection: 'Procedure',
  bowelPreparation: 'Bowel preparation (Boston scale)',
  segmentsBbps: { right: 'right', transverse: 'transverse', left: 'left' },
  total: 'total',
  extent: 'Extent reached',
  extentLimitation: 'Why the caecum was not reached',
  segments: {
    'terminal-ileum': 'terminal ileum',
    caecum: 'caecum',
    ascending: 'ascending colon',
    'hepatic-flexure': 'hepatic flexure',
    transverse: 'transverse colon',
    'splenic-flexure': 'splenic flexure',
    descending: 'descending colon',
    sigmoid: 'sigmoid colon',
    rectum: 'rectum',
  },
  landmarks: 'Caecal landmarks',
  landmarkNames: { 'appendiceal-orifice': 'appendiceal orifice', 'ileocaecal-valve': 'ileocaecal valve', 'terminal-ileum': 'terminal ileum' },
  photo: 'photo',
  withdrawal: 'Withdrawal time',
  minutes: 'min',
  seconds: 's',
  fromRecording: 'from the recording',
  findings: 'Findings',
  noLesion: 'No lesion found.',
  lesion: 'Lesion',
  resections: {
    'not-resected': 'not resected',
    'cold-snare': 'cold snare',
    'hot-snare': 'hot snare',
    'cold-forceps': 'cold forceps',
    'hot-forceps': 'hot forceps',
    emr: 'EMR',
    'piecemeal-emr': 'piecemeal EMR',
    esd: 'ESD',
    'biopsy-only': 'biopsy only',
  },
  completeness: { complete: 'complete', incomplete: 'incomplete', unknown: 'completeness unknown' },
  histologyLabel: 'Histology',
  histologies: {
    adenoma: 'adenoma',
    'tubular-adenoma': 'tubular adenoma',
    'tubulovillous-adenoma': 'tubulovillous adenoma',
    'villous-adenoma': 'villous adenoma',
    'traditional-serrated-adenoma': 'traditional serrated adenoma',
    'sessile-serrated-lesion': 'sessile serrated lesion',
    hyperplastic: 'hyperplastic polyp',
    adenocarcinoma: 'adenocarcinoma',
    inflammatory: 'inflammatory polyp',
    hamartomatous: 'hamartomatous polyp',
    'normal-mucosa': 'normal mucosa',
    other: 'other',
  },
  histologyStatus: { suspected: 'suspected', confirmed: 'confirmed' },
  dysplasia: { 'low-grade': 'low-grade dysplasia', 'high-grade': 'high-grade dysplasia' },
  aiCited: 'Accepted AI finding',
  aiFinding: 'AI finding',
  aiReview: 'AI findings reviewed',
  accepted: 'accepted',
  rejected: 'rejected',
  pending: 'not reviewed',
  frame: 'frame',
  score: 'score',
  conclusion: 'Conclusion',
  recommendation: 'Recommendation',
  specimen: 'Specimen',
  specimenId: 'Specimen ID',
  collection: 'Collection',
  collections: { biopsy: 'biopsy', polypectomy: 'polypectomy', excision: 'excision', resection: 'surgical resection', cytology: 'cytology' },
  site: 'Site',
  region: 'Annotation region',
  group: 'group',
  diagnosis: 'Diagnosis',
  grade: 'Grade',
  grades: {
    G1: 'G1 – well differentiated',
    G2: 'G2 – moderately differentiated',
    G3: 'G3 – poorly differentiated',
    G4: 'G4 – undifferentiated',
    'low-grade-dysplasia': 'low-grade dysplasia',
    'high-grade-dysplasia': 'high-grade dysplasia',
  },
  clinicalInformation: 'Clinical information',
  procedure: 'Procedure',
  measurement: 'Measurement',
  length: 'length',
  area: 'area',
  impression: 'Impression',
  keyImages: 'Key images',
  imageUnavailable: 'The image could not be shown',
  signatureSection: 'Signature',
  notSigned: 'Not signed.',
  signedBy: 'Signed by',
  signedAt: 'Signed at',
  contentHash: 'Content hash (SHA-256)',
  version: 'Version',
  reportId: 'Report ID',
  page: 'Page',
};

export function labelsFor(language: 'vi' | 'en'): Labels {
  return language === 'en' ? EN : VI;
}
