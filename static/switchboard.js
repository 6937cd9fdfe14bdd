/*!
 * Switchboard real-time client (PROTOCOL.md section 3). No build step, no DOM.
 *
 *   var sb = new Switchboard({url: 'https://shop.example', token: '…'});
 *   sb.on('inventory_update', function (data, frame) { … });
 *   sb.on('reset', function (r) { refetch(r.topic); });
 *   sb.subscribe('product:7');
 *
 * Browsers: window.Switchboard. CommonJS / React Native / Node: module.exports.
 * Everything platform-specific (WebSocket, EventSource, fetch, setTimeout,
 * clearTimeout, AbortController) can be passed in the options; otherwise the
 * globals are used, and a transport whose global is missing is skipped.
 */
(function (root, factory) {
  'use strict';
  var api = factory(root);
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
    module.exports.default = api;
  } else {
    root.Switchboard = api;
  }
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function (root) {
  'use strict';

  var TRANSPORTS = ['websocket', 'sse', 'poll'];
  var TOKEN_EXPIRED = 4001;   // the server's close code at the token's exp

  // Event names of PROTOCOL.md; over SSE only named listeners see events (see _openSse).
  var EVENT_NAMES = ['stream:reset', 'message:receive', 'message:delivered', 'message:read',
    'user:typing', 'conversation:join', 'conversation:leave', 'agent:assigned', 'agent:transfer',
    'conversation:archived', 'user:online', 'user:offline', 'agent:available', 'notification',
    'order_status_update', 'order_tracking_update', 'inventory_update', 'out_of_stock',
    'inventory_alert', 'stats'];
  // Names that are the EventSource's own (or onmessage's): never frame listeners.
  var SSE_SKIP = {'*': 1, error: 1, open: 1, message: 1, state: 1, reset: 1, disconnect: 1, retry: 1, fallback: 1};

  // ---- cursors: "<ms>-<seq>:<epoch>", compared numerically within an epoch ----

  function parseCursor(id) {
    if (typeof id !== 'string') return null;
    var m = /^(\d+)-(\d+)(?::([0-9a-z]+))?$/.exec(id);
    return m ? [m[1], m[2], m[3] || null] : null;
  }

  function cmpDigits(a, b) {
    // Arbitrary-length unsigned integers as strings (ids may exceed 2^53).
    a = a.replace(/^0+(?=\d)/, '');
    b = b.replace(/^0+(?=\d)/, '');
    if (a.length !== b.length) return a.length < b.length ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** -1, 0 or 1; null when either side is not a cursor, or they are of different epochs
   *  (positions of two histories do not compare: the server starts a new one when the
   *  old one was lost, and says so with a reset). */
  function compareCursors(a, b) {
    var pa = parseCursor(a), pb = parseCursor(b);
    if (!pa || !pb || pa[2] !== pb[2]) return null;
    return cmpDigits(pa[0], pb[0]) || cmpDigits(pa[1], pb[1]);
  }

  // ---- base64url without btoa/atob (React Native has neither everywhere) ---

  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  function utf8Bytes(str) {
    var out = [];
    for (var i = 0; i < str.length; i++) {
      var c = str.charCodeAt(i);
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < str.length) {
        c = 0x10000 + ((c - 0xd800) << 10) + (str.charCodeAt(++i) - 0xdc00);
      }
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return out;
  }

  function base64urlEncode(str) {
    var b = utf8Bytes(str), out = '';
    for (var i = 0; i < b.length; i += 3) {
      var n = (b[i] << 16) | ((b[i + 1] || 0) << 8) | (b[i + 2] || 0);
      out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
      if (i + 1 < b.length) out += B64[(n >> 6) & 63];
      if (i + 2 < b.length) out += B64[n & 63];
    }
    return out;
  }

  function base64urlDecode(str) {
    str = String(str).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    var bytes = [], bits = 0, acc = 0;
    for (var i = 0; i < str.length; i++) {
      var v = B64.indexOf(str[i]);
      if (v < 0) throw new Error('bad base64');
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push((acc >> bits) & 255);
      }
    }
    var s = '';
    for (var j = 0; j < bytes.length; j++) s += '%' + (bytes[j] < 16 ? '0' : '') + bytes[j].toString(16);
    return decodeURIComponent(s);
  }

  /** The stream cursor of /events and /poll: base64url JSON map topic -> id. */
  function encodeStreamCursor(map) {
    var keys = Object.keys(map).sort(), parts = [];
    for (var i = 0; i < keys.length; i++) parts.push(JSON.stringify(keys[i]) + ':' + JSON.stringify(map[keys[i]]));
    return base64urlEncode('{' + parts.join(',') + '}');
  }

  function decodeStreamCursor(cursor) {
    try {
      var map = JSON.parse(base64urlDecode(cursor));
      return map && typeof map === 'object' && !Array.isArray(map) ? map : null;
    } catch (e) {
      return null;
    }
  }

  function tokenClaims(token) {
    try {
      var claims = JSON.parse(base64urlDecode(String(token).split('.')[1]));
      return claims && typeof claims === 'object' ? claims : null;
    } catch (e) {
      return null;
    }
  }

  function tokenSubject(token) {
    var claims = tokenClaims(token);
    return claims && typeof claims.sub === 'string' ? claims.sub : null;
  }

  function makeError(code, message, extra) {
    var err = new Error(message);
    err.code = code;
    if (extra) for (var k in extra) if (Object.prototype.hasOwnProperty.call(extra, k)) err[k] = extra[k];
    return err;
  }

  function pick(opt, name) {
    if (opt && opt[name] !== undefined) return opt[name];
    return root ? root[name] : undefined;
  }

  // ---- the client ---------------------------------------------------------

  /**
   * options:
   *   url              base HTTP(S) URL of Switchboard ('' = same origin in a browser)
   *   token | getToken string, or a function returning a token or a Promise of one
   *                    (called before every connection attempt)
   *   transports       order of preference, default ['websocket', 'sse', 'poll']
   *   topics           topics to subscribe at once
   *   fallbackAfter    failed attempts in a row, without the transport ever having
   *                    opened, before moving to the next transport (default 2)
   *   backoffBase, backoffMax   ms, full jitter: random(0, min(max, base * 2^n))
   *   stableAfter      ms a connection must stay open to reset the backoff (5000)
   *   pingInterval, pingTimeout  WebSocket liveness (ms; 0 disables)
   *   pollTimeout      ms before a long poll is abandoned (35000)
   *   refreshLead      ms before the token's exp to get a new one from getToken (30000,
   *                    at most a tenth of what is left): sent as {op: 'refresh'} over
   *                    WebSocket, the stream reopened (and resumed) over SSE and polling;
   *                    false: never (the server ends the connection at exp, 4001 on
   *                    WebSocket, and the client reconnects at once with a new token)
   *   autoConnect      default true
   *   autoUserTopic    over SSE/poll also follow user:<sub of the token> as the
   *                    WebSocket does by itself (default true)
   *   paths            {ws: '/ws', events: '/events', poll: '/poll'}
   *   WebSocket, EventSource, fetch, setTimeout, clearTimeout, AbortController, random
   */
  function Switchboard(options) {
    if (!(this instanceof Switchboard)) return new Switchboard(options);
    var o = options || {};
    this.options = o;
    var base = o.url;
    if (base == null) {
      var loc = root && root.location;
      base = loc && loc.origin ? loc.origin : '';
    }
    this.url = String(base).replace(/\/+$/, '');
    this.paths = {ws: '/ws', events: '/events', poll: '/poll'};
    if (o.paths) for (var p in o.paths) if (Object.prototype.hasOwnProperty.call(o.paths, p)) this.paths[p] = o.paths[p];

    this._WebSocket = pick(o, 'WebSocket');
    this._EventSource = pick(o, 'EventSource');
    var f = pick(o, 'fetch');  // called unbound: browsers refuse fetch with another `this`
    this._fetch = f ? function (url, init) { return f.call(root, url, init); } : null;
    this._AbortController = pick(o, 'AbortController');
    var st = pick(o, 'setTimeout'), ct = pick(o, 'clearTimeout');
    this._setTimeout = function (fn, ms) { return st.call(root, fn, ms); };
    this._clearTimeout = function (h) { if (h != null) ct.call(root, h); };
    this._random = o.random || Math.random;

    var wanted = o.transports || TRANSPORTS, have = {websocket: this._WebSocket, sse: this._EventSource, poll: this._fetch};
    this.transports = [];
    for (var i = 0; i < wanted.length; i++) {
      if (TRANSPORTS.indexOf(wanted[i]) < 0) throw makeError('bad_option', 'unknown transport ' + wanted[i]);
      if (have[wanted[i]] && this.transports.indexOf(wanted[i]) < 0) this.transports.push(wanted[i]);
    }
    if (!this.transports.length) throw makeError('no_transport', 'none of the transports ' + wanted.join(',') + ' is available here');

    this.fallbackAfter = o.fallbackAfter || 2;
    this.backoffBase = o.backoffBase || 500;
    this.backoffMax = o.backoffMax || 30000;
    this.stableAfter = o.stableAfter != null ? o.stableAfter : 5000;
    this.pingInterval = o.pingInterval != null ? o.pingInterval : 25000;
    this.pingTimeout = o.pingTimeout != null ? o.pingTimeout : 10000;
    this.pollTimeout = o.pollTimeout || 35000;
    this.refreshLead = o.refreshLead === false ? false : o.refreshLead != null ? o.refreshLead : 30000;
    this._now = o.now || function () { return Date.now(); };
    this.autoUserTopic = o.autoUserTopic !== false;

    this.state = 'closed';
    this.transport = null;
    this.cursors = {};             // topic -> last id seen (the dedupe point)
    this._topics = [];             // subscribed, in order
    this._autoTopics = [];         // followed without subscribe (user:<me>)
    this._handlers = {};
    this._ti = 0;                  // index in this.transports
    this._failures = 0;            // failed attempts in a row on the current transport
    this._everOpened = {};         // transport -> true once it opened
    this._attempt = 0;             // backoff exponent
    this._wasOpen = false;
    this._gen = 0;                 // connection generation; stale callbacks compare it
    this._conn = null;
    this._timers = {};
    this._ref = 0;
    this._pending = {};            // ref -> {resolve, reject, timer}
    this._outbox = [];             // WebSocket ops waiting for the socket to open
    this._waiters = {};            // topic -> [{resolve, reject}] for subscribe() over SSE/poll
    this._closedByUser = true;

    var initial = o.topics || [];
    for (var t = 0; t < initial.length; t++) if (this._topics.indexOf(initial[t]) < 0) this._topics.push(initial[t]);
    if (o.autoConnect !== false) this.connect();
  }

  var proto = Switchboard.prototype;

  // ---- events --------------------------------------------------------------

  proto.on = function (name, handler) {
    (this._handlers[name] = this._handlers[name] || []).push(handler);
    if (this._sseListen) this._sseListen(name);  // an open EventSource learns the name
    return this;
  };

  proto.off = function (name, handler) {
    if (!handler) { delete this._handlers[name]; return this; }
    var list = this._handlers[name];
    if (list) {
      var i = list.indexOf(handler);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  };

  proto.once = function (name, handler) {
    var self = this;
    function wrapper() { self.off(name, wrapper); return handler.apply(this, arguments); }
    return this.on(name, wrapper);
  };

  proto._fire = function (name, a, b) {
    var list = this._handlers[name];
    if (!list) return;
    list = list.slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i](a, b); } catch (e) { this._report(e); }
    }
  };

  proto._report = function (e) {
    var c = root && root.console;
    if (c && c.error) c.error('switchboard handler failed', e);
  };

  proto._setState = function (state) {
    var transport = state === 'closed' ? null : this.transports[this._ti];
    if (state === this.state && transport === this.transport) return;
    this.state = state;
    this.transport = transport;
    this._fire('state', {state: state, transport: transport});
  };

  // ---- server frames -------------------------------------------------------

  /** Deliver one frame unless its id is at or before the topic's cursor. */
  proto._deliver = function (frame) {
    if (!frame || typeof frame !== 'object') return;
    var name = frame.event, topic = frame.topic;
    if (name === 'ack') return this._ack(frame);
    if (name === 'stream:reset') {
      var d = frame.data || {};
      return this._reset(d.topic || topic, d.cursor);
    }
    if (name === 'error' && !topic) {
      var e = frame.error || {};
      this._fire('error', makeError(e.code || 'server_error', e.message || 'server error', {frame: frame}));
      return;
    }
    if (name === 'pong') return;
    if (topic && frame.id != null) {
      var last = this.cursors[topic], order = last == null ? null : compareCursors(frame.id, last);
      if (order === 0 || order === -1) return;  // duplicate (another epoch is a new history)
      this.cursors[topic] = frame.id;
      if (this._topics.indexOf(topic) < 0 && this._autoTopics.indexOf(topic) < 0 && /^user:/.test(topic)) {
        this._autoTopics.push(topic);
      }
    }
    this._fire(name, frame.data, frame);
    this._fire('*', frame);
  };

  proto._reset = function (topic, cursor) {
    if (!topic) return;
    if (cursor != null) this.cursors[topic] = cursor;
    this._fire('reset', {topic: topic, cursor: cursor, transport: this.transport});
  };

  proto._ack = function (frame) {
    var p = this._pending[frame.ref];
    if (!p) return;
    delete this._pending[frame.ref];
    this._clearTimeout(p.timer);
    if (frame.ok) p.resolve(frame.data == null ? {} : frame.data);
    else {
      var e = frame.error || {};
      p.reject(makeError(e.code || 'failed', e.message || 'the server refused the operation', {ack: frame}));
    }
  };

  // ---- public API ----------------------------------------------------------

  proto.connect = function () {
    if (!this._closedByUser) return this;
    this._closedByUser = false;
    this._attempt = 0;
    this._open();
    return this;
  };

  proto.close = function () {
    this._closedByUser = true;
    this._teardown();
    this._clearTimers();
    this._failPending(makeError('closed', 'the client was closed'));
    this._setState('closed');
    return this;
  };

  proto.subscriptions = function () { return this._topics.slice(); };

  /** Subscribe; resolves with the ack data over WebSocket, or once the stream holding the topic opens. */
  proto.subscribe = function (topic) {
    var self = this;
    if (typeof topic !== 'string' || !topic) return Promise.reject(makeError('invalid_topic', 'topic must be a non-empty string'));
    if (this._topics.indexOf(topic) >= 0) return Promise.resolve({already: true, cursor: this.cursors[topic] || null});
    this._topics.push(topic);
    var auto = this._autoTopics.indexOf(topic);
    if (auto >= 0) this._autoTopics.splice(auto, 1);
    if (this._closedByUser) return Promise.resolve({queued: true});
    var promise = new Promise(function (resolve, reject) {
      (self._waiters[topic] = self._waiters[topic] || []).push({resolve: resolve, reject: reject});
    });
    if (this.transports[this._ti] === 'websocket') {
      // Not open yet: the subscriptions are sent (with since) as soon as it opens.
      if (this.state === 'open') this._wsResubscribe(topic);
    } else {
      this._restartStream();
    }
    return promise;
  };

  proto.unsubscribe = function (topic) {
    var i = this._topics.indexOf(topic);
    if (i < 0) return Promise.resolve({});
    this._topics.splice(i, 1);
    this._settleWaiters(topic, makeError('unsubscribed', 'unsubscribed from ' + topic));
    if (this._closedByUser) return Promise.resolve({});
    if (this.transports[this._ti] === 'websocket') {
      if (this.state !== 'open') return Promise.resolve({});
      return this._request({op: 'unsubscribe', topic: topic}, 10000).catch(function () { return {}; });
    }
    this._restartStream();
    return Promise.resolve({});
  };

  /** Run a command (message:send, user:typing, …) over the WebSocket; resolves with the ack data. */
  proto.emit = function (event, data, opts) {
    var timeout = opts && opts.timeout != null ? opts.timeout : 10000;
    if (this._closedByUser) return Promise.reject(makeError('closed', 'the client is closed'));
    if (this.transports[this._ti] !== 'websocket') {
      return Promise.reject(makeError('transport_unsupported',
        'emit needs the WebSocket transport; over ' + this.transports[this._ti] + ' use the HTTP API'));
    }
    return this._request({op: 'emit', event: event, data: data === undefined ? {} : data}, timeout);
  };

  /** A round trip over the WebSocket; resolves with the server's time. */
  proto.ping = function (opts) {
    if (this.transports[this._ti] !== 'websocket') return Promise.reject(makeError('transport_unsupported', 'ping needs the WebSocket transport'));
    return this._request({op: 'ping'}, opts && opts.timeout != null ? opts.timeout : 10000);
  };

  // ---- attachments (PROTOCOL.md section 4) -----------------------------------

  /** The token HTTP calls carry: the connection's, or a new one before the first connect. */
  proto._httpToken = function () {
    if (this._token) return Promise.resolve(this._token);
    var o = this.options;
    return Promise.resolve(o.getToken ? o.getToken() : o.token);
  };

  proto._http = function (method, path, body) {
    var self = this;
    if (!this._fetch) return Promise.reject(makeError('no_fetch', 'pass fetch in the options'));
    return this._httpToken().then(function (token) {
      return self._fetch(self.url + path, {method: method, body: body, headers: {Authorization: 'Bearer ' + token}});
    }).then(function (res) {
      if (res.ok) return res;
      return res.json().catch(function () { return null; }).then(function (b) {
        var e = (b && b.error) || {};
        throw makeError(e.code || 'http_' + res.status, e.message || 'HTTP ' + res.status, {status: res.status});
      });
    });
  };

  /** Upload a file (a File or Blob; `filename` for a Blob) to a conversation; resolves with
   *  the attachment, to send as {id} in a message's content.attachments. */
  proto.upload = function (conversationId, file, filename) {
    var FormData = this.options.FormData || root.FormData;
    if (!FormData) return Promise.reject(makeError('no_form_data', 'pass FormData in the options'));
    var form = new FormData();
    form.append('file', file, filename || file.name || 'file');
    return this._http('POST', '/api/v1/conversations/' + encodeURIComponent(conversationId) + '/attachments', form)
      .then(function (res) { return res.json(); });
  };

  /** An attachment's bytes as a Blob, fetched with the client's token: an <img> or a link
   *  cannot send one, so a page shows the Blob through URL.createObjectURL. */
  proto.fetchAttachment = function (attachment) {
    return this._http('GET', attachment.url).then(function (res) { return res.blob(); });
  };

  // ---- connection lifecycle -------------------------------------------------

  proto._clearTimers = function () {
    for (var k in this._timers) if (Object.prototype.hasOwnProperty.call(this._timers, k)) this._clearTimeout(this._timers[k]);
    this._timers = {};
  };

  proto._timer = function (name, ms, fn) {
    this._clearTimeout(this._timers[name]);
    var self = this;
    this._timers[name] = this._setTimeout(function () { delete self._timers[name]; fn(); }, ms);
  };

  proto._teardown = function () {
    this._gen++;
    var c = this._conn;
    this._conn = null;
    this._sseListen = null;
    this._clearTimeout(this._timers.stable);
    this._clearTimeout(this._timers.ping);
    this._clearTimeout(this._timers.pingWait);
    this._clearTimeout(this._timers.refresh);
    if (!c) return;
    try { c.close(); } catch (e) { /* already gone */ }
  };

  proto._open = function (freshToken) {
    var self = this, gen = ++this._gen;
    this._setState(this._wasOpen ? 'reconnecting' : 'connecting');
    var tok;
    try {
      tok = freshToken || (this.options.getToken ? this.options.getToken() : this.options.token);
    } catch (e) {
      tok = Promise.reject(e);
    }
    Promise.resolve(tok).then(function (token) {
      if (gen !== self._gen || self._closedByUser) return;
      self._token = token;
      var kind = self.transports[self._ti];
      if (kind === 'websocket') self._openWs(gen);
      else if (kind === 'sse') self._openSse(gen);
      else self._openPoll(gen);
    }, function (err) {
      if (gen !== self._gen) return;
      self._fire('error', makeError('token_failed', 'getToken failed: ' + (err && err.message), {cause: err}));
      self._failed(gen, false);
    });
  };

  /** The connection opened: reset the fallback counter, arm the stable timer. */
  proto._opened = function (gen) {
    if (gen !== this._gen) return;
    var self = this, kind = this.transports[this._ti];
    this._failures = 0;
    this._everOpened[kind] = true;
    this._wasOpen = true;
    this._timer('stable', this.stableAfter, function () { self._attempt = 0; });
    this._setState('open');
    this._scheduleRefresh(gen);
  };

  /** A connection lives no longer than its token: get the next one before `exp`. */
  proto._scheduleRefresh = function (gen) {
    var claims = tokenClaims(this._token);
    if (this.refreshLead === false || !this.options.getToken || !claims || typeof claims.exp !== 'number') return;
    var left = claims.exp * 1000 - this._now();
    var lead = Math.min(this.refreshLead, Math.max(1000, left / 10));
    var self = this;
    this._timer('refresh', Math.max(0, left - lead), function () { self._refreshToken(gen); });
  };

  proto._refreshToken = function (gen) {
    var self = this;
    Promise.resolve().then(function () { return self.options.getToken(); }).then(function (token) {
      if (gen !== self._gen || self._closedByUser || !token) return null;
      if (self.transports[self._ti] !== 'websocket') {
        // SSE and polling carry the token in their URL: reopen with the new one, resuming.
        self._teardown();
        self._open(token);
        return null;
      }
      return self._request({op: 'refresh', token: token}, 10000).then(function (data) {
        if (gen !== self._gen) return;
        self._token = token;
        self._fire('refresh', {transport: 'websocket', exp: data && data.exp});
        self._scheduleRefresh(gen);
      });
    }).catch(function (err) {
      // The server closes with 4001 at exp; the reconnect asks getToken again.
      if (gen === self._gen) self._fire('error', makeError('refresh_failed', 'token refresh failed: ' + (err && err.message), {cause: err}));
    });
  };

  /** The connection failed or was lost: maybe fall back, then reconnect after a backoff.
   *  `expired`: closed because its token ran out (4001), reconnected at once with a new one. */
  proto._failed = function (gen, opened, expired) {
    if (gen !== this._gen || this._closedByUser) return;
    this._teardown();
    this._failPending(makeError('disconnected', 'the connection was lost'), true);
    var kind = this.transports[this._ti];
    if (!opened) {
      this._failures++;
      if (!this._everOpened[kind] && this._failures >= this.fallbackAfter && this.transports.length > 1) {
        // This transport never worked here (a proxy, a firewall): try the next one at once.
        this._ti = (this._ti + 1) % this.transports.length;
        this._failures = 0;
        this._fire('fallback', {from: kind, to: this.transports[this._ti]});
        this._setState(this._wasOpen ? 'reconnecting' : 'connecting');
        this._open();
        return;
      }
    }
    var exp = Math.min(this.backoffMax, this.backoffBase * Math.pow(2, this._attempt));
    var delay = expired && this.options.getToken ? 0 : Math.floor(this._random() * exp);
    this._attempt = Math.min(this._attempt + 1, 30);
    this._setState(this._wasOpen ? 'reconnecting' : 'connecting');
    var self = this;
    this._fire('retry', {transport: this.transports[this._ti], delay: delay, attempt: this._attempt});
    this._timer('retry', delay, function () { if (!self._closedByUser) self._open(); });
  };

  proto._failPending = function (err, keepOutbox) {
    for (var ref in this._pending) {
      if (!Object.prototype.hasOwnProperty.call(this._pending, ref)) continue;
      var p = this._pending[ref];
      this._clearTimeout(p.timer);
      p.reject(err);
    }
    this._pending = {};
    if (!keepOutbox) {
      var queued = this._outbox;
      this._outbox = [];
      for (var i = 0; i < queued.length; i++) queued[i].reject(err);
    }
    if (!keepOutbox) {
      for (var t in this._waiters) if (Object.prototype.hasOwnProperty.call(this._waiters, t)) this._settleWaiters(t, err);
    }
  };

  proto._settleWaiters = function (topic, err, data) {
    var list = this._waiters[topic];
    delete this._waiters[topic];
    if (!list) return;
    for (var i = 0; i < list.length; i++) {
      if (err) list[i].reject(err);
      else list[i].resolve(data || {cursor: this.cursors[topic] || null});
    }
  };

  proto._dropTopic = function (topic, err) {
    var i = this._topics.indexOf(topic);
    if (i >= 0) this._topics.splice(i, 1);
    this._fire('error', makeError(err.code || 'subscribe_failed', 'subscribe ' + topic + ': ' + err.message, {topic: topic}));
  };

  proto._query = function (params) {
    var parts = [];
    for (var k in params) {
      if (Object.prototype.hasOwnProperty.call(params, k) && params[k] != null && params[k] !== '') {
        parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
      }
    }
    return parts.length ? '?' + parts.join('&') : '';
  };

  // ---- WebSocket -----------------------------------------------------------

  proto._openWs = function (gen) {
    var self = this, opened = false, ws;
    var url = this.url.replace(/^http/, 'ws') + this.paths.ws + this._query({token: this._token});
    try {
      ws = new this._WebSocket(url);
    } catch (e) {
      this._fire('error', makeError('connect_failed', 'WebSocket: ' + e.message));
      this._failed(gen, false);
      return;
    }
    this._conn = ws;
    ws.onopen = function () {
      if (gen !== self._gen) return;
      opened = true;
      self._opened(gen);
      self._resubscribeWs();
      var queued = self._outbox;
      self._outbox = [];
      for (var i = 0; i < queued.length; i++) self._sendOp(queued[i]);
      self._schedulePing(gen);
    };
    ws.onmessage = function (msg) {
      if (gen !== self._gen) return;
      var frame;
      try { frame = JSON.parse(msg.data); } catch (e) { return; }
      self._deliver(frame);
    };
    ws.onerror = function () { /* onclose follows */ };
    ws.onclose = function (ev) {
      if (gen !== self._gen) return;
      if (opened) self._fire('disconnect', {transport: 'websocket', code: ev && ev.code, reason: ev && ev.reason});
      self._failed(gen, opened, !!ev && ev.code === TOKEN_EXPIRED);
    };
  };

  proto._schedulePing = function (gen) {
    if (!this.pingInterval) return;
    var self = this;
    this._timer('ping', this.pingInterval, function () {
      if (gen !== self._gen) return;
      self._request({op: 'ping'}, self.pingTimeout).then(function () {
        self._schedulePing(gen);
      }, function (err) {
        if (gen === self._gen && err.code === 'timeout') self._failed(gen, true);  // half-open socket
      });
    });
  };

  proto._resubscribeWs = function () {
    var topics = this._topics.concat(this._autoTopics);
    for (var i = 0; i < topics.length; i++) this._wsResubscribe(topics[i]);
  };

  /** Subscribe with `since`; settle subscribe() promises; drop a topic the server refuses. */
  proto._wsResubscribe = function (topic) {
    var self = this;
    this._wsSubscribe(topic).then(function (data) {
      self._settleWaiters(topic, null, data);
    }, function (err) {
      if (err.code === 'closed' || err.code === 'disconnected' || err.code === 'timeout') {
        if (err.code === 'timeout' && self._conn) self._failed(self._gen, true);  // unresponsive
        return;  // retried after reconnecting
      }
      if (self._autoTopics.indexOf(topic) >= 0) return;
      self._settleWaiters(topic, err);
      self._dropTopic(topic, err);
    });
  };

  proto._wsSubscribe = function (topic) {
    var self = this, op = {op: 'subscribe', topic: topic};
    if (this.cursors[topic] != null) op.since = this.cursors[topic];
    return this._request(op, 15000).then(function (data) {
      data = data || {};
      if (data.recovered === false) self._reset(topic, data.cursor);
      else if (self.cursors[topic] == null && data.cursor != null) self.cursors[topic] = data.cursor;
      // recovered: the replay (ids after `since`) follows, so the cursor stays where it was.
      return data;
    });
  };

  proto._request = function (op, timeout) {
    var self = this;
    return new Promise(function (resolve, reject) {
      var ref = 'c' + (++self._ref);
      op.ref = ref;
      var entry = {op: op, ref: ref, resolve: resolve, reject: reject, timer: null};
      entry.timer = self._setTimeout(function () {
        delete self._pending[ref];
        var i = self._outbox.indexOf(entry);
        if (i >= 0) self._outbox.splice(i, 1);
        reject(makeError('timeout', op.op + ' got no answer in ' + timeout + ' ms'));
      }, timeout);
      var ws = self._conn;
      if (ws && self.state === 'open' && ws.readyState === 1) self._sendOp(entry);
      else self._outbox.push(entry);  // sent once the socket opens (or times out)
    });
  };

  proto._sendOp = function (entry) {
    var ws = this._conn;
    // A subscribe queued before the socket opened is already covered by the resubscription.
    this._pending[entry.ref] = entry;
    try {
      ws.send(JSON.stringify(entry.op));
    } catch (e) {
      delete this._pending[entry.ref];
      this._clearTimeout(entry.timer);
      entry.reject(makeError('disconnected', 'could not send: ' + e.message));
    }
  };

  // ---- SSE and long polling: a stream over the whole topic set ---------------

  proto._streamTopics = function () {
    var topics = this._topics.slice();
    if (this.autoUserTopic) {
      var sub = tokenSubject(this._token);
      var own = sub && /^[A-Za-z0-9_.:-]{1,64}$/.test(sub) ? 'user:' + sub : null;
      if (own && topics.indexOf(own) < 0) topics.push(own);
    }
    return topics.slice(0, 50);
  };

  proto._streamCursor = function (topics) {
    var map = {}, any = false;
    for (var i = 0; i < topics.length; i++) {
      if (this.cursors[topics[i]] != null && parseCursor(this.cursors[topics[i]])) {
        map[topics[i]] = this.cursors[topics[i]];
        any = true;
      }
    }
    return any ? encodeStreamCursor(map) : null;
  };

  /** The topic set of an SSE or poll stream changed: reopen it with the new set. */
  proto._restartStream = function () {
    if (this._closedByUser || this.transports[this._ti] === 'websocket') return;
    if (this.state === 'open') {
      this._teardown();
      this._open();
    }
    // otherwise the pending attempt (or the retry timer) picks up the new set
  };

  proto._streamOpened = function (gen, topics) {
    this._opened(gen);
    for (var i = 0; i < topics.length; i++) this._settleWaiters(topics[i], null);
  };

  proto._openSse = function (gen) {
    var self = this, topics = this._streamTopics(), opened = false, es;
    if (!topics.length) {  // nothing to follow yet: idle until subscribe()
      this._conn = {close: function () {}};
      this._opened(gen);
      return;
    }
    var last = this._streamCursor(topics);
    var url = this.url + this.paths.events + this._query({topics: topics.join(','), token: this._token, last_event_id: last});
    try {
      es = new this._EventSource(url);
    } catch (e) {
      this._fire('error', makeError('connect_failed', 'EventSource: ' + e.message));
      this._failed(gen, false);
      return;
    }
    this._conn = es;
    es.onopen = function () {
      if (gen !== self._gen) return;
      opened = true;
      self._streamOpened(gen, topics);
    };
    function onFrame(msg) {
      if (gen !== self._gen) return;
      var frame;
      try { frame = JSON.parse(msg.data); } catch (e) { return; }
      self._deliver(frame);
    }
    // Named events (`event:` lines) reach only listeners of that name, never onmessage,
    // and EventSource has no wildcard: listen to every name we know of (the protocol's,
    // options.eventNames, and each name given to on(), also later).
    es.onmessage = onFrame;
    var known = {};
    function listen(name) {
      if (known[name] || SSE_SKIP[name]) return;
      known[name] = true;
      es.addEventListener(name, onFrame);
    }
    var all = EVENT_NAMES.concat(this.options.eventNames || [], Object.keys(this._handlers));
    for (var i = 0; i < all.length; i++) listen(all[i]);
    this._sseListen = listen;
    es.onerror = function () {
      if (gen !== self._gen) return;
      // Reconnect by hand (with our backoff and our cursors) rather than the browser's way.
      if (opened) self._fire('disconnect', {transport: 'sse'});
      self._failed(gen, opened);
    };
  };

  proto._openPoll = function (gen) {
    var self = this, topics = this._streamTopics();
    if (!topics.length) {
      this._conn = {close: function () {}};
      this._opened(gen);
      return;
    }
    var aborter = null, opened = false, closed = false;
    this._conn = {close: function () { closed = true; if (aborter) try { aborter.abort(); } catch (e) { /* done */ } }};
    // The first call of each connection goes without a cursor: the server answers at once
    // (so we know it is up) with its current positions; where we already hold a cursor
    // ours wins, so the next call replays what we missed while away.
    var cursor = null;

    function merge(serverCursor) {
      var map = decodeStreamCursor(serverCursor) || {};
      for (var i = 0; i < topics.length; i++) {
        var t = topics[i];
        if (self.cursors[t] != null && parseCursor(self.cursors[t])) map[t] = self.cursors[t];
        else if (map[t] != null) self.cursors[t] = map[t];
      }
      return encodeStreamCursor(map);
    }

    function loop() {
      if (closed || gen !== self._gen) return;
      aborter = self._AbortController ? new self._AbortController() : null;
      var url = self.url + self.paths.poll + self._query({topics: topics.join(','), cursor: cursor, token: self._token});
      var timer = self._setTimeout(function () { if (aborter) aborter.abort(); }, cursor ? self.pollTimeout : 15000);
      var req = aborter ? {signal: aborter.signal, headers: {Accept: 'application/json'}} : {headers: {Accept: 'application/json'}};
      self._fetch(url, req).then(function (res) {
        return res.json().catch(function () { return null; }).then(function (body) {
          if (!res.ok) {
            var e = (body && body.error) || {};
            throw makeError(e.code || 'http_' + res.status, e.message || 'HTTP ' + res.status, {status: res.status});
          }
          return body;
        });
      }).then(function (body) {
        self._clearTimeout(timer);
        if (closed || gen !== self._gen) return;
        if (!body || typeof body.cursor !== 'string') throw makeError('bad_response', 'poll answered without a cursor');
        if (!opened) {
          opened = true;
          cursor = merge(body.cursor);
          self._streamOpened(gen, topics);
        } else {
          var events = body.events || [], reset = body.reset || [], now = decodeStreamCursor(body.cursor) || {};
          for (var r = 0; r < reset.length; r++) self._reset(reset[r], now[reset[r]]);
          for (var i = 0; i < events.length; i++) self._deliver(events[i]);
          cursor = body.cursor;
        }
        loop();
      }).catch(function (err) {
        self._clearTimeout(timer);
        if (closed || gen !== self._gen) return;
        if (err && err.status) self._fire('error', err);
        if (opened) self._fire('disconnect', {transport: 'poll', error: err});
        self._failed(gen, opened);
      });
    }
    loop();
  };

  Switchboard.compareCursors = compareCursors;
  Switchboard.encodeStreamCursor = encodeStreamCursor;
  Switchboard.decodeStreamCursor = decodeStreamCursor;
  Switchboard.TRANSPORTS = TRANSPORTS.slice();
  Switchboard.Switchboard = Switchboard;
  return Switchboard;
});
