// Exports: "all matching" goes to the API (it streams small exports, and runs large ones as
// background jobs with progress); "selected" rows are written here, from rows already loaded.
import {ApiError, PATHS, get, post, raw} from './api.js';
import {h, replace} from './dom.js';

export const FORMATS = {
  csv: {label: 'CSV', ext: 'csv', mime: 'text/csv'},
  xlsx: {label: 'Excel', ext: 'xlsx', mime: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'},
  jsonl: {label: 'JSON', ext: 'jsonl', mime: 'application/x-ndjson'},
};

const COLUMNS = [
  ['event_id', (e) => e.id], ['occurred_at', (e) => e.occurredAt], ['action', (e) => e.action],
  ['outcome', (e) => e.outcome], ['actor_id', (e) => e.actor.id], ['actor_type', (e) => e.actor.type],
  ['actor_display_name', (e) => e.actor.name], ['entity_type', (e) => e.entity.type],
  ['entity_id', (e) => e.entity.id], ['entity_name', (e) => e.entity.name], ['ip', (e) => e.ip],
  ['changes', (e) => JSON.stringify(e.changes)], ['parent_event_id', (e) => e.parentId || ''],
];

export function save(blob, filename) {
  const link = h('a', {href: URL.createObjectURL(blob), download: filename, hidden: true});
  document.body.append(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 30_000);
}

function stamp() {
  return new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
}

// -- client-side, for a selection --------------------------------------------------------------
/** A spreadsheet cannot read a cell as a formula: text starting with = + - @ tab CR LF gets a
 * leading ', except numbers such as -5 or -74.01, which stay numbers. */
export function formulaSafe(text) {
  const s = String(text ?? '');
  if (/^[=+\-@\t\r\n]/.test(s) && !/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(s)) return `'${s}`;
  return s;
}

function csvCell(text) {
  const s = formulaSafe(text);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(rows) {
  const lines = [COLUMNS.map(([name]) => name).join(',')];
  for (const row of rows) lines.push(COLUMNS.map(([, get]) => csvCell(get(row))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

function toJsonl(rows) {
  return rows.map((row) => JSON.stringify(Object.fromEntries(COLUMNS.map(([name, get]) =>
    [name, name === 'changes' ? row.changes : get(row)])))).join('\n') + (rows.length ? '\n' : '');
}

// A minimal .xlsx: one sheet of inline strings, zipped without compression.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function zip(files) {
  const enc = new TextEncoder();
  const chunks = [];
  const central = [];
  let offset = 0;
  for (const [name, text] of files) {
    const nameBytes = enc.encode(name);
    const data = enc.encode(text);
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true); local.setUint16(4, 20, true);
    local.setUint32(14, crc, true); local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true); local.setUint16(26, nameBytes.length, true);
    chunks.push(local.buffer, nameBytes, data);
    const entry = new DataView(new ArrayBuffer(46));
    entry.setUint32(0, 0x02014b50, true); entry.setUint16(4, 20, true); entry.setUint16(6, 20, true);
    entry.setUint32(16, crc, true); entry.setUint32(20, data.length, true);
    entry.setUint32(24, data.length, true); entry.setUint16(28, nameBytes.length, true);
    entry.setUint32(42, offset, true);
    central.push(entry.buffer, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const size = central.reduce((n, part) => n + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true); end.setUint32(12, size, true); end.setUint32(16, offset, true);
  return new Blob([...chunks, ...central, end.buffer], {type: FORMATS.xlsx.mime});
}

function xml(text) {
  return String(text ?? '').replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]))
    // characters XML 1.0 cannot carry
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
}

function toXlsx(rows) {
  const cell = (text) => `<c t="inlineStr"><is><t xml:space="preserve">${xml(text)}</t></is></c>`;
  const sheetRows = [COLUMNS.map(([name]) => cell(name)).join('')]
    .concat(rows.map((row) => COLUMNS.map(([, get]) => cell(get(row))).join('')))
    .map((cells, i) => `<row r="${i + 1}">${cells}</row>`).join('');
  const ns = 'http://schemas.openxmlformats.org';
  return zip([
    ['[Content_Types].xml', `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="${ns}/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>`],
    ['_rels/.rels', `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="${ns}/package/2006/relationships"><Relationship Id="rId1" Type="${ns}/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>`],
    ['xl/workbook.xml', `<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="${ns}/spreadsheetml/2006/main" xmlns:r="${ns}/officeDocument/2006/relationships"><sheets><sheet name="audit log" sheetId="1" r:id="rId1"/></sheets></workbook>`],
    ['xl/_rels/workbook.xml.rels', `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="${ns}/package/2006/relationships"><Relationship Id="rId1" Type="${ns}/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`],
    ['xl/worksheets/sheet1.xml', `<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="${ns}/spreadsheetml/2006/main"><sheetData>${sheetRows}</sheetData></worksheet>`],
  ]);
}

export function exportSelected(rows, format, statusEl) {
  const spec = FORMATS[format];
  const blob = format === 'xlsx' ? toXlsx(rows)
    : new Blob([format === 'csv' ? toCsv(rows) : toJsonl(rows)], {type: spec.mime});
  save(blob, `audit-log-selected-${stamp()}.${spec.ext}`);
  replace(statusEl, h('p', {class: 'notice notice-ok', role: 'status'}, `Exported ${rows.length} selected events as ${spec.label}.`));
}

// -- through the API, for everything matching the filters --------------------------------------
async function download(url, filename) {
  const response = await raw(url, null);
  save(await response.blob(), filename);
}

export async function exportMatching(params, format, statusEl) {
  const spec = FORMATS[format];
  const filename = `audit-log-${stamp()}.${spec.ext}`;
  replace(statusEl, h('p', {class: 'notice', role: 'status'}, `Preparing the ${spec.label} export…`));
  let job;
  try {
    const response = await raw(PATHS.exportStream, {...params, format});
    save(await response.blob(), filename);
    replace(statusEl, h('p', {class: 'notice notice-ok', role: 'status'}, `${spec.label} export downloaded.`));
    return;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 413)) throw err;
    job = await post(PATHS.exportJobs, {...params, format}); // too large to stream: a job
  }
  const bar = h('progress', {class: 'progress', max: '1', value: String(job.progress || 0), 'aria-label': 'Export progress'});
  const label = h('span', {});
  replace(statusEl, h('div', {class: 'notice', role: 'status'}, 'Large export, running in the background: ', label, h('br'), bar));
  while (job.status === 'running') {
    label.textContent = `${job.rows_written.toLocaleString()} of ${job.rows_total.toLocaleString()} rows`;
    bar.value = job.progress || 0;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    job = await get(PATHS.exportJob(job.id));
  }
  if (job.status !== 'done') {
    replace(statusEl, h('p', {class: 'notice notice-error', role: 'alert'}, `The export failed: ${job.error || 'unknown error'}`));
    return;
  }
  const url = job.download_url || `${PATHS.exportJob(job.id)}/download`;
  replace(statusEl, h('p', {class: 'notice notice-ok', role: 'status'},
    `Export ready: ${job.rows_total.toLocaleString()} rows. `,
    h('button', {class: 'btn btn-small', type: 'button', onclick: () => download(url, filename)}, `Download ${spec.label}`)));
}
