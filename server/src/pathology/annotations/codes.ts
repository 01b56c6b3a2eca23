/**
 * What the annotation instance of a slide analysis is and says, as DICOM identifiers: its SOP class, the
 * annotation property category and type per model label (CID 7150 / 7151 where DICOM has them, a local
 * code otherwise), and the concepts of its algorithm and measurements.
 */
import { code, LOCAL_CODING_SCHEME, type Code } from '../../dicom/coded-concept.js';

/** Microscopy Bulk Simple Annotations Storage (PS3.3 A.87). */
export const MICROSCOPY_BULK_SIMPLE_ANNOTATIONS = '1.2.840.10008.5.1.4.1.1.91.1';

/** Annotation property category and type per model label (CID 7150 / 7151 where DICOM has them). */
const PROPERTY_BY_LABEL: Record<string, { category: Code; type: Code }> = {
  nucleus: { category: code('91723000', 'SCT', 'Anatomical structure'), type: code('84640000', 'SCT', 'Nucleus') },
  cell: { category: code('91723000', 'SCT', 'Anatomical structure'), type: code('4421005', 'SCT', 'Cell') },
  lesion: { category: code('49755003', 'SCT', 'Morphologically abnormal structure'), type: code('52988006', 'SCT', 'Lesion') },
  neoplastic: { category: code('49755003', 'SCT', 'Morphologically abnormal structure'), type: code('108369006', 'SCT', 'Neoplasm') },
};
/** The property category and type of a label's annotations; labels without a standard code get a local one. */
export const propertyOf = (label: string): { category: Code; type: Code } =>
  PROPERTY_BY_LABEL[label] ?? { category: code('49755003', 'SCT', 'Morphologically abnormal structure'), type: code(label.toUpperCase().slice(0, 16), LOCAL_CODING_SCHEME, label) };

export const CODES = {
  artificialIntelligence: code('123109', 'DCM', 'Artificial Intelligence'),
  score: code('DETSCORE', LOCAL_CODING_SCHEME, 'Detection score'),
  meanTileScore: code('TILEMEAN', LOCAL_CODING_SCHEME, 'Mean positive tile probability'),
  maxTileScore: code('TILEMAX', LOCAL_CODING_SCHEME, 'Maximum positive tile probability'),
  tiles: code('TILES', LOCAL_CODING_SCHEME, 'Number of tiles'),
  noUnits: code('1', 'UCUM', 'no units'),
};
