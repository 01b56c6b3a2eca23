/** The HL7 listener's settings as an administrator writes them (PACS_HL7_*, PACS_HIS_*_ISSUER). */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';

describe('HL7 listener settings', () => {
  it('is off by default, on loopback port 2575, any sender, 1 MiB messages, no issuers', () => {
    expect(loadConfig({}).hl7).toEqual({ enabled: false, host: '127.0.0.1', port: 2575, allowedSenders: [], maxMessageBytes: 1024 * 1024, patientIdIssuer: '', nationalIdIssuer: '' });
  });

  it('reads the sending applications, optionally with their facility, and the issuers of PID-3', () => {
    const config = loadConfig({
      PACS_HL7_ENABLED: 'true',
      PACS_HL7_PORT: '12575',
      PACS_HL7_ALLOWED_SENDERS: 'HIS, RIS^BVBM',
      PACS_HL7_MAX_MESSAGE_BYTES: '2097152',
      PACS_HIS_PATIENT_ID_ISSUER: 'BVBM',
      PACS_HIS_NATIONAL_ID_ISSUER: 'VNM-CCCD',
    });
    expect(config.hl7).toEqual({
      enabled: true,
      host: '127.0.0.1',
      port: 12575,
      allowedSenders: [
        { application: 'HIS', facility: null },
        { application: 'RIS', facility: 'BVBM' },
      ],
      maxMessageBytes: 2 * 1024 * 1024,
      patientIdIssuer: 'BVBM',
      nationalIdIssuer: 'VNM-CCCD',
    });
  });

  it('refuses senders with HL7 delimiters, a size below 1 KiB and an issuer with a backslash, all at once', () => {
    expect(() => loadConfig({ PACS_HL7_ALLOWED_SENDERS: 'HIS|X,A^B^C', PACS_HL7_MAX_MESSAGE_BYTES: '10', PACS_HIS_PATIENT_ID_ISSUER: 'BV\\BM' })).toThrow(
      /PACS_HL7_ALLOWED_SENDERS must list[^\n]*"HIS\|X"[\s\S]*PACS_HL7_ALLOWED_SENDERS must list[^\n]*"A\^B\^C"[\s\S]*PACS_HL7_MAX_MESSAGE_BYTES must be between 1024[\s\S]*PACS_HIS_PATIENT_ID_ISSUER must be an issuer/,
    );
  });

  it('refuses to listen beyond loopback without a sender allow-list, as for DIMSE', () => {
    expect(() => loadConfig({ PACS_HL7_ENABLED: 'true', PACS_HL7_HOST: '0.0.0.0' })).toThrow(/PACS_HL7_HOST=0\.0\.0\.0 would serve patient data beyond this machine[\s\S]*PACS_HL7_ALLOWED_SENDERS/);
    expect(loadConfig({ PACS_HL7_ENABLED: 'true', PACS_HL7_HOST: '0.0.0.0', PACS_HL7_ALLOWED_SENDERS: 'HIS' }).exposedWithoutAuthentication).toBe(false);
    expect(loadConfig({ PACS_HL7_ENABLED: 'true', PACS_HL7_HOST: '0.0.0.0', PACS_ALLOW_UNAUTHENTICATED_NETWORK: 'true' }).exposedWithoutAuthentication).toBe(true);
  });

  it('refuses issuers the hospital link would refuse (not in PACS_HIS_PATIENT_ID_ISSUERS)', () => {
    expect(() => loadConfig({ PACS_HIS_PATIENT_ID_ISSUERS: 'BVBM', PACS_HIS_PATIENT_ID_ISSUER: 'BVBM', PACS_HIS_NATIONAL_ID_ISSUER: 'VNM-CCCD' })).toThrow(
      /PACS_HIS_NATIONAL_ID_ISSUER is "VNM-CCCD", which PACS_HIS_PATIENT_ID_ISSUERS does not list/,
    );
  });
});
