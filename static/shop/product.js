/* Product page: live stock (inventory_update, out_of_stock) and a reserve button with a countdown. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var productId = document.body.dataset.productId;
  var session = null, reservation = null, timer = null;

  function showStock(variants) {
    var v = variants[0] || {available_quantity: 0, is_in_stock: false};
    var node = $('stock');
    node.dataset.available = String(v.available_quantity);
    node.textContent = !v.is_in_stock ? 'Sold out' : v.available_quantity <= 5 ?
      'Only ' + v.available_quantity + ' left' : v.available_quantity + ' in stock';
    $('reserve').disabled = !v.is_in_stock || !!reservation;
  }

  function say(text, kind) {
    var node = $('message');
    node.textContent = text;
    node.dataset.kind = kind || '';
  }

  function tick() {
    if (!reservation) return;
    var ms = Date.parse(reservation.expires_at) - Date.now();
    var left = Math.max(0, Math.ceil(ms / 1000));
    var node = $('countdown');
    node.dataset.seconds = String(left);
    node.textContent = 'Held for you: ' + Math.floor(left / 60) + ':' + ('0' + left % 60).slice(-2);
    // Past expires_at the hold no longer counts anywhere, processed or not: refetch.
    if (ms <= 0) { finish('Your hold expired', 'expired'); }
  }

  function finish(text, kind) {
    reservation = null;
    if (timer) clearInterval(timer);
    timer = null;
    $('countdown').textContent = '';
    $('countdown').dataset.seconds = '';
    $('held').hidden = true;
    say(text, kind);
    refresh();
  }

  function refresh() {
    return UI.api(session.token, 'GET', '/api/v1/products/' + encodeURIComponent(productId) + '/stock')
      .then(function (r) { if (r.status === 200) showStock(r.body.variants); });
  }

  $('reserve').addEventListener('click', function () {
    var qty = parseInt($('quantity').value, 10) || 1;
    var key = 'page-' + Date.now() + '-' + Math.random().toString(16).slice(2);
    UI.api(session.token, 'POST', '/api/v1/reservations', {product_id: productId, quantity: qty},
             {'Idempotency-Key': key}).then(function (r) {
      if (r.status === 201 || r.status === 200) {
        reservation = r.body;
        $('held').hidden = false;
        $('reserve').disabled = true;
        say('Reserved ' + qty, 'reserved');
        tick();
        timer = setInterval(tick, 250);
      } else {
        say(r.body.error.message, r.body.error.code);
      }
    });
  });
  $('buy').addEventListener('click', function () {
    if (!reservation) return;
    UI.api(session.token, 'POST', '/api/v1/reservations/' + reservation.reservation_id + '/commit')
      .then(function (r) { finish(r.status === 200 ? 'Bought' : r.body.error.message, r.status === 200 ? 'bought' : 'error'); });
  });
  $('release').addEventListener('click', function () {
    if (!reservation) return;
    UI.api(session.token, 'DELETE', '/api/v1/reservations/' + reservation.reservation_id)
      .then(function () { finish('Released', 'released'); });
  });

  UI.start('customer', UI.shopper(), ['product:' + productId])
    .then(function (s) {
      session = s;
      s.client.on('inventory_update', function (data) {
        if (!data.variant_id) showStock([data]);
      });
      s.client.on('out_of_stock', function (data) {
        var node = $('stock');
        node.dataset.outOfStockEvents = String((parseInt(node.dataset.outOfStockEvents || '0', 10)) + 1);
      });
      s.ready.then(refresh);
    });
})();
