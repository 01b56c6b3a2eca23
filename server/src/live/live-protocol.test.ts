import { describe, expect, it } from 'vitest';
import { encodeFrame, parseControl, parseFrame, ProtocolError } from './live-protocol.js';

const error = (work: () => unknown) => {
  try {
    work();
  } catch (err) {
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
};

describe('live stream messages', () => {
  it('reads a JPEG frame and a raw RGB frame with their sequence number and capture time', () => {
    const jpeg = parseFrame(encodeFrame({ seq: 7, capturedAt: 1234.5, format: 'jpeg' }, Buffer.from([0xff, 0xd8, 1, 2])), 1000);
    expect(jpeg).toMatchObject({ seq: 7, capturedAt: 1234.5, format: 'jpeg' });
    expect([...jpeg.payload]).toEqual([0xff, 0xd8, 1, 2]);
    const raw = parseFrame(encodeFrame({ seq: 0, capturedAt: 0, format: 'rgb', width: 2, height: 1 }, Buffer.alloc(6)), 1000);
    expect(raw).toMatchObject({ width: 2, height: 1, format: 'rgb' });
  });

  it('explains what is wrong with a malformed frame', () => {
    const cases: Array<[Buffer, string, RegExp]> = [
      [Buffer.from([1, 2]), 'MALFORMED_MESSAGE', /4-byte header length/],
      [Buffer.concat([Buffer.from([0, 0, 0, 50]), Buffer.from('{}')]), 'MALFORMED_MESSAGE', /runs past the message/],
      [Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('abc'), Buffer.from([1])]), 'MALFORMED_MESSAGE', /not a JSON object/],
      [encodeFrame({ seq: -1, capturedAt: 0, format: 'jpeg' }, Buffer.from([1])), 'MALFORMED_MESSAGE', /"seq"/],
      [encodeFrame({ seq: 1, capturedAt: 0, format: 'gif' as 'jpeg' }, Buffer.from([1])), 'MALFORMED_MESSAGE', /"format"/],
      [encodeFrame({ seq: 1, capturedAt: 0, format: 'rgb' }, Buffer.alloc(6)), 'MALFORMED_MESSAGE', /"width" and "height"/],
      [encodeFrame({ seq: 1, capturedAt: 0, format: 'rgba', width: 2, height: 2 }, Buffer.alloc(6)), 'MALFORMED_MESSAGE', /is 16 bytes, got 6/],
      [encodeFrame({ seq: 1, capturedAt: 0, format: 'jpeg' }, Buffer.alloc(0)), 'MALFORMED_MESSAGE', /no image bytes/],
      [encodeFrame({ seq: 1, capturedAt: 0, format: 'jpeg' }, Buffer.alloc(2000)), 'FRAME_TOO_LARGE', /2000 bytes; at most 1000/],
    ];
    for (const [bytes, code, message] of cases) {
      const e = error(() => parseFrame(bytes, 1000));
      expect(e).toBeInstanceOf(ProtocolError);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(message);
    }
  });

  it('reads start and stop, for an existing study, a worklist item or a new patient', () => {
    expect(parseControl('{"type":"stop"}')).toEqual({ type: 'stop' });
    expect(parseControl('{"type":"start","model":"m","study":{"studyInstanceUid":"1.2.3"}}')).toEqual({ type: 'start', model: 'm', record: true, fps: 25, study: { studyInstanceUid: '1.2.3' } });
    expect(parseControl('{"type":"start","model":"m","fps":30,"record":false,"study":{"patientName":"DOE^J","patientId":"P1","patientSex":"F"}}')).toMatchObject({
      fps: 30,
      record: false,
      study: { patientName: 'DOE^J', patientId: 'P1', patientSex: 'F' },
    });
    expect(parseControl('{"type":"start","model":"m","study":{"orderId":"6f1c0a52-9d1e-4c3b-8a77-0e5b1f2d3c4a"}}')).toEqual({
      type: 'start',
      model: 'm',
      record: true,
      fps: 25,
      study: { orderId: '6f1c0a52-9d1e-4c3b-8a77-0e5b1f2d3c4a' },
    });
  });

  it('explains what is wrong with a bad start', () => {
    const cases: Array<[string, RegExp]> = [
      ['not json', /must be JSON/],
      ['{"type":"dance"}', /Unknown message type/],
      ['{"type":"start","study":{"studyInstanceUid":"1.2"}}', /"model"/],
      ['{"type":"start","model":"m","study":{"studyInstanceUid":"1.2.x"}}', /not a valid UID/],
      ['{"type":"start","model":"m","study":{"patientId":"P1"}}', /"patientName"/],
      ['{"type":"start","model":"m","study":{"patientName":"A\\\\B","patientId":"P1"}}', /backslashes/],
      ['{"type":"start","model":"m","fps":0,"study":{"studyInstanceUid":"1.2"}}', /"fps"/],
      ['{"type":"start","model":"m","study":{"patientName":"A","patientId":"P","patientBirthDate":"1990011"}}', /YYYYMMDD/],
      ['{"type":"start","model":"m","study":{"orderId":"../../x"}}', /"orderId" must be the id of a worklist item/],
      ['{"type":"start","model":"m","study":{"orderId":7}}', /"orderId" must be the id of a worklist item/],
      ['{"type":"start","model":"m","study":{"orderId":"a1","patientName":"A","patientId":"P"}}', /must be {"orderId":…} alone/],
    ];
    for (const [raw, message] of cases) expect(error(() => parseControl(raw)).message).toMatch(message);
  });
});
