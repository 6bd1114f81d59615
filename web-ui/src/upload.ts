/**
 * Sending an image file to the box, resumably:
 *   POST /api/v1/uploads {filename, size, kind, group, name?}  → the upload's id
 *   PUT  /api/v1/uploads/{id} with `Content-Range: bytes A-B/SIZE`, chunk after chunk
 * After a dropped connection or a refused chunk the box is asked where the upload stands
 * (GET /api/v1/uploads/{id}, `received`) and sending goes on from there. The last chunk's
 * answer comes once the box has verified the image and put it in the catalog.
 */
import { ApiError, api, authHeaders, seg, sessionEnded } from './api.ts';

export const CHUNK_BYTES = 8 * 1024 * 1024;
const MAX_RETRIES = 8;

export interface UploadRecord {
  id: string;
  name: string;
  group: string;
  kind: string;
  filename: string;
  format: string;
  size: number;
  received: number;
  state: 'receiving' | 'verifying' | 'complete' | 'failed';
  error?: { code: string; message: string };
  images?: string[];
  active?: boolean;
  createdAt?: string;
}

export type UploadPhase = 'starting' | 'sending' | 'retrying' | 'verifying' | 'done' | 'failed' | 'cancelled';

export interface UploadStatus {
  phase: UploadPhase;
  /** Bytes the box holds (plus what is in flight). */
  sent: number;
  size: number;
  /** Bytes per second since this page started sending. */
  rate?: number;
  message?: string;
  upload?: UploadRecord;
}

export interface UploadOptions {
  kind: 'install' | 'boot';
  group?: string;
  name?: string;
  /** Resume this unfinished upload (the same file, chosen again). */
  resume?: UploadRecord;
}

/** Retrying helps: the network, the box's own hiccups, or an offset the box sees differently. */
function retryable(e: unknown): boolean {
  if (!(e instanceof ApiError)) return true;
  if (e.status === 0 || e.status === 409) return true;
  if (e.details && typeof e.details.received === 'number') return true;
  return e.status >= 500 && e.status !== 507;
}

function putChunk(
  id: string,
  blob: Blob,
  start: number,
  size: number,
  onProgress: (loaded: number) => void,
  onSent: () => void,
  signal: AbortSignal,
): Promise<UploadRecord> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/api/v1/uploads/${seg(id)}`);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    // RFC 9110 §14.4: Content-Range in a request names where these bytes go.
    xhr.setRequestHeader('Content-Range', `bytes ${start}-${start + blob.size - 1}/${size}`);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.upload.onload = onSent;
    const abort = () => xhr.abort();
    signal.addEventListener('abort', abort, { once: true });
    xhr.onload = () => {
      signal.removeEventListener('abort', abort);
      let body: {
        upload?: UploadRecord;
        error?: { code?: string; message?: string; details?: Record<string, unknown> };
      } = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      if (xhr.status >= 200 && xhr.status < 300 && body.upload) return resolve(body.upload);
      const err = new ApiError(
        xhr.status,
        body.error?.code ?? `HTTP_${xhr.status}`,
        body.error?.message ?? `the box answered ${xhr.status}`,
        body.error?.details,
      );
      if (xhr.status === 401) sessionEnded(err.message);
      reject(err);
    };
    xhr.onerror = () => reject(new ApiError(0, 'NETWORK', 'the connection to the box was lost'));
    xhr.onabort = () => reject(new DOMException('cancelled', 'AbortError'));
    xhr.send(blob);
  });
}

/** Sends `file`, reporting every step through `report`; resolves when done, failed or cancelled. */
export async function sendFile(
  file: File,
  opts: UploadOptions,
  report: (s: UploadStatus) => void,
  signal: AbortSignal,
): Promise<UploadStatus> {
  let status: UploadStatus = { phase: 'starting', sent: 0, size: file.size };
  const set = (s: Partial<UploadStatus>) => {
    status = { ...status, ...s };
    report(status);
    return status;
  };
  set({});
  let u: UploadRecord;
  try {
    if (opts.resume) {
      if (opts.resume.size !== file.size || opts.resume.filename !== file.name) {
        return set({
          phase: 'failed',
          message: `choose the same file to resume: ${opts.resume.filename} of ${opts.resume.size} bytes (this one is ${file.name}, ${file.size} bytes)`,
        });
      }
      u = (await api.get<{ upload: UploadRecord }>(`/api/v1/uploads/${seg(opts.resume.id)}`)).upload;
    } else {
      u = (
        await api.post<{ upload: UploadRecord }>('/api/v1/uploads', {
          filename: file.name,
          size: file.size,
          kind: opts.kind,
          ...(opts.kind === 'install' && opts.group ? { group: opts.group } : {}),
          ...(opts.name ? { name: opts.name } : {}),
        })
      ).upload;
    }
  } catch (e) {
    return set({ phase: 'failed', message: (e as Error).message });
  }
  let received = u.received;
  const startedAt = performance.now();
  const startBytes = received;
  let failures = 0;
  set({ phase: 'sending', sent: received, upload: u });
  while (received < file.size) {
    if (signal.aborted) return set({ phase: 'cancelled', message: 'upload cancelled' });
    const end = Math.min(received + CHUNK_BYTES, file.size);
    const last = end === file.size;
    try {
      const base = received;
      u = await putChunk(
        u.id,
        file.slice(base, end),
        base,
        file.size,
        (loaded) => {
          const secs = (performance.now() - startedAt) / 1000;
          set({ sent: base + loaded, rate: secs > 0.2 ? (base + loaded - startBytes) / secs : undefined });
        },
        () => {
          if (last)
            set({ phase: 'verifying', sent: file.size, message: 'checking the image and adding it to the catalog…' });
        },
        signal,
      );
      received = u.received;
      failures = 0;
      set({
        sent: received,
        upload: u,
        ...(status.phase === 'retrying' ? { phase: 'sending', message: undefined } : {}),
      });
      if (u.state === 'complete') break;
      if (u.state === 'failed')
        return set({ phase: 'failed', message: u.error?.message ?? 'the box refused the image' });
    } catch (e) {
      if ((e as Error).name === 'AbortError' || signal.aborted)
        return set({ phase: 'cancelled', message: 'upload cancelled' });
      if (!retryable(e) || ++failures > MAX_RETRIES) return set({ phase: 'failed', message: (e as Error).message });
      const wait = Math.min(1000 * 2 ** (failures - 1), 10_000);
      set({
        phase: 'retrying',
        message: `${(e as Error).message}; resuming in ${Math.round(wait / 1000)} s (attempt ${failures} of ${MAX_RETRIES})`,
      });
      await new Promise((r) => setTimeout(r, wait));
      try {
        const now = (await api.get<{ upload: UploadRecord }>(`/api/v1/uploads/${seg(u.id)}`)).upload;
        u = now;
        received = now.received;
        set({ sent: received, upload: now, message: `resuming from byte ${received}` });
        if (now.state === 'complete') break;
        if (now.state === 'failed') return set({ phase: 'failed', message: now.error?.message ?? 'the upload failed' });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          return set({ phase: 'failed', message: 'the box no longer has this upload; start it again' });
        }
        // the box is still away: the next attempt asks again
      }
    }
  }
  // The answer to the last chunk was lost while the box was checking the image: ask until it is through.
  while (u.state === 'verifying' || u.state === 'receiving') {
    set({ phase: 'verifying', message: 'checking the image and adding it to the catalog…' });
    await new Promise((r) => setTimeout(r, 1000));
    try {
      u = (await api.get<{ upload: UploadRecord }>(`/api/v1/uploads/${seg(u.id)}`)).upload;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        return set({ phase: 'done', message: 'the box has finished with this upload: see the catalog' });
      }
    }
    if (u.state === 'failed') return set({ phase: 'failed', message: u.error?.message ?? 'the box refused the image' });
  }
  return set({
    phase: 'done',
    sent: file.size,
    upload: u,
    message: u.images?.length ? `in the catalog: ${u.images.join(', ')}` : 'in the catalog',
  });
}
