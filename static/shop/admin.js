/* Admin dashboard: live order feed, inventory alerts, and the figures of GET /api/v1/stats. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var session = null, pending = null;

  function prepend(list, attrs, text) {
    var li = Shop.el('li', attrs, text);
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  function figure(name, value) {
    var node = document.querySelector('[data-figure="' + name + '"]');
    if (node) { node.textContent = value == null ? '–' : String(value); node.dataset.value = value == null ? '' : String(value); }
  }

  function loadStats() {
    pending = null;
    Shop.api(session.token, 'GET', '/api/v1/stats').then(function (r) {
      if (r.status !== 200) return;
      var s = r.body, chat = s.chat || s.routing || {}, orders = s.orders || {}, inv = s.inventory || {};
      figure('agents_online', chat.agents_online);
      figure('waiting', chat.waiting != null ? chat.waiting : chat.waiting_count);
      figure('in_flight', orders.in_flight);
      figure('delivered_24h', orders.delivered_24h);
      figure('units_held', inv.units_held);
      figure('low_stock_levels', inv.low_stock_levels);
    });
  }

  function soon() { if (!pending) pending = setTimeout(loadStats, 300); }

  Shop.start('admin', 'admin', ['admin']).then(function (s) {
    session = s;
    s.client.on('order_tracking_update', function (d) {
      prepend($('feed'), {'data-order': d.order_id, 'data-status': d.current_status},
              d.order_id + ': ' + (d.previous_status || 'new') + ' → ' + d.current_status +
              (d.location && d.location.address ? ' (' + d.location.address + ')' : ''));
      soon();
    });
    s.client.on('inventory_alert', function (d) {
      prepend($('alerts'), {'data-product': d.product_id, 'data-change': d.change_type},
              d.product_id + (d.variant_id ? '/' + d.variant_id : '') + ' ' + d.change_type + ': ' +
              d.previous_quantity + ' → ' + d.current_quantity);
      soon();
    });
    ['user:online', 'user:offline', 'agent:available', 'conversation:waiting'].forEach(function (n) { s.client.on(n, soon); });
    s.ready.then(loadStats);
  });
})();
