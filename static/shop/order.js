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
    var li = UI.el('li', {'data-status': entry.status});
    li.appendChild(UI.el('strong', {}, UI.word(entry.status)));
    li.appendChild(UI.time(entry.timestamp));
    if (entry.location && entry.location.address) li.appendChild(UI.el('span', {class: 'where'}, entry.location.address));
    if (entry.notes) li.appendChild(UI.el('span', {class: 'notes muted'}, ' · ' + entry.notes));
    $('timeline').appendChild(li);
    var status = $('status');
    status.dataset.status = entry.status;
    status.className = UI.badge(entry.status).className;
    status.textContent = UI.word(entry.status);
  }

  // Staff follow any order (?role=admin, as the console links it); a shopper their own.
  var staff = UI.params.get('role') === 'admin';
  var who = staff ? {sub: 'ops-admin', name: 'Operations'} : UI.shopper();
  UI.start(staff ? 'admin' : 'customer', who, ['order:' + orderId]).then(function (s) {
    s.client.on('order_status_update', function (d) {
      add({status: d.current_status, timestamp: d.timestamp, location: d.location, notes: d.notes});
    });
    s.ready.then(function () {
      return UI.api(s.token, 'GET', '/api/v1/orders/' + encodeURIComponent(orderId));
    }).then(function (r) {
      if (r.status !== 200) { $('status').textContent = r.body.error.message; return; }
      $('carrier').textContent = r.body.carrier ? 'With ' + r.body.carrier + ', tracking number ' +
        (r.body.tracking_number || 'not given yet') : 'Not handed to a carrier yet.';
      r.body.history.forEach(add);
    }, function (err) { $('status').textContent = 'cannot follow this order: ' + err.message; });
  });
})();
