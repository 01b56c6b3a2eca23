/** The DICOMweb server (PS3.18) under one prefix; dependencies arrive as typed options. */
import type { FastifyInstance } from 'fastify';
import type { Archive } from '../archive/archive.js';
import type { Config } from '../config.js';
import { bulkDataRoutes } from './bulkdata.routes.js';
import { metadataRoutes } from './metadata.routes.js';
import { qidoRoutes } from './qido.routes.js';
import { renderedRoutes } from './rendered.routes.js';
import { stowRoutes } from './stow.routes.js';
import { wadoRoutes } from './wado.routes.js';

export interface DicomwebPluginOptions {
  archive: Archive;
  config: Pick<Config, 'publicBaseUrl' | 'dicomwebPrefix' | 'stow' | 'qido'> & Partial<Pick<Config, 'limits'>>;
}

export async function dicomwebPlugin(app: FastifyInstance, { archive, config }: DicomwebPluginOptions): Promise<void> {
  const common = { archive, publicBaseUrl: config.publicBaseUrl, dicomwebPath: config.dicomwebPrefix };
  await app.register(stowRoutes, { ...common, maxBodyBytes: config.stow.maxBodyBytes, maxParts: config.limits?.stowMaxParts });
  await app.register(qidoRoutes, { ...common, defaultLimit: config.qido.defaultLimit, maxLimit: config.qido.maxLimit });
  await app.register(wadoRoutes, { ...common, maxFrames: config.limits?.wadoMaxFrames });
  await app.register(metadataRoutes, { ...common, cacheBytes: config.limits?.metadataCacheBytes });
  await app.register(bulkDataRoutes, common);
  await app.register(renderedRoutes, common);
}
