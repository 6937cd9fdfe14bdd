/* The demo shop's pages embed the chat widget as any shop would, with one script tag,
 * here for the shopper this browser signed in as (the widget's dev-user). */
(function () {
  'use strict';
  var who = UI.shopper();
  var tag = document.createElement('script');
  tag.src = '/static/chat/widget.js';
  tag.async = true;
  tag.dataset.devUser = who.sub;
  if (who.name) tag.dataset.devName = who.name;
  tag.dataset.title = 'Chat with us';
  document.body.appendChild(tag);
})();
