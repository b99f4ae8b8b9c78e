/*
 * SharedEventSource: one server connection per stream URL, shared by every
 * tab of an origin.
 *
 * On HTTP/1.1 a browser opens at most 6 connections to a host, for all its
 * tabs together, and an open event stream holds one until it ends: the
 * seventh tab of a site that streams waits forever. HTTP/2 lifts that limit
 * (one connection carries every stream); where it cannot be had, load this
 * file with a plain <script src> and use SharedEventSource where you would
 * use EventSource:
 *
 *     const source = new SharedEventSource("/stream/");
 *     source.addEventListener("count", (event) => console.log(event.data));
 *
 * It has EventSource's interface (onopen, onmessage, onerror,
 * addEventListener, readyState, url, withCredentials, close(), and
 * lastEventId on each event) and keeps a stream's guarantees. Tabs share the
 * connection in one of three ways, the first the browser allows:
 *
 * - "worker": a SharedWorker (this same file, run as a worker) holds one
 *   connection per URL for every tab, and passes each event on to them. A tab
 *   that closes does not interrupt the others.
 * - "leader": where SharedWorkers are missing (Chrome on Android), the tabs
 *   elect a leader with a Web Lock; the leader holds the connection and
 *   passes events on over a BroadcastChannel. When the leader tab closes, its
 *   lock is released at once; the next tab takes over and reconnects with
 *   the last event id, and every tab skips what it has already seen.
 * - "direct": where neither exists, a plain EventSource.
 *
 * In the first two, the connection is read with fetch(), parsed as the WHATWG
 * standard says, and reconnected as EventSource would be (after the retry:
 * time, with a Last-Event-ID header). Errors reach every tab as EventSource
 * reports them: readyState CONNECTING while it reconnects, CLOSED if the
 * server answers with something other than a 200 event stream.
 *
 * One addition: `sharedBy`, how many SharedEventSources (in all tabs) share
 * this one's connection, and a "sharechange" event when it changes.
 *
 * No build step, no dependency. Part of sse_response (BSD-3-Clause).
 */

/* global SharedWorkerGlobalScope */

(function (scope) {
  "use strict";

  const CONNECTING = 0;
  const OPEN = 1;
  const CLOSED = 2;

  /** Prefix of the names of the locks and channels this file uses. */
  const PREFIX = "sse_response:";

  /** The reconnection time before a server sends retry:, as Chromium's. */
  const DEFAULT_RETRY_MS = 3000;

  function randomId() {
    return Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  /* ------------------------------------------------------------------ */
  /* An event stream read with fetch(), as EventSource reads it.          */
  /* ------------------------------------------------------------------ */

  /**
   * One connection to `url`, reconnected as EventSource does until close().
   * `sink` is told what happens: sink.open(), sink.event(type, data,
   * lastEventId), sink.error(readyState).
   */
  class StreamConnection {
    constructor(url, withCredentials, lastEventId, sink) {
      this.url = url;
      this.withCredentials = withCredentials;
      this.lastEventId = lastEventId || "";
      this.sink = sink;
      this.readyState = CONNECTING;
      this.retryMs = DEFAULT_RETRY_MS;
      this.abort = null;
      this.timer = null;
      this.connect();
    }

    connect() {
      this.timer = null;
      this.readyState = CONNECTING;
      const abort = new AbortController();
      this.abort = abort;
      const headers = { Accept: "text/event-stream" };
      if (this.lastEventId) {
        headers["Last-Event-ID"] = this.lastEventId;
      }
      fetch(this.url, {
        headers: headers,
        cache: "no-store",
        credentials: this.withCredentials ? "include" : "same-origin",
        signal: abort.signal,
      }).then(
        (response) => this.read(response, abort),
        () => this.dropped(abort),
      );
    }

    async read(response, abort) {
      const contentType = (response.headers.get("Content-Type") || "").split(";")[0];
      if (response.status !== 200 || contentType.trim().toLowerCase() !== "text/event-stream") {
        // EventSource gives up for good on such a response.
        abort.abort();
        if (this.abort === abort) {
          this.fail();
        }
        return;
      }
      if (this.abort !== abort) {
        return; // closed meanwhile
      }
      this.readyState = OPEN;
      this.sink.open();
      // The last event id carries over from one connection to the next.
      const parser = new EventStreamParser(this.lastEventId, {
        event: (type, data, lastEventId) => {
          this.lastEventId = lastEventId;
          if (data !== null) {
            this.sink.event(type, data, lastEventId);
          }
        },
        retry: (milliseconds) => {
          this.retryMs = milliseconds;
        },
      });
      const reader = response.body.getReader();
      // TextDecoder drops a leading byte order mark, as the standard says.
      const decoder = new TextDecoder("utf-8");
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            break;
          }
          parser.feed(decoder.decode(value, { stream: true }));
        }
      } catch {
        // A network error: reconnect, as at the end of the stream.
      }
      this.dropped(abort);
    }

    /** The connection ended or failed: reconnect after the retry time. */
    dropped(abort) {
      if (this.abort !== abort || this.readyState === CLOSED) {
        return; // closed on purpose, or already handled
      }
      this.readyState = CONNECTING;
      this.sink.error(CONNECTING);
      if (this.readyState === CONNECTING && this.abort === abort) {
        this.timer = setTimeout(() => this.connect(), this.retryMs);
      }
    }

    fail() {
      this.close();
      this.sink.error(CLOSED);
    }

    close() {
      this.readyState = CLOSED;
      if (this.timer !== null) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      if (this.abort !== null) {
        const abort = this.abort;
        this.abort = null;
        abort.abort();
      }
    }
  }

  /**
   * The text/event-stream parser of the WHATWG standard: lines end with CR,
   * LF or CRLF; an empty line dispatches the event being built. It calls
   * `on.event(type, data, lastEventId)` for each (data is null when the
   * event had none: only its id counts then) and `on.retry(milliseconds)`.
   */
  class EventStreamParser {
    constructor(lastEventId, on) {
      this.on = on;
      this.buffer = ""; // the start of a line whose end has not come yet
      this.afterCR = false;
      this.data = [];
      this.type = "";
      this.lastId = lastEventId;
    }

    feed(text) {
      let start = 0;
      if (this.afterCR && text.startsWith("\n")) {
        start = 1; // the LF of a CRLF split between two chunks
      }
      this.afterCR = false;
      const pattern = /\r\n|\r|\n/g;
      pattern.lastIndex = start;
      let match;
      while ((match = pattern.exec(text)) !== null) {
        const line = this.buffer + text.slice(start, match.index);
        this.buffer = "";
        start = match.index + match[0].length;
        if (match[0] === "\r" && start === text.length) {
          this.afterCR = true;
        }
        this.line(line);
      }
      this.buffer += text.slice(start);
    }

    line(line) {
      if (line === "") {
        this.dispatch();
        return;
      }
      if (line.startsWith(":")) {
        return; // a comment: a heartbeat, or the stream's first bytes
      }
      const colon = line.indexOf(":");
      let name = line;
      let value = "";
      if (colon !== -1) {
        name = line.slice(0, colon);
        value = line.slice(colon + 1);
        if (value.startsWith(" ")) {
          value = value.slice(1);
        }
      }
      if (name === "event") {
        this.type = value;
      } else if (name === "data") {
        this.data.push(value);
      } else if (name === "id") {
        if (!value.includes("\0")) {
          this.lastId = value;
        }
      } else if (name === "retry" && /^[0-9]+$/.test(value)) {
        this.on.retry(parseInt(value, 10));
      }
    }

    dispatch() {
      const data = this.data.length ? this.data.join("\n") : null;
      this.on.event(this.type || "message", data, this.lastId);
      this.data = [];
      this.type = "";
    }
  }

  /* ------------------------------------------------------------------ */
  /* The hub: one connection per URL, and the tabs that listen to it.     */
  /* ------------------------------------------------------------------ */

  /**
   * Holds the connections of a SharedWorker, or of a leader tab. A member is
   * one tab's group of SharedEventSources for one URL; `send(member,
   * message)` reaches it, and `sendAll(message)`, when given, reaches every
   * member at once.
   */
  class Hub {
    constructor(send, sendAll) {
      this.send = send;
      this.sendAll = sendAll || null;
      this.streams = new Map(); // key -> {connection, members: Map}
    }

    join(member, key, url, withCredentials, size, lastEventId) {
      let stream = this.streams.get(key);
      if (stream === undefined) {
        stream = { connection: null, members: new Map() };
        this.streams.set(key, stream);
        stream.connection = new StreamConnection(url, withCredentials, lastEventId, {
          open: () => this.broadcast(stream, { kind: "open" }),
          event: (type, data, id) =>
            this.broadcast(stream, { kind: "event", type: type, data: data, lastEventId: id }),
          error: (readyState) => {
            this.broadcast(stream, { kind: "error", readyState: readyState });
            if (readyState === CLOSED) {
              this.streams.delete(key);
            }
          },
        });
      }
      stream.members.set(member, size);
      // A new member learns where the stream is: should it take the
      // connection over before any event reaches it, it resumes from there.
      this.send(member, {
        kind: "hello",
        readyState: stream.connection.readyState,
        lastEventId: stream.connection.lastEventId,
      });
      this.shareChanged(stream);
    }

    resize(member, key, size) {
      const stream = this.streams.get(key);
      if (stream !== undefined && stream.members.has(member)) {
        stream.members.set(member, size);
        this.shareChanged(stream);
      }
    }

    leave(member, key) {
      const stream = this.streams.get(key);
      if (stream === undefined || !stream.members.delete(member)) {
        return;
      }
      if (stream.members.size === 0) {
        // The last listener is gone: so is the connection.
        stream.connection.close();
        this.streams.delete(key);
      } else {
        this.shareChanged(stream);
      }
    }

    /** Remove a member from every stream (its tab is gone). */
    forget(isGone) {
      for (const [key, stream] of Array.from(this.streams)) {
        for (const member of Array.from(stream.members.keys())) {
          if (isGone(member)) {
            this.leave(member, key);
          }
        }
      }
    }

    closeAll() {
      for (const stream of this.streams.values()) {
        stream.connection.close();
      }
      this.streams.clear();
    }

    shareChanged(stream) {
      let count = 0;
      for (const size of stream.members.values()) {
        count += size;
      }
      this.broadcast(stream, { kind: "share", count: count });
    }

    broadcast(stream, message) {
      if (this.sendAll !== null) {
        this.sendAll(message);
        return;
      }
      for (const member of stream.members.keys()) {
        this.send(member, message);
      }
    }
  }

  /* ------------------------------------------------------------------ */
  /* Run as a SharedWorker: one hub for every tab of the origin.          */
  /* ------------------------------------------------------------------ */

  if (typeof SharedWorkerGlobalScope === "function" && scope instanceof SharedWorkerGlobalScope) {
    // A member is "<tab id> <key>"; each tab has one port.
    const ports = new Map(); // tab id -> port
    const hub = new Hub((member, message) => {
      const space = member.indexOf(" ");
      const port = ports.get(member.slice(0, space));
      if (port !== undefined) {
        port.postMessage(Object.assign({ key: member.slice(space + 1) }, message));
      }
    });
    scope.onconnect = (connectEvent) => {
      const port = connectEvent.ports[0];
      port.onmessage = (event) => {
        const message = event.data;
        const member = message.tab + " " + message.key;
        if (message.op === "tab") {
          ports.set(message.tab, port);
          // The tab holds this lock while it lives: when the lock is ours,
          // the tab is gone (closed, crashed, navigated away).
          scope.navigator.locks.request(message.lock, () => {
            ports.delete(message.tab);
            hub.forget((gone) => gone.startsWith(message.tab + " "));
          });
        } else if (message.op === "join") {
          hub.join(member, message.key, message.url, message.withCredentials, message.size, message.lastEventId);
        } else if (message.op === "size") {
          hub.resize(member, message.key, message.size);
        } else if (message.op === "leave") {
          hub.leave(member, message.key);
        }
      };
      port.start();
    };
    return;
  }

  if (typeof scope.document === "undefined") {
    return; // some other worker: nothing to define
  }

  /* ------------------------------------------------------------------ */
  /* In a page: SharedEventSource, and how its tab reaches the hub.       */
  /* ------------------------------------------------------------------ */

  const TAB = randomId();
  const TAB_LOCK = PREFIX + "tab:" + TAB;
  // The URL of this file, which the SharedWorker runs.
  const SCRIPT_URL = scope.document.currentScript ? scope.document.currentScript.src : null;

  /** Resolves once this tab holds the lock that tells hubs it is alive. */
  let tabAlive = null;
  function holdTabLock() {
    if (tabAlive === null) {
      tabAlive = new Promise((resolve) => {
        scope.navigator.locks.request(TAB_LOCK, () => {
          resolve();
          return new Promise(() => {}); // held until the tab goes
        });
      });
    }
    return tabAlive;
  }

  function transportFor(requested) {
    const canLead = Boolean(scope.navigator.locks) && typeof scope.BroadcastChannel === "function";
    // A SharedWorker runs a script of the page's own origin only: not this
    // file from a CDN (STATIC_URL on another host), say.
    const canShare =
      typeof scope.SharedWorker === "function" &&
      canLead &&
      Boolean(SCRIPT_URL) &&
      new URL(SCRIPT_URL).origin === scope.location.origin;
    if (requested === "worker" && canShare) {
      return "worker";
    }
    if (requested === "leader" && canLead) {
      return "leader";
    }
    if (requested === "direct") {
      return "direct";
    }
    return canShare ? "worker" : canLead ? "leader" : "direct";
  }

  /** How many of the last events' ids a tab keeps, to skip them after a takeover. */
  const RECENT_IDS = 100;

  /** This tab's SharedEventSources for one stream, and their last event id. */
  class Group {
    constructor(key, url, withCredentials) {
      this.key = key;
      this.url = url;
      this.withCredentials = withCredentials;
      this.sources = new Set();
      this.lastEventId = "";
      this.recentIds = []; // the last event id after each event, oldest first
      this.readyState = CONNECTING;
      this.sharedBy = 0;
    }

    /** A message from the hub. */
    receive(message) {
      if (message.kind === "event") {
        this.lastEventId = message.lastEventId;
        this.recentIds.push(message.lastEventId);
        if (this.recentIds.length > RECENT_IDS) {
          this.recentIds.shift();
        }
        for (const source of Array.from(this.sources)) {
          source._event(message.type, message.data, message.lastEventId);
        }
      } else if (message.kind === "open" || (message.kind === "hello" && message.readyState === OPEN)) {
        this.setState(OPEN, "open");
      } else if (message.kind === "hello") {
        this.readyState = message.readyState;
      }
      if (message.kind === "hello" && this.lastEventId === "" && message.lastEventId) {
        this.lastEventId = message.lastEventId;
      } else if (message.kind === "error") {
        this.setState(message.readyState, "error");
      } else if (message.kind === "share") {
        this.sharedBy = message.count;
        for (const source of Array.from(this.sources)) {
          source._share(message.count);
        }
      }
    }

    setState(readyState, eventType) {
      if (readyState === OPEN && this.readyState === OPEN) {
        return; // already told
      }
      this.readyState = readyState;
      for (const source of Array.from(this.sources)) {
        source._state(readyState, eventType);
      }
    }
  }

  /** Tabs reach a SharedWorker's hub through one port. */
  class WorkerTransport {
    constructor() {
      this.groups = new Map();
      this.worker = new scope.SharedWorker(SCRIPT_URL, { name: PREFIX + "hub" });
      this.port = this.worker.port;
      this.port.onmessage = (event) => {
        const group = this.groups.get(event.data.key);
        if (group !== undefined) {
          group.receive(event.data);
        }
      };
      this.port.start();
      this.ready = holdTabLock().then(() => {
        this.post({ op: "tab", key: "", lock: TAB_LOCK });
      });
      // Tell the worker at once when the page goes, rather than when its
      // lock is released.
      scope.addEventListener("pagehide", () => {
        for (const group of this.groups.values()) {
          this.post({ op: "leave", key: group.key });
        }
      });
    }

    post(message) {
      this.port.postMessage(Object.assign({ tab: TAB }, message));
    }

    join(group) {
      this.groups.set(group.key, group);
      this.ready.then(() => {
        if (this.groups.get(group.key) === group) {
          this.post({
            op: "join",
            key: group.key,
            url: group.url,
            withCredentials: group.withCredentials,
            size: group.sources.size,
            lastEventId: group.lastEventId,
          });
        }
      });
    }

    resize(group) {
      this.ready.then(() => this.post({ op: "size", key: group.key, size: group.sources.size }));
    }

    leave(group) {
      this.groups.delete(group.key);
      this.ready.then(() => this.post({ op: "leave", key: group.key }));
    }
  }

  /**
   * Tabs elect a leader per stream with a Web Lock; the leader holds a hub
   * and speaks to the others over a BroadcastChannel. Each connection a
   * leader opens is an "epoch": a tab takes only the current epoch's events,
   * and after a takeover skips those it had already seen.
   */
  class LeaderTransport {
    constructor(group) {
      this.group = group;
      this.channel = new scope.BroadcastChannel(PREFIX + "stream:" + group.key);
      this.channel.onmessage = (event) => this.onMessage(event.data);
      this.epoch = null;
      this.ahead = []; // ids this tab has seen past where the leader resumes
      this.hub = null;
      this.stopLeading = null;
      this.watching = new AbortController();
      this.waiting = new AbortController();
      this.closed = false;
      this.onPageHide = () => this.post({ op: "leave" });
      scope.addEventListener("pagehide", this.onPageHide);

      holdTabLock().then(() => {
        if (this.closed) {
          return;
        }
        this.post({ op: "join", size: group.sources.size });
        scope.navigator.locks
          .request(PREFIX + "leader:" + group.key, { signal: this.waiting.signal }, () => this.lead())
          .catch(() => {}); // closed before it was our turn
      });
    }

    post(message) {
      const full = Object.assign({ tab: TAB, lock: TAB_LOCK }, message);
      this.channel.postMessage(full);
      this.onMessage(full); // a channel does not echo to its sender
    }

    /** Our turn: connect, and pass events on until the group closes. */
    lead() {
      if (this.closed) {
        return undefined;
      }
      const group = this.group;
      const epoch = randomId();
      // Every tab hears every message; "to" says which tab it is for.
      const send = (to, message) => {
        const full = Object.assign({ epoch: epoch, to: to }, message);
        this.channel.postMessage(full);
        this.onMessage(full);
      };
      this.hub = new Hub(send, (message) => send("*", message));
      this.post({ kind: "epoch", epoch: epoch, from: group.lastEventId });
      this.hub.join(TAB, group.key, group.url, group.withCredentials, group.sources.size, group.lastEventId);
      // The others join again, so that this hub knows them.
      this.post({ kind: "census", epoch: epoch });
      return new Promise((resolve) => {
        this.stopLeading = resolve;
      });
    }

    onMessage(message) {
      if (message.op !== undefined) {
        this.onRequest(message);
        return;
      }
      if (message.kind === "census") {
        if (message.tab !== TAB) {
          this.post({ op: "join", size: this.group.sources.size });
        }
        return;
      }
      if (message.kind === "epoch") {
        // A new leader connects with the last id it saw, and the server
        // sends what came after it. A tab that had seen more (events the
        // old leader passed on before it went) skips those it already has:
        // the ids it saw after that one, for as long as they come in order.
        this.epoch = message.epoch;
        const seen = this.group.recentIds;
        const at = seen.lastIndexOf(message.from);
        this.ahead = at === -1 ? [] : seen.slice(at + 1);
        return;
      }
      if (message.to !== "*" && message.to !== TAB) {
        return;
      }
      if (this.epoch === null) {
        this.epoch = message.epoch; // a new tab: nothing seen, nothing to skip
      }
      if (message.epoch !== this.epoch) {
        return; // from a leader that is gone
      }
      if (message.kind === "event" && this.ahead.length > 0) {
        if (message.lastEventId === this.ahead[0]) {
          this.ahead.shift();
          return; // this tab has it already
        }
        // Not what this tab saw next (a server that does not resume):
        // pass everything on from here, as an EventSource would.
        this.ahead = [];
      }
      this.group.receive(message);
    }

    /** What the other tabs ask of the leader. */
    onRequest(message) {
      if (this.hub === null) {
        return;
      }
      if (message.op === "join") {
        const tab = message.tab;
        this.hub.join(tab, this.group.key, this.group.url, this.group.withCredentials, message.size, "");
        if (tab !== TAB) {
          scope.navigator.locks
            .request(message.lock, { signal: this.watching.signal }, () => this.hub && this.hub.leave(tab, this.group.key))
            .catch(() => {}); // we stopped leading first
        }
      } else if (message.op === "size") {
        this.hub.resize(message.tab, this.group.key, message.size);
      } else if (message.op === "leave") {
        this.hub.leave(message.tab, this.group.key);
      }
    }

    join() {}

    resize(group) {
      this.post({ op: "size", size: group.sources.size });
    }

    leave() {
      this.closed = true;
      this.post({ op: "leave" });
      scope.removeEventListener("pagehide", this.onPageHide);
      this.waiting.abort();
      this.watching.abort();
      if (this.hub !== null) {
        this.hub.closeAll();
        this.hub = null;
      }
      if (this.stopLeading !== null) {
        this.stopLeading(); // releases the lock: another tab leads
      }
      this.channel.close();
    }
  }

  let workerTransport = null;
  const groups = new Map(); // key -> {group, transport}

  function groupFor(source, transport) {
    const key = (source.withCredentials ? "credentials " : "") + source.url;
    let entry = groups.get(key);
    if (entry === undefined) {
      const group = new Group(key, source.url, source.withCredentials);
      let link;
      if (transport === "worker") {
        if (workerTransport === null) {
          workerTransport = new WorkerTransport();
        }
        link = workerTransport;
      } else {
        link = new LeaderTransport(group);
      }
      entry = { group: group, link: link };
      groups.set(key, entry);
      group.sources.add(source);
      link.join(group);
    } else {
      entry.group.sources.add(source);
      entry.link.resize(entry.group);
      if (entry.group.readyState === OPEN) {
        queueMicrotask(() => source._state(OPEN, "open"));
      }
      queueMicrotask(() => source._share(entry.group.sharedBy));
    }
    return entry;
  }

  function release(source, entry) {
    const group = entry.group;
    group.sources.delete(source);
    if (group.sources.size === 0) {
      groups.delete(group.key);
      entry.link.leave(group);
    } else {
      entry.link.resize(group);
    }
  }

  const HANDLERS = ["open", "message", "error"];

  /**
   * An EventSource whose connection every tab of the origin shares.
   * `options`: `withCredentials` (as EventSource's), and `transport` to ask
   * for "worker", "leader" or "direct" (the best one the browser allows is
   * used otherwise, and when the one asked for is missing).
   */
  class SharedEventSource extends EventTarget {
    constructor(url, options) {
      super();
      const settings = options || {};
      this.url = new URL(url, scope.location.href).href;
      this.withCredentials = Boolean(settings.withCredentials);
      this.readyState = CONNECTING;
      this.transport = transportFor(settings.transport);
      this.sharedBy = 1;
      this._handlers = {};
      this._entry = null;
      this._native = null;
      this._forwarded = new Set();
      if (this.transport === "direct") {
        this._native = new scope.EventSource(this.url, { withCredentials: this.withCredentials });
        for (const type of HANDLERS) {
          this._forward(type);
        }
      } else {
        this._entry = groupFor(this, this.transport);
      }
    }

    addEventListener(type, listener, options) {
      super.addEventListener(type, listener, options);
      if (this._native !== null) {
        this._forward(type);
      }
    }

    close() {
      if (this.readyState === CLOSED && this._entry === null && this._native === null) {
        return;
      }
      this.readyState = CLOSED;
      if (this._native !== null) {
        this._native.close();
        this._native = null;
      }
      if (this._entry !== null) {
        release(this, this._entry);
        this._entry = null;
      }
    }

    /** With a plain EventSource: pass its events of `type` on. */
    _forward(type) {
      if (this._forwarded.has(type)) {
        return;
      }
      this._forwarded.add(type);
      this._native.addEventListener(type, (event) => {
        this.readyState = this._native === null ? CLOSED : this._native.readyState;
        if (event instanceof MessageEvent) {
          this._event(type, event.data, event.lastEventId);
        } else {
          this.dispatchEvent(new Event(type));
        }
      });
    }

    _event(type, data, lastEventId) {
      if (this.readyState === CLOSED) {
        return;
      }
      const origin = new URL(this.url).origin;
      this.dispatchEvent(new MessageEvent(type, { data: data, lastEventId: lastEventId, origin: origin }));
    }

    _state(readyState, eventType) {
      if (this.readyState === CLOSED) {
        return;
      }
      if (readyState === OPEN && this.readyState === OPEN) {
        return;
      }
      this.readyState = readyState;
      if (readyState === CLOSED && this._entry !== null) {
        // The connection failed for good, as EventSource's can.
        release(this, this._entry);
        this._entry = null;
      }
      this.dispatchEvent(new Event(eventType));
    }

    _share(count) {
      if (this.readyState !== CLOSED && count !== this.sharedBy && count > 0) {
        this.sharedBy = count;
        this.dispatchEvent(new Event("sharechange"));
      }
    }
  }

  // onopen, onmessage, onerror (and onsharechange), as EventSource has them.
  for (const type of HANDLERS.concat(["sharechange"])) {
    Object.defineProperty(SharedEventSource.prototype, "on" + type, {
      get() {
        return this._handlers[type] || null;
      },
      set(handler) {
        if (this._handlers[type]) {
          this.removeEventListener(type, this._handlers[type]);
        }
        this._handlers[type] = typeof handler === "function" ? handler : null;
        if (this._handlers[type]) {
          this.addEventListener(type, this._handlers[type]);
        }
      },
    });
  }

  for (const [name, value] of [["CONNECTING", CONNECTING], ["OPEN", OPEN], ["CLOSED", CLOSED]]) {
    Object.defineProperty(SharedEventSource, name, { value: value });
    Object.defineProperty(SharedEventSource.prototype, name, { value: value });
  }

  scope.SharedEventSource = SharedEventSource;
})(self);
