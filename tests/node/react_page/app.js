/* A React app built on static/switchboard-react.js (no build step: React.createElement):
 * a live feed of one topic that can be unmounted, and the connection's state. It is
 * served from an origin of its own; ?api= names the Switchboard it talks to. */
(function () {
  'use strict';
  var h = React.createElement, hooks = SwitchboardReact.bind(React);
  var params = new URLSearchParams(location.search), topic = params.get('topic'), api = params.get('api');

  function Feed(props) {
    var items = React.useState([]), list = items[0], setList = items[1];
    hooks.useSwitchboard(props.client, props.topic, function (frame) {
      setList(function (old) { return old.concat([frame.data.n]); });
    });
    return h('ul', {id: 'feed'}, list.map(function (n) { return h('li', {key: n, 'data-n': n}, 'tick ' + n); }));
  }

  function State(props) {
    var s = hooks.useSwitchboardState(props.client);
    return h('p', {id: 'state', 'data-state': s.state}, s.state + (s.transport ? ' · ' + s.transport : ''));
  }

  function App(props) {
    var shown = React.useState(true), on = shown[0], setOn = shown[1];
    return h('div', null,
      h(State, {client: props.client}),
      h('button', {id: 'toggle', onClick: function () { setOn(!on); }}, on ? 'Unmount the feed' : 'Mount it'),
      on ? h(Feed, {client: props.client, topic: topic}) : h('p', {id: 'unmounted'}, 'feed unmounted'));
  }

  fetch(api + '/api/v1/dev/token', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({sub: 'react-' + Math.random().toString(36).slice(2, 8), role: 'customer'})})
    .then(function (r) { return r.json(); })
    .then(function (b) {
      var client = new Switchboard({url: api, token: b.token});
      window.client = client;
      ReactDOM.createRoot(document.getElementById('root')).render(h(App, {client: client}));
    });
})();
