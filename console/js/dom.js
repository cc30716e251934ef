// The one way the console builds DOM: elements, attributes and text nodes. Nothing is
// ever parsed as HTML, so a user's name like `<img src=x onerror=…>` stays text.

/**
 * h('button', {class: 'primary', onclick: fn, 'aria-label': 'Edit 1001'}, 'Edit')
 * Attributes: null/undefined/false are left out, true is an empty attribute, `on<event>`
 * with a function adds a listener, `value` and `checked` set the live property.
 * Children: nodes, strings and numbers (as text), arrays (flattened), null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  const props = {};
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' || key === 'checked') {
      props[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  for (const [key, value] of Object.entries(props)) el[key] = value;
  return el;
}

/** Appends children as `h` does. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let ids = 0;
/** A unique id for label/control and aria pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A label and its control, wrapped in a `.field`. */
export function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('span', { class: 'hint', id: `${id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/** An element announcing errors (`role="alert"`), empty until `show`. */
export function alertArea() {
  const el = h('div', { class: 'alert', role: 'alert', hidden: true });
  return {
    el,
    show(message) {
      replace(el, message);
      el.hidden = false;
    },
    clear() {
      replace(el);
      el.hidden = true;
    },
  };
}

/** Formats an RFC 3339 time for a table cell. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
