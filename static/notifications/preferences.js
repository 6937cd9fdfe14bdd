/* The notification preferences page: channels on and off, browser push subscribe, inbox.
 * The token comes from the URL fragment (#token=...: never sent to a server) or from
 * localStorage `switchboard.token`. Every state the page reaches is written into a
 * data-* attribute, so tests (and people) can see it. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var fragment = new URLSearchParams(location.hash.slice(1));
  var token = fragment.get('token') || localStorage.getItem('switchboard.token');
  if (fragment.get('token')) localStorage.setItem('switchboard.token', token);

  function api(method, path, body) {
    var init = {method: method, headers: {Authorization: 'Bearer ' + token}};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch('/api/v1' + path, init).then(function (res) {
      if (res.status === 204) return null;
      return res.json().then(function (data) {
        if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
        return data;
      });
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

  function showInbox(inbox) {
    var list = $('inbox');
    list.textContent = '';
    inbox.notifications.forEach(function (n) {
      var li = document.createElement('li');
      li.dataset.id = n.id;
      li.className = n.read_at ? 'read' : 'unread';
      li.textContent = n.title + (n.body ? ' — ' + n.body : '');
      list.appendChild(li);
    });
    $('unread').dataset.count = inbox.unread_count;
    $('unread').textContent = '(' + inbox.unread_count + ' unread)';
  }

  if (!token) {
    setState($('state'), 'state', 'error', 'Sign in first (no token).');
    return;
  }
  document.querySelectorAll('input[name=channel]').forEach(function (box) {
    box.addEventListener('change', onChannelChange);
  });
  $('push-subscribe').addEventListener('click', subscribe);
  $('push-unsubscribe').addEventListener('click', unsubscribe);
  if (!pushSupported()) setState($('push-status'), 'status', 'unsupported', 'This browser cannot receive push.');
  Promise.all([api('GET', '/me/preferences'), api('GET', '/notifications?limit=20')]).then(function (r) {
    showPreferences(r[0]);
    showInbox(r[1]);
    setState($('state'), 'state', 'ready', '');
  }, function (err) {
    setState($('state'), 'state', 'error', 'Could not load: ' + err.message);
  });
})();
