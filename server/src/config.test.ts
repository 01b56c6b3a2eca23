import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { AppError } from './errors.js';
import { PERMISSIONS } from './auth/permissions.js';

describe('configuration from the environment', () => {
  it('runs embedded on loopback with no variables set', () => {
    const config = loadConfig({}, '/srv/pacs');
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(8080);
    expect(config.dicomwebPrefix).toBe('/dicomweb');
    expect(config.blobStore).toEqual({ kind: 'fs', root: '/srv/pacs/data/blobs' });
    expect(config.index).toEqual({ kind: 'sqlite', file: '/srv/pacs/data/index.sqlite' });
  });

  it('is frozen, nested objects included', () => {
    const config = loadConfig({}, '/srv/pacs');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.stow)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow();
  });

  it('selects MinIO/S3 and PostgreSQL by environment alone', () => {
    const config = loadConfig({
      PACS_BLOB_STORE: 's3',
      PACS_S3_ENDPOINT: 'minio',
      PACS_S3_ACCESS_KEY: 'key',
      PACS_S3_SECRET_KEY: 'secret',
      PACS_INDEX: 'postgres',
      PACS_POSTGRES_URL: 'postgres://pacs@db/pacs',
    });
    expect(config.blobStore).toMatchObject({ kind: 's3', endPoint: 'minio', port: 9000, bucket: 'dicom', useSSL: false });
    expect(config.index).toMatchObject({ kind: 'postgres', connectionString: 'postgres://pacs@db/pacs', schema: 'public' });
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({ PACS_PORT: 'eighty', PACS_BLOB_STORE: 's3', PACS_INDEX: 'oracle', PACS_LOG_LEVEL: 'loud' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AppError);
    const message = (error as AppError).message;
    expect((error as AppError).code).toBe('CONFIG_INVALID');
    for (const name of ['PACS_PORT', 'PACS_S3_ENDPOINT', 'PACS_S3_ACCESS_KEY', 'PACS_S3_SECRET_KEY', 'PACS_INDEX', 'PACS_LOG_LEVEL']) {
      expect(message).toContain(name);
    }
  });

  it('has CORS off by default and reads a list of origins', () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(loadConfig({ PACS_CORS_ORIGINS: ' ' }).corsOrigins).toEqual([]);
    const config = loadConfig({ PACS_CORS_ORIGINS: 'https://Viewer.Example.org/, http://localhost:3000,https://viewer.example.org' });
    expect(config.corsOrigins).toEqual(['https://viewer.example.org', 'http://localhost:3000']);
    expect(Object.isFrozen(config.corsOrigins)).toBe(true);
  });

  it('refuses CORS origins that are not http(s) origins, with the other problems', () => {
    let message = '';
    try {
      loadConfig({ PACS_CORS_ORIGINS: 'https://ok.example.org,*,ftp://files.example.org,https://viewer.example.org/app,viewer.example.org', PACS_PORT: 'x' });
    } catch (err) {
      message = (err as AppError).message;
    }
    expect(message).toContain('PACS_PORT');
    for (const bad of ['"*"', '"ftp://files.example.org"', '"https://viewer.example.org/app"', '"viewer.example.org"']) {
      expect(message).toContain(`PACS_CORS_ORIGINS must list http(s) origins such as https://viewer.example.org (no path, no "*"), got ${bad}`);
    }
    expect(message).not.toContain('"https://ok.example.org"');
  });

  it('reports problems of different sections together, in one error, in the order they are read', () => {
    let error: unknown;
    try {
      loadConfig({
        PACS_INDEX: 'postgres',
        PACS_AI_MAX_BATCH: '0',
        PACS_DIMSE_AE_TITLE: 'A_TITLE_LONGER_THAN_16',
        PACS_JOBS_QUEUE: 'kafka',
        PACS_RATE_LIMIT_MAX: 'many',
        PACS_AUTH_ENABLED: 'true',
        PACS_TLS_KEY_FILE: 'key.pem',
        PACS_AUDIT_SYSLOG: 'http://audit',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('CONFIG_INVALID');
    const lines = (error as AppError).message.split('\n');
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines.slice(1).map((line) => /^  - (PACS_[A-Z_0-9]+)/.exec(line)?.[1])).toEqual([
      'PACS_POSTGRES_URL',
      'PACS_AI_MAX_BATCH',
      'PACS_DIMSE_AE_TITLE',
      'PACS_JOBS_QUEUE',
      'PACS_RATE_LIMIT_MAX',
      'PACS_AUTH_ISSUER',
      'PACS_AUTH_AUDIENCE',
      'PACS_TLS_CERT_FILE',
      'PACS_AUDIT_SYSLOG',
    ]);
  });

  it('refuses out-of-range numbers', () => {
    expect(() => loadConfig({ PACS_PORT: '70000' })).toThrow(/PACS_PORT must be between 0 and 65535/);
  });
});

describe('DIMSE configuration from the environment', () => {
  it('is off by default and, when on, listens on loopback port 11112 as FILMLESS for any calling AE', () => {
    const config = loadConfig({});
    expect(config.dimse).toEqual({
      enabled: false,
      host: '127.0.0.1',
      port: 11112,
      aeTitle: 'FILMLESS',
      allowedCallingAeTitles: [],
      aePermissions: {},
      destinations: {},
    });
    expect(Object.isFrozen(config.dimse.destinations)).toBe(true);
  });

  it('reads address, AE title, allow-list and C-MOVE destinations', () => {
    const config = loadConfig({
      PACS_DIMSE_ENABLED: 'true',
      PACS_DIMSE_HOST: '0.0.0.0',
      PACS_ALLOW_UNAUTHENTICATED_NETWORK: 'true',
      PACS_DIMSE_PORT: '104',
      PACS_DIMSE_AE_TITLE: ' PACS1 ',
      PACS_DIMSE_ALLOWED_CALLING_AES: 'CT1, MR_2 ,CT1',
      PACS_DIMSE_DESTINATIONS: 'ORTHANC=127.0.0.1:4242, WS1=10.0.0.5:104,V6=[::1]:11112',
    });
    expect(config.dimse).toEqual({
      enabled: true,
      host: '0.0.0.0',
      port: 104,
      aeTitle: 'PACS1',
      allowedCallingAeTitles: ['CT1', 'MR_2'],
      aePermissions: {},
      destinations: {
        ORTHANC: { host: '127.0.0.1', port: 4242 },
        WS1: { host: '10.0.0.5', port: 104 },
        V6: { host: '::1', port: 11112 },
      },
    });
  });

  it('refuses invalid AE titles and destinations, with the other problems', () => {
    let message = '';
    try {
      loadConfig({
        PACS_DIMSE_ENABLED: 'maybe',
        PACS_DIMSE_PORT: '99999',
        PACS_DIMSE_AE_TITLE: 'A_TITLE_LONGER_THAN_16',
        PACS_DIMSE_ALLOWED_CALLING_AES: 'OK,BAD\\AE,CTRL\u0007',
        PACS_DIMSE_DESTINATIONS: 'GOOD=h:1,NOPORT=host,BADPORT=h:70000,=h:1,GOOD=h:2',
      });
    } catch (err) {
      message = (err as AppError).message;
    }
    expect(message).toContain('PACS_DIMSE_ENABLED must be true or false');
    expect(message).toContain('PACS_DIMSE_PORT must be between 0 and 65535');
    expect(message).toContain('PACS_DIMSE_AE_TITLE must be an AE title of 1 to 16 characters');
    expect(message).toContain('PACS_DIMSE_ALLOWED_CALLING_AES must list AE titles of 1 to 16 characters without backslash or control characters, got "BAD\\AE"');
    expect(message).toContain('got "CTRL\u0007"');
    for (const bad of ['NOPORT=host', 'BADPORT=h:70000', '=h:1']) {
      expect(message).toContain(`PACS_DIMSE_DESTINATIONS must list AE=host:port entries such as ORTHANC=127.0.0.1:4242 (AE title of 1 to 16 characters, port 1-65535), got "${bad}"`);
    }
    expect(message).toContain('PACS_DIMSE_DESTINATIONS lists the AE title "GOOD" twice');
    expect(message).not.toContain('"OK"');
  });
});

describe('listening beyond loopback without authentication', () => {
  it('listens on loopback by default', () => {
    const config = loadConfig({});
    expect(config.host).toBe('127.0.0.1');
    expect(config.exposedWithoutAuthentication).toBe(false);
  });

  it('refuses a non-loopback HTTP or DIMSE address unless the risk is accepted explicitly', () => {
    expect(() => loadConfig({ PACS_HOST: '0.0.0.0' })).toThrow(/PACS_HOST=0\.0\.0\.0 would serve patient data beyond this machine without authentication/);
    expect(() => loadConfig({ PACS_DIMSE_ENABLED: 'true', PACS_DIMSE_HOST: '10.0.0.5' })).toThrow(/PACS_DIMSE_HOST=10\.0\.0\.5/);
    expect(loadConfig({ PACS_HOST: '127.0.0.2' }).exposedWithoutAuthentication).toBe(false);
    expect(loadConfig({ PACS_HOST: '::1' }).exposedWithoutAuthentication).toBe(false);
    const accepted = loadConfig({ PACS_HOST: '0.0.0.0', PACS_ALLOW_UNAUTHENTICATED_NETWORK: 'true' });
    expect(accepted.exposedWithoutAuthentication).toBe(true);
  });
});

describe('sign-in configuration', () => {
  it('is off by default, with the default roles ready for when it is turned on', () => {
    const config = loadConfig({});
    expect(config.auth.enabled).toBe(false);
    expect(config.auth.rolePermissions).toEqual({
      reader: ['read'],
      uploader: ['store'],
      'ai-user': ['read', 'ai'],
      scheduler: ['read', 'his'],
      physician: ['read', 'report', 'sign', 'share'],
      resident: ['read', 'report'],
      admin: [...PERMISSIONS],
    });
    expect(config.tls).toBeNull();
  });

  it('needs an issuer and an audience when on, and then may listen beyond loopback', () => {
    expect(() => loadConfig({ PACS_AUTH_ENABLED: 'true' })).toThrow(/PACS_AUTH_ISSUER is required when PACS_AUTH_ENABLED=true[\s\S]*PACS_AUTH_AUDIENCE is required/);
    const config = loadConfig({
      PACS_HOST: '0.0.0.0',
      PACS_AUTH_ENABLED: 'true',
      PACS_AUTH_ISSUER: 'https://login.hospital.example/realms/pacs/',
      PACS_AUTH_AUDIENCE: 'filmless-pacs',
      PACS_AUTH_ROLES_CLAIM: 'realm_access.roles',
      PACS_AUTH_ROLE_PERMISSIONS: 'pathologist=read,ai; technologist=read,store',
      PACS_AUTH_VIEWER_CLIENT_ID: 'pacs-viewer',
    });
    expect(config.exposedWithoutAuthentication).toBe(false);
    expect(config.auth).toMatchObject({
      issuer: 'https://login.hospital.example/realms/pacs',
      audience: 'filmless-pacs',
      rolesClaim: 'realm_access.roles',
      rolePermissions: { pathologist: ['read', 'ai'], technologist: ['read', 'store'] },
      algorithms: ['RS256', 'PS256', 'ES256'],
      viewer: { clientId: 'pacs-viewer', scope: 'openid profile' },
    });
  });

  it('refuses unknown permissions, HMAC or "none" algorithms and half a TLS setup', () => {
    let message = '';
    try {
      loadConfig({ PACS_AUTH_ROLE_PERMISSIONS: 'nurse=read,erase', PACS_AUTH_ALGORITHMS: 'RS256,HS256,none', PACS_TLS_CERT_FILE: 'cert.pem' });
    } catch (err) {
      message = (err as AppError).message;
    }
    expect(message).toContain(`PACS_AUTH_ROLE_PERMISSIONS must list name=permission,permission entries separated by ";" (permissions: ${PERMISSIONS.join(', ')}), got "nurse=read,erase"`);
    expect(message).toContain('got "HS256"');
    expect(message).toContain('got "none"');
    expect(message).toContain('PACS_TLS_CERT_FILE and PACS_TLS_KEY_FILE must be set together');
  });

  it('gives each DIMSE calling AE its own permissions, and then allows DIMSE beyond loopback', () => {
    const config = loadConfig({ PACS_DIMSE_ENABLED: 'true', PACS_DIMSE_HOST: '0.0.0.0', PACS_DIMSE_AE_PERMISSIONS: 'ENDO1=store; WS1=read ;PEER=read,store' });
    expect(config.dimse.aePermissions).toEqual({ ENDO1: ['store'], WS1: ['read'], PEER: ['read', 'store'] });
    expect(config.exposedWithoutAuthentication).toBe(false);
    expect(() => loadConfig({ PACS_DIMSE_AE_PERMISSIONS: 'ENDO1=ai' })).toThrow(/DIMSE knows only read and store/);
  });
});
