/**
 * The workarounds for dcmjs defects, installed on import. Every module that reads DICOM with dcmjs imports
 * this one (not the single fixes), so all of them read alike:
 * - dcmjs-sequence-charset.ts: text in sequence items decoded with the data set's character set;
 * - dcmjs-empty-numbers.ts: an empty binary number (length 0) read as no value, not 0.
 */
import './dcmjs-sequence-charset.js';
import './dcmjs-empty-numbers.js';
