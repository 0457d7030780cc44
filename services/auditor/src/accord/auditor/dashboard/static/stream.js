// The live stream (GET v1/audit/stream) read with fetch(): EventSource cannot send the
// Authorization header. Reconnects by itself and resumes with Last-Event-ID.

import { AuthError, authorization, url } from "./api.js";

const EVENT_END = /\r\n\r\n|\n\n|\r\r/;

/** One event block of text/event-stream: its type, data lines, id and retry. */
export function parseEvent(block) {
  const event = { type: "message", data: [], id: null, retry: null };
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (line === "" || line.startsWith(":")) continue; // a comment: the server's heartbeat
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") event.data.push(value);
    else if (field === "event") event.type = value;
    else if (field === "id") event.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
  }
  return event;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

export class AuditStream {
  /**
   * onRecord(record): an audit record, oldest first.
   * onState(state): "connecting", "live", "reconnecting", "unauthorized" or "stopped".
   * onNotice(text): something the user should know (records skipped).
   */
  constructor({ onRecord, onState, onNotice, recent = 30 }) {
    this.onRecord = onRecord;
    this.onState = onState;
    this.onNotice = onNotice;
    this.recent = recent;
    this.lastId = null;
    this.retryMs = 2000;
    this.controller = null;
  }

  start() {
    this.controller = new AbortController();
    this.#run(this.controller.signal);
    return this;
  }

  stop() {
    this.controller?.abort();
    this.onState("stopped");
  }

  async #run(signal) {
    let failures = 0;
    while (!signal.aborted) {
      this.onState(failures ? "reconnecting" : "connecting");
      try {
        await this.#read(signal);
        failures = 0; // the server ended the stream (it restarted): resume at once
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof AuthError) {
          this.onState("unauthorized");
          return;
        }
        failures += 1;
      }
      if (signal.aborted) return;
      this.onState("reconnecting");
      await sleep(Math.min(this.retryMs * 2 ** Math.max(0, failures - 1), 30_000), signal);
    }
  }

  async #read(signal) {
    const headers = { ...authorization(), Accept: "text/event-stream" };
    const params = {};
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    else params.recent = this.recent;
    const response = await fetch(url("v1/audit/stream", params), {
      headers,
      signal,
      cache: "no-store",
    });
    if (response.status === 401 || response.status === 403) throw new AuthError(response.status);
    if (!response.ok || !response.body) throw new Error(`the stream answered ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = EVENT_END.exec(buffer))) {
        const block = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        this.#dispatch(parseEvent(block));
      }
    }
  }

  #dispatch(event) {
    if (event.retry !== null) this.retryMs = event.retry;
    if (event.data.length === 0) return;
    const data = JSON.parse(event.data.join("\n"));
    if (event.type === "audit") {
      if (event.id !== null) this.lastId = event.id;
      this.onRecord(data);
    } else if (event.type === "ready") {
      this.onState("live");
    } else if (event.type === "dropped") {
      this.onNotice(`${data.dropped} events were skipped: this page fell behind.`);
    } else if (event.type === "gap") {
      this.onNotice("More events happened while disconnected than can be replayed here.");
    }
  }
}
