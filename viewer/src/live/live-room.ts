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
import { formatPersonName } from '../dicomweb/dicom-json.js';
import { scheduledTime, todaysWorklist, type HisOrder } from '../his/his-client.js';
import { errorBox, h, messageOf } from '../ui/dom.js';
import type { LiveDetection, LiveDetectionsMessage, LiveStartedMessage, LiveStoppedMessage } from '../../../server/src/contracts/live.js';
import { LiveConnection, type StartOptions } from './live-connection.js';

const CAPTURE_FPS = 25;
const MAX_CAPTURE_WIDTH = 720;
/** Frames the browser may have queued on the socket before the page skips capturing (slow uplink). */
const MAX_BUFFERED_BYTES = 512 * 1024;
const BOX_COLOUR = '#ffff00';
/** Where this browser keeps the room's Scheduled Station AE Title (not patient data). */
const STATION_KEY = 'filmless.live.stationAeTitle';

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

const labelOf = (d: LiveDetection) => `${d.label} ${(d.score * 100).toFixed(0)}%`;
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
};

export function renderLiveRoom(root: HTMLElement): () => void {
  const modelSelect = h('select', { id: 'live-model', 'aria-label': 'Model' });
  const sourceSelect = h('select', { id: 'live-source', 'aria-label': 'Source' }, h('option', { value: 'camera', text: 'Camera' }), h('option', { value: 'file', text: 'Video file' }));
  const fileInput = h('input', { id: 'live-file', type: 'file', accept: 'video/*', 'aria-label': 'Video file' });
  const studyInput = h('input', { id: 'live-study', placeholder: 'StudyInstanceUID (existing study)', size: 40, 'aria-label': 'Existing study UID' });
  const nameInput = h('input', { id: 'live-patient-name', placeholder: 'Patient name (new study)', autocomplete: 'off', 'aria-label': 'Patient name' });
  const idInput = h('input', { id: 'live-patient-id', placeholder: 'Patient ID (new study)', autocomplete: 'off', 'aria-label': 'Patient ID' });
  const recordBox = h('input', { id: 'live-record', type: 'checkbox', checked: true });
  const startButton = h('button', { id: 'live-start', type: 'button', text: 'Start' });
  const stopButton = h('button', { id: 'live-stop', type: 'button', text: 'Stop', disabled: true });
  const replayButton = h('button', { id: 'live-replay', type: 'button', text: 'Replay recording', disabled: true });
  const latencyOut = h('output', { id: 'live-latency', text: '–' });
  const analysedOut = h('output', { id: 'live-analysed', text: '0' });
  const droppedOut = h('output', { id: 'live-dropped', text: '0' });
  const status = h('p', { id: 'live-status', class: 'muted', role: 'status', text: 'Choose a source and press Start.' });
  const problems = h('div', { id: 'live-problems' });
  const stationInput = h('input', { id: 'live-station', placeholder: 'all stations', size: 16, maxlength: 16, autocomplete: 'off', 'aria-label': 'Station AE title' });
  stationInput.value = storedStation();
  const refreshButton = h('button', { id: 'live-worklist-refresh', type: 'button', text: 'Refresh' });
  const worklistBody = h('div', { id: 'live-worklist-items' }, h('p', { class: 'muted', text: 'Loading the worklist…' }));
  const worklist = h(
    'section',
    { id: 'live-worklist', class: 'live-worklist', 'aria-label': "Today's worklist" },
    h('h2', {}, "Today's worklist ", h('label', { class: 'muted' }, ' station ', stationInput), ' ', refreshButton),
    worklistBody,
  );
  const video = h('video', { id: 'live-video', muted: true, playsinline: true, class: 'live-preview' });
  video.muted = true;
  const canvas = h('canvas', { id: 'live-canvas', class: 'live-canvas', 'aria-label': 'Analysed frame with detections' });

  // No inline handler (the Content-Security-Policy forbids them): the form never submits.
  const controls = h(
    'form',
    { class: 'live-controls' },
    h('label', {}, 'Source ', sourceSelect),
    fileInput,
    h('label', {}, 'Model ', modelSelect),
    studyInput,
    nameInput,
    idInput,
    h('label', {}, recordBox, ' Record'),
    startButton,
    stopButton,
    replayButton,
  );
  controls.addEventListener('submit', (event) => event.preventDefault());

  root.replaceChildren(
    h(
      'section',
      { class: 'live-room' },
      h('h1', { text: 'Live endoscopy' }),
      worklist,
      controls,
      h('p', { class: 'live-counters' }, 'Latency (median) ', latencyOut, ' ms · analysed ', analysedOut, ' · dropped ', droppedOut),
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
      worklistBody.replaceChildren(h('p', { class: 'muted', text: stationInput.value.trim() === '' ? 'No endoscopy scheduled today.' : 'Nothing scheduled today at this station.' }));
      return;
    }
    const rows = items.map((item) => {
      const start = h('button', { type: 'button', text: 'Start', 'data-order': item.id, disabled: busy, title: 'Start the session for this order' });
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
        h('td', {}, h('span', { class: `order-state state-${item.status.replace(' ', '-').toLowerCase()}`, text: item.status })),
        h('td', {}, start),
      );
    });
    const head = h('tr', {}, ...['Time', 'Patient', 'Patient ID', 'Accession', 'Procedure', 'State', ''].map((t) => h('th', { scope: 'col', text: t })));
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
      if (models.length === 0) showProblem('The server offers no detection model: live analysis is not available.');
    })
    .catch((err: unknown) => showProblem(messageOf(err)));

  const onDetections = (m: LiveDetectionsMessage) => {
    const frame = captured.get(m.seq);
    if (frame !== undefined) {
      latencies.push(performance.now() - frame.sentAt);
      if (latencies.length > 50) latencies.shift();
      drawFrame(canvas, frame.bitmap, frame.bitmap.width, frame.bitmap.height, m.detections.map((d) => ({ ...d.box, label: labelOf(d) })));
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
      if (navigator.mediaDevices?.getUserMedia === undefined) throw new Error('This browser offers no camera access (a secure context is needed)');
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 } }, audio: false });
      video.srcObject = stream;
    } else {
      const file = fileInput.files?.[0];
      if (file === undefined) throw new Error('Choose a video file first');
      video.srcObject = null;
      video.src = URL.createObjectURL(file);
    }
    await video.play();
  };

  const closeSource = () => {
    if (timer !== undefined) window.clearInterval(timer);
    timer = undefined;
    stream?.getTracks().forEach((t) => t.stop());
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
      if (modelSelect.value === '') throw new Error('No detection model is available');
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
      const order = started.order === undefined ? '' : ` · order ${started.order.accessionNumber} ${started.order.status}`;
      status.textContent = `Live: ${started.model.id} ${started.model.version}${started.recording === null ? '' : ', recording'}${order}`;
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
    const study = studyInput.value.trim();
    const name = nameInput.value.trim();
    const id = idInput.value.trim();
    if (study === '' && (name === '' || id === '')) {
      showProblem(worklist.hidden ? 'Give an existing StudyInstanceUID, or the patient name and ID of a new study' : 'Start an item of the worklist, or give an existing StudyInstanceUID, or the patient name and ID of a new study');
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
      status.textContent = 'Storing the recording…';
      try {
        lastStopped = await conn.stop();
        conn.close();
        const r = lastStopped.recording;
        const order = lastStopped.order === undefined ? '' : ` Order ${lastStopped.order.accessionNumber}: ${lastStopped.order.status}.`;
        status.textContent =
          (r === null
            ? `Stopped: ${lastStopped.stats.processed} frames analysed, nothing recorded.`
            : `Stored: ${r.video.frames} frames and ${r.report.detections} detections in the study.`) + order;
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
      status.textContent = `Replay: frame ${frame} of ${frames}`;
    }
  }
  status.textContent = `Replay finished (${frames} frames, ${detections.length} detections).`;
}
