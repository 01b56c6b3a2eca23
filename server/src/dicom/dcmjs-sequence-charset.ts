/**
 * Workaround for a dcmjs defect (dcmjs-org/dcmjs#503, #508, open in 0.51): text inside sequence items is
 * decoded as Latin-1 whatever the data set's Specific Character Set (0008,0005) says, because the item's
 * sub-stream (`ReadBufferStream.more`) is created with the default decoder instead of its parent's. PS3.5
 * §6.1.2.5.3: the character set of a data set applies to its sequence items unless an item declares its
 * own. Vietnamese text in a Request Attributes Sequence, an SR's Content Sequence or a code meaning came
 * back as "Ná»i soi" instead of "Nội soi".
 *
 * Installed once when this module is imported (dicom/header-json.ts, the readers of our own SRs): the
 * sub-stream inherits the parent's decoder; an item that carries its own (0008,0005) still switches it,
 * as dcmjs does at the top level. Remove when dcmjs fixes the issue (its tests then cover it).
 */
import dcmjs from 'dcmjs';

interface DecodingStream {
  decoder?: unknown;
  more(length: number): DecodingStream;
}

const streamClass = (dcmjs.data as unknown as { ReadBufferStream?: { prototype: DecodingStream } }).ReadBufferStream;
const PATCHED = Symbol.for('filmless-pacs.dcmjs.sequence-charset');

if (streamClass !== undefined && !(streamClass.prototype as unknown as Record<symbol, boolean>)[PATCHED]) {
  const more = streamClass.prototype.more;
  streamClass.prototype.more = function moreWithParentDecoder(this: DecodingStream, length: number): DecodingStream {
    const sub = more.call(this, length);
    if (this.decoder !== undefined) sub.decoder = this.decoder;
    return sub;
  };
  (streamClass.prototype as unknown as Record<symbol, boolean>)[PATCHED] = true;
}

/** True when the workaround is installed (the test checks the behaviour itself). */
export const sequenceCharsetPatched = streamClass !== undefined;
