/**
 * The permission vocabulary: what a route, a role or a DIMSE calling AE may be granted. A leaf module
 * (no imports) so configuration can read role and AE tables without pulling in Fastify types.
 */

/**
 * What a route may require (issue "Security and reliability"): enforced in one place, auth/access-control.ts.
 * `his`: writing orders and patients of the hospital link (the orders REST API); reading the worklist is `read`.
 * `report`: writing report drafts and amendments (reports/); `sign`: finalising (signing) them. Reading is `read`.
 * `share`: making share links of a study (patient result slips, consult links) and asking for second
 * opinions (sharing/): data leaves the signed-in staff, so it is a permission of its own.
 * `delete`: removing studies, series and instances for good (`DELETE` under DICOMweb, curation/): a
 * permission of its own, so that administering the archive does not by itself allow destroying data.
 */
export const PERMISSIONS = ['read', 'store', 'ai', 'admin', 'his', 'report', 'sign', 'share', 'delete'] as const;
export type Permission = (typeof PERMISSIONS)[number];
/** A route's declared requirement: `public` routes (health, viewer files, /api) need no token. */
export type RoutePermission = Permission | 'public';
