// The partner's own script: lists what the Dewgrid card tells this page. A page receives messages
// from anyone who can reach its window, so only those from Dewgrid's origin and from the card's
// own iframe count (docs/protocol.md, "Partner sites"). Newest first; the last 200.
const dewgrid = document.currentScript.dataset.dewgridOrigin;
const list = document.getElementById('events');

function describe(message) {
  if (message.type === 'progress') {
    const { done, running, failed } = message.counts;
    return `progress: ${done} done, ${running} running, ${failed} failed (${message.state})`;
  }
  return message.type;
}

addEventListener('message', (event) => {
  const card = document.querySelector(`iframe[src^="${dewgrid}/"]`);
  if (event.origin !== dewgrid || !card || event.source !== card.contentWindow) return;
  const message = event.data;
  if (!message || message.source !== 'dewgrid-embed' || message.type === 'resize') return;
  const item = document.createElement('li');
  item.dataset.type = message.type;
  item.dataset.origin = event.origin;
  item.textContent = describe(message);
  list.prepend(item);
  list.children[200]?.remove();
});
