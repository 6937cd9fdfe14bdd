/* static/switchboard.js as React Native runs it: no DOM, no window; WebSocket, fetch and
 * the timers passed in the options. Driven by tests/integration/test_client_under_node.py:
 * it prints one JSON line per thing it sees and stops when stdin closes.
 *
 *   node client_as_react_native.js <base url> <topic> <user id>
 */
'use strict';
const Switchboard = require('../../static/switchboard.js');
const WebSocket = require('ws');

const [url, topic, sub] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

async function token(ttl) {
  const res = await fetch(url + '/api/v1/dev/token', {
    method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({sub, role: 'customer', ttl})});
  return (await res.json()).token;
}

(async () => {
  // Short tokens: the client must renew its token in place while the test runs.
  const client = new Switchboard({
    url, token: await token(8), getToken: () => token(8), transports: ['websocket'],
    WebSocket, fetch, setTimeout, clearTimeout, AbortController, backoffBase: 100, backoffMax: 400});
  client.on('state', (s) => say({kind: 'state', state: s.state}));
  client.on('refresh', () => say({kind: 'refresh'}));
  client.on('stream:reset', (data) => say({kind: 'reset', data}));
  client.on('x:tick', (data, frame) => say({kind: 'event', n: data.n, id: frame && frame.id}));
  await client.subscribe(topic);
  say({kind: 'subscribed'});
  // A photo from the phone: uploaded to the customer's conversation and read back through
  // the client, with the token it holds (FormData and Blob are the platform's).
  const tok = await token(60);
  const opened = await fetch(url + '/api/v1/conversations', {method: 'POST',
    headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + tok},
    body: JSON.stringify({text: 'photo of the parcel'})});
  const conv = await opened.json();
  const png = Buffer.from(process.env.SB_TEST_PNG, 'base64');
  const att = await client.upload(conv.id, new Blob([png]), 'parcel.png');
  const back = Buffer.from(await (await client.fetchAttachment(att)).arrayBuffer());
  say({kind: 'attachment', content_type: att.content_type, same: back.equals(png)});
  process.stdin.on('end', () => { client.close(); process.exit(0); });
  process.stdin.resume();
})().catch((err) => { say({kind: 'error', message: String(err && err.stack || err)}); process.exit(1); });
