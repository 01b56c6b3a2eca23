/**
 * The pathology report form: specimen, diagnosis, grade, findings each linked to annotation groups of
 * the slide (the study's Microscopy Bulk Simple Annotations, the AI's marked as such), key tiles (frames
 * of a slide level) and a comment. Codes already in the content (site, diagnosis, findings) are kept
 * as they are; the form does not offer a code picker.
 */
import { h } from '../ui/dom.js';
import { t } from '../i18n/i18n.js';
import type { AnnotationRegionRef, PathologyContent } from '../../../server/src/contracts/reports.js';
import { field, section, selectInput, smallButton, textArea, textInput, type Kit } from './form-kit.js';
import { keyImagesSection } from './key-images.js';
import { COLLECTIONS, GRADES } from './report-model.js';
import type { AnnotationGroupInfo, StudyImages } from './study-images.js';

type Finding = NonNullable<PathologyContent['findings']>[number];
const sameRegion = (r: AnnotationRegionRef, g: AnnotationGroupInfo) => r.sopInstanceUid === g.sop && r.group === g.group && r.annotation === undefined;

export function pathologyForm(kit: Kit, study: string, images: StudyImages, content: PathologyContent): HTMLElement {
  content.findings ??= [];
  content.keyImages ??= [];
  content.specimen ??= {};
  const specimen = content.specimen;

  const specimenSection = section(
    t('reports:form.specimen'),
    'specimen',
    h(
      'div',
      { class: 'report-row' },
      field(t('reports:form.identifier'), textInput(kit, 'specimen.identifier', { get: () => specimen.identifier, set: (v) => (specimen.identifier = v) }, { maxlength: 64 })),
      field(t('reports:form.collection'), selectInput(kit, 'specimen.collection', COLLECTIONS, { get: () => specimen.collection, set: (v) => (v === undefined ? delete specimen.collection : (specimen.collection = v)) }, { empty: '—' })),
      field(t('reports:form.site'), textInput(kit, 'specimen.siteText', { get: () => specimen.siteText, set: (v) => (specimen.siteText = v) }, { maxlength: 200 }), { hint: specimen.site === undefined ? undefined : t('reports:form.coded', { meaning: specimen.site.meaning }) }),
    ),
    field(t('reports:form.description'), textArea(kit, 'specimen.description', { get: () => specimen.description, set: (v) => (specimen.description = v) }, 2, 1000), { wide: true }),
  );

  const diagnosisSection = section(
    t('reports:form.diagnosis'),
    'diagnosis',
    field(
      t('reports:form.diagnosis'),
      textArea(kit, 'diagnosis', {
        get: () => content.diagnosis?.text,
        set: (v) => (content.diagnosis = { ...(content.diagnosis ?? {}), text: v ?? '' }),
      }, 3, 4000),
      { wide: true, ...(content.diagnosis?.code === undefined ? {} : { hint: t('reports:form.coded', { meaning: `${content.diagnosis.code.meaning} (${content.diagnosis.code.scheme} ${content.diagnosis.code.value})` }) }) },
    ),
    h('div', { class: 'report-row' }, field(t('reports:form.grade'), selectInput(kit, 'grade', GRADES, { get: () => content.grade, set: (v) => (v === undefined ? delete content.grade : (content.grade = v)) }, { empty: '—' }))),
  );

  const findingList = h('ol', { class: 'pathology-findings' });
  const renderFindings = () => {
    const list = content.findings!;
    if (list.length === 0) findingList.replaceChildren(h('li', { class: 'muted', text: t('reports:form.noFindings') }));
    else findingList.replaceChildren(...list.map((f, i) => findingItem(f, i)));
  };
  const findingItem = (finding: Finding, i: number): HTMLElement => {
    finding.regions ??= [];
    const regions = finding.regions;
    const groups = images.annotationGroups;
    const regionBoxes =
      groups.length === 0
        ? h('p', { class: 'muted', text: t('reports:form.noRegions') })
        : h(
            'div',
            { class: 'regions' },
            ...groups.map((g) => {
              const box = h('input', { type: 'checkbox', name: 'region', 'data-group': g.group, 'data-sop': g.sop, checked: regions.some((r) => sameRegion(r, g)), disabled: kit.readOnly });
              box.addEventListener('change', () => {
                const at = regions.findIndex((r) => sameRegion(r, g));
                if (box.checked && at < 0) regions.push({ seriesInstanceUid: g.series, sopInstanceUid: g.sop, group: g.group });
                if (!box.checked && at >= 0) regions.splice(at, 1);
                kit.changed();
              });
              return h('label', { class: 'report-check' }, box, ` ${g.label}${g.count === undefined ? '' : ` (${g.count})`}`, g.ai ? h('span', { class: 'ai-tag', text: 'AI' }) : undefined);
            }),
          );
    // Regions of one annotation (not a whole group) come from the API: shown, kept.
    const single = regions.filter((r) => r.annotation !== undefined);
    return h(
      'li',
      { class: 'pathology-finding', 'data-finding': i + 1 },
      field(t('reports:form.findingN', { n: i + 1 }), textArea(kit, 'finding', { get: () => finding.text, set: (v) => (finding.text = v ?? '') }, 2, 4000), { wide: true, ...(finding.code === undefined ? {} : { hint: t('reports:form.coded', { meaning: finding.code.meaning }) }) }),
      h('div', { class: 'field-label', text: t('reports:form.regions') }),
      regionBoxes,
      single.length === 0 ? undefined : h('p', { class: 'muted', text: t('reports:form.single', { count: single.length, list: single.map((r) => `${r.groupLabel ?? t('reports:form.group', { n: r.group })} #${r.annotation}`).join(', ') }) }),
      kit.readOnly
        ? undefined
        : smallButton(t('reports:form.removeFinding'), () => {
            content.findings!.splice(i, 1);
            kit.changed();
            renderFindings();
          }),
    );
  };
  renderFindings();
  const findingsSection = section(
    t('reports:form.findings'),
    'findings',
    findingList,
    kit.readOnly
      ? undefined
      : smallButton(
          t('reports:form.addFinding'),
          () => {
            content.findings!.push({ text: '', regions: [] });
            kit.changed();
            renderFindings();
          },
          { id: 'add-finding' },
        ),
  );

  const keyImages = keyImagesSection(kit, study, images, content.keyImages, () => undefined, t('reports:form.keyTilesWhat'));
  const conclusion = section(t('reports:form.comment'), 'conclusion', field(t('reports:form.comment'), textArea(kit, 'conclusion', { get: () => content.conclusion, set: (v) => (content.conclusion = v) }, 3, 4000), { wide: true }));
  return h('div', { class: 'report-form', 'data-kind': 'pathology' }, specimenSection, diagnosisSection, findingsSection, section(t('reports:form.keyTiles'), 'key-images', keyImages.element), conclusion);
}
