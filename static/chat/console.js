/* The agent console: status, the waiting queue live, my conversations with unread
 * counts, a thread with typing, presence, read ticks, canned responses, private
 * notes, transfer and resolve. Texts go in with textContent only. */
(function () {
  'use strict';
  var agentId = document.body.getAttribute('data-agent');
  var token = null, client = null, selected = null, conversations = {}, threadSeen = {};
  var lastTyping = 0, typingTimer = null, refetchTimer = null;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  function api(method, path, body) {
    return fetch('/api/v1' + path, {
      method: method,
      headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      if (res.status === 204) return null;
      return res.json().then(function (data) {
        if (!res.ok) throw new Error((data.error && data.error.message) || res.status);
        return data;
      });
    });
  }

  // ---- lists -----------------------------------------------------------------
  function convItem(c, mine) {
    var li = el('li', {'data-id': c.id, 'data-selected': String(selected === c.id)});
    li.appendChild(el('span', {'class': 'who'}, c.customer_id + (c.tags && c.tags.length ? ' · ' + c.tags.join(',') : '')));
    if (mine) li.appendChild(el('span', {'class': 'unread', 'data-count': String(c.unread_count || 0)},
      String(c.unread_count || 0)));
    li.addEventListener('click', function () { select(c.id); });
    return li;
  }

  function refetch() {
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(load, 50);
  }

  function load() {
    return api('GET', '/conversations?limit=100').then(function (body) {
      var queue = $('queue'), mine = $('mine');
      queue.textContent = '';
      mine.textContent = '';
      body.conversations.forEach(function (c) {
        conversations[c.id] = c;
        if (c.status === 'waiting') queue.appendChild(convItem(c, false));
        else if (c.status === 'active' && c.agent_id === agentId) {
          mine.appendChild(convItem(c, true));
          if (!followed[c.id]) follow(c.id);
        }
      });
    });
  }

  // A conversation newly mine: live events from now on, and a delivered receipt for
  // what the customer wrote before it reached this console.
  var followed = {};
  function follow(cid) {
    followed[cid] = true;
    client.subscribe('conversation:' + cid);
    api('GET', '/conversations/' + cid + '/messages?limit=50').then(function (body) {
      body.messages.forEach(function (m) {
        if (m.sender_id !== agentId && m.sender_type !== 'system' && m.status === 'sent') {
          api('POST', '/conversations/' + cid + '/delivered', {message_id: m.id}).catch(function () {});
        }
      });
    });
  }

  function bumpUnread(cid, delta) {
    var badge = document.querySelector('#mine li[data-id="' + cid + '"] .unread');
    if (!badge) return;
    var n = delta === null ? 0 : Math.max(0, parseInt(badge.getAttribute('data-count'), 10) + delta);
    badge.setAttribute('data-count', String(n));
    badge.textContent = String(n);
  }

  // ---- the thread ------------------------------------------------------------------
  var TICKS = {sent: '✓', delivered: '✓✓', read: '✓✓ read'};

  function setStatus(li, status) {
    var order = {sent: 0, delivered: 1, read: 2};
    if (order[status] < (order[li.getAttribute('data-status')] || 0)) return;
    li.setAttribute('data-status', status);
    var tick = li.querySelector('.tick');
    if (tick) tick.textContent = TICKS[status] || '';
  }

  function render(m) {
    var li = threadSeen[m.id];
    var mine = m.sender_id === agentId;
    if (!li) {
      li = el('li', {'data-id': m.id, 'data-sender': m.sender_type, 'data-mine': String(mine),
                     'data-private': String(!!m.private)});
      li.appendChild(el('span', {'class': 'text'}, (m.private ? '[note] ' : '') + ((m.content && m.content.text) || '')));
      if (mine && !m.private) li.appendChild(el('span', {'class': 'tick'}));
      threadSeen[m.id] = li;
      $('thread').appendChild(li);
      $('thread').scrollTop = $('thread').scrollHeight;
    }
    if (mine && !m.private) setStatus(li, m.status);
  }

  function select(cid) {
    selected = cid;
    threadSeen = {};
    $('thread').textContent = '';
    var items = document.querySelectorAll('ul.convs li');
    for (var i = 0; i < items.length; i++) items[i].setAttribute('data-selected', String(items[i].getAttribute('data-id') === cid));
    var c = conversations[cid] || {};
    var mine = c.agent_id === agentId && c.status === 'active';
    ['reply-input', 'reply-send', 'resolve', 'transfer'].forEach(function (id) { $(id).disabled = !mine; });
    $('title').textContent = 'Conversation with ' + (c.customer_id || cid);
    api('GET', '/conversations/' + cid).then(function (full) {
      setPresence(full.presence && full.presence.customer);
    });
    return api('GET', '/conversations/' + cid + '/messages?limit=200').then(function (body) {
      body.messages.forEach(render);
      if (mine) markRead();
    });
  }

  function markRead() {
    var items = $('thread').querySelectorAll('li[data-mine=false]:not([data-sender=system])');
    if (!selected || !items.length) return;
    api('POST', '/conversations/' + selected + '/read',
      {message_id: items[items.length - 1].getAttribute('data-id')}).catch(function () {});
    bumpUnread(selected, null);
  }

  function setPresence(online) {
    $('presence').setAttribute('data-online', String(!!online));
    $('presence').textContent = online ? '● customer online' : '○ customer offline';
  }

  // ---- actions ---------------------------------------------------------------------
  $('reply').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = $('reply-input').value.trim();
    if (!text || !selected) return;
    $('reply-input').value = '';
    var priv = $('private').checked;
    api('POST', '/conversations/' + selected + '/messages', {
      client_id: 'a' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8),
      content: {text: text}, private: priv
    }).then(render, function (err) { $('typing').textContent = 'Not sent: ' + err.message; });
  });

  $('reply-input').addEventListener('input', function () {
    // A private note is never seen by the customer, not even as "typing".
    if (!selected || $('private').checked || Date.now() - lastTyping < 1500) return;
    lastTyping = Date.now();
    api('POST', '/conversations/' + selected + '/typing').catch(function () {});
  });

  $('canned').addEventListener('change', function () {
    if ($('canned').value) $('reply-input').value = $('canned').value;
    $('canned').value = '';
  });

  $('resolve').addEventListener('click', function () {
    api('POST', '/conversations/' + selected + '/resolve').then(function () {
      $('resolve').disabled = true;
      refetch();
    });
  });

  $('transfer').addEventListener('click', function () {
    var to = $('transfer-to').value || null;
    api('POST', '/conversations/' + selected + '/transfer', {to_agent_id: to}).then(refetch,
      function (err) { $('typing').textContent = 'Transfer refused: ' + err.message; });
  });

  $('status').addEventListener('change', function () {
    api('PUT', '/agents/me/status', {status: $('status').value}).then(function (a) {
      $('status').setAttribute('data-current', a.status);
      refetch();
    });
  });

  // ---- live events -----------------------------------------------------------------------
  function connect() {
    client = new Switchboard({url: location.origin, token: token,
      eventNames: ['conversation:waiting', 'conversation:resolved', 'message:note', 'conversation:rated']});
    window.consoleClient = client;
    client.on('state', function (s) { $('conn').setAttribute('data-state', s.state); $('conn').textContent = s.state; });
    client.subscribe('agents');
    ['conversation:waiting', 'agent:assigned', 'agent:transfer', 'conversation:resolved'].forEach(function (n) {
      client.on(n, refetch);
    });
    client.on('message:receive', function (m) {
      if (m.conversation_id === selected) {
        render(m);
        if (m.sender_id !== agentId && m.sender_type !== 'system') {
          api('POST', '/conversations/' + selected + '/delivered', {message_id: m.id})
            .catch(function () {}).then(markRead);
        }
      } else if (m.sender_id !== agentId && m.sender_type !== 'system') {
        api('POST', '/conversations/' + m.conversation_id + '/delivered', {message_id: m.id}).catch(function () {});
        bumpUnread(m.conversation_id, 1);
      }
    });
    client.on('message:note', function (m) { if (m.conversation_id === selected) render(m); });
    client.on('message:delivered', function (d) {
      if (d.user_id !== agentId && threadSeen[d.message_id]) setStatus(threadSeen[d.message_id], 'delivered');
    });
    client.on('message:read', function (d) {
      if (d.user_id === agentId || d.conversation_id !== selected) return;
      var items = $('thread').querySelectorAll('li[data-mine=true][data-private=false]');
      for (var i = 0; i < items.length; i++) {
        setStatus(items[i], 'read');
        if (items[i].getAttribute('data-id') === d.message_id) break;
      }
    });
    client.on('user:typing', function (d) {
      if (d.user_id === agentId || d.conversation_id !== selected) return;
      $('typing').textContent = 'Customer is typing…';
      $('typing').setAttribute('data-visible', 'true');
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () {
        $('typing').textContent = '';
        $('typing').setAttribute('data-visible', 'false');
      }, 3000);
    });
    client.on('user:online', function (d, f) {
      var c = conversations[selected];
      if (c && d.user_id === c.customer_id) setPresence(true);
    });
    client.on('user:offline', function (d) {
      var c = conversations[selected];
      if (c && d.user_id === c.customer_id) setPresence(false);
    });
  }

  fetch('/api/v1/dev/token', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({sub: agentId, role: 'agent', name: agentId})})
    .then(function (r) { return r.json(); })
    .then(function (b) {
      token = b.token;
      connect();
      return api('GET', '/agents');
    })
    .then(function (body) {
      body.agents.forEach(function (a) {
        if (a.id === agentId) { $('status').value = a.status; $('status').setAttribute('data-current', a.status); }
        else $('transfer-to').appendChild(el('option', {value: a.id}, a.name || a.id));
      });
      return api('GET', '/canned-responses');
    })
    .then(function (body) {
      body.canned_responses.forEach(function (c) {
        $('canned').appendChild(el('option', {value: c.text}, '/' + c.shortcut));
      });
      document.body.setAttribute('data-ready', 'true');
      return load();
    });
})();
