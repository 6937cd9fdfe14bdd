/* Order tracking page: the status timeline, live from order_status_update. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var orderId = document.body.dataset.orderId;
  var seen = {};

  function add(entry) {
    var key = entry.status + '@' + entry.timestamp;
    if (seen[key]) return;
    seen[key] = true;
    var li = Shop.el('li', {'data-status': entry.status});
    li.appendChild(Shop.el('strong', {}, entry.status.replace(/_/g, ' ')));
    li.appendChild(Shop.el('time', {}, ' ' + new Date(entry.timestamp).toLocaleString()));
    if (entry.location && entry.location.address) li.appendChild(Shop.el('span', {class: 'where'}, ' · ' + entry.location.address));
    if (entry.notes) li.appendChild(Shop.el('span', {class: 'notes'}, ' · ' + entry.notes));
    $('timeline').appendChild(li);
    var status = $('status');
    status.dataset.status = entry.status;
    status.textContent = entry.status.replace(/_/g, ' ');
  }

  var role = Shop.params.get('role') === 'admin' ? 'admin' : 'customer';
  Shop.start(role, 'customer', ['order:' + orderId]).then(function (s) {
    s.client.on('order_status_update', function (d) {
      add({status: d.current_status, timestamp: d.timestamp, location: d.location, notes: d.notes});
    });
    s.ready.then(function () {
      return Shop.api(s.token, 'GET', '/api/v1/orders/' + encodeURIComponent(orderId));
    }).then(function (r) {
      if (r.status !== 200) { $('status').textContent = r.body.error.message; return; }
      $('carrier').textContent = (r.body.carrier || '') + ' ' + (r.body.tracking_number || '');
      r.body.history.forEach(add);
    }, function (err) { $('status').textContent = 'cannot follow this order: ' + err.message; });
  });
})();
