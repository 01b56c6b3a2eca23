/**
 * Vietnamese text inside sequence items reads back exactly: the data set's Specific Character Set
 * (ISO_IR 192) applies to its items too (PS3.5 §6.1.2.5.3), which dcmjs alone gets wrong
 * (dcmjs-sequence-charset.ts). What ingest indexes is what WADO-RS metadata and QIDO answer.
 */
import { describe, expect, it } from 'vitest';
import { scanPart10 } from './part10-scanner.js';
import { writePart10 } from './write-part10.js';

async function* once(buffer: Buffer) {
  yield buffer;
}

describe('text in sequence items of a UTF-8 data set', () => {
  it('is read with the data set character set, at every depth', async () => {
    const file = writePart10({
      SpecificCharacterSet: 'ISO_IR 192',
      SOPClassUID: '1.2.840.10008.5.1.4.1.1.77.1.1.1',
      SOPInstanceUID: '1.2.826.0.1.3680043.10.1234.1',
      StudyInstanceUID: '1.2.826.0.1.3680043.10.1234.2',
      SeriesInstanceUID: '1.2.826.0.1.3680043.10.1234.3',
      PatientName: 'PHẠM^THỊ HỒNG',
      StudyDescription: 'Nội soi đại tràng',
      RequestAttributesSequence: [
        {
          RequestedProcedureDescription: 'Nội soi đại tràng & sinh thiết',
          RequestedProcedureCodeSequence: [{ CodeValue: 'ES-COLO', CodingSchemeDesignator: '99BVBM', CodeMeaning: 'Nội soi đại tràng' }],
        },
      ],
    });
    const header = await scanPart10(once(file), () => {}, { maxHeaderBytes: 1 << 20 });
    const json = header.dataset as Record<string, { Value?: Array<Record<string, { Value?: unknown[] }>> }>;
    expect(json['00081030']?.Value?.[0]).toBe('Nội soi đại tràng');
    const request = json['00400275']!.Value![0]!;
    expect(request['00321060']?.Value?.[0]).toBe('Nội soi đại tràng & sinh thiết');
    const code = (request['00321064']!.Value![0] as unknown as Record<string, { Value?: unknown[] }>)['00080104'];
    expect(code?.Value?.[0]).toBe('Nội soi đại tràng');
  });
});
