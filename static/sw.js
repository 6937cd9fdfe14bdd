/* Switchboard's service worker: shows a web push notification and opens its action_url.
 * The payload is the JSON that providers/webpush.py encrypts:
 * {id, type, title, body, action_url, icon, badge, data}. */
'use strict';

self.addEventListener('install', function () { self.skipWaiting(); });
self.addEventListener('activate', function (event) { event.waitUntil(self.clients.claim()); });

self.addEventListener('push', function (event) {
  var p = {};
  if (event.data) {
    try { p = event.data.json(); } catch (e) { p = {title: 'Notification', body: event.data.text()}; }
  }
  var options = {
    body: p.body || '',
    tag: p.id || undefined,
    data: {id: p.id || null, action_url: p.action_url || '/'}
  };
  if (p.icon) options.icon = p.icon;
  event.waitUntil(self.registration.showNotification(p.title || 'Notification', options));
});

self.addEventListener('notificationclick', function (event) {
  event.notification.close();
  var target = new URL((event.notification.data && event.notification.data.action_url) || '/',
                       self.location.origin).href;
  event.waitUntil(self.clients.matchAll({type: 'window', includeUncontrolled: true}).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].url === target && 'focus' in list[i]) return list[i].focus();
    }
    return self.clients.openWindow(target);
  }));
});
