/**
 * Type declarations for the untyped packages we use, covering only the parts the project calls.
 * dcmjs ships no types; declaring them once here keeps every importer on a plain `import dcmjs from 'dcmjs'`.
 */
declare module 'dcmjs' {
  export interface DcmjsElement {
    vr: string;
    Value?: unknown[];
    InlineBinary?: string;
    BulkDataURI?: string;
  }
  export type DcmjsDict = Record<string, DcmjsElement>;

  export interface DcmjsLogger {
    getLevel(): number;
    setLevel(level: number | string, persist?: boolean): void;
    getLogger(name: string): DcmjsLogger;
  }

  export interface DictionaryEntry {
    tag: string;
    vr: string;
    vm: string;
    name: string;
  }

  export class DicomDict {
    constructor(meta: DcmjsDict);
    dict: DcmjsDict;
    write(options?: Record<string, unknown>): ArrayBuffer;
  }

  export interface DcmjsData {
    DicomDict: typeof DicomDict;
    DicomMetaDictionary: {
      dictionary: Record<string, DictionaryEntry | undefined>;
      nameMap: Record<string, DictionaryEntry>;
      uid(): string;
      naturalizeDataset(dict: DcmjsDict): Record<string, any>;
      denaturalizeDataset(dataset: Record<string, unknown>): DcmjsDict;
    };
    DicomMessage: {
      readFile(
        buffer: ArrayBuffer,
        options?: { ignoreErrors?: boolean; untilTag?: string | null; includeUntilTagValue?: boolean },
      ): { meta: DcmjsDict; dict: DcmjsDict };
    };
  }

  const dcmjs: { data: DcmjsData; log: DcmjsLogger };
  export default dcmjs;
}

declare module 'xhr2' {
  const XMLHttpRequest: unknown;
  export default XMLHttpRequest;
}
