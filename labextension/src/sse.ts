/**
 * An incremental Server-Sent Events parser (the WHATWG "event stream interpretation"), fed with
 * decoded text as it arrives from a fetch body. EventSource is not used because it cannot send
 * Jupyter's Authorization header.
 */

export interface ISseMessage {
  /** The last event id seen so far in the stream (ids persist across messages). */
  id: string | null;
  /** The `event:` field, `message` when absent. */
  event: string;
  /** The `data:` lines joined with newlines. */
  data: string;
  /** The `retry:` field in milliseconds, if this message set one. */
  retry?: number;
}

export class SseParser {
  private _buffer = '';
  private _started = false;
  private _pendingCR = false;
  private _data: string[] = [];
  private _event = '';
  private _retry: number | undefined = undefined;
  private _lastId: string | null = null;
  private _hasFields = false;

  /** The id of the last message seen (for a `Last-Event-ID` reconnect). */
  get lastEventId(): string | null {
    return this._lastId;
  }

  /** Feed a piece of text; returns the messages it completed. */
  push(chunk: string): ISseMessage[] {
    if (!this._started && chunk.length > 0) {
      this._started = true;
      if (chunk.charCodeAt(0) === 0xfeff) {
        chunk = chunk.slice(1);
      }
    }
    // A CR at the end of the previous chunk may be the first half of a CRLF.
    if (this._pendingCR) {
      this._pendingCR = false;
      if (chunk.startsWith('\n')) {
        chunk = chunk.slice(1);
      }
    }
    const text = this._buffer + chunk;
    const out: ISseMessage[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) {
        continue;
      }
      this._line(text.slice(start, i), out);
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) {
            i++;
          }
        } else {
          this._pendingCR = true;
        }
      }
      start = i + 1;
    }
    this._buffer = text.slice(start);
    return out;
  }

  /** The stream ended: an unterminated message is discarded, as the standard says. */
  end(): void {
    this._buffer = '';
    this._reset();
  }

  private _line(line: string, out: ISseMessage[]): void {
    if (line === '') {
      this._dispatch(out);
      return;
    }
    if (line.startsWith(':')) {
      return; // a comment, e.g. the server's keep-alive
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    switch (field) {
      case 'data':
        this._data.push(value);
        this._hasFields = true;
        break;
      case 'event':
        this._event = value;
        this._hasFields = true;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this._lastId = value;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          this._retry = parseInt(value, 10);
        }
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private _dispatch(out: ISseMessage[]): void {
    if (this._hasFields && this._data.length > 0) {
      const message: ISseMessage = {
        id: this._lastId,
        event: this._event || 'message',
        data: this._data.join('\n')
      };
      if (this._retry !== undefined) {
        message.retry = this._retry;
      }
      out.push(message);
    }
    this._reset();
  }

  private _reset(): void {
    this._data = [];
    this._event = '';
    this._retry = undefined;
    this._hasFields = false;
  }
}
