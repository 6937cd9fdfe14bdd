/* The shopper's orders: each with its status, live from its order topic. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var who = UI.shopper();
  $('signed-in').textContent = 'Signed in as ' + UI.nameOf(who.sub, who.name);

  function row(o) {
    var tr = UI.el('tr', {'data-order': o.id});
    var link = UI.el('td');
    link.appendChild(UI.el('a', {href: '/shop/orders/' + encodeURIComponent(o.id)}, o.id));
    tr.appendChild(link);
    var status = UI.el('td', {'class': 'status'});
    status.appendChild(UI.badge(o.status));
    tr.appendChild(status);
    tr.appendChild(UI.el('td', {}, o.carrier ? o.carrier + ' ' + (o.tracking_number || '') : '–'));
    var when = UI.el('td', {'class': 'updated'});
    when.appendChild(UI.time(o.updated_at));
    tr.appendChild(when);
    return tr;
  }

  UI.start('customer', who, []).then(function (s) {
    s.client.on('order_status_update', function (d) {
      var tr = document.querySelector('#orders tr[data-order="' + d.order_id + '"]');
      if (!tr) return;
      var cell = tr.querySelector('.status');
      cell.textContent = '';
      cell.appendChild(UI.badge(d.current_status));
      var when = tr.querySelector('.updated');
      when.textContent = '';
      when.appendChild(UI.time(d.timestamp));
    });
    return UI.api(s.token, 'GET', '/api/v1/orders?limit=50').then(function (r) {
      var body = $('orders').querySelector('tbody');
      (r.body.orders || []).forEach(function (o) { body.appendChild(row(o)); });
      $('empty').hidden = !!(r.body.orders || []).length;
      document.body.dataset.loaded = 'yes';
    });
  });
})();
