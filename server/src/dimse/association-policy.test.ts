/** Association negotiation: who may associate, and the answer to every proposed presentation context. */
import { describe, expect, it } from 'vitest';
import { negotiate } from './association-policy.js';
import { associationModule } from './dimse-lib.js';

function proposal(calling: string, contexts: Array<[abstract: string, ...syntaxes: string[]]>) {
  const association = new associationModule.Association(calling, 'FILMLESS');
  const ids = contexts.map(([abstract, ...syntaxes]) => {
    const id = association.addPresentationContext(abstract);
    for (const syntax of syntaxes) association.addTransferSyntaxToPresentationContext(id, syntax);
    return id;
  });
  return { association, ids };
}

describe('association negotiation', () => {
  it('accepts storage as the peer sends it, refuses unknown abstract syntaxes and unknown transfer syntaxes per context', () => {
    const { association, ids } = proposal('ANY', [
      ['1.2.840.10008.1.1', '1.2.840.10008.1.2'],
      ['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.1'],
      ['1.2.840.10008.5.1.4.1.1.77.1.6', '1.2.840.10008.1.2.4.201'],
      ['1.2.840.10008.5.1.4.1.2.2.1', '1.2.840.10008.1.2', '1.2.840.10008.1.2.1'],
      ['1.2.840.10008.5.1.4.1.1.2', '1.2.3.4.private-syntax'],
      ['1.2.840.10008.3.1.2.3.3', '1.2.840.10008.1.2'], // Modality Performed Procedure Step: not offered without the hospital link
      ['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.4.94'], // JPIP referenced: pixel data elsewhere
    ]);
    const decision = negotiate(association, { allowedCallingAeTitles: [], aePermissions: {} });
    expect(decision).toEqual({ accept: true, accepted: 4, refused: 3 });
    const result = (id: number) => {
      const context = association.getPresentationContext(id);
      return [context.getResult(), context.getAcceptedTransferSyntaxUid()];
    };
    expect(result(ids[0]!)).toEqual([0, '1.2.840.10008.1.2']);
    expect(result(ids[1]!)).toEqual([0, '1.2.840.10008.1.2.4.90']);
    expect(result(ids[2]!)).toEqual([0, '1.2.840.10008.1.2.4.201']);
    expect(result(ids[3]!)).toEqual([0, '1.2.840.10008.1.2.1']);
    expect(result(ids[4]!)[0]).toBe(4); // transfer syntaxes not supported
    expect(result(ids[5]!)[0]).toBe(3); // abstract syntax not supported
    expect(result(ids[6]!)[0]).toBe(4);
  });

  it('offers Modality Worklist and MPPS only with the hospital link, uncompressed syntaxes only', () => {
    const contexts: Array<[string, ...string[]]> = [
      ['1.2.840.10008.5.1.4.31', '1.2.840.10008.1.2', '1.2.840.10008.1.2.1'],
      ['1.2.840.10008.3.1.2.3.3', '1.2.840.10008.1.2'],
      ['1.2.840.10008.3.1.2.3.3', '1.2.840.10008.1.2.4.50'],
    ];
    const without = proposal('ENDO1', contexts);
    expect(negotiate(without.association, { allowedCallingAeTitles: [], aePermissions: {} })).toEqual({ accept: true, accepted: 0, refused: 3 });
    expect(without.ids.map((id) => without.association.getPresentationContext(id).getResult())).toEqual([3, 3, 3]);
    const linked = proposal('ENDO1', contexts);
    expect(negotiate(linked.association, { allowedCallingAeTitles: [], aePermissions: {}, hospitalLink: true })).toEqual({ accept: true, accepted: 2, refused: 1 });
    const result = (id: number) => [linked.association.getPresentationContext(id).getResult(), linked.association.getPresentationContext(id).getAcceptedTransferSyntaxUid()];
    expect(result(linked.ids[0]!)).toEqual([0, '1.2.840.10008.1.2.1']);
    expect(result(linked.ids[1]!)).toEqual([0, '1.2.840.10008.1.2']);
    expect(result(linked.ids[2]!)[0]).toBe(4);
  });

  it('rejects a calling AE title missing from a configured allow-list (permanent, calling AE not recognized)', () => {
    const { association } = proposal('INTRUDER', [['1.2.840.10008.1.1', '1.2.840.10008.1.2']]);
    expect(negotiate(association, { allowedCallingAeTitles: ['CT1', 'MR1'], aePermissions: {} })).toMatchObject({ accept: false, result: 1, source: 1, reason: 3 });
    const { association: allowed } = proposal('MR1', [['1.2.840.10008.1.1', '1.2.840.10008.1.2']]);
    expect(negotiate(allowed, { allowedCallingAeTitles: ['CT1', 'MR1'], aePermissions: {} })).toMatchObject({ accept: true });
  });
});
