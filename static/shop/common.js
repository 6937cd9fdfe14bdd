/* Shared by the shop pages: a dev token for ?sub=&role=, the Switchboard client, JSON calls.
 * Everything shown is set with textContent, never as HTML. */
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  function token(sub, role) {
    return fetch('/api/v1/dev/token', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({sub: sub, role: role, name: sub})
    }).then(function (res) { return res.json(); }).then(function (b) { return b.token; });
  }

  function api(tok, method, path, body, headers) {
    var h = {'Authorization': 'Bearer ' + tok};
    if (body !== undefined) h['Content-Type'] = 'application/json';
    for (var k in headers || {}) h[k] = headers[k];
    return fetch(path, {method: method, headers: h, body: body === undefined ? undefined : JSON.stringify(body)})
      .then(function (res) {
        return res.json().then(function (b) { return {status: res.status, body: b}; });
      });
  }

  /** Sign in as ?sub= (default `fallbackSub`) with `role`, connect, subscribe `topics`. */
  function start(role, fallbackSub, topics) {
    var sub = params.get('sub') || fallbackSub;
    return token(sub, role).then(function (tok) {
      var client = new Switchboard({url: location.origin, token: tok});
      window.switchboardClient = client;
      client.on('state', function (s) {
        var node = document.getElementById('state');
        node.dataset.state = s.state;
        node.textContent = s.state + (s.transport ? ' · ' + s.transport : '');
      });
      var ready = Promise.all(topics.map(function (t) { return client.subscribe(t); }));
      ready.then(function () { document.body.dataset.live = 'yes'; });
      return {client: client, token: tok, sub: sub, ready: ready};
    });
  }

  window.Shop = {params: params, el: el, api: api, start: start};
})();
