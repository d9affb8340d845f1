/* DOM building, a safe markdown subset, and the reader of server-sent events. */
(() => {
  if (window.ScwText) return;

  function make(tag, className, attributes) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value);
    }
    return node;
  }

  /* DOM methods only: never HTML from the server */
  const INLINE = /\*\*([^*]+)\*\*|\[([^\]]+)\]\((https?:\/\/[^\s)]+|\/[^\s)]*)\)/g;
  const ITEM = /^\s*([-*]|\d+\.)\s+/;

  function inline(parent, text) {
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      parent.append(text.slice(last, match.index));
      if (match[1]) {
        parent.append(make('strong', '', { text: match[1] }));
      } else {
        parent.append(make('a', '', { text: match[2], href: match[3], target: '_blank', rel: 'noopener noreferrer nofollow' }));
      }
      last = match.index + match[0].length;
    }
    parent.append(text.slice(last));
  }

  function renderMarkdown(container, text) {
    container.replaceChildren();
    for (const block of text.trim().split(/\n{2,}/)) {
      const lines = block.split('\n');
      if (lines.every((line) => ITEM.test(line))) {
        const list = make(/^\s*\d/.test(lines[0]) ? 'ol' : 'ul');
        for (const line of lines) inline(list.appendChild(make('li')), line.replace(ITEM, ''));
        container.append(list);
      } else {
        const paragraph = make('p');
        lines.forEach((line, index) => {
          if (index) paragraph.append(make('br'));
          inline(paragraph, line);
        });
        container.append(paragraph);
      }
    }
  }

  async function* readEvents(response, alive) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      alive();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = { event: 'message', data: '', id: null };
        for (const line of buffer.slice(0, end).split('\n')) {
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          const field = line.slice(0, colon);
          const text = line.slice(colon + 1).replace(/^ /, '');
          if (field === 'data') event.data += text;
          else if (field === 'event' || field === 'id') event[field] = text;
        }
        buffer = buffer.slice(end + 2);
        if (!event.data) continue;
        try {
          event.data = JSON.parse(event.data);
        } catch (error) {
          continue;
        }
        yield event;
      }
    }
  }

  /* [0, 1) for jitter, never Math.random */
  const random = () => crypto.getRandomValues(new Uint32Array(1))[0] / 2 ** 32;

  window.ScwText = { make, renderMarkdown, readEvents, random };
})();
