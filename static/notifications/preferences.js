/* The notifications page: the inbox (live over user:{id}, with times, unread marks and
 * mark-read), channels on and off, browser push. It signs in like every page (the shopper,
 * ?sub= to choose); a shop that has its own login passes the user's token in the URL
 * fragment instead (#token=...: never sent to a server). Every state the page reaches is
 * written into a data-* attribute, so tests (and people) can see it. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var fragment = new URLSearchParams(location.hash.slice(1));
  var token = null, items = {};

  function api(method, path, body) {
    return UI.api(token, method, '/api/v1' + path, body).then(function (r) {
      if (r.status >= 400) throw new Error((r.body && r.body.error && r.body.error.message) || r.status);
      return r.body;
    });
  }

  /** The session: the fragment's token, or the shopper's development sign-in. */
  function signIn() {
    var given = fragment.get('token');
    if (given) {
      token = given;
      var client = new Switchboard({url: location.origin, token: given});
      client.on('state', function (s) { $('state').dataset.state = s.state; $('state').textContent = s.state === 'open' ? 'live' : s.state; });
      var sub = null;
      try { sub = JSON.parse(atob(given.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub; } catch (e) { /* shown as "you" */ }
      return Promise.resolve({client: client, sub: sub, name: null});
    }
    return UI.start('customer', UI.shopper(), []).then(function (s) {
      token = s.token;
      s.client.on('refresh', function () { token = s.token; });
      return s;
    });
  }

  function setState(el, attr, value, text) {
    el.dataset[attr] = value;
    el.textContent = text;
  }

  function showPreferences(prefs) {
    document.querySelectorAll('input[name=channel]').forEach(function (box) {
      var ch = prefs.channels[box.value];
      box.checked = !ch || ch.enabled !== false;
    });
  }

  function onChannelChange(event) {
    var box = event.target;
    var channels = {};
    channels[box.value] = {enabled: box.checked};
    setState($('saved'), 'status', 'saving', 'Saving…');
    api('PUT', '/me/preferences', {channels: channels}).then(function (prefs) {
      showPreferences(prefs);
      setState($('saved'), 'status', 'saved', 'Saved.');
    }, function (err) {
      setState($('saved'), 'status', 'error', 'Not saved: ' + err.message);
    });
  }

  function urlBase64ToUint8Array(text) {
    var padded = (text + '===='.slice((text.length + 3) % 4 + 1)).replace(/-/g, '+').replace(/_/g, '/');
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function pushSupported() {
    return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
  }

  function subscribe() {
    var status = $('push-status');
    if (!pushSupported()) return setState(status, 'status', 'unsupported', 'This browser cannot receive push.');
    setState(status, 'status', 'working', 'Asking…');
    Notification.requestPermission().then(function (permission) {
      if (permission !== 'granted') throw Object.assign(new Error('permission ' + permission), {denied: true});
      return Promise.all([navigator.serviceWorker.register('/sw.js', {scope: '/'}),
                          api('GET', '/webpush/vapid-public-key')]);
    }).then(function (both) {
      var registration = both[0];
      return navigator.serviceWorker.ready.then(function () {
        return registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: urlBase64ToUint8Array(both[1].public_key)});
      });
    }).then(function (subscription) {
      return api('POST', '/me/push-subscriptions', subscription.toJSON());
    }).then(function () {
      setState(status, 'status', 'subscribed', 'Push notifications are on in this browser.');
      $('push-subscribe').hidden = true;
      $('push-unsubscribe').hidden = false;
    }, function (err) {
      setState(status, 'status', err.denied ? 'denied' : 'error', 'Push is off: ' + err.message);
    });
  }

  function unsubscribe() {
    var status = $('push-status');
    navigator.serviceWorker.getRegistration('/').then(function (registration) {
      return registration && registration.pushManager.getSubscription();
    }).then(function (subscription) {
      if (!subscription) return null;
      var endpoint = subscription.endpoint;
      return subscription.unsubscribe().then(function () {
        return api('DELETE', '/me/push-subscriptions', {endpoint: endpoint});
      });
    }).then(function () {
      setState(status, 'status', 'unsubscribed', 'Push notifications are off in this browser.');
      $('push-subscribe').hidden = false;
      $('push-unsubscribe').hidden = true;
    }, function (err) {
      setState(status, 'status', 'error', err.message);
    });
  }

  function item(n) {
    var li = document.createElement('li');
    li.dataset.id = n.id;
    li.className = n.read_at ? 'read' : 'unread';
    li.appendChild(UI.el('span', {'class': 'title'}, n.title || UI.word(n.type)));
    li.appendChild(UI.time(n.created_at));
    if (n.body) li.appendChild(UI.el('span', {'class': 'body muted'}, n.body));
    var actions = UI.el('span', {'class': 'actions'});
    if (n.action_url) {
      var open = UI.el('a', {href: n.action_url, 'class': 'open'}, 'Open');
      open.addEventListener('click', function () { markRead(n.id); });
      actions.appendChild(open);
    }
    if (!n.read_at) {
      var mark = UI.el('button', {type: 'button', 'class': 'link-button mark-read'}, 'Mark read');
      mark.addEventListener('click', function () { markRead(n.id); });
      actions.appendChild(mark);
    }
    li.appendChild(actions);
    return li;
  }

  function showUnread() {
    var n = $('inbox').querySelectorAll('li.unread').length;
    $('unread').dataset.count = String(n);
    $('unread').textContent = n ? n + ' unread' : 'all read';
    $('read-all').hidden = !n;
    $('inbox-empty').hidden = !!$('inbox').children.length;
  }

  function add(n, atTop) {
    if (items[n.id]) return;
    items[n.id] = n;
    var li = item(n), list = $('inbox');
    if (atTop) list.insertBefore(li, list.firstChild); else list.appendChild(li);
    showUnread();
  }

  function markRead(id) {
    var li = $('inbox').querySelector('li[data-id="' + id + '"]');
    if (!li || li.className === 'read') return Promise.resolve();
    return api('POST', '/notifications/' + encodeURIComponent(id) + '/read').then(function () {
      li.className = 'read';
      var mark = li.querySelector('.mark-read');
      if (mark) mark.remove();
      showUnread();
    });
  }

  document.querySelectorAll('input[name=channel]').forEach(function (box) {
    box.addEventListener('change', onChannelChange);
  });
  $('push-subscribe').addEventListener('click', subscribe);
  $('push-unsubscribe').addEventListener('click', unsubscribe);
  $('read-all').addEventListener('click', function () {
    var unread = $('inbox').querySelectorAll('li.unread');
    for (var i = 0; i < unread.length; i++) markRead(unread[i].dataset.id);
  });
  if (!pushSupported()) setState($('push-status'), 'status', 'unsupported', 'This browser cannot receive push.');
  signIn().then(function (s) {
    s.client.on('notification', function (n) { add(n, true); });
    return Promise.all([api('GET', '/me/preferences'), api('GET', '/notifications?limit=50')]).then(function (r) {
      showPreferences(r[0]);
      r[1].notifications.forEach(function (n) { add(n, false); });
      showUnread();
      setState($('signed-in'), 'state', 'ready', 'Signed in as ' + UI.nameOf(s.sub, s.name) + '.');
    });
  }).catch(function (err) {
    setState($('signed-in'), 'state', 'error', 'Could not load: ' + err.message);
  });
})();
