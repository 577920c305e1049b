// One bounded HTTP GET, and reading a value out of a Prometheus exposition.

export interface HttpAnswer {
  /** 0 when there was no answer. */
  status: number;
  body: string;
  /** Why there was no answer (timeout, ECONNREFUSED, ...). */
  error?: string;
}

/** One GET: its status and body, or status 0 and why there was no answer. Never throws. */
export async function httpGet(url: string, timeoutMs = 2000): Promise<HttpAnswer> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text().catch(() => '');
    return { status: res.status, body };
  } catch (err) {
    const e = err as { name?: string; message?: string; cause?: { code?: string } };
    const why =
      e.name === 'TimeoutError' || e.name === 'AbortError'
        ? `no answer within ${timeoutMs} ms`
        : (e.cause?.code ?? e.message);
    return { status: 0, body: '', error: why ?? String(err) };
  }
}

/** One value of a Prometheus text exposition (the first sample whose name and labels match). */
export function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) return value;
  }
  return undefined;
}
