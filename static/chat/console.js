/* The agent console: availability, the waiting queue and my conversations live, a thread
 * with typing, presence, read ticks, canned responses, notes, take, transfer and resolve,
 * and the customer beside it (profile, orders, holds), live too. Texts go in with
 * textContent only. */
(function () {
  'use strict';
  var agentId = document.body.getAttribute('data-agent');
  var session = null, client = null, selected = null, conversations = {}, threadSeen = {};
  var lastTyping = 0, typingTimer = null, refetchTimer = null, followed = {}, panelFor = null;
  var $ = function (id) { return document.getElementById(id); };
  var el = UI.el;
  localStorage.setItem('sb.agent', agentId);

  function api(method, path, body) {
    return UI.api(session.token, method, '/api/v1' + path, body).then(function (r) {
      if (r.status >= 400) throw new Error((r.body && r.body.error && r.body.error.message) || r.status);
      return r.body;
    });
  }

  function customerName(c) { return UI.nameOf(c.customer_id, c.customer && c.customer.name); }

  // ---- lists -----------------------------------------------------------------
  function convItem(c, mine) {
    var li = el('li', {'data-id': c.id, 'data-selected': String(selected === c.id), 'data-status': c.status});
    var who = el('span', {'class': 'who'}, customerName(c));
    if (c.customer && c.customer.is_vip) who.appendChild(el('span', {'class': 'vip'}, 'VIP'));
    var source = c.metadata && c.metadata.source;
    if (source === 'line' || source === 'facebook') {
      who.appendChild(el('span', {'class': 'source ' + source}, source === 'line' ? 'LINE' : 'Messenger'));
    }
    li.appendChild(who);
    var side = el('span', {'class': 'side'});
    side.appendChild(UI.time(c.last_message_at || c.created_at));
    if (mine) side.appendChild(el('span', {'class': 'unread', 'data-count': String(c.unread_count || 0)},
      String(c.unread_count || 0)));
    li.appendChild(side);
    var last = c.last_message;
    li.appendChild(el('span', {'class': 'preview'}, last ? (last.sender_type === 'agent' ? 'You: ' : '') + last.text
      : (c.tags && c.tags.length ? c.tags.join(', ') : 'No messages yet')));
    li.addEventListener('click', function () { select(c.id); });
    return li;
  }

  function refetch() {
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(load, 50);
  }

  function load() {
    return api('GET', '/conversations?limit=100').then(function (body) {
      var queue = $('queue'), mine = $('mine'), nq = 0, nm = 0;
      queue.textContent = '';
      mine.textContent = '';
      body.conversations.forEach(function (c) {
        conversations[c.id] = c;
        if (c.status === 'waiting') { queue.appendChild(convItem(c, false)); nq++; }
        else if (c.status === 'active' && c.agent_id === agentId) {
          mine.appendChild(convItem(c, true)); nm++;
          if (!followed[c.id]) follow(c.id);
        }
      });
      $('queue-count').textContent = String(nq);
      $('mine-count').textContent = String(nm);
      if (!nq) queue.appendChild(el('li', {'class': 'empty muted'}, 'Nobody is waiting.'));
      if (selected && conversations[selected]) controls(conversations[selected]);
    });
  }

  // A conversation newly mine: live events from now on, and a delivered receipt for
  // what the customer wrote before it reached this console.
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
      li.appendChild(el('span', {'class': 'text'}, (m.private ? 'Note: ' : '') + ((m.content && m.content.text) || '')));
      ((m.content && m.content.attachments) || []).forEach(function (a) {
        li.appendChild(UI.attachment(client, a, function () { $('thread').scrollTop = $('thread').scrollHeight; }));
      });
      if (m.sender_type !== 'system') {
        var meta = el('span', {'class': 'meta'});
        meta.appendChild(UI.time(m.created_at));
        if (mine && !m.private) meta.appendChild(el('span', {'class': 'tick'}));
        li.appendChild(meta);
      }
      threadSeen[m.id] = li;
      $('thread').appendChild(li);
      $('thread').scrollTop = $('thread').scrollHeight;
    }
    if (mine && !m.private) setStatus(li, m.status);
    var error = m.content && m.content.metadata && m.content.metadata.delivery_error;
    if (error) deliveryFailed(li, error);
  }

  /** An answer LINE or Messenger refused: shown on the message, with the platform's words. */
  function deliveryFailed(li, error) {
    if (li.getAttribute('data-delivery') === 'failed') return;
    li.setAttribute('data-delivery', 'failed');
    li.appendChild(el('span', {'class': 'delivery-error'}, 'Not delivered: ' + error));
  }

  /** What may be done with the open conversation, and a line saying why not. */
  function controls(c) {
    var mine = c.agent_id === agentId && c.status === 'active';
    ['reply-input', 'reply-send', 'attach', 'resolve', 'transfer'].forEach(function (id) { $(id).disabled = !mine; });
    $('take').hidden = c.status !== 'waiting';
    var status = $('conv-status');
    status.textContent = '';
    status.appendChild(UI.badge(c.status));
    var banner = $('banner'), text = '';
    if (c.status === 'waiting') {
      text = 'Waiting for an agent. Take it now, or set yourself Online and routing assigns it to whoever is free first.';
    } else if (c.status === 'resolved' || c.status === 'archived') {
      text = 'Resolved ' + UI.ago(c.resolved_at) + '. ' + (c.rating ? 'Rated ' + '★★★★★'.slice(0, c.rating.score) +
        '☆☆☆☆☆'.slice(c.rating.score) + (c.rating.comment ? ': “' + c.rating.comment + '”' : '')
        : 'The customer has not rated it yet.');
    } else if (c.agent_id !== agentId) {
      text = 'With ' + UI.nameOf(c.agent_id) + ': read only.';
    }
    banner.textContent = text;
    banner.hidden = !text;
    banner.dataset.kind = c.status;
    $('banner').dataset.rating = c.rating ? String(c.rating.score) : '';
  }

  function select(cid) {
    selected = cid;
    threadSeen = {};
    $('thread').textContent = '';
    var items = document.querySelectorAll('ul.convs li');
    for (var i = 0; i < items.length; i++) items[i].setAttribute('data-selected', String(items[i].getAttribute('data-id') === cid));
    var c = conversations[cid] || {};
    $('title').textContent = customerName(c);
    controls(c);
    api('GET', '/conversations/' + cid).then(function (full) {
      conversations[cid] = Object.assign(conversations[cid] || {}, full);
      setPresence(full.presence && full.presence.customer);
      controls(conversations[cid]);
      showCustomer(conversations[cid]);
    });
    var mine = c.agent_id === agentId && c.status === 'active';
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
    $('presence').textContent = online ? '● online' : '○ away';
  }

  // ---- the customer beside the chat ------------------------------------------------
  var countdowns = [];

  function showCustomer(c) {
    var cid = c.customer_id;
    panelFor = cid;
    api('GET', '/customers/' + encodeURIComponent(cid)).then(function (view) {
      if (panelFor !== cid) return;
      renderCustomer(c, view);
      view.orders.forEach(function (o) { client.subscribe('order:' + o.id).catch(function () {}); });
      view.reservations.forEach(function (r) { client.subscribe('product:' + r.product_id).catch(function () {}); });
    }, function (err) {
      var panel = $('customer-panel');
      panel.textContent = '';
      panel.appendChild(el('p', {'class': 'muted'}, 'No details: ' + err.message));
    });
  }

  function renderCustomer(c, view) {
    var p = view.customer, panel = $('customer-panel'), meta = c.metadata || {};
    panel.textContent = '';
    panel.dataset.loaded = 'true';
    panel.dataset.customer = p.id;
    var head = el('div', {'class': 'name'}, UI.nameOf(p.id, p.name));
    if (p.is_vip) head.appendChild(el('span', {'class': 'vip', 'id': 'cust-vip'}, 'VIP'));
    panel.appendChild(head);
    var dl = el('dl');
    function row(label, value, id) {
      if (value == null || value === '') return;
      dl.appendChild(el('dt', {}, label));
      dl.appendChild(el('dd', {id: id}, String(value)));
    }
    row('Language', p.language || meta.language, 'cust-language');
    row('Lifetime value', UI.money(p.lifetime_value), 'cust-ltv');
    row('E-mail', p.email);
    row('Came from', meta.source ? UI.word(meta.source) : null);
    row('On page', meta.initial_url ? meta.initial_url.replace(location.origin, '') : null, 'cust-page');
    panel.appendChild(dl);

    panel.appendChild(el('h3', {}, 'Orders'));
    var orders = el('ul', {id: 'cust-orders'});
    if (!view.orders.length) orders.appendChild(el('li', {'class': 'muted'}, 'No orders.'));
    view.orders.forEach(function (o) {
      var li = el('li', {'data-order': o.id});
      li.appendChild(el('a', {href: '/shop/orders/' + encodeURIComponent(o.id) + '?role=admin', target: '_blank'}, o.id));
      li.appendChild(UI.badge(o.status));
      if (o.carrier) li.appendChild(el('span', {'class': 'muted small'}, o.carrier + ' ' + (o.tracking_number || '')));
      orders.appendChild(li);
    });
    panel.appendChild(orders);

    panel.appendChild(el('h3', {}, 'Held for checkout'));
    var holds = el('ul', {id: 'cust-holds'});
    countdowns = [];
    if (!view.reservations.length) holds.appendChild(el('li', {'class': 'muted'}, 'Nothing held.'));
    view.reservations.forEach(function (r) {
      var li = el('li', {'data-reservation': r.id});
      li.appendChild(el('span', {}, r.quantity + ' × ' + (r.product_name || r.product_id)));
      var left = el('span', {'class': 'badge warn countdown'});
      li.appendChild(left);
      countdowns.push({node: left, until: Date.parse(r.expires_at)});
      holds.appendChild(li);
    });
    panel.appendChild(holds);
    tickCountdowns();
  }

  function tickCountdowns() {
    countdowns.forEach(function (c) {
      var s = Math.max(0, Math.round((c.until - Date.now()) / 1000));
      c.node.textContent = s ? Math.floor(s / 60) + ':' + ('0' + s % 60).slice(-2) + ' left' : 'expired';
    });
  }
  setInterval(tickCountdowns, 1000);

  function refreshCustomer() {
    if (selected && conversations[selected]) showCustomer(conversations[selected]);
  }

  // ---- actions ---------------------------------------------------------------------
  function send() {
    var text = $('reply-input').value.trim();
    if (!text || !selected || $('reply-send').disabled) return;
    $('reply-input').value = '';
    var priv = $('private').checked;
    api('POST', '/conversations/' + selected + '/messages', {
      client_id: 'a' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8),
      content: {text: text}, private: priv
    }).then(render, function (err) { $('typing').textContent = 'Not sent: ' + err.message; });
  }

  /** Photos and files to the open conversation, one message each (a note when "Private note" is on). */
  function sendFiles(files) {
    var cid = selected, priv = $('private').checked;
    if (!cid || $('reply-send').disabled || !files.length) return;
    files.reduce(function (done, file) {
      return done.then(function () { return client.upload(cid, file); }).then(function (a) {
        return api('POST', '/conversations/' + cid + '/messages', {
          client_id: 'a' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8), private: priv,
          message_type: /^image\//.test(a.content_type) ? 'image' : 'file', content: {attachments: [{id: a.id}]}});
      }).then(function (m) { if (selected === cid) render(m); });
    }, Promise.resolve()).catch(function (err) { $('typing').textContent = 'Not sent: ' + err.message; });
  }

  $('attach').addEventListener('click', function () { $('attach-file').click(); });
  $('attach-file').addEventListener('change', function () {
    var files = Array.prototype.slice.call($('attach-file').files || []);
    $('attach-file').value = '';
    sendFiles(files);
  });
  $('reply-input').addEventListener('paste', function (ev) {
    var files = Array.prototype.slice.call((ev.clipboardData && ev.clipboardData.files) || []);
    if (files.length) { ev.preventDefault(); sendFiles(files); }
  });
  $('thread').addEventListener('dragover', function (ev) { if (!$('reply-send').disabled) ev.preventDefault(); });
  $('thread').addEventListener('drop', function (ev) {
    ev.preventDefault();
    sendFiles(Array.prototype.slice.call((ev.dataTransfer && ev.dataTransfer.files) || []));
  });

  $('reply').addEventListener('submit', function (ev) { ev.preventDefault(); send(); });
  $('reply-input').addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); }
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
    $('reply-input').focus();
  });

  function changed(c) {
    conversations[c.id] = Object.assign(conversations[c.id] || {}, c);
    if (c.id === selected) controls(conversations[c.id]);
    refetch();
  }

  $('resolve').addEventListener('click', function () {
    api('POST', '/conversations/' + selected + '/resolve').then(changed, function (err) {
      $('typing').textContent = 'Not resolved: ' + err.message;
    });
  });

  $('take').addEventListener('click', function () {
    var cid = selected;
    api('POST', '/conversations/' + cid + '/take').then(function (c) {
      changed(c);
      follow(cid);
      select(cid);
    }, function (err) { $('typing').textContent = 'Not taken: ' + err.message; refetch(); });
  });

  $('transfer').addEventListener('click', function () {
    var to = $('transfer-to').value || null;
    api('POST', '/conversations/' + selected + '/transfer', {to_agent_id: to}).then(changed,
      function (err) { $('typing').textContent = 'Transfer refused: ' + err.message; });
  });

  var HELP = {online: 'Waiting conversations are assigned to you, up to your limit.',
              busy: 'You keep your conversations; no new ones are assigned.',
              offline: 'Nothing new comes to you; after a grace period your open chats go back to the queue.'};
  function showStatus(status) {
    $('status').value = status;
    $('status').setAttribute('data-current', status);
    $('status-help').textContent = HELP[status] || '';
  }

  $('status').addEventListener('change', function () {
    api('PUT', '/agents/me/status', {status: $('status').value}).then(function (a) {
      showStatus(a.status);
      refetch();
    });
  });

  // ---- live events -----------------------------------------------------------------------
  function listen() {
    client.on('state', function (s) { $('conn').setAttribute('data-state', s.state); $('conn').textContent = s.state === 'open' ? 'live' : s.state; });
    client.subscribe('agents');
    ['conversation:waiting', 'agent:assigned', 'agent:transfer'].forEach(function (n) { client.on(n, refetch); });
    client.on('conversation:resolved', function (c) { if (c && c.id) changed(c); else refetch(); });
    client.on('conversation:rated', function (d) {
      var cid = d.conversation_id || d.id;
      var c = conversations[cid];
      if (!c) return;
      c.rating = {score: d.score, comment: d.comment || null};
      if (cid === selected) controls(c);
    });
    client.on('message:receive', function (m) {
      var c = conversations[m.conversation_id];
      if (c) c.last_message = {text: (m.content && m.content.text) || '', sender_type: m.sender_type, created_at: m.created_at};
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
      var preview = document.querySelector('ul.convs li[data-id="' + m.conversation_id + '"] .preview');
      if (preview && m.sender_type !== 'system') preview.textContent = (m.sender_id === agentId ? 'You: ' : '') + ((m.content && m.content.text) || '');
    });
    client.on('message:note', function (m) { if (m.conversation_id === selected) render(m); });
    client.on('message:delivery_failed', function (d) {
      if (threadSeen[d.message_id]) deliveryFailed(threadSeen[d.message_id], d.error);
    });
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
      $('typing').textContent = (conversations[selected] ? customerName(conversations[selected]) : 'The customer') + ' is typing…';
      $('typing').setAttribute('data-visible', 'true');
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () {
        $('typing').textContent = '';
        $('typing').setAttribute('data-visible', 'false');
      }, 3000);
    });
    client.on('user:online', function (d) {
      var c = conversations[selected];
      if (c && d.user_id === c.customer_id) setPresence(true);
    });
    client.on('user:offline', function (d) {
      var c = conversations[selected];
      if (c && d.user_id === c.customer_id) setPresence(false);
    });
    // The customer panel follows their orders and the products they hold.
    client.on('order_status_update', function (d) {
      var li = document.querySelector('#cust-orders li[data-order="' + d.order_id + '"] .badge');
      if (!li) return;
      var fresh = UI.badge(d.current_status);
      li.replaceWith(fresh);
    });
    client.on('inventory_update', refreshCustomer);
  }

  var name = ($('me') && $('me').textContent) || agentId;
  UI.start('agent', {sub: agentId, name: name}, [],
           {eventNames: ['conversation:waiting', 'conversation:resolved', 'message:note', 'conversation:rated',
                         'message:delivery_failed']})
    .then(function (s) {
      session = s;
      client = s.client;
      window.consoleClient = client;
      listen();
      return api('GET', '/agents');
    })
    .then(function (body) {
      body.agents.forEach(function (a) {
        if (a.id === agentId) showStatus(a.status);
        else $('transfer-to').appendChild(el('option', {value: a.id}, 'To ' + (a.name || a.id) + ' (' + UI.word(a.status).toLowerCase() + ')'));
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
