/** How every Tidepool process logs: one JSON object a line on stdout, with time, level and message first. */
export type LogLevel = 'info' | 'warn' | 'error';

export type Log = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export function writeLogLine(level: string, message: string, fields: Record<string, unknown> = {}, time = new Date()): void {
  process.stdout.write(`${JSON.stringify({ time: time.toISOString(), level, msg: message, ...fields })}\n`);
}

export const jsonLog: Log = (level, message, fields) => writeLogLine(level, message, fields);
