/* The demo page: a dev token, the Switchboard client, live events as text.
 *
 * Query parameters: ?transport=sse (or a comma list: websocket,sse,poll),
 * ?sub=&role= (identity), ?topics=a,b (subscribed at once), ?ws_path=/x (a
 * WebSocket path that does not exist: shows the fallback to SSE).
 */
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var $ = function (id) { return document.getElementById(id); };
  var client = null;
  var token = null;
  var topics = [];  // what the page wants, kept across logins

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;  // always text, never HTML
    return node;
  }

  function show(name, topic, id, body) {
    var li = el('li', {'data-topic': topic || '', 'data-id': id || '', 'data-event': name});
    li.appendChild(el('span', {class: 'meta'}, (topic || '') + (id ? ' #' + id : '')));
    li.appendChild(el('span', {class: 'name'}, name));
    li.appendChild(el('span', {class: 'data'}, body));
    $('events').appendChild(li);
  }

  function text(data) {
    return typeof data === 'string' ? data : JSON.stringify(data);
  }

  function count(name) {
    var node = $('state');
    node.dataset[name] = String(Number(node.dataset[name] || 0) + 1);
  }

  function setState(s) {
    var node = $('state');
    node.dataset.state = s.state;
    node.dataset.transport = s.transport || '';
    node.textContent = s.state + (s.transport ? ' · ' + s.transport : '');
  }

  // ?token_ttl=<seconds> asks for short-lived tokens, to watch refreshes happen.
  var tokenTtl = Number(params.get('token_ttl')) || 3600;

  function tokenExpiresSoon(tok) {
    try {
      var claims = JSON.parse(atob(tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      return claims.exp * 1000 - Date.now() < Math.min(60000, tokenTtl * 500);
    } catch (e) {
      return true;
    }
  }

  function fetchToken(sub, role) {
    return fetch('/api/v1/dev/token', {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({sub: sub, role: role, name: sub, ttl: tokenTtl})
    }).then(function (res) {
      return res.json().then(function (body) {
        if (!res.ok) throw new Error((body.error && body.error.message) || 'HTTP ' + res.status);
        return body.token;
      });
    });
  }

  function renderTopic(topic, status) {
    var list = $('subscriptions');
    var li = list.querySelector('li[data-topic="' + CSS.escape(topic) + '"]');
    if (!li) {
      li = el('li', {'data-topic': topic});
      li.appendChild(el('span', null, topic));
      var x = el('button', {type: 'button', title: 'unsubscribe'}, '×');
      x.addEventListener('click', function () { unsubscribe(topic); });
      li.appendChild(x);
      list.appendChild(li);
    }
    li.dataset.status = status;
  }

  function subscribe(topic) {
    if (topics.indexOf(topic) < 0) topics.push(topic);
    renderTopic(topic, 'pending');
    if (!client) return;
    client.subscribe(topic).then(function () {
      renderTopic(topic, 'subscribed');
    }, function (err) {
      if (err.code === 'unsubscribed' || err.code === 'closed') return;
      show('error', topic, '', 'subscribe failed: ' + err.message);
      unsubscribe(topic);
    });
  }

  function unsubscribe(topic) {
    topics = topics.filter(function (t) { return t !== topic; });
    var li = $('subscriptions').querySelector('li[data-topic="' + CSS.escape(topic) + '"]');
    if (li) li.remove();
    if (client) client.unsubscribe(topic);
  }

  function connect(sub, role) {
    $('login-result').textContent = 'getting a token…';
    return fetchToken(sub, role).then(function (tok) {
      token = tok;
      $('login-result').textContent = 'signed in as ' + sub + ' (' + role + ')';
      if (client) client.close();
      var options = {
        url: location.origin,
        getToken: function () {
          return tokenExpiresSoon(token) ? fetchToken(sub, role).then(function (t) { return (token = t); }) : token;
        }
      };
      if (params.get('transport')) options.transports = params.get('transport').split(',');
      if (params.get('ws_path')) options.paths = {ws: params.get('ws_path')};
      if (params.get('refresh') === 'off') options.refreshLead = false;
      client = new Switchboard(options);
      client.named = {};
      window.switchboardClient = client;  // for the console (and the browser tests)
      client.on('state', setState);
      client.on('refresh', function () { count('refreshes'); });
      client.on('state', function (st) { if (st.state === 'open') count('opens'); });
      client.on('disconnect', function (d) { $('state').dataset.lastClose = String(d.code || ''); });
      client.on('*', function (frame) { show(frame.event, frame.topic, frame.id, text(frame.data)); });
      client.on('reset', function (r) { show('reset', r.topic, '', 'history lost: refetch; live from ' + r.cursor); });
      client.on('error', function (err) { show('error', err.topic || '', '', err.message); });
      setState({state: client.state, transport: client.transport});
      topics.slice().forEach(subscribe);
    }, function (err) {
      $('login-result').textContent = 'token failed: ' + err.message;
    });
  }

  $('login').addEventListener('submit', function (ev) {
    ev.preventDefault();
    connect($('sub').value, $('role').value);
  });

  $('subscribe').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var topic = $('topic').value.trim();
    if (topic) subscribe(topic);
    $('topic').value = '';
    if (!$('pub-topic').value) $('pub-topic').value = topic;
  });

  $('publish').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var data;
    try {
      data = JSON.parse($('pub-data').value || 'null');
    } catch (e) {
      $('pub-result').textContent = 'data is not JSON: ' + e.message;
      return;
    }
    var name = $('pub-event').value.trim();
    if (client && !client.named[name]) {  // over SSE, named events reach only their listeners
      client.named[name] = true;
      client.on(name, function () {});
    }
    fetch('/api/v1/broadcast', {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
      body: JSON.stringify({topic: $('pub-topic').value.trim(), event: name, data: data})
    }).then(function (res) {
      return res.json().then(function (body) {
        $('pub-result').textContent = res.ok ? 'published #' + body.id
          : 'refused: ' + ((body.error && body.error.message) || res.status);
      });
    }, function (err) {
      $('pub-result').textContent = 'failed: ' + err.message;
    });
  });

  if (params.get('sub')) $('sub').value = params.get('sub');
  if (params.get('role')) $('role').value = params.get('role');
  (params.get('topics') || '').split(',').filter(Boolean).forEach(function (t) {
    if (topics.indexOf(t) < 0) topics.push(t);
    renderTopic(t, 'pending');
  });
  connect($('sub').value, $('role').value);
})();
