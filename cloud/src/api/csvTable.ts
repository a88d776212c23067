import type { FastifyReply, FastifyRequest } from "fastify";

export type Cell = string | number | boolean | null;

/** True when the client asked for CSV (`Accept: text/csv`) rather than JSON. */
export function wantsCsv(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? "";
  return /(^|,)\s*text\/csv\b/i.test(accept);
}

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled; lines end in CRLF. */
function csvField(value: Cell): string {
  if (value === null) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(columns: readonly string[], rows: readonly (readonly Cell[])[]): string {
  return [columns, ...rows]
    .map((row) => row.map(csvField).join(","))
    .join("\r\n")
    .concat("\r\n");
}

/**
 * Answers a table route: CSV (header row + one line per item, `columns` picked from each item)
 * when asked for, else the JSON body as given.
 */
export function sendTable<T extends object>(
  request: FastifyRequest,
  reply: FastifyReply,
  columns: readonly (keyof T & string)[],
  items: readonly T[],
  json: unknown,
): FastifyReply {
  if (!wantsCsv(request)) return reply.send(json);
  const rows = items.map((item) => columns.map((column) => toCell((item as Record<string, unknown>)[column])));
  return reply.type("text/csv; charset=utf-8").send(toCsv(columns, rows));
}

function toCell(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return value;
  return JSON.stringify(value);
}
