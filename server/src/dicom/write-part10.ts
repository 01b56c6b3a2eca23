/**
 * Writing Part-10 files (PS3.10 §7.1) of instances this server creates (SR reports, annotations,
 * live recordings): dcmjs encodes the File Meta group and the data set; this module only fixes what
 * every file we write carries, so the identity of our implementation is declared once.
 */
import dcmjs from 'dcmjs';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

/** Our Implementation Class UID (a UUID-derived UID, PS3.5 §B.2) and version name. */
export const IMPLEMENTATION_CLASS_UID = '2.25.36920107774742470692394419266027969879';
export const IMPLEMENTATION_VERSION_NAME = 'FILMLESS_0_1';

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/**
 * A dcmjs-naturalized data set (with SOPClassUID and SOPInstanceUID) as Part-10 bytes. Encapsulated
 * transfer syntaxes use Explicit VR Little Endian for the data set, which is how dcmjs writes them.
 */
export function writePart10(dataset: Record<string, unknown>, transferSyntaxUid = EXPLICIT_VR_LITTLE_ENDIAN): Buffer {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset['SOPClassUID'],
    MediaStorageSOPInstanceUID: dataset['SOPInstanceUID'],
    TransferSyntaxUID: transferSyntaxUid,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write());
}
