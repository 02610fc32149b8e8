/**
 * Server-Sent Events read from a fetch body, as the HTML standard's event-stream algorithm says
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
 * lines ended by CR, LF or CRLF; `field: value`; comments from `:`; `data` lines joined by LF; an
 * event dispatched at a blank line, if it has data. Node has no EventSource; this needs only fetch.
 */

export interface ServerSentEvent {
  /** The last `id` seen so far in the stream (ids carry over to later events), or null. */
  id: string | null;
  /** `message` when the event named none. */
  event: string;
  data: string;
}

export async function* readEventStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<ServerSentEvent | { retry: number }> {
  const decoder = new TextDecoder();
  let buffer = '';
  let lastId: string | null = null;
  let event = '';
  let data: string[] = [];
  let first = true;
  const lines = function* (final: boolean): Generator<string> {
    for (;;) {
      const at = buffer.search(/\r\n|\r|\n/);
      // A lone CR at the end may be the first half of CRLF: wait for the next chunk.
      if (at === -1 || (!final && at === buffer.length - 1 && buffer[at] === '\r')) return;
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + (buffer.startsWith('\r\n', at) ? 2 : 1));
      yield line;
    }
  };
  const take = function* (line: string): Generator<ServerSentEvent | { retry: number }> {
    if (line === '') {
      if (data.length > 0) yield { id: lastId, event: event || 'message', data: data.join('\n') };
      event = '';
      data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) yield { retry: Number(value) };
  };
  for await (const chunk of body) {
    let text = decoder.decode(chunk, { stream: true });
    if (first) {
      text = text.replace(/^\uFEFF/, '');
      first = false;
    }
    buffer += text;
    for (const line of lines(false)) yield* take(line);
  }
  buffer += decoder.decode();
  for (const line of lines(true)) yield* take(line);
  // An event not ended by a blank line when the stream ends is dropped, as the standard says.
}
