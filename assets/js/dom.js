// Small DOM helpers. Every piece of data goes in as text (never as HTML), so nothing an
// organization name or an error message holds can run as script.

/** Builds an element: h('a', {href: '#/'}, 'text', child, [more]). `on*` attributes are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const fmtInt = (n) => (n ?? 0).toLocaleString('en-US');
export const fmtMoney = (cents) =>
  '$' + ((cents ?? 0) / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export const fmtTime = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : '—');
export const badge = (text) => h('span', { class: `badge ${String(text).replace(/[^a-z_]/gi, '')}` }, text);

/**
 * A table: columns are [header, cell(row), {num: true}?]. `caption` names it for screen
 * readers; `empty` is shown when there are no rows.
 */
export function table(columns, rows, { caption, empty = 'Nothing yet.', rowAttrs } = {}) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    caption ? h('caption', { class: 'skip' }, caption) : null,
    h('thead', {}, h('tr', {}, columns.map(([head, , opts]) =>
      h('th', { scope: 'col', class: opts?.num ? 'num' : (opts?.narrow ? 'hide-narrow' : null) }, head)))),
    h('tbody', {}, rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : {}, columns.map(([, cell, opts]) =>
      h('td', { class: opts?.num ? 'num' : (opts?.narrow ? 'hide-narrow' : null) }, cell(row)))))));
}

/** A titled panel. */
export const panel = (title, ...children) =>
  h('section', { class: 'panel', 'aria-label': title }, h('h2', {}, title), ...children);

/** Reads a form's named fields into an object. */
export const formValues = (form) => Object.fromEntries(new FormData(form).entries());
