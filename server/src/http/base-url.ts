/** The DICOMweb root as clients reach it, for RetrieveURL values (PS3.18 §10.5.3, §10.6.3). */
export function dicomwebBaseUrl(
  request: { protocol: string; host: string },
  publicBaseUrl: string,
  prefix: string,
): string {
  const origin = publicBaseUrl !== '' ? publicBaseUrl : `${request.protocol}://${request.host}`;
  return `${origin}${prefix}`;
}
