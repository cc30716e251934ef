// GET /events read with fetch (EventSource cannot send the Authorization header): the
// text/event-stream format parsed by hand, one callback per event, reconnecting with
// backoff (0.5 s doubling to 15 s) until stopped. The stream has no replay, so `onOpen`
// tells the page to re-read the current state after every (re)connect.

import { api } from './api.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Parses one event block (`event:` and `data:` lines) and calls onEvent(type, data). */
export function parseBlock(block, onEvent) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') type = value;
    else if (name === 'data') data.push(value);
  }
  if (data.length === 0) return;
  let parsed;
  try {
    parsed = JSON.parse(data.join('\n'));
  } catch {
    return;
  }
  onEvent(type, parsed);
}

/**
 * Opens the stream; returns a function that closes it for good.
 * handlers: {onEvent(type, data), onOpen(), onState('live'|'reconnecting'|'closed')}
 */
export function subscribe({ onEvent, onOpen = () => {}, onState = () => {} }) {
  let stopped = false;
  let controller = null;
  let delay = 500;

  async function once() {
    controller = new AbortController();
    const resp = await api('/events', {
      raw: true,
      signal: controller.signal,
      headers: { Accept: 'text/event-stream' },
    });
    delay = 500;
    onState('live');
    onOpen();
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        parseBlock(block, onEvent);
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (e) {
        if (stopped) break;
        if (e && (e.status === 401 || e.status === 403)) {
          onState('closed');
          return;
        }
      }
      if (stopped) break;
      onState('reconnecting');
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
    onState('closed');
  })();

  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
