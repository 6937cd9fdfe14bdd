/*!
 * Switchboard customer chat widget. Embed on any shop page with one tag:
 *
 *   <script src="https://switchboard.example/static/chat/widget.js" data-token="<customer JWT>" async></script>
 *
 * Options (data-*): token (the customer's JWT from the shop's backend),
 * dev-user and dev-name (development only: get a token for this customer instead),
 * title, language. Every text is put in the page with textContent: nothing a
 * message contains is ever parsed as HTML.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script) return;
  var origin = new URL(script.src, location.href).origin;
  var cfg = script.dataset;
  var token = cfg.token || null, me = null, client = null, conv = null, open = false;
  var seen = {}, lastTyping = 0, typingTimer = null;
  var EVENTS = ['conversation:resolved', 'conversation:rated', 'message:note', 'conversation:waiting'];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  function api(method, path, body) {
    return fetch(origin + '/api/v1' + path, {
      method: method,
      headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      return res.json().then(function (data) {
        if (!res.ok) throw new Error((data.error && data.error.message) || res.status);
        return data;
      });
    });
  }

  function subOf(tok) {
    try { return JSON.parse(atob(tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub; }
    catch (e) { return null; }
  }

  function getToken() {
    if (token) return Promise.resolve(token);
    var sub = cfg.devUser || localStorage.getItem('sbw-dev-user') ||
      ('guest-' + Math.random().toString(36).slice(2, 10));
    localStorage.setItem('sbw-dev-user', sub);
    return fetch(origin + '/api/v1/dev/token', {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({sub: sub, role: 'customer', name: cfg.devName || sub})
    }).then(function (r) { return r.json(); }).then(function (b) { return (token = b.token); });
  }

  // ---- the DOM ----------------------------------------------------------------
  var root = el('div', {id: 'sb-widget', 'data-open': 'false'});
  var style = el('style', {}, [
    '#sb-widget{position:fixed;right:16px;bottom:16px;font:14px/1.4 system-ui,sans-serif;z-index:2147483000}',
    '#sbw-toggle{background:#2a5db0;color:#fff;border:0;border-radius:20px;padding:10px 16px;cursor:pointer}',
    '#sbw-panel{display:none;width:320px;height:420px;background:#fff;border:1px solid #ccd;border-radius:10px;',
    'box-shadow:0 4px 20px rgba(0,0,0,.15);flex-direction:column;overflow:hidden;margin-bottom:8px}',
    '#sb-widget[data-open=true] #sbw-panel{display:flex}',
    '#sbw-head{background:#2a5db0;color:#fff;padding:8px 12px;display:flex;justify-content:space-between}',
    '#sbw-messages{list-style:none;margin:0;padding:8px;flex:1;overflow-y:auto}',
    '#sbw-messages li{margin:4px 0;padding:6px 9px;border-radius:8px;max-width:80%;word-wrap:break-word;white-space:pre-wrap}',
    '#sbw-messages li[data-mine=true]{background:#dbe7fb;margin-left:auto}',
    '#sbw-messages li[data-mine=false]{background:#f1f1f1}',
    '#sbw-messages li[data-sender=system]{background:none;color:#888;font-size:12px;text-align:center;max-width:100%}',
    '.sbw-tick{font-size:11px;color:#999;margin-left:6px}',
    'li[data-status=read] .sbw-tick{color:#2a5db0}',
    '#sbw-typing{font-size:12px;color:#888;padding:0 10px;height:16px}',
    '#sbw-form{display:flex;border-top:1px solid #eee}#sbw-input{flex:1;border:0;padding:10px}',
    '#sbw-rating{display:none;padding:8px;border-top:1px solid #eee;text-align:center}',
    '#sbw-rating[data-visible=true]{display:block}',
    '#sbw-attach{border:0;background:none;cursor:pointer;font-size:18px;padding:0 8px;color:#555}',
    '.sbw-att{display:block;margin-top:4px}.sbw-att img{max-width:100%;max-height:180px;border-radius:6px;display:block}',
    '.sbw-att a{color:#2a5db0}#sb-widget[data-dragging=true] #sbw-panel{outline:3px dashed #2a5db0}'
  ].join(''));
  var panel = el('div', {id: 'sbw-panel', role: 'dialog', 'aria-label': 'Chat'});
  var head = el('div', {id: 'sbw-head'});
  head.appendChild(el('span', {}, cfg.title || 'Chat with us'));
  var agentState = el('span', {id: 'sbw-agent', 'data-online': 'unknown'}, '');
  head.appendChild(agentState);
  var list = el('ul', {id: 'sbw-messages', 'aria-live': 'polite'});
  var typing = el('div', {id: 'sbw-typing', 'data-visible': 'false'});
  var rating = el('div', {id: 'sbw-rating', 'data-visible': 'false'});
  rating.appendChild(el('span', {}, 'How did we do? '));
  [1, 2, 3, 4, 5].forEach(function (n) {
    var b = el('button', {type: 'button', 'data-score': String(n)}, String(n) + '★');
    b.addEventListener('click', function () { rate(n); });
    rating.appendChild(b);
  });
  var form = el('form', {id: 'sbw-form'});
  var input = el('input', {id: 'sbw-input', placeholder: 'Type a message…', autocomplete: 'off', maxlength: '10000'});
  var picker = el('input', {id: 'sbw-file', type: 'file', hidden: '', multiple: '',
                            accept: 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain'});
  var attach = el('button', {type: 'button', id: 'sbw-attach', title: 'Send a photo or a file',
                             'aria-label': 'Send a photo or a file'}, '📎');
  attach.addEventListener('click', function () { picker.click(); });
  form.appendChild(picker);
  form.appendChild(attach);
  form.appendChild(input);
  form.appendChild(el('button', {type: 'submit', id: 'sbw-send'}, 'Send'));
  [head, list, typing, rating, form].forEach(function (n) { panel.appendChild(n); });
  var toggle = el('button', {id: 'sbw-toggle', type: 'button'}, cfg.title || 'Chat with us');
  root.appendChild(style);
  root.appendChild(panel);
  root.appendChild(toggle);

  // ---- messages -----------------------------------------------------------------
  var TICKS = {sent: '✓', delivered: '✓✓', read: '✓✓ read'};

  function render(m) {
    if (m.private) return;
    var li = seen[m.id];
    var mine = m.sender_id === me;
    if (!li) {
      li = el('li', {'data-id': m.id, 'data-sender': m.sender_type, 'data-mine': String(mine)});
      li.appendChild(el('span', {'class': 'sbw-text'}, (m.content && m.content.text) || ''));
      ((m.content && m.content.attachments) || []).forEach(function (a) { li.appendChild(attachmentNode(a)); });
      if (mine) li.appendChild(el('span', {'class': 'sbw-tick'}));
      seen[m.id] = li;
      list.appendChild(li);
      list.scrollTop = list.scrollHeight;
    }
    if (mine) setStatus(li, m.status);
    if (!mine && m.sender_type !== 'system') {
      var id = m.id;
      api('POST', '/conversations/' + conv.id + '/delivered', {message_id: id}).catch(function () {})
        .then(function () { if (open) markRead(id); });
    }
  }

  /** An image shown in place, any other file as a link that saves it; the bytes come with
   *  the customer's token (a plain <img src> could not send it). */
  function attachmentNode(a) {
    var box = el('span', {'class': 'sbw-att', 'data-attachment': a.id});
    var isImage = /^image\//.test(a.content_type);
    var node = isImage ? el('img', {alt: a.filename}) : el('a', {href: '#', download: a.filename},
      '📄 ' + a.filename + ' (' + Math.max(1, Math.round(a.size / 1024)) + ' KB)');
    box.appendChild(node);
    var blobUrl = client.fetchAttachment(a).then(function (blob) { return URL.createObjectURL(blob); });
    if (isImage) {
      blobUrl.then(function (u) { node.src = u; node.addEventListener('load', function () { list.scrollTop = list.scrollHeight; }); },
                   function () { node.alt = a.filename + ' (not available)'; });
    } else {
      blobUrl.then(function (u) { node.href = u; }, function () { node.textContent += ' (not available)'; });
    }
    return box;
  }

  function setStatus(li, status) {
    var order = {sent: 0, delivered: 1, read: 2};
    if (order[status] < (order[li.getAttribute('data-status')] || 0)) return;
    li.setAttribute('data-status', status);
    var tick = li.querySelector('.sbw-tick');
    if (tick) tick.textContent = TICKS[status] || '';
  }

  function markRead(id) {
    api('POST', '/conversations/' + conv.id + '/read', {message_id: id}).catch(function () {});
  }

  function readLatest() {
    var items = list.querySelectorAll('li[data-mine=false]:not([data-sender=system])');
    if (conv && items.length) markRead(items[items.length - 1].getAttribute('data-id'));
  }

  function follow(c) {
    conv = c;
    localStorage.setItem('sbw-conv:' + me, c.id);
    client.subscribe('conversation:' + c.id);
    return api('GET', '/conversations/' + c.id + '/messages?limit=100').then(function (body) {
      body.messages.forEach(render);
      if (c.status === 'resolved' && !c.rating) rating.setAttribute('data-visible', 'true');
      if (c.presence) setAgentOnline(c.presence.agent);
    });
  }

  function setAgentOnline(on) {
    agentState.setAttribute('data-online', String(!!on));
    agentState.textContent = on ? '● agent online' : '';
  }

  function closed() { return !conv || conv.status === 'resolved' || conv.status === 'archived'; }

  function newId() { return 'w' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8); }

  /** A new conversation, `text` (if any) its first message; the widget follows it from now on. */
  function openConversation(text) {
    var body = {metadata: {
      source: 'web', initial_url: location.href.slice(0, 2000), user_agent: navigator.userAgent.slice(0, 1000),
      language: cfg.language || (navigator.language || 'en').slice(0, 2)}};
    if (text) body.text = text;
    return api('POST', '/conversations', body).then(function (c) {
      rating.setAttribute('data-visible', 'false');
      list.textContent = '';
      seen = {};
      return follow(c);
    });
  }

  function send(text) {
    if (closed()) return openConversation(text);
    return api('POST', '/conversations/' + conv.id + '/messages',
      {client_id: newId(), content: {text: text}}).then(render);
  }

  /** Photos and files, one message each, in the order chosen (a new conversation first if none is open). */
  function sendFiles(files) {
    var ready = closed() ? openConversation() : Promise.resolve();
    return files.reduce(function (done, file) {
      return done.then(function () { return client.upload(conv.id, file); }).then(function (a) {
        return api('POST', '/conversations/' + conv.id + '/messages', {client_id: newId(),
          message_type: /^image\//.test(a.content_type) ? 'image' : 'file', content: {attachments: [{id: a.id}]}});
      }).then(render);
    }, ready).catch(function (err) { typing.textContent = 'Not sent: ' + err.message; });
  }

  picker.addEventListener('change', function () {
    var files = Array.prototype.slice.call(picker.files || []);
    picker.value = '';
    if (files.length) sendFiles(files);
  });
  input.addEventListener('paste', function (ev) {
    var files = Array.prototype.slice.call((ev.clipboardData && ev.clipboardData.files) || []);
    if (files.length) { ev.preventDefault(); sendFiles(files); }
  });
  panel.addEventListener('dragover', function (ev) { ev.preventDefault(); root.setAttribute('data-dragging', 'true'); });
  panel.addEventListener('dragleave', function () { root.setAttribute('data-dragging', 'false'); });
  panel.addEventListener('drop', function (ev) {
    ev.preventDefault();
    root.setAttribute('data-dragging', 'false');
    var files = Array.prototype.slice.call((ev.dataTransfer && ev.dataTransfer.files) || []);
    if (files.length) sendFiles(files);
  });

  function rate(score) {
    api('POST', '/conversations/' + conv.id + '/rating', {score: score}).then(function () {
      rating.textContent = 'Thank you for your feedback!';
      rating.setAttribute('data-rated', String(score));
    }, function () {});
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = '';
    send(text).catch(function (err) { typing.textContent = 'Not sent: ' + err.message; });
  });

  input.addEventListener('input', function () {
    if (!conv || Date.now() - lastTyping < 1500) return;
    lastTyping = Date.now();
    api('POST', '/conversations/' + conv.id + '/typing').catch(function () {});
  });

  toggle.addEventListener('click', function () {
    open = !open;
    root.setAttribute('data-open', String(open));
    if (open) { readLatest(); input.focus(); }
  });

  // ---- live events ------------------------------------------------------------
  function start() {
    var S = window.Switchboard;
    me = subOf(token);
    client = new S({url: origin, getToken: getToken, eventNames: EVENTS});
    root.setAttribute('data-user', me);
    client.on('state', function (s) { root.setAttribute('data-state', s.state); });
    client.on('message:receive', function (m) { if (conv && m.conversation_id === conv.id) render(m); });
    client.on('message:delivered', function (d) {
      if (d.user_id !== me && seen[d.message_id]) setStatus(seen[d.message_id], 'delivered');
    });
    client.on('message:read', function (d) {
      if (d.user_id === me || !seen[d.message_id]) return;
      var items = list.querySelectorAll('li[data-mine=true]');
      for (var i = 0; i < items.length; i++) {
        setStatus(items[i], 'read');
        if (items[i].getAttribute('data-id') === d.message_id) break;
      }
    });
    client.on('user:typing', function (d) {
      if (d.user_id === me) return;
      typing.textContent = 'Agent is typing…';
      typing.setAttribute('data-visible', 'true');
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () {
        typing.textContent = '';
        typing.setAttribute('data-visible', 'false');
      }, 3000);
    });
    client.on('user:online', function (d) { if (d.user_id !== me) setAgentOnline(true); });
    client.on('user:offline', function (d) { if (d.user_id !== me) setAgentOnline(false); });
    client.on('agent:assigned', function () { setAgentOnline(true); });
    client.on('conversation:resolved', function (c) {
      if (conv && c.id === conv.id) { conv.status = 'resolved'; rating.setAttribute('data-visible', 'true'); }
    });
    var stored = localStorage.getItem('sbw-conv:' + me);
    if (stored) {
      api('GET', '/conversations/' + stored).then(function (c) {
        if (c.status !== 'archived') follow(c);
      }, function () { localStorage.removeItem('sbw-conv:' + me); });
    }
    root.setAttribute('data-ready', 'true');
  }

  function boot() {
    document.body.appendChild(root);
    getToken().then(function () {
      if (window.Switchboard) return start();
      var s = document.createElement('script');
      s.src = origin + '/static/switchboard.js';
      s.onload = start;
      document.head.appendChild(s);
    });
  }

  if (document.body) boot(); else document.addEventListener('DOMContentLoaded', boot);
})();
