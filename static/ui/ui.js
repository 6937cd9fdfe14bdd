/* What every page shares: signing in (development tokens), JSON calls, the live client,
 * and the words people read instead of ids and timestamps. Texts are set with textContent,
 * never parsed as HTML. */
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  /** A development token for `sub` (the demo's sign-in; production pages get theirs from the shop). */
  function token(sub, role, name) {
    return fetch('/api/v1/dev/token', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({sub: sub, role: role, name: name || sub})
    }).then(function (res) {
      if (!res.ok) throw new Error('sign-in is only for development (no /api/v1/dev/token here)');
      return res.json();
    }).then(function (b) { return b.token; });
  }

  function api(tok, method, path, body, headers) {
    var h = {'Authorization': 'Bearer ' + tok};
    if (body !== undefined) h['Content-Type'] = 'application/json';
    for (var k in headers || {}) h[k] = headers[k];
    return fetch(path, {method: method, headers: h, body: body === undefined ? undefined : JSON.stringify(body)})
      .then(function (res) {
        if (res.status === 204) return {status: 204, body: null};
        return res.json().then(function (b) { return {status: res.status, body: b}; });
      });
  }

  // The demo's people: who a page signs in as unless ?sub= says otherwise.
  var SHOPPER = {sub: 'demo-customer', name: 'Ada Lovelace'};

  /** The shopper this browser is: ?sub= once, then remembered for every page. */
  function shopper() {
    var sub = params.get('sub');
    if (sub) localStorage.setItem('sb.shopper', JSON.stringify({sub: sub, name: params.get('name') || null}));
    try { return JSON.parse(localStorage.getItem('sb.shopper')) || SHOPPER; } catch (e) { return SHOPPER; }
  }

  /** Sign in as `who` {sub, name} with `role`, connect, subscribe `topics`. The session's
   *  token is renewed before it expires, for the connection and for `api` calls alike. */
  function start(role, who, topics, options) {
    var session = {sub: who.sub, name: who.name, role: role};
    function renew() { return token(who.sub, role, who.name).then(function (t) { return (session.token = t); }); }
    return renew().then(function (tok) {
      var opts = {url: location.origin, token: tok, getToken: renew};
      for (var k in options || {}) opts[k] = options[k];
      var client = new Switchboard(opts);
      window.switchboardClient = client;
      client.on('state', function (s) {
        var node = document.getElementById('state');
        if (!node) return;
        node.dataset.state = s.state;
        node.textContent = s.state === 'open' ? 'live' : s.state;
        node.title = s.transport ? 'connected over ' + s.transport : '';
      });
      session.client = client;
      session.ready = Promise.all(topics.map(function (t) { return client.subscribe(t); }));
      session.ready.then(function () { document.body.dataset.live = 'yes'; });
      return session;
    });
  }

  // ---- words instead of ids and timestamps ------------------------------------------
  var WORDS = {in_transit: 'In transit', out_for_delivery: 'Out for delivery', waiting: 'Waiting',
               active: 'Active', resolved: 'Resolved', archived: 'Archived', online: 'Online',
               offline: 'Offline', busy: 'Busy', away: 'Away', pending: 'Pending', confirmed: 'Confirmed',
               processing: 'Processing', shipped: 'Shipped', delivered: 'Delivered', cancelled: 'Cancelled',
               held: 'Held', committed: 'Bought', released: 'Released', expired: 'Expired',
               sale: 'Sale', restock: 'Restock', adjustment: 'Adjustment', low_stock: 'Low stock',
               out_of_stock: 'Out of stock', back_in_stock: 'Back in stock', return: 'Return'};
  var TONE = {delivered: 'ok', active: 'ok', online: 'ok', confirmed: 'brand', committed: 'ok', restock: 'ok',
              back_in_stock: 'ok', waiting: 'warn', pending: 'warn', processing: 'warn', busy: 'warn', held: 'warn',
              low_stock: 'warn', shipped: 'info', in_transit: 'info', out_for_delivery: 'info',
              cancelled: 'bad', out_of_stock: 'bad', expired: 'bad', failed: 'bad'};

  function word(status) {
    if (status == null) return '';
    return WORDS[status] || String(status).replace(/_/g, ' ').replace(/^./, function (c) { return c.toUpperCase(); });
  }

  function badge(status, attrs) {
    var node = el('span', attrs || {}, word(status));
    node.className = 'badge ' + (TONE[status] || '');
    node.dataset.status = status || '';
    return node;
  }

  /** A person's name: the one they gave, else something better than the raw id. */
  function nameOf(id, name) {
    if (name && name !== id) return name;
    if (!id) return 'Someone';
    var m = /^guest-(\w+)$/.exec(id);
    if (m) return 'Guest ' + m[1].slice(-4).toUpperCase();
    if (/^line:/.test(id)) return 'LINE user ' + id.slice(-4);
    if (/^fb:/.test(id)) return 'Messenger user ' + id.slice(-4);
    return id.replace(/^(demo|agent|cust)-/, '').replace(/[-_]+/g, ' ')
      .replace(/\b\w/g, function (c) { return c.toUpperCase(); });
  }

  function ago(iso) {
    if (!iso) return '';
    var then = Date.parse(iso), s = Math.round((Date.now() - then) / 1000);
    if (isNaN(then)) return '';
    if (s < 45) return 'just now';
    if (s < 90) return '1 min ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    if (s < 172800) return 'yesterday';
    return new Date(then).toLocaleDateString(undefined, {day: 'numeric', month: 'short'});
  }

  /** A <time> that keeps saying how long ago it was. */
  function time(iso) {
    var node = el('time', {datetime: iso || '', title: iso ? new Date(iso).toLocaleString() : ''}, ago(iso));
    node.dataset.relative = '1';
    return node;
  }

  setInterval(function () {
    var nodes = document.querySelectorAll('time[data-relative]');
    for (var i = 0; i < nodes.length; i++) nodes[i].textContent = ago(nodes[i].getAttribute('datetime'));
  }, 20000);

  function money(value, currency) {
    var n = Number(value || 0);
    try { return n.toLocaleString(undefined, {style: 'currency', currency: currency || 'USD'}); }
    catch (e) { return n.toFixed(2); }
  }

  /** A message's attachment: an image in place (opened full size on click), any other file as
   *  a link that saves it. The bytes come through `client` with its token. */
  function attachment(client, a, onShown) {
    var box = el('span', {'class': 'attachment', 'data-attachment': a.id});
    var image = /^image\//.test(a.content_type);
    var node = image ? el('img', {alt: a.filename, title: a.filename}) :
      el('a', {href: '#', download: a.filename}, '📄 ' + a.filename + ' · ' + size(a.size));
    box.appendChild(node);
    client.fetchAttachment(a).then(function (blob) {
      var url = URL.createObjectURL(blob);
      if (!image) { node.href = url; return; }
      node.addEventListener('load', function () { if (onShown) onShown(); });
      node.addEventListener('click', function () { window.open(url, '_blank', 'noopener'); });
      node.src = url;
    }, function (err) { box.appendChild(el('span', {'class': 'muted'}, ' (not available: ' + err.message + ')')); });
    return box;
  }

  function size(bytes) {
    return bytes < 1024 ? bytes + ' B' : bytes < 1048576 ? Math.round(bytes / 1024) + ' KB' :
      (bytes / 1048576).toFixed(1) + ' MB';
  }

  window.UI = {params: params, el: el, api: api, token: token, start: start, shopper: shopper,
               word: word, badge: badge, nameOf: nameOf, ago: ago, time: time, money: money,
               attachment: attachment};
})();
