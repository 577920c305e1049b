// Trading sessions in the market's time zone: the trading day a tick belongs
// to (open and previous close roll over at its boundary) and whether the
// market is open.
export interface SessionSpec {
  /** IANA time zone, e.g. Europe/Istanbul. */
  timeZone: string;
  /** Local opening and closing times, "HH:MM". */
  open: string;
  close: string;
  /** ISO weekdays the market trades (1 = Monday ... 7 = Sunday). */
  days: number[];
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      weekday: 'short',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

export interface LocalTime {
  date: string; // YYYY-MM-DD
  minutes: number; // minutes after local midnight
  isoWeekday: number;
}

const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

export function localTime(timeMs: number, timeZone: string): LocalTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(timeZone).formatToParts(timeMs)) parts[p.type] = p.value;
  return {
    date: `${parts.year}-${parts.month}-${parts.day}`,
    minutes: Number(parts.hour) * 60 + Number(parts.minute),
    isoWeekday: WEEKDAYS[parts.weekday ?? 'Mon'] ?? 1,
  };
}

/** The trading day (local calendar date) that an event at `timeMs` belongs to. */
export function sessionDate(timeMs: number, timeZone: string): string {
  return localTime(timeMs, timeZone).date;
}

function hhmm(value: string): number {
  const [h, m] = value.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

export function isSessionOpen(timeMs: number, session: SessionSpec): boolean {
  const t = localTime(timeMs, session.timeZone);
  return (
    session.days.includes(t.isoWeekday) && t.minutes >= hhmm(session.open) && t.minutes < hhmm(session.close)
  );
}
