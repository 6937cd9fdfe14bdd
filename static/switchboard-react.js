/*!
 * React hooks for the Switchboard client. No build step: React is injected.
 *
 *   Browser:   <script src="react.js"> then this file -> window.SwitchboardReact
 *   CommonJS:  require('./switchboard-react') uses require('react');
 *              require('./switchboard-react').bind(React) for another copy.
 *
 *   useSwitchboard(client, topic, handler)       subscribe while mounted; handler(frame)
 *                                                for every frame of `topic`
 *   useSwitchboardEvents(client, name, handler)  listen to an event name ('*', 'reset',
 *                                                'notification', …) without subscribing
 *   useSwitchboardState(client)                  {state, transport}, re-rendered on change
 *
 * Handlers may change on every render: the latest one is called, nothing resubscribes.
 * Several components may subscribe to the same topic: it stays subscribed until the
 * last one unmounts.
 */
(function (root, factory) {
  'use strict';
  if (typeof module === 'object' && module && module.exports) {
    var React = null;
    try { React = require('react'); } catch (e) { /* bind(React) later */ }
    module.exports = factory(React);
  } else {
    root.SwitchboardReact = factory(root.React || null);
  }
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function (DefaultReact) {
  'use strict';

  // client -> {topic: count}: shared across every bound React copy.
  var refcounts = typeof WeakMap === 'function' ? new WeakMap() : null;

  function counts(client) {
    if (!refcounts) return (client.__sbReactCounts = client.__sbReactCounts || {});
    var c = refcounts.get(client);
    if (!c) { c = {}; refcounts.set(client, c); }
    return c;
  }

  function retain(client, topic) {
    var c = counts(client);
    c[topic] = (c[topic] || 0) + 1;
    if (c[topic] === 1) {
      var p = client.subscribe(topic);
      if (p && p.catch) p.catch(function () { /* the client reports it as an 'error' event */ });
    }
  }

  function release(client, topic) {
    var c = counts(client);
    c[topic] = (c[topic] || 1) - 1;
    if (c[topic] <= 0) {
      delete c[topic];
      var p = client.unsubscribe(topic);
      if (p && p.catch) p.catch(function () {});
    }
  }

  function bind(React) {
    if (!React || !React.useEffect) {
      var missing = function () { throw new Error('SwitchboardReact: no React; call SwitchboardReact.bind(React)'); };
      return {bind: bind, useSwitchboard: missing, useSwitchboardEvents: missing, useSwitchboardState: missing};
    }

    function useLatest(value) {
      var ref = React.useRef(value);
      ref.current = value;
      return ref;
    }

    function useSwitchboardEvents(client, name, handler) {
      var latest = useLatest(handler);
      React.useEffect(function () {
        if (!client || !name) return undefined;
        var fn = function (a, b) { if (latest.current) latest.current(a, b); };
        client.on(name, fn);
        return function () { client.off(name, fn); };
      }, [client, name]);
    }

    function useSwitchboard(client, topic, handler) {
      var latest = useLatest(handler);
      React.useEffect(function () {
        if (!client || !topic) return undefined;
        var onFrame = function (frame) {
          if (frame.topic === topic && latest.current) latest.current(frame);
        };
        var onReset = function (r) {
          // The history was lost: the handler gets a synthetic frame, the app refetches.
          if (r.topic === topic && latest.current) {
            latest.current({event: 'reset', topic: topic, id: null, data: r});
          }
        };
        client.on('*', onFrame);
        client.on('reset', onReset);
        retain(client, topic);
        return function () {
          client.off('*', onFrame);
          client.off('reset', onReset);
          release(client, topic);
        };
      }, [client, topic]);
    }

    function useSwitchboardState(client) {
      var pair = React.useState(function () {
        return client ? {state: client.state, transport: client.transport} : {state: 'closed', transport: null};
      });
      var setState = pair[1];
      React.useEffect(function () {
        if (!client) return undefined;
        setState({state: client.state, transport: client.transport});
        var fn = function (s) { setState(s); };
        client.on('state', fn);
        return function () { client.off('state', fn); };
      }, [client]);
      return pair[0];
    }

    return {
      bind: bind,
      useSwitchboard: useSwitchboard,
      useSwitchboardEvents: useSwitchboardEvents,
      useSwitchboardState: useSwitchboardState
    };
  }

  return bind(DefaultReact);
});
