/**
 * The live endoscopy room (#/live): the camera (getUserMedia) or a chosen video file is captured at
 * 25 fps, each frame sent as JPEG over the live WebSocket; the frame the server analysed is drawn with
 * its boxes (so boxes are always aligned to the picture they belong to, a few tens of ms behind the
 * scope), with the latency and dropped-frame counters. Stop stores the recording and its SR; Replay
 * plays the recorded frames from the archive with the boxes of the stored SR at their frame times.
 * Patient name and ID are sent inside the WebSocket session, never in a URL.
 *
 * Today's worklist of the room's station (the hospital link's `/his/worklist`, endoscopy items) is
 * listed above the controls: Start on an item starts the session from that order (`{"orderId"}`), so
 * the recording takes the patient, accession number and requested procedure the HIS sent, instead of
 * typed ones. The station's AE title is entered once and kept in this browser (localStorage); empty
 * lists every station's items. Without a hospital link (404) or the right to read it (403) the list is
 * left out and the room works as before.
 */
import { listModels } from '../ai/ai-client.js';
import { retrieveFrames, seriesMetadata } from '../dicomweb/client.js';
import { nums, str, TAG, type DicomJson } from '../dicomweb/dicom-json.js';
import { parseSrDetections, type SrDetection } from '../overlays/sr-detections.js';
import { formatPersonName, orderStateText, t } from '../i18n/i18n.js';
import { scheduledTime, todaysWorklist, type HisOrder } from '../his/his-client.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import type { LiveDetectionsMessage, LiveStartedMessage, LiveStoppedMessage, LiveTrack } from '../../../server/src/contracts/live.js';
import { LiveConnection, type StartOptions } from './live-connection.js';

const CAPTURE_FPS = 25;
const MAX_CAPTURE_WIDTH = 720;
/** Frames the browser may have queued on the socket before the page skips capturing (slow uplink). */
const MAX_BUFFERED_BYTES = 512 * 1024;
const BOX_COLOUR = '#ffff00';
/** Where this browser keeps the room's Scheduled Station AE Title (not patient data). */
const STATION_KEY = 'filmless.live.stationAeTitle';
/** Whether the room wants the new-finding beep ('1'); off unless switched on in this browser. */
const SOUND_KEY = 'filmless.live.soundCue';

/**
 * The new-finding cue: one short, soft 880 Hz beep (WebAudio), played when a track is first shown.
 * Off by default: an endoscopy room has its own alarms, and a cue nobody asked for is one more sound to
 * tune out; a room that wants it switches it on once (kept in this browser).
 */
function beep(audio: AudioContext): void {
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.frequency.value = 880;
  gain.gain.setValueAtTime(0.08, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.12);
  osc.connect(gain).connect(audio.destination);
  osc.start();
  osc.stop(audio.currentTime + 0.13);
}

function storedStation(): string {
  try {
    return localStorage.getItem(STATION_KEY) ?? '';
  } catch {
    return ''; // storage blocked: every station's items
  }
}

function storeStation(station: string): void {
  try {
    if (station === '') localStorage.removeItem(STATION_KEY);
    else localStorage.setItem(STATION_KEY, station);
  } catch {
    /* storage blocked: kept for this page only */
  }
}

interface Captured {
  bitmap: ImageBitmap;
  sentAt: number;
}

function drawFrame(canvas: HTMLCanvasElement, image: CanvasImageSource, width: number, height: number, boxes: Array<{ x: number; y: number; width: number; height: number; label: string }>): void {
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext('2d');
  if (ctx === null) return;
  ctx.drawImage(image, 0, 0, width, height);
  ctx.lineWidth = Math.max(2, Math.round(width / 240));
  ctx.strokeStyle = BOX_COLOUR;
  ctx.fillStyle = BOX_COLOUR;
  ctx.font = `${Math.max(12, Math.round(width / 45))}px system-ui, sans-serif`;
  for (const b of boxes) {
    ctx.strokeRect(b.x, b.y, b.width, b.height);
    ctx.fillText(b.label, b.x, b.y > 18 ? b.y - 5 : b.y + b.height + 16);
  }
  canvas.dataset['boxes'] = JSON.stringify(boxes);
}

/** A shown track: its id (the SR's "polyp track 2"), label and latest score. */
const labelOf = (tr: LiveTrack) => `#${tr.id} ${tr.label} ${(tr.score * 100).toFixed(0)}%`;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
};

export function renderLiveRoom(root: HTMLElement): () => void {
  const modelSelect = h('select', { id: 'live-model', 'aria-label': t('live:model') });
  const sourceSelect = h('select', { id: 'live-source', 'aria-label': t('live:source') }, h('option', { value: 'camera', text: t('live:camera') }), h('option', { value: 'file', text: t('live:videoFile') }));
  const fileInput = h('input', { id: 'live-file', type: 'file', accept: 'video/*', 'aria-label': t('live:videoFile') });
  const studyInput = h('input', { id: 'live-study', placeholder: t('live:studyPlaceholder'), size: 40, 'aria-label': t('live:studyLabel') });
  const nameInput = h('input', { id: 'live-patient-name', placeholder: t('live:namePlaceholder'), autocomplete: 'off', 'aria-label': t('live:nameLabel') });
  const idInput = h('input', { id: 'live-patient-id', placeholder: t('live:idPlaceholder'), autocomplete: 'off', 'aria-label': t('live:idLabel') });
  const recordBox = h('input', { id: 'live-record', type: 'checkbox', checked: true });
  const soundBox = h('input', { id: 'live-sound', type: 'checkbox', checked: (() => { try { return localStorage.getItem(SOUND_KEY) === '1'; } catch { return false; } })() });
  let audio: AudioContext | undefined;
  soundBox.addEventListener('change', () => {
    try {
      localStorage.setItem(SOUND_KEY, soundBox.checked ? '1' : '0');
    } catch {
      /* storage blocked: this page only */
    }
    // Created on the click (a user gesture), so the browser lets it play.
    if (soundBox.checked && audio === undefined && typeof AudioContext === 'function') audio = new AudioContext();
  });
  const startButton = h('button', { id: 'live-start', type: 'button', text: t('live:start') });
  const stopButton = h('button', { id: 'live-stop', type: 'button', text: t('live:stop'), disabled: true });
  const replayButton = h('button', { id: 'live-replay', type: 'button', text: t('live:replay'), disabled: true });
  const latencyOut = h('output', { id: 'live-latency', text: '–' });
  const analysedOut = h('output', { id: 'live-analysed', text: '0' });
  const droppedOut = h('output', { id: 'live-dropped', text: '0' });
  const status = h('p', { id: 'live-status', class: 'muted', role: 'status', text: t('live:choose') });
  const problems = h('div', { id: 'live-problems' });
  const stationInput = h('input', { id: 'live-station', placeholder: t('live:stationPlaceholder'), size: 16, maxlength: 16, autocomplete: 'off', 'aria-label': t('live:stationLabel') });
  stationInput.value = storedStation();
  const refreshButton = h('button', { id: 'live-worklist-refresh', type: 'button', text: t('live:refresh') });
  const worklistBody = h('div', { id: 'live-worklist-items' }, h('p', { class: 'muted', text: t('live:loadingWorklist') }));
  const worklist = h(
    'section',
    { id: 'live-worklist', class: 'live-worklist', 'aria-label': t('live:worklist') },
    h('h2', {}, `${t('live:worklist')} `, h('label', { class: 'muted' }, t('live:station'), stationInput), ' ', refreshButton),
    worklistBody,
  );
  const video = h('video', { id: 'live-video', muted: true, playsinline: true, class: 'live-preview' });
  video.muted = true;
  const canvas = h('canvas', { id: 'live-canvas', class: 'live-canvas', 'aria-label': t('live:canvas') });

  // No inline handler (the Content-Security-Policy forbids them): the form never submits.
  const controls = h(
    'form',
    { class: 'live-controls' },
    h('label', {}, `${t('live:source')} `, sourceSelect),
    fileInput,
    h('label', {}, `${t('live:model')} `, modelSelect),
    studyInput,
    nameInput,
    idInput,
    h('label', {}, recordBox, t('live:record')),
    h('label', { title: t('live:soundTitle') }, soundBox, t('live:sound')),
    startButton,
    stopButton,
    replayButton,
  );
  controls.addEventListener('submit', (event) => event.preventDefault());

  root.replaceChildren(
    h(
      'section',
      { class: 'live-room' },
      h('h1', { text: t('live:title') }),
      worklist,
      controls,
      h('p', { class: 'live-counters' }, t('live:counters.latency'), latencyOut, t('live:counters.ms'), analysedOut, t('live:counters.dropped'), droppedOut),
      status,
      problems,
      h('div', { class: 'live-stage' }, canvas, video),
    ),
  );

  let connection: LiveConnection | undefined;
  let stream: MediaStream | undefined;
  let timer: number | undefined;
  let seq = 0;
  let clientSkipped = 0;
  const captured = new Map<number, Captured>();
  const latencies: number[] = [];
  let lastStopped: LiveStoppedMessage | undefined;
  let disposed = false;
  const capture = document.createElement('canvas');

  const showProblem = (message: string) => problems.replaceChildren(errorBox(message));
  /** True while a session starts, runs or stores: no second start. */
  let busy = false;
  const setBusy = (value: boolean) => {
    busy = value;
    // A running session is not torn down by a language change (main.ts): the room keeps its texts until then.
    root.querySelector('.live-room')?.toggleAttribute('data-keep-on-language-change', value);
    startButton.disabled = value;
    for (const b of worklistBody.querySelectorAll<HTMLButtonElement>('button[data-order]')) b.disabled = value;
  };

  let worklistController: AbortController | undefined;
  const loadWorklist = async () => {
    worklistController?.abort();
    const controller = (worklistController = new AbortController());
    try {
      const items = await todaysWorklist(stationInput.value, controller.signal);
      if (controller.signal.aborted || disposed) return;
      if (items === undefined) {
        worklist.hidden = true; // no hospital link here, or not for this user
        return;
      }
      worklist.hidden = false;
      showWorklist(items);
    } catch (err) {
      if ((err as Error).name === 'AbortError' || disposed) return;
      worklistBody.replaceChildren(errorBox(messageOf(err), () => void loadWorklist()));
    }
  };

  const showWorklist = (items: HisOrder[]) => {
    if (items.length === 0) {
      worklistBody.replaceChildren(h('p', { class: 'muted', text: stationInput.value.trim() === '' ? t('live:noneToday') : t('live:noneAtStation') }));
      return;
    }
    const rows = items.map((item) => {
      const start = h('button', { type: 'button', text: t('live:start'), 'data-order': item.id, disabled: busy, title: t('live:startOrder') });
      start.addEventListener('click', () => void startSession({ orderId: item.id }));
      const procedure = item.requestedProcedureDescription ?? item.requestedProcedureCode?.meaning ?? item.requestedProcedureId;
      return h(
        'tr',
        { 'data-order-row': item.id },
        h('td', { class: 'num', text: scheduledTime(item.scheduledStart) }),
        h('td', { text: formatPersonName(item.patient.name ?? '') }),
        h('td', { text: item.patient.patientId }),
        h('td', { text: item.accessionNumber }),
        h('td', { text: procedure }),
        h('td', {}, h('span', { class: `order-state state-${item.status.replace(' ', '-').toLowerCase()}`, text: orderStateText(item.status) })),
        h('td', {}, start),
      );
    });
    const head = h('tr', {}, ...[t('live:col.time'), t('live:col.patient'), t('live:col.patientId'), t('live:col.accession'), t('live:col.procedure'), t('live:col.state'), ''].map((text) => h('th', { scope: 'col', text })));
    worklistBody.replaceChildren(h('table', { class: 'study-table worklist-table' }, h('thead', {}, head), h('tbody', {}, ...rows)));
  };

  stationInput.addEventListener('change', () => {
    stationInput.value = stationInput.value.trim();
    storeStation(stationInput.value);
    void loadWorklist();
  });
  refreshButton.addEventListener('click', () => void loadWorklist());
  void loadWorklist();

  void listModels()
    .then((models) => {
      modelSelect.replaceChildren(...models.map((m) => h('option', { value: m.id, text: `${m.id} ${m.version}` })));
      if (models.length === 0) showProblem(t('live:noModel'));
    })
    .catch((err: unknown) => showProblem(messageOf(err)));

  const onDetections = (m: LiveDetectionsMessage) => {
    const frame = captured.get(m.seq);
    if (frame !== undefined) {
      latencies.push(performance.now() - frame.sentAt);
      if (latencies.length > 50) latencies.shift();
      // Steady alerts: the shown tracks (persisting, smoothed), not every raw box of the frame.
      drawFrame(canvas, frame.bitmap, frame.bitmap.width, frame.bitmap.height, m.tracks.map((tr) => ({ ...tr.box, label: labelOf(tr) })));
    }
    if (soundBox.checked && m.tracks.some((tr) => tr.isNew)) {
      if (audio === undefined && typeof AudioContext === 'function') audio = new AudioContext();
      if (audio !== undefined) {
        void audio.resume().catch(() => {});
        beep(audio);
      }
    }
    for (const [s, c] of captured) {
      if (s > m.seq) break;
      c.bitmap.close();
      captured.delete(s);
    }
    latencyOut.value = median(latencies).toFixed(0);
    analysedOut.value = String(m.stats.processed);
    droppedOut.value = String(m.stats.dropped + clientSkipped);
  };

  const captureOne = async () => {
    const conn = connection;
    if (conn === undefined || video.readyState < 2 || video.videoWidth === 0) return;
    if (conn.bufferedAmount > MAX_BUFFERED_BYTES) {
      clientSkipped += 1;
      return;
    }
    const scale = Math.min(1, MAX_CAPTURE_WIDTH / video.videoWidth);
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    if (capture.width !== width || capture.height !== height) {
      capture.width = width;
      capture.height = height;
    }
    capture.getContext('2d')?.drawImage(video, 0, 0, width, height);
    const mySeq = seq++;
    const [blob, bitmap] = await Promise.all([
      new Promise<Blob | null>((resolve) => capture.toBlob(resolve, 'image/jpeg', 0.85)),
      createImageBitmap(capture),
    ]);
    if (blob === null || connection !== conn) {
      bitmap.close();
      return;
    }
    const sentAt = performance.now();
    captured.set(mySeq, { bitmap, sentAt });
    // Keep memory flat if answers stop coming: at most 32 frames are held for display.
    if (captured.size > 32) {
      const oldest = captured.keys().next().value as number;
      captured.get(oldest)?.bitmap.close();
      captured.delete(oldest);
    }
    conn.sendFrame(mySeq, Date.now(), await blob.arrayBuffer());
  };

  const openSource = async () => {
    if (sourceSelect.value === 'camera') {
      if (navigator.mediaDevices?.getUserMedia === undefined) throw new Error(t('live:noCamera'));
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 } }, audio: false });
      video.srcObject = stream;
    } else {
      const file = fileInput.files?.[0];
      if (file === undefined) throw new Error(t('live:chooseFile'));
      video.srcObject = null;
      video.src = URL.createObjectURL(file);
    }
    await video.play();
  };

  const closeSource = () => {
    if (timer !== undefined) window.clearInterval(timer);
    timer = undefined;
    stream?.getTracks().forEach((track) => track.stop());
    stream = undefined;
    video.pause();
    if (video.src.startsWith('blob:')) URL.revokeObjectURL(video.src);
  };

  /** Starts a session on `study` (typed patient, existing study or worklist item). */
  const startSession = async (study: StartOptions['study']) => {
    if (busy) return;
    problems.replaceChildren();
    setBusy(true);
    try {
      if (modelSelect.value === '') throw new Error(t('live:noModelAvailable'));
      await openSource();
      const conn = await LiveConnection.open();
      conn.onDetections = onDetections;
      conn.onProblem = (message) => {
        if (!disposed && connection === conn) showProblem(message);
      };
      let started: LiveStartedMessage;
      try {
        started = await conn.start({ model: modelSelect.value, record: recordBox.checked, fps: CAPTURE_FPS, study });
      } catch (err) {
        conn.close();
        throw err;
      }
      connection = conn;
      seq = 0;
      clientSkipped = 0;
      latencies.length = 0;
      // The counters are the new session's.
      latencyOut.value = '–';
      analysedOut.value = '0';
      droppedOut.value = '0';
      const order = started.order === undefined ? '' : t('live:order', { accession: started.order.accessionNumber, state: orderStateText(started.order.status) });
      status.textContent = `${t('live:running', { model: `${started.model.id} ${started.model.version}` })}${started.recording === null ? '' : t('live:recording')}${order}`;
      stopButton.disabled = false;
      replayButton.disabled = true;
      timer = window.setInterval(() => void captureOne().catch((err: unknown) => showProblem(messageOf(err))), 1000 / CAPTURE_FPS);
      if (started.order !== undefined) void loadWorklist();
    } catch (err) {
      closeSource();
      setBusy(false);
      showProblem(messageOf(err));
    }
  };

  startButton.addEventListener('click', () => {
    // A user gesture: the browser lets an AudioContext made (or resumed) here play the cue later.
    if (soundBox.checked && audio === undefined && typeof AudioContext === 'function') audio = new AudioContext();
    void audio?.resume().catch(() => {});
    const study = studyInput.value.trim();
    const name = nameInput.value.trim();
    const id = idInput.value.trim();
    if (study === '' && (name === '' || id === '')) {
      showProblem(worklist.hidden ? t('live:needStudy') : t('live:needStudyOrItem'));
      return;
    }
    void startSession(study !== '' ? { studyInstanceUid: study } : { patientName: name, patientId: id });
  });

  stopButton.addEventListener('click', () => {
    void (async () => {
      stopButton.disabled = true;
      const conn = connection;
      closeSource();
      if (conn === undefined) {
        setBusy(false);
        return;
      }
      // At once, not after the answer: a capture still encoding sees the session is over and sends nothing.
      connection = undefined;
      status.textContent = t('live:storing');
      try {
        lastStopped = await conn.stop();
        conn.close();
        const r = lastStopped.recording;
        const order = lastStopped.order === undefined ? '' : t('live:orderAfter', { accession: lastStopped.order.accessionNumber, state: orderStateText(lastStopped.order.status) });
        status.textContent =
          (r === null
            ? t('live:stopped', { frames: lastStopped.stats.processed })
            : t('live:stored', { frames: r.video.frames, detections: r.report.detections })) + order;
        if (lastStopped.error !== undefined) showProblem(lastStopped.error.message);
        replayButton.disabled = r === null;
      } catch (err) {
        showProblem(messageOf(err));
      } finally {
        setBusy(false);
        void loadWorklist();
      }
    })();
  });

  replayButton.addEventListener('click', () => {
    const r = lastStopped?.recording;
    if (r === null || r === undefined) return;
    replayButton.disabled = true;
    void replay(canvas, r, status)
      .catch((err: unknown) => showProblem(messageOf(err)))
      .finally(() => (replayButton.disabled = false));
  });

  return () => {
    disposed = true;
    void audio?.close().catch(() => {});
    worklistController?.abort();
    closeSource();
    connection?.close();
    for (const c of captured.values()) c.bitmap.close();
    captured.clear();
  };
}

/** Plays a stored recording (its JPEG frames as stored) with the boxes of its SR, at the recorded frame times. */
async function replay(canvas: HTMLCanvasElement, r: NonNullable<LiveStoppedMessage['recording']>, status: HTMLElement): Promise<void> {
  const [videoMeta] = await seriesMetadata(r.studyInstanceUid, r.video.seriesInstanceUid);
  const reportMeta = (await seriesMetadata(r.studyInstanceUid, r.report.seriesInstanceUid)).find((m: DicomJson) => str(m, TAG.SOPInstanceUID) === r.report.sopInstanceUid);
  const detections = reportMeta === undefined ? [] : (parseSrDetections(reportMeta)?.detections ?? []);
  const byFrame = new Map<number, SrDetection[]>();
  for (const d of detections) if (d.sop === r.video.sopInstanceUid) byFrame.set(d.frame, [...(byFrame.get(d.frame) ?? []), d]);
  const times = nums(videoMeta, '00181065');
  const frames = r.video.frames;
  const started = performance.now();
  let elapsed = 0;
  for (let first = 1; first <= frames; first += 8) {
    const numbers = Array.from({ length: Math.min(8, frames - first + 1) }, (_, i) => first + i);
    const parts = await retrieveFrames(r.studyInstanceUid, r.video.seriesInstanceUid, r.video.sopInstanceUid, numbers, 'image/jpeg');
    for (const [i, part] of parts.entries()) {
      const frame = numbers[i]!;
      elapsed += frame === 1 ? 0 : (times[frame - 1] ?? 40);
      const wait = started + elapsed - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const bitmap = await createImageBitmap(new Blob([part.body as BlobPart], { type: 'image/jpeg' }));
      const boxes = (byFrame.get(frame) ?? []).map((d) => {
        const xs = d.points.filter((_, k) => k % 2 === 0);
        const ys = d.points.filter((_, k) => k % 2 === 1);
        const label = d.score === undefined ? d.label : `${d.label} ${(d.score * 100).toFixed(0)}%`;
        return { x: Math.min(...xs), y: Math.min(...ys), width: Math.max(...xs) - Math.min(...xs), height: Math.max(...ys) - Math.min(...ys), label };
      });
      drawFrame(canvas, bitmap, bitmap.width, bitmap.height, boxes);
      canvas.dataset['replayFrame'] = String(frame);
      bitmap.close();
      status.textContent = t('live:replayFrame', { frame, frames });
    }
  }
  status.textContent = t('live:replayDone', { frames, detections: detections.length });
}
