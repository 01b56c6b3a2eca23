/**
 * Storage (`#/storage`, administrators): what the archive uses in total, by modality and transfer
 * syntax, the largest studies (a study's series on demand), what lossless recompression saved, and the
 * storage lifecycle rules with the last housekeeping run ("Run now" when a rule is on). Studies are
 * named by date, modalities and UID only (a link to the study): no patient data on this page.
 */
import { errorBox, h, messageOf } from '../ui/dom.js';
import './storage.css';
import { formatDicomDate, language, t } from '../i18n/i18n.js';
import type { HousekeepingStatusJson, StorageUsageJson, StudyUsageJson } from '../../../server/src/contracts/storage.js';
import { housekeepingStatus, startHousekeeping, storageUsage, studyUsage } from './storage-client.js';
import { formatBytes, savedShare, syntaxName } from './storage-format.js';

const PAGE = 25;

type Figures = { instances: number; bytes: number; receivedBytes: number; savedBytes: number; recompressedInstances: number };

function table(caption: string, headers: string[], rows: Array<Array<string | Node>>, id: string): HTMLElement {
  return h(
    'table',
    { class: 'storage-table', id },
    h('caption', { text: caption }),
    h('thead', {}, h('tr', {}, ...headers.map((text) => h('th', { scope: 'col', text })))),
    h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((cell) => h('td', {}, cell))))),
  );
}

const figureHeaders = () => [t('storage:instances'), t('storage:size'), t('storage:received'), t('storage:saved')];

function figureCells(f: Figures): string[] {
  const lng = language();
  return [f.instances.toLocaleString(lng), formatBytes(f.bytes, lng), formatBytes(f.receivedBytes, lng), `${formatBytes(f.savedBytes, lng)} (${savedShare(f.savedBytes, f.receivedBytes, lng)})`];
}

function summary(usage: StorageUsageJson): HTMLElement {
  const lng = language();
  const total = usage.total;
  const item = (label: string, value: string, id: string) => h('div', { class: 'storage-figure' }, h('dt', { text: label }), h('dd', { id, text: value }));
  return h(
    'dl',
    { class: 'storage-summary', id: 'storage-summary' },
    item(t('storage:used'), formatBytes(total.bytes, lng), 'storage-used'),
    item(t('storage:received'), formatBytes(total.receivedBytes, lng), 'storage-received'),
    item(t('storage:saved'), `${formatBytes(total.savedBytes, lng)} (${savedShare(total.savedBytes, total.receivedBytes, lng)})`, 'storage-saved'),
    item(t('storage:studies'), total.studies.toLocaleString(lng), 'storage-studies'),
    item(t('storage:instances'), total.instances.toLocaleString(lng), 'storage-instances'),
    item(t('storage:recompressed'), total.recompressedInstances.toLocaleString(lng), 'storage-recompressed'),
    item(t('storage:rejected'), `${total.rejectedInstances.toLocaleString(lng)} (${formatBytes(total.rejectedBytes, lng)})`, 'storage-rejected'),
    item(t('storage:pendingDeletes'), total.pendingBlobDeletes.toLocaleString(lng), 'storage-pending'),
  );
}

function housekeepingSection(status: HousekeepingStatusJson, onRun: () => void): HTMLElement {
  const lng = language();
  const { compression, retention } = status.rules;
  const rules = h(
    'ul',
    { id: 'storage-rules' },
    h('li', {
      text: compression === null
        ? t('storage:rules.compressionOff')
        : t('storage:rules.compression', { target: compression.target === 'htj2k' ? 'HTJ2K' : 'JPEG-LS', modalities: compression.modalities.join(', ') || t('storage:rules.all'), days: compression.minAgeDays }),
    }),
    h('li', { text: retention === null ? t('storage:rules.retentionOff') : t('storage:rules.retention', { years: retention.years, modalities: retention.modalities.join(', ') || t('storage:rules.all') }) }),
  );
  const run = status.run;
  const last =
    run === null
      ? h('p', { id: 'storage-run', text: t('storage:run.none') })
      : h('p', {
          id: 'storage-run',
          text: t(run.state === 'running' ? 'storage:run.running' : 'storage:run.finished', {
            started: new Date(run.startedAt).toLocaleString(lng),
            recompressed: run.recompressed,
            skipped: run.skipped,
            failed: run.failed,
            saved: formatBytes(Math.max(0, run.bytesBefore - run.bytesAfter), lng),
            expired: run.expired,
          }),
        });
  const button = h('button', { type: 'button', id: 'storage-run-now', text: t('storage:run.now') });
  if (compression === null && retention === null) {
    button.disabled = true;
    button.title = t('storage:run.allOff');
  }
  button.addEventListener('click', onRun);
  return h('section', { class: 'storage-housekeeping', 'aria-labelledby': 'storage-housekeeping-title' }, h('h3', { id: 'storage-housekeeping-title', text: t('storage:housekeeping') }), rules, last, button);
}

export function renderStoragePage(root: HTMLElement): () => void {
  const body = h('div', { class: 'storage-body', 'aria-live': 'polite' }, h('p', { text: t('storage:loading') }));
  root.replaceChildren(h('div', { class: 'storage-page' }, h('h2', { text: t('storage:title') }), body));
  let offset = 0;
  let disposed = false;
  let controller: AbortController | undefined;
  let poll: ReturnType<typeof setTimeout> | undefined;

  const studyDetails = async (study: string, into: HTMLElement) => {
    into.replaceChildren(h('p', { text: t('storage:loading') }));
    try {
      const usage: StudyUsageJson = await studyUsage(study);
      into.replaceChildren(
        table(
          t('storage:seriesOf'),
          [t('storage:series'), t('storage:modality'), ...figureHeaders()],
          usage.series.map((s) => [s.seriesInstanceUid, s.modality ?? '', ...figureCells(s)]),
          'storage-series',
        ),
      );
    } catch (err) {
      into.replaceChildren(errorBox(messageOf(err)));
    }
  };

  const load = async () => {
    controller?.abort();
    controller = new AbortController();
    try {
      const [usage, status] = await Promise.all([storageUsage(PAGE, offset, controller.signal), housekeepingStatus()]);
      if (disposed) return;
      const lng = language();
      const details = h('div', { id: 'storage-study-details' });
      const studies = table(
        t('storage:largest'),
        [t('storage:study'), t('storage:date'), t('storage:modalities'), ...figureHeaders(), ''],
        usage.studies.map((s) => {
          const more = h('button', { type: 'button', class: 'link-button', text: t('storage:seriesButton') });
          more.addEventListener('click', () => void studyDetails(s.studyInstanceUid, details));
          return [h('a', { href: `#/study/${s.studyInstanceUid}`, text: s.studyInstanceUid }), s.studyDate === null ? '' : formatDicomDate(s.studyDate), s.modalities ?? '', ...figureCells(s), more];
        }),
        'storage-studies-table',
      );
      const previous = h('button', { type: 'button', id: 'storage-previous', text: t('storage:previous') });
      const next = h('button', { type: 'button', id: 'storage-next', text: t('storage:next') });
      previous.disabled = offset === 0;
      next.disabled = usage.studies.length < PAGE;
      previous.addEventListener('click', () => {
        offset = Math.max(0, offset - PAGE);
        void load();
      });
      next.addEventListener('click', () => {
        offset += PAGE;
        void load();
      });
      body.replaceChildren(
        summary(usage),
        housekeepingSection(status, () => void run()),
        table(t('storage:byModality'), [t('storage:modality'), ...figureHeaders()], usage.byModality.map((m) => [m.modality || '–', ...figureCells(m)]), 'storage-modalities'),
        table(t('storage:bySyntax'), [t('storage:syntax'), ...figureHeaders()], usage.byTransferSyntax.map((s) => [h('span', { title: s.transferSyntaxUid, text: syntaxName(s.transferSyntaxUid) }), ...figureCells(s)]), 'storage-syntaxes'),
        studies,
        h('div', { class: 'storage-paging' }, previous, ' ', h('span', { text: t('storage:page', { from: (offset + 1).toLocaleString(lng), to: (offset + usage.studies.length).toLocaleString(lng) }) }), ' ', next),
        details,
      );
      if (status.run?.state === 'running' && !disposed) poll = setTimeout(() => void load(), 3000);
    } catch (err) {
      if ((err as Error).name === 'AbortError' || disposed) return;
      body.replaceChildren(errorBox(messageOf(err), () => void load()));
    }
  };

  const run = async () => {
    try {
      await startHousekeeping();
      await load();
    } catch (err) {
      body.prepend(errorBox(messageOf(err)));
    }
  };

  void load();
  return () => {
    disposed = true;
    controller?.abort();
    if (poll !== undefined) clearTimeout(poll);
  };
}
