/**
 * Schema migrations, provided in code (no files are read at runtime) so the compiled server and the
 * tests run the same steps. Only the surrogate key differs between engines; everything else is shared.
 * Append new migrations; never edit one that has shipped.
 */
import { Migrator, sql, type ColumnDefinitionBuilder, type Kysely, type Migration, type MigrationProvider } from 'kysely';

export type SqlEngine = 'sqlite' | 'postgres';

type ColumnBuilder = (col: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;

function idColumn(engine: SqlEngine): ColumnBuilder {
  return engine === 'postgres'
    ? (col) => col.primaryKey().generatedAlwaysAsIdentity()
    : (col) => col.primaryKey().autoIncrement();
}

/**
 * Index for columns matched with '=' and with wildcards ('DOE*' → LIKE 'DOE%'). PostgreSQL uses a
 * plain btree for LIKE prefixes only under the C collation; text_pattern_ops works under any collation
 * and still serves equality. SQLite (BINARY collation, case_sensitive_like=ON) needs nothing special.
 */
async function createMatchIndex(db: Kysely<unknown>, engine: SqlEngine, table: string, column: string): Promise<void> {
  const index = db.schema.createIndex(`${table}_${column}_idx`).on(table);
  await (engine === 'postgres' ? index.expression(sql`${sql.ref(column)} text_pattern_ops`) : index.column(column)).execute();
}

async function createPatients(db: Kysely<unknown>, engine: SqlEngine): Promise<void> {
  await db.schema
    .createTable('patients')
    .addColumn('id', 'integer', idColumn(engine))
    .addColumn('patient_id', 'text')
    .addColumn('issuer', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('patient_name', 'text')
    .addColumn('patient_name_search', 'text')
    .addColumn('birth_date', 'text')
    .addColumn('sex', 'text')
    .addUniqueConstraint('patients_patient_id_issuer_key', ['patient_id', 'issuer'])
    .execute();
  await createMatchIndex(db, engine, 'patients', 'patient_name_search');
}

async function createStudies(db: Kysely<unknown>, engine: SqlEngine): Promise<void> {
  await db.schema
    .createTable('studies')
    .addColumn('id', 'integer', idColumn(engine))
    .addColumn('study_uid', 'text', (c) => c.notNull().unique())
    .addColumn('patient_fk', 'integer', (c) => c.notNull().references('patients.id').onDelete('cascade'))
    .addColumn('study_date', 'text')
    .addColumn('study_time', 'text')
    .addColumn('accession_number', 'text')
    .addColumn('referring_physician_name', 'text')
    .addColumn('referring_physician_name_search', 'text')
    .addColumn('study_description', 'text')
    .addColumn('study_id', 'text')
    .addColumn('modalities', 'text')
    .addColumn('specific_character_set', 'text')
    .addColumn('timezone_offset', 'text')
    .addColumn('num_series', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('num_instances', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('attributes', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  for (const column of ['patient_fk', 'study_date', 'study_id']) {
    await db.schema.createIndex(`studies_${column}_idx`).on('studies').column(column).execute();
  }
  for (const column of ['accession_number', 'referring_physician_name_search']) {
    await createMatchIndex(db, engine, 'studies', column);
  }
}

async function createSeries(db: Kysely<unknown>, engine: SqlEngine): Promise<void> {
  await db.schema
    .createTable('series')
    .addColumn('id', 'integer', idColumn(engine))
    .addColumn('series_uid', 'text', (c) => c.notNull().unique())
    .addColumn('study_fk', 'integer', (c) => c.notNull().references('studies.id').onDelete('cascade'))
    .addColumn('modality', 'text')
    .addColumn('series_description', 'text')
    .addColumn('series_number', 'integer')
    .addColumn('pps_start_date', 'text')
    .addColumn('pps_start_time', 'text')
    .addColumn('specific_character_set', 'text')
    .addColumn('timezone_offset', 'text')
    .addColumn('request_attributes', 'text')
    .addColumn('num_instances', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('attributes', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  // (study_fk, modality) serves both "series of a study" and the ModalitiesInStudy EXISTS probe.
  await db.schema.createIndex('series_study_fk_modality_idx').on('series').columns(['study_fk', 'modality']).execute();
  await db.schema.createIndex('series_modality_idx').on('series').column('modality').execute();
}

async function createInstances(db: Kysely<unknown>, engine: SqlEngine): Promise<void> {
  await db.schema
    .createTable('instances')
    .addColumn('id', 'integer', idColumn(engine))
    .addColumn('sop_instance_uid', 'text', (c) => c.notNull().unique())
    .addColumn('series_fk', 'integer', (c) => c.notNull().references('series.id').onDelete('cascade'))
    .addColumn('sop_class_uid', 'text', (c) => c.notNull())
    .addColumn('instance_number', 'integer')
    .addColumn('pixel_rows', 'integer')
    .addColumn('pixel_columns', 'integer')
    .addColumn('bits_allocated', 'integer')
    .addColumn('number_of_frames', 'integer', (c) => c.notNull())
    .addColumn('transfer_syntax_uid', 'text', (c) => c.notNull())
    .addColumn('specific_character_set', 'text')
    .addColumn('timezone_offset', 'text')
    .addColumn('blob_key', 'text', (c) => c.notNull())
    .addColumn('blob_size', 'bigint', (c) => c.notNull())
    .addColumn('pixel_data', 'text')
    .addColumn('attributes', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('instances_series_fk_number_idx').on('instances').columns(['series_fk', 'instance_number']).execute();
  await db.schema.createIndex('instances_sop_class_uid_idx').on('instances').column('sop_class_uid').execute();
}

function initialSchema(engine: SqlEngine): Migration {
  return {
    async up(db) {
      await createPatients(db, engine);
      await createStudies(db, engine);
      await createSeries(db, engine);
      await createInstances(db, engine);
    },
  };
}

/**
 * The sha256 of each stored blob, recorded at ingest so fsck can prove a blob is still the one that
 * was indexed (NULL for rows stored before this migration: fsck then checks existence and size only),
 * and an index on blob_key so fsck can ask "is this blob referenced?" without a table scan.
 */
function blobChecksum(): Migration {
  return {
    async up(db) {
      await db.schema.alterTable('instances').addColumn('checksum', 'text').execute();
      await db.schema.createIndex('instances_blob_key_idx').on('instances').column('blob_key').execute();
    },
  };
}

/**
 * Patient identity corrections (hospital link): the patient row holds the identity of record with its
 * other identifiers and a version bumped on every change; the other identifiers get a table of their
 * own so QIDO-RS / C-FIND can match "this ID with this issuer" on any of them with an index; and each
 * instance records the digest of the identity its stored file carries, so reads know without opening
 * it whether the row's identity must be applied. Existing rows: version 0 (nothing is applied on read,
 * as before), no other IDs, digest NULL (computed when the patient row first changes).
 */
function patientIdentity(engine: SqlEngine): Migration {
  return {
    async up(db) {
      await db.schema.alterTable('patients').addColumn('other_ids', 'text').execute();
      await db.schema.alterTable('patients').addColumn('version', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema
        .createTable('patient_other_ids')
        .addColumn('id', 'integer', idColumn(engine))
        .addColumn('patient_fk', 'integer', (c) => c.notNull().references('patients.id').onDelete('cascade'))
        .addColumn('patient_id', 'text', (c) => c.notNull())
        .addColumn('issuer', 'text', (c) => c.notNull().defaultTo(''))
        .execute();
      await db.schema.createIndex('patient_other_ids_patient_fk_idx').on('patient_other_ids').column('patient_fk').execute();
      await createMatchIndex(db, engine, 'patient_other_ids', 'patient_id');
      await db.schema.alterTable('instances').addColumn('identity_hash', 'text').execute();
    },
  };
}

/**
 * Curation (docs/architecture.md, "Curation"): IOCM rejection, deletion, move / split / merge.
 *
 * - `instances.rejected`: 1 while a rejection note hides the instance (reads skip it; the study and
 *   series counters count only instances not rejected);
 * - `instances.stored_study_uid` / `stored_series_uid`: the Study and Series Instance UIDs the stored
 *   file carries, recorded when the instance is first moved to another study or series (NULL: never
 *   moved, the row's place is the file's); reads apply the study of record when they differ;
 * - `rejected_instances`: every instance a rejection note names (received or not yet), with the note,
 *   its reason (CID 7011), when it was rejected and when it is purged; a purged instance keeps its row
 *   (`purged_at`) so that it is hidden again if it is sent again; a rejection note whose rejection was
 *   revoked (restore) is itself hidden by a row of kind `voided-note`;
 * - `pending_blob_deletes`: blobs whose index rows a purge or DELETE removed, written in the same
 *   transaction and cleared once the blob is gone, so a crash in between leaves a record fsck and the
 *   startup recovery finish (never a row without its blob, never a blob forgotten).
 */
function curation(): Migration {
  return {
    async up(db) {
      await db.schema.alterTable('instances').addColumn('rejected', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('instances').addColumn('stored_study_uid', 'text').execute();
      await db.schema.alterTable('instances').addColumn('stored_series_uid', 'text').execute();
      await db.schema
        .createTable('rejected_instances')
        .addColumn('sop_instance_uid', 'text', (c) => c.primaryKey())
        .addColumn('study_uid', 'text', (c) => c.notNull())
        .addColumn('series_uid', 'text', (c) => c.notNull())
        .addColumn('sop_class_uid', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('kind', 'text', (c) => c.notNull().defaultTo('rejected'))
        .addColumn('reason_code', 'text', (c) => c.notNull())
        .addColumn('note_uid', 'text', (c) => c.notNull())
        .addColumn('rejected_at', 'text', (c) => c.notNull())
        .addColumn('purge_after', 'text', (c) => c.notNull())
        .addColumn('purged_at', 'text')
        .execute();
      await db.schema.createIndex('rejected_instances_note_uid_idx').on('rejected_instances').column('note_uid').execute();
      await db.schema.createIndex('rejected_instances_study_uid_idx').on('rejected_instances').column('study_uid').execute();
      await db.schema.createIndex('rejected_instances_purge_idx').on('rejected_instances').columns(['purged_at', 'purge_after']).execute();
      await db.schema
        .createTable('pending_blob_deletes')
        .addColumn('blob_key', 'text', (c) => c.primaryKey())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('queued_at', 'text', (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Storage lifecycle (docs/architecture.md, "Storage lifecycle"; server/src/lifecycle):
 *
 * - `instances.original_transfer_syntax_uid` / `original_blob_size`: set when housekeeping replaced the
 *   stored file by a losslessly recompressed one (NULL: the file is the one received, byte for byte);
 *   the row's `transfer_syntax_uid`, `blob_key`, `blob_size`, `checksum` and `pixel_data` describe the
 *   new file;
 * - `blob_conversions`: the journal of recompressions under way, one row per converted blob written
 *   (its key, the instance, the key it replaces), inserted before the blob is written and removed in
 *   the transaction that swaps the instance row to it; a kill in between leaves the row, so fsck and
 *   the next housekeeping run know the unreferenced blob for what it is and remove it.
 */
function lifecycle(): Migration {
  return {
    async up(db) {
      await db.schema.alterTable('instances').addColumn('original_transfer_syntax_uid', 'text').execute();
      await db.schema.alterTable('instances').addColumn('original_blob_size', 'bigint').execute();
      await db.schema
        .createTable('blob_conversions')
        .addColumn('blob_key', 'text', (c) => c.primaryKey())
        .addColumn('sop_instance_uid', 'text', (c) => c.notNull())
        .addColumn('source_blob_key', 'text', (c) => c.notNull())
        .addColumn('transfer_syntax_uid', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .execute();
    },
  };
}

/**
 * Index growth (issue 22; docs/benchmarks.md, "Index growth"): date and time ranges are compared
 * bytewise in PostgreSQL (`collate "C"`, match-sql.ts rangeMatch, as PS3.4 §C.2.2.2.5 range matching
 * of DA values orders them as strings), which a btree under the database's collation cannot serve, so
 * `StudyDate=from-to` read the whole studies table. The column under "C" serves it; the plain index
 * stays for single-date equality. SQLite compares with BINARY already and its index serves ranges.
 */
function rangeIndexes(engine: SqlEngine): Migration {
  return {
    async up(db) {
      if (engine !== 'postgres') return;
      await db.schema.createIndex('studies_study_date_c_idx').on('studies').expression(sql`${sql.ref('study_date')} collate "C"`).execute();
    },
  };
}

export function catalogMigrations(engine: SqlEngine): MigrationProvider {
  return {
    getMigrations: async () => ({
      '0001_initial_schema': initialSchema(engine),
      '0002_blob_checksum': blobChecksum(),
      '0003_patient_identity': patientIdentity(engine),
      '0004_curation': curation(),
      '0005_lifecycle': lifecycle(),
      '0006_range_indexes': rangeIndexes(engine),
    }),
  };
}

/**
 * The Kysely instance with its table introspection limited to one schema. Kysely's migrator asks for
 * every table of every schema to find its own two, and its PostgreSQL query calls
 * pg_get_serial_sequence() on each: a schema dropped meanwhile by another process (another server's
 * schema, a finished test) makes that query fail with "schema … does not exist". The migrator only
 * looks at the names and schemas of the tables, which information_schema gives for our schema alone.
 */
function withTablesOfSchema(db: Kysely<unknown>, schema: string): Kysely<unknown> {
  const introspection = {
    getSchemas: () => db.introspection.getSchemas(),
    getMetadata: () => db.introspection.getMetadata(),
    async getTables() {
      const { rows } = await sql<{ name: string; schema: string }>`select table_name as name, table_schema as schema from information_schema.tables where table_schema = ${schema}`.execute(db);
      return rows.map((row) => ({ name: row.name, schema: row.schema, isView: false, columns: [] }));
    },
  };
  return new Proxy(db, {
    get(target, property) {
      if (property === 'introspection') return introspection;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Applies pending migrations; throws with the failing migration's error. */
export async function migrateToLatest(db: Kysely<unknown>, engine: SqlEngine, schema?: string): Promise<void> {
  const migrator = new Migrator({
    db: schema === undefined ? db : withTablesOfSchema(db, schema),
    provider: catalogMigrations(engine),
    // Without an explicit schema Kysely would find a migration table in *any* schema of the database.
    ...(schema === undefined ? {} : { migrationTableSchema: schema }),
  });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
}
