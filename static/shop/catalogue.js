/* The catalogue: each card's stock badge, live from its product's topic. */
(function () {
  'use strict';
  var cards = document.querySelectorAll('.product-card');

  function show(card, available) {
    var badge = card.querySelector('.stock-badge'), low = parseInt(card.dataset.low, 10) || 0;
    badge.dataset.available = String(available);
    badge.className = 'stock-badge badge ' + (available <= 0 ? 'bad' : available <= low ? 'warn' : 'ok');
    badge.textContent = available <= 0 ? 'Sold out' : available <= low ? 'Only ' + available + ' left' : 'In stock';
  }

  var byId = {};
  Array.prototype.forEach.call(cards, function (card) {
    byId[card.dataset.productId] = card;
    show(card, parseInt(card.querySelector('.stock-badge').dataset.available, 10) || 0);
  });
  var who = UI.shopper();
  document.getElementById('signed-in').textContent = 'Shopping as ' + UI.nameOf(who.sub, who.name);
  var topics = Object.keys(byId).map(function (id) { return 'product:' + id; });
  UI.start('customer', who, topics).then(function (s) {
    s.client.on('inventory_update', function (d) {
      if (!d.variant_id && byId[d.product_id]) show(byId[d.product_id], d.available_quantity);
    });
  });
})();
