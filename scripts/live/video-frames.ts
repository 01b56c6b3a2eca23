/**
 * Decodes a video into JPEG frames with Debian's ffmpeg (`apt-get install ffmpeg`): the stream a
 * camera would send. ffmpeg writes an MJPEG stream to stdout; frames are split at JPEG SOI/EOI markers.
 */
import { spawn } from 'node:child_process';

export async function videoToJpegFrames(file: string, options: { width?: number; quality?: number } = {}): Promise<Buffer[]> {
  const filters = options.width === undefined ? [] : ['-vf', `scale=${options.width}:-2`];
  const child = spawn('ffmpeg', ['-v', 'error', '-i', file, ...filters, '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', String(options.quality ?? 3), '-'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`ffmpeg could not be started (${err.message}); install it with: apt-get install -y ffmpeg`)));
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`ffmpeg failed (${code}): ${stderr.trim()}`);
  return splitJpegs(Buffer.concat(chunks));
}

/** Splits concatenated baseline JPEGs (ffmpeg's mjpeg output has no EOI inside entropy-coded data). */
export function splitJpegs(stream: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  let start = stream.indexOf(Buffer.from([0xff, 0xd8]));
  while (start >= 0) {
    const end = stream.indexOf(Buffer.from([0xff, 0xd9]), start + 2);
    if (end < 0) break;
    frames.push(stream.subarray(start, end + 2));
    start = stream.indexOf(Buffer.from([0xff, 0xd8]), end + 2);
  }
  return frames;
}
