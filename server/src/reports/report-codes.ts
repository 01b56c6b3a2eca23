/**
 * The coded concepts of the reports (PS3.3 §8.8): what the DICOM SR says for each value of the report
 * contract, and the words the PDF prints. Standard codes where one exists, checked against DICOM PS3.16
 * (the concept dictionary pydicom generates from it):
 *
 * - SNOMED CT (SCT): colon segments (CID 6210: 32713005 Cecum, 9040008 Ascending colon, 48338005 Hepatic
 *   flexure of colon, 485005 Transverse colon, 72592005 Splenic flexure of colon, 32622004 Descending
 *   colon, 60184004 Sigmoid colon, 34402009 Rectum; 34516001 Ileum for the terminal ileum), 23153004
 *   Ileocecal valve, 68496003 Polyp of colon (CID 6201), 373197004 Polyp size, largest dimension (CID
 *   6212), 73761001 Colonoscopy, histology 1187375007 Adenoma, 444408007 Tubular adenoma, 1187332001
 *   Adenocarcinoma (CID 6030/638), 363698007 Finding Site, 373066001 Yes / 373067005 No, 371469007 Histologic grade with G1–G4 (CID 6070), 86273004 Biopsy
 *   and 65801008 Excision (CID 8109), 410668003 Length and 42798000 Area (CID 7469).
 * - DCM: the report structure of TID 2000 (121058 Procedure reported, 121071 Finding, 121073 Impression,
 *   121077 Conclusion, 121075 Recommendation, 121109 Indications for Procedure, 121180 Key Images, 121080
 *   Best illustration of finding, 121005/121006/121008 observer context, 112039 Tracking Identifier,
 *   125007 Measurement Group, 121112 Source of Measurement, 121106 Comment, 113012 Key Object Description).
 * - LOINC (LN): document titles 18746-8 Colonoscopy study, 11526-1 Pathology study, 18748-4 Diagnostic
 *   Imaging Report; section headings of CID 7001 (18785-6 Indications for Procedure, 59776-5 Findings,
 *   19005-8 Impressions, 55110-1 Conclusions, 11329-0 History).
 * - The server's own scheme 99FLMPACS (dicom/coded-concept.ts) where DICOM and SNOMED CT as checked here
 *   have no code: the Boston Bowel Preparation Scale items, extent reached, caecal landmarks other than
 *   the ileocaecal valve, withdrawal time, Paris classes, resection methods and completeness, the
 *   histology types without a checked SNOMED CT code (villous, tubulovillous, serrated, hyperplastic…),
 *   dysplasia grades, AI review decisions, indications.
 */
import type { ColonSegment, HistologyType, ReportKind } from '../contracts/reports.js';
import { code, LOCAL_CODING_SCHEME, type Code } from '../dicom/coded-concept.js';

const local = (value: string, meaning: string): Code => code(value, LOCAL_CODING_SCHEME, meaning);

export const DOCUMENT_TITLE: Record<ReportKind, Code> = {
  endoscopy: code('18746-8', 'LN', 'Colonoscopy study'),
  pathology: code('11526-1', 'LN', 'Pathology study'),
  radiology: code('18748-4', 'LN', 'Diagnostic Imaging Report'),
};

export const C = {
  language: code('121049', 'DCM', 'Language of Content Item and Descendants'),
  observerType: code('121005', 'DCM', 'Observer Type'),
  person: code('121006', 'DCM', 'Person'),
  personObserverName: code('121008', 'DCM', 'Person Observer Name'),
  procedureReported: code('121058', 'DCM', 'Procedure reported'),
  colonoscopy: code('73761001', 'SCT', 'Colonoscopy'),
  // Sections (CID 7001)
  indicationsSection: code('18785-6', 'LN', 'Indications for Procedure'),
  historySection: code('11329-0', 'LN', 'History'),
  findingsSection: code('59776-5', 'LN', 'Findings'),
  impressionsSection: code('19005-8', 'LN', 'Impressions'),
  conclusionsSection: code('55110-1', 'LN', 'Conclusions'),
  keyImages: code('121180', 'DCM', 'Key Images'),
  // Items (CID 7002, 7003)
  indication: code('121109', 'DCM', 'Indications for Procedure'),
  history: code('121060', 'DCM', 'History'),
  finding: code('121071', 'DCM', 'Finding'),
  impression: code('121073', 'DCM', 'Impression'),
  conclusion: code('121077', 'DCM', 'Conclusion'),
  recommendation: code('121075', 'DCM', 'Recommendation'),
  comment: code('121106', 'DCM', 'Comment'),
  bestIllustration: code('121080', 'DCM', 'Best illustration of finding'),
  keyObjectDescription: code('113012', 'DCM', 'Key Object Description'),
  trackingId: code('112039', 'DCM', 'Tracking Identifier'),
  measurementGroup: code('125007', 'DCM', 'Measurement Group'),
  sourceOfMeasurement: code('121112', 'DCM', 'Source of Measurement'),
  imageRegion: code('111030', 'DCM', 'Image Region'),
  findingSite: code('363698007', 'SCT', 'Finding Site'),
  // Endoscopy
  polypOfColon: code('68496003', 'SCT', 'Polyp of colon'),
  polypSize: code('373197004', 'SCT', 'Polyp size, largest dimension'),
  bowelPreparation: local('BBPS', 'Boston Bowel Preparation Scale'),
  bbpsRight: local('BBPS-R', 'BBPS right colon'),
  bbpsTransverse: local('BBPS-T', 'BBPS transverse colon'),
  bbpsLeft: local('BBPS-L', 'BBPS left colon'),
  bbpsTotal: local('BBPS-TOTAL', 'BBPS total'),
  extentReached: local('EXTENT', 'Extent of examination reached'),
  extentLimitation: local('EXTENT-LIMIT', 'Reason caecum not reached'),
  landmark: local('LANDMARK', 'Caecal landmark identified'),
  withdrawalTime: local('WITHDRAWAL', 'Withdrawal time'),
  paris: local('PARIS', 'Paris classification'),
  resectionMethod: local('RESECTION', 'Resection method'),
  resectionCompleteness: local('RESECT-COMPL', 'Resection completeness'),
  retrieved: local('RETRIEVED', 'Specimen retrieved'),
  histology: local('HISTOLOGY', 'Histology'),
  suspectedHistology: local('HISTO-SUSP', 'Suspected histology (optical diagnosis)'),
  dysplasia: local('DYSPLASIA', 'Dysplasia grade'),
  aiReview: local('AI-REVIEW', 'AI finding review'),
  accepted: local('AI-ACCEPTED', 'AI finding accepted'),
  yes: code('373066001', 'SCT', 'Yes'),
  no: code('373067005', 'SCT', 'No'),
  // Pathology
  specimenIdentifier: code('121041', 'DCM', 'Specimen Identifier'),
  specimenDescription: local('SPECIMEN', 'Specimen description'),
  specimenCollection: local('SPEC-COLL', 'Specimen collection procedure'),
  histologicGrade: code('371469007', 'SCT', 'Histologic grade'),
  annotationGroup: local('ANN-GROUP', 'Annotation group'),
  annotationIndex: local('ANN-INDEX', 'Annotation index in group'),
  // Radiology
  length: code('410668003', 'SCT', 'Length'),
  area: code('42798000', 'SCT', 'Area'),
  // Units (UCUM)
  mm: code('mm', 'UCUM', 'millimeter'),
  mm2: code('mm2', 'UCUM', 'square millimeter'),
  seconds: code('s', 'UCUM', 'second'),
  score: code('{score}', 'UCUM', 'score'),
} as const;

export const LANGUAGE_CODE: Record<'vi' | 'en', Code> = {
  vi: code('vi', 'RFC5646', 'Vietnamese'),
  en: code('en', 'RFC5646', 'English'),
};

export const SEGMENT_CODE: Record<ColonSegment, Code> = {
  'terminal-ileum': code('34516001', 'SCT', 'Ileum'),
  caecum: code('32713005', 'SCT', 'Cecum'),
  ascending: code('9040008', 'SCT', 'Ascending colon'),
  'hepatic-flexure': code('48338005', 'SCT', 'Hepatic flexure of colon'),
  transverse: code('485005', 'SCT', 'Transverse colon'),
  'splenic-flexure': code('72592005', 'SCT', 'Splenic flexure of colon'),
  descending: code('32622004', 'SCT', 'Descending colon'),
  sigmoid: code('60184004', 'SCT', 'Sigmoid colon'),
  rectum: code('34402009', 'SCT', 'Rectum'),
};

export const LANDMARK_CODE: Record<'appendiceal-orifice' | 'ileocaecal-valve' | 'terminal-ileum', Code> = {
  'appendiceal-orifice': local('APPX-ORIFICE', 'Appendiceal orifice'),
  'ileocaecal-valve': code('23153004', 'SCT', 'Ileocecal valve'),
  'terminal-ileum': code('34516001', 'SCT', 'Ileum'),
};

export const HISTOLOGY_CODE: Record<HistologyType, Code> = {
  adenoma: code('1187375007', 'SCT', 'Adenoma'),
  'tubular-adenoma': code('444408007', 'SCT', 'Tubular adenoma'),
  'tubulovillous-adenoma': local('TVA', 'Tubulovillous adenoma'),
  'villous-adenoma': local('VA', 'Villous adenoma'),
  'traditional-serrated-adenoma': local('TSA', 'Traditional serrated adenoma'),
  'sessile-serrated-lesion': local('SSL', 'Sessile serrated lesion'),
  hyperplastic: local('HP', 'Hyperplastic polyp'),
  adenocarcinoma: code('1187332001', 'SCT', 'Adenocarcinoma'),
  inflammatory: local('INFLAM', 'Inflammatory polyp'),
  hamartomatous: local('HAMART', 'Hamartomatous polyp'),
  'normal-mucosa': local('NORMAL', 'Normal mucosa'),
  other: local('OTHER', 'Other histology'),
};

/** Adenomas for the adenoma detection rate (conventional adenomas of any subtype, traditional serrated adenoma). */
export const ADENOMA_TYPES: ReadonlySet<HistologyType> = new Set(['adenoma', 'tubular-adenoma', 'tubulovillous-adenoma', 'villous-adenoma', 'traditional-serrated-adenoma']);

export const GRADE_CODE: Record<string, Code> = {
  G1: code('54102005', 'SCT', 'Grade 1: well differentiated'),
  G2: code('1663004', 'SCT', 'Grade 2: moderately differentiated'),
  G3: code('61026006', 'SCT', 'Grade 3: poorly differentiated'),
  G4: code('258245003', 'SCT', 'Grade 4: undifferentiated'),
  'low-grade-dysplasia': local('LGD', 'Low grade dysplasia'),
  'high-grade-dysplasia': local('HGD', 'High grade dysplasia'),
};

export const COLLECTION_CODE: Record<string, Code> = {
  biopsy: code('86273004', 'SCT', 'Biopsy'),
  excision: code('65801008', 'SCT', 'Excision'),
  polypectomy: local('POLYPECTOMY', 'Polypectomy'),
  resection: local('RESECTION-SURG', 'Surgical resection'),
  cytology: local('CYTOLOGY', 'Cytology'),
};

/** Local codes of enumerated values without a standard code: the value itself, upper-cased (at most 16 characters). */
export function localCode(value: string, meaning: string): Code {
  return local(value.toUpperCase().replace(/[^A-Z0-9+-]/g, '-').slice(0, 16), meaning);
}
