// The status line: a live region that announces what an action did, or why it failed.

import { h } from './dom.js';

const statusLine = document.getElementById('status');

/** Shows a message in the live region (announced to screen readers). */
export function say(message, kind = 'ok') {
  statusLine.replaceChildren(message ? h('p', { class: kind }, message) : '');
}

/** Runs an action from a form or button and reports its outcome; returns its result. */
export async function act(what, fn) {
  try {
    const result = await fn();
    say(what);
    return result;
  } catch (e) {
    say(`${e.message}${e.code ? ` (${e.code})` : ''}`, 'error');
    return undefined;
  }
}
