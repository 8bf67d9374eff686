// Building DOM from data, safely: every value becomes a text node or an attribute value,
// never markup: no module of the viewer parses HTML from a string.

/**
 * h('a', {href: '#/x', class: 'btn', onclick: fn}, 'text', child, [more])
 * Strings and numbers become text nodes; null / undefined / false children are skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'checked' || key === 'selected' || key === 'value' || key === 'disabled') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

/** A <time> showing the viewer's local time, with the exact UTC instant on hover. */
export function timeCell(iso, precise = false) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', {}, String(iso));
  const local = precise
    ? date.toLocaleString(undefined, {
        year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
        second: '2-digit', fractionalSecondDigits: 3, timeZoneName: 'short',
      })
    : date.toLocaleString(undefined, {
        year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
      });
  const utc = date.toISOString().replace('T', ' ').replace('Z', ' UTC');
  return h('time', {datetime: date.toISOString(), title: utc}, local);
}

export function badge(text, kind) {
  return h('span', {class: `badge badge-${kind || 'plain'}`}, text);
}

/** A JSON-ish value as plain text: strings as they are, everything else as JSON. */
export function valueText(value) {
  if (value === null || value === undefined) return '∅';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function status(el, text, kind = 'info') {
  replace(el, text ? h('p', {class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status'}, text) : null);
}
