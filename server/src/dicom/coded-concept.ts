/**
 * Coded concepts (PS3.3 §8.8 Code Sequence Macro: value, scheme, meaning) as the writers put them in
 * code sequences and SR content items, and the server's own coding scheme for concepts DICOM has no
 * code for.
 */

/** One coded concept as a dcmjs-naturalized code sequence item. */
export interface Code {
  CodeValue: string;
  CodingSchemeDesignator: string;
  CodeMeaning: string;
}

/** The coded concept `value` of `scheme`, named `meaning`. */
export const code = (value: string, scheme: string, meaning: string): Code => ({ CodeValue: value, CodingSchemeDesignator: scheme, CodeMeaning: meaning });

/** Private coding scheme (PS3.16 §8.2: designators starting "99") for concepts DICOM has no code for. */
export const LOCAL_CODING_SCHEME = '99FLMPACS';
