/* The operations dashboard: the day in charts (GET /api/v1/stats/day), today's figures
 * (GET /api/v1/stats), stock per product and location with an adjust control, live orders,
 * inventory alerts and the agents, all kept current from the admin and agents topics. */
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var el = UI.el, session = null, pending = null;
  var GRID = '#eef0f4', INK = '#667085', BRAND = '#4f46e5', WARN = '#f59e0b', OK = '#16a34a', BAD = '#dc2626';

  function call(method, path, body) {
    return UI.api(session.token, method, path, body).then(function (r) {
      if (r.status >= 400) throw new Error((r.body && r.body.error && r.body.error.message) || r.status);
      return r.body;
    });
  }

  function prepend(list, attrs, text, at) {
    var li = el('li', attrs, text);
    li.appendChild(UI.time(at || new Date().toISOString()));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  function figure(name, value, shown) {
    var node = document.querySelector('[data-figure="' + name + '"]');
    if (!node) return;
    node.textContent = value == null ? '–' : shown != null ? shown : String(value);
    node.dataset.value = value == null ? '' : String(value);
  }

  // ---- charts ----------------------------------------------------------------------
  function layout(extra) {
    var base = {margin: {l: 40, r: 10, t: 10, b: 30}, paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)',
                font: {family: getComputedStyle(document.body).fontFamily, size: 12, color: INK},
                xaxis: {gridcolor: GRID, showgrid: false}, yaxis: {gridcolor: GRID, rangemode: 'tozero'},
                legend: {orientation: 'h', y: -0.2}, showlegend: true};
    for (var k in extra || {}) base[k] = extra[k];
    return base;
  }
  var CONFIG = {displayModeBar: false, responsive: true};

  function plot(id, data, extra) {
    if (!window.Plotly) return;
    window.Plotly.react($(id), data, layout(extra), CONFIG);
    $(id).dataset.drawn = 'true';
  }

  function goalLine(xs, y, name) {
    return {x: [xs[0], xs[xs.length - 1]], y: [y, y], mode: 'lines', name: name,
            line: {color: BAD, dash: 'dash', width: 1.5}, hoverinfo: 'skip'};
  }

  function drawDay(d) {
    var xs = d.hours.map(function (h) { return new Date(h); });
    plot('chart-queue', [
      {x: xs, y: d.waiting, type: 'bar', name: 'Waiting', marker: {color: WARN}},
      {x: xs, y: d.agents_online, type: 'scatter', mode: 'lines+markers', name: 'Agents online', line: {color: BRAND, shape: 'hv'}}
    ]);
    plot('chart-first', [
      {x: xs, y: d.first_response_seconds.map(function (s) { return s == null ? null : s / 60; }), type: 'bar',
       name: 'Median first response (min)', marker: {color: d.first_response_seconds.map(function (s) {
         return s != null && s > d.goals.first_response_seconds ? BAD : OK; })}},
      goalLine(xs, d.goals.first_response_seconds / 60, 'Goal')
    ], {yaxis: {gridcolor: GRID, rangemode: 'tozero', title: {text: 'minutes'}}});
    plot('chart-csat', [
      {x: xs, y: d.csat, type: 'scatter', mode: 'lines+markers', connectgaps: true, name: 'Average rating', line: {color: BRAND}},
      goalLine(xs, d.goals.csat, 'Goal ' + d.goals.csat)
    ], {yaxis: {gridcolor: GRID, range: [1, 5.2]}});
    var statuses = Object.keys(d.orders_by_status);
    plot('chart-orders', [{x: statuses.map(UI.word), y: statuses.map(function (s) { return d.orders_by_status[s]; }),
                           type: 'bar', marker: {color: BRAND}, name: 'Orders'}], {showlegend: false});
    var channels = Object.keys(d.deliveries_by_channel);
    var states = ['sent', 'failed', 'expired', 'skipped', 'queued'];
    var colours = {sent: OK, failed: BAD, expired: '#94a3b8', skipped: '#cbd5e1', queued: WARN};
    plot('chart-deliveries', states.map(function (st) {
      return {x: channels.map(UI.word), y: channels.map(function (c) { return d.deliveries_by_channel[c][st] || 0; }),
              type: 'bar', name: UI.word(st), marker: {color: colours[st]}};
    }), {barmode: 'stack'});
    var t = d.totals;
    figure('first_response', t.first_response_median_seconds,
           t.first_response_median_seconds == null ? null : fmtSeconds(t.first_response_median_seconds));
    figure('csat', t.csat, t.csat == null ? null : t.csat.toFixed(2) + ' ★');
  }

  function fmtSeconds(s) { return s < 90 ? Math.round(s) + ' s' : (s / 60).toFixed(1) + ' min'; }

  // ---- figures, tables, lists --------------------------------------------------------
  function loadStats() {
    pending = null;
    call('GET', '/api/v1/stats').then(function (s) {
      var chat = s.chat || s.routing || {}, orders = s.orders || {}, inv = s.inventory || {};
      figure('agents_online', chat.agents_online);
      figure('waiting', chat.waiting != null ? chat.waiting : chat.waiting_count);
      figure('in_flight', orders.in_flight);
      figure('delivered_24h', orders.delivered_24h);
      figure('units_held', inv.units_held);
      figure('low_stock_levels', inv.low_stock_levels);
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    });
    call('GET', '/api/v1/stats/day').then(function (d) {
      if (window.Plotly) drawDay(d);
      else window.addEventListener('load', function () { drawDay(d); });
    });
    loadStock();
    loadAgents();
  }

  function soon() { if (!pending) pending = setTimeout(loadStats, 400); }

  function loadStock() {
    call('GET', '/api/v1/stock').then(function (body) {
      var tbody = $('stock-table').querySelector('tbody');
      tbody.textContent = '';
      body.levels.forEach(function (l) {
        var key = l.product_id + '|' + (l.variant_id || '') + '|' + l.location;
        var tr = el('tr', {'data-level': key, 'data-product': l.product_id});
        var name = el('td');
        name.appendChild(el('a', {href: '/shop/products/' + encodeURIComponent(l.product_id)},
                            (l.product_name || l.product_id) + (l.variant_id ? ' · ' + l.variant_id : '')));
        tr.appendChild(name);
        tr.appendChild(el('td', {}, l.location));
        tr.appendChild(el('td', {'class': 'num on-hand'}, String(l.on_hand)));
        tr.appendChild(el('td', {'class': 'num'}, String(l.held)));
        var avail = el('td', {'class': 'num available'});
        avail.appendChild(UI.badge(l.available <= 0 ? 'out_of_stock' : l.available <= l.low_stock_threshold ? 'low_stock' : 'restock',
                                   {'data-available': String(l.available)}));
        avail.firstChild.textContent = String(l.available);
        tr.appendChild(avail);
        tr.appendChild(el('td', {'class': 'num'}, String(l.low_stock_threshold)));
        var adjust = el('td', {'class': 'adjust'});
        var input = el('input', {type: 'number', value: '1', 'aria-label': 'units', style: 'width:4.5em'});
        var add = el('button', {type: 'button', 'class': 'restock'}, '+ Restock');
        var remove = el('button', {type: 'button', 'class': 'remove'}, '− Remove');
        function change(sign, type) {
          var n = parseInt(input.value, 10);
          if (!n || n < 1) return;
          call('POST', '/api/v1/products/' + encodeURIComponent(l.product_id) + '/stock/adjust',
               {delta: sign * n, change_type: type, location: l.location, variant_id: l.variant_id || undefined})
            .then(loadStock, function (err) { tr.title = err.message; tr.dataset.error = err.message; });
        }
        add.addEventListener('click', function () { change(1, 'restock'); });
        remove.addEventListener('click', function () { change(-1, 'adjustment'); });
        adjust.appendChild(input);
        adjust.appendChild(add);
        adjust.appendChild(remove);
        tr.appendChild(adjust);
        tbody.appendChild(tr);
      });
    });
  }

  function loadAgents() {
    call('GET', '/api/v1/agents').then(function (body) {
      var list = $('agents');
      list.textContent = '';
      body.agents.forEach(function (a) {
        var li = el('li', {'data-agent': a.id});
        li.appendChild(el('b', {}, a.name || UI.nameOf(a.id)));
        li.appendChild(UI.badge(a.status));
        li.appendChild(el('span', {'class': 'muted small'}, (a.current_conversations || 0) + ' of ' + a.concurrent_limit + ' chats'));
        list.appendChild(li);
      });
    });
  }

  function orderRow(o) {
    var tbody = $('orders-table').querySelector('tbody');
    var tr = tbody.querySelector('tr[data-order="' + o.id + '"]');
    if (!tr) {
      tr = el('tr', {'data-order': o.id});
      var link = el('td');
      link.appendChild(el('a', {href: '/shop/orders/' + encodeURIComponent(o.id) + '?role=admin'}, o.id));
      tr.appendChild(link);
      tr.appendChild(el('td', {'class': 'customer'}, UI.nameOf(o.customer_id, o.customer && o.customer.name)));
      tr.appendChild(el('td', {'class': 'status'}));
      tr.appendChild(el('td', {'class': 'updated'}));
    }
    tbody.insertBefore(tr, tbody.firstChild);
    var status = tr.querySelector('.status'), when = tr.querySelector('.updated');
    status.textContent = '';
    status.appendChild(UI.badge(o.status));
    tr.dataset.status = o.status;
    when.textContent = '';
    when.appendChild(UI.time(o.updated_at));
    while (tbody.children.length > 20) tbody.removeChild(tbody.lastChild);
  }

  $('demo-order').addEventListener('click', function () {
    var id = 'demo-' + Date.now().toString(36);
    call('PUT', '/api/v1/orders/' + id, {customer_id: 'demo-customer', status: 'confirmed', carrier: 'simulated',
                                         tracking_number: 'SIM-' + id.slice(5).toUpperCase()})
      .then(function (o) { orderRow(o); }, function (err) { $('demo-order').title = err.message; });
  });

  UI.start('admin', {sub: 'ops-admin', name: 'Operations'}, ['admin', 'agents']).then(function (s) {
    session = s;
    s.client.on('order_tracking_update', function (d) {
      prepend($('feed'), {'data-order': d.order_id, 'data-status': d.current_status},
              d.order_id + ': ' + UI.word(d.previous_status || 'new') + ' → ' + UI.word(d.current_status) +
              (d.location && d.location.address ? ' (' + d.location.address + ')' : ''), d.timestamp);
      orderRow({id: d.order_id, customer_id: d.customer_id, status: d.current_status, updated_at: d.timestamp});
      soon();
    });
    s.client.on('inventory_alert', function (d) {
      prepend($('alerts'), {'data-product': d.product_id, 'data-change': d.change_type},
              d.product_id + (d.variant_id ? '/' + d.variant_id : '') + ' ' + UI.word(d.change_type) + ': ' +
              d.previous_quantity + ' → ' + d.current_quantity);
      soon();
    });
    ['user:online', 'user:offline', 'agent:available', 'conversation:waiting', 'agent:assigned',
     'conversation:resolved'].forEach(function (n) { s.client.on(n, soon); });
    s.ready.then(function () {
      loadStats();
      return call('GET', '/api/v1/orders?limit=20');
    }).then(function (body) {
      body.orders.slice().reverse().forEach(orderRow);
    });
  });
})();
