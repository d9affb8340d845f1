/* <chat-widget>: the storefront chat. Text and the proxy path come from the Liquid block. */
(() => {
  if (customElements.get('chat-widget') || !window.ScwStorage || !window.ScwText || !window.ScwPanel) return;
  const { ChatStorage, uuid4 } = window.ScwStorage;
  const { make, renderMarkdown, readEvents, random } = window.ScwText;

  class ChatWidget extends HTMLElement {
    /* A stream silent for `stall` ms (the server pings every 15 s) is a dead connection, such as a
       half-open mobile one: it is reconnected from its last event. Reconnects wait `backoff` ms,
       doubling after each failure in a row (up to 16 times), ±50% so that the shoppers of a worker
       that died do not all come back at once; after `attempts` failures in a row the error and
       Retry show. Tests shorten them. */
    static timing = { stall: 45000, backoff: 1000, attempts: 5 };

    connectedCallback() {
      if (this.panel) return;
      this.text = JSON.parse(this.querySelector('[data-scw-text]').textContent);
      this.proxy = this.dataset.proxy;
      this.storage = new ChatStorage(this.dataset.shop);
      this.replies = new Map();
      this.build();
      this.onClick = (event) => this.handleClick(event);
      this.onKey = (event) => this.handleKey(event);
      this.onStorage = (event) => event.key === this.storage.key && this.sync();
      this.addEventListener('click', this.onClick);
      this.addEventListener('keydown', this.onKey);
      this.form.addEventListener('submit', (event) => {
        event.preventDefault();
        this.submit();
      });
      window.addEventListener('storage', this.onStorage);
      if ('BroadcastChannel' in window) {
        this.channel = new BroadcastChannel(this.storage.key);
        this.channel.onmessage = (event) => this.onBroadcast(event.data || {});
      }
      const saved = this.storage.read();
      if (saved.sessionId) this.restore();
      else this.showGreeting();
      if (saved.open) this.open(false);
    }

    disconnectedCallback() {
      this.removeEventListener('click', this.onClick);
      this.removeEventListener('keydown', this.onKey);
      window.removeEventListener('storage', this.onStorage);
      if (this.channel) this.channel.close();
      this.cancel();
    }

    url(path, params) {
      return this.proxy + path + (params ? '?' + new URLSearchParams(params) : '');
    }

    post(path, body, signal) {
      return fetch(this.url(path), { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream, application/json' }, body: JSON.stringify(body), signal, keepalive: !signal });
    }

    /* ---- messages on screen ---- */

    showGreeting() {
      this.list.replaceChildren();
      this.addMessage('assistant', this.text.greeting).classList.add('scw__message--greeting');
      this.earlier.hidden = true;
    }

    addMessage(role, content, options = {}) {
      const item = make('li', 'scw__message scw__message--' + role);
      item.append(make('span', 'scw__sr', { text: (role === 'user' ? this.text.you : this.text.assistant) + ': ' }));
      const body = item.appendChild(make('div', 'scw__bubble'));
      item.content = content;
      if (role === 'user') body.textContent = content;
      else renderMarkdown(body, content);
      if (options.status) this.setStatus(item, options.status);
      if (options.id) item.dataset.id = options.id;
      if (options.before) this.list.insertBefore(item, options.before);
      else this.list.append(item);
      this.scrollDown();
      return item;
    }

    setStatus(item, status) {
      item.dataset.status = status;
      /* a reply that failed before its first word is only the error below it */
      item.hidden = status === 'error' && !item.content;
      if (status === 'stopped' && !item.querySelector('.scw__note')) item.append(make('span', 'scw__note', { text: this.text.stopped }));
    }

    replyItem(id) {
      let item = this.replies.get(id);
      if (!item || !item.isConnected) {
        item = this.addMessage('assistant', '', { id, status: 'streaming' });
        this.replies.set(id, item);
      }
      return item;
    }

    scrollDown() {
      const body = this.list.parentElement;
      body.scrollTop = body.scrollHeight;
    }

    setBusy(busy) {
      this.sendButton.hidden = busy;
      this.stopButton.hidden = !busy;
      this.typing.hidden = !busy;
      if (!busy && document.activeElement === this.stopButton) this.input.focus();
    }

    showError(message) {
      this.error.firstElementChild.textContent = message;
      this.error.hidden = false;
      this.setBusy(false);
    }

    /* ---- sending and streaming ---- */

    submit() {
      const text = this.input.value.trim();
      if (!text || this.stream) return;
      this.input.value = '';
      this.send(text, uuid4());
    }

    async send(text, clientMessageId, resent) {
      if (this.stream) return;
      let saved = this.storage.read();
      if (!saved.sessionId) {
        saved = this.storage.update({ sessionId: uuid4() });
        this.list.replaceChildren();
      }
      this.sessionId = saved.sessionId;
      this.pending = { text, clientMessageId };
      this.error.hidden = true;
      if (!this.list.querySelector(`[data-client="${clientMessageId}"]`)) {
        this.addMessage('user', text).dataset.client = clientMessageId;
      }
      const stream = (this.stream = { events: 0 });
      this.setBusy(true);
      let response;
      try {
        response = await this.connect(stream, (signal) => this.post('/messages', { session_id: this.sessionId, message: text, client_message_id: clientMessageId }, signal));
      } catch (error) {
        return this.fail(stream);
      }
      if (!response.ok) {
        this.end(stream);
        const body = await response.json().catch(() => ({}));
        const code = body.error && body.error.code;
        if (!resent && (code === 'session_ended' || code === 'session_not_yours')) {
          /* the session ended elsewhere: start a new one and send the message there */
          this.storage.update({ sessionId: uuid4() });
          return this.send(text, clientMessageId, true);
        }
        const wait = response.headers.get('Retry-After') || '30';
        return this.showError(response.status === 429 ? this.text.rateLimited.replace('{s}', wait) : this.text.error);
      }
      this.broadcast('turn');
      await this.follow(stream, response);
    }

    /* One connection of the stream, with its own abort controller, which the watchdog trips
       when nothing has come for timing.stall ms. */
    connect(stream, request) {
      const controller = (stream.controller = new AbortController());
      stream.alive = () => {
        clearTimeout(stream.timer);
        stream.timer = setTimeout(() => controller.abort(), ChatWidget.timing.stall);
      };
      stream.alive();
      return request(controller.signal);
    }

    end(stream) {
      clearTimeout(stream.timer);
      if (this.stream === stream) this.stream = null;
    }

    /* Stops following (reset, a reload of the history, leaving the page): no error shows. */
    cancel() {
      const stream = this.stream;
      if (!stream) return;
      this.end(stream);
      stream.controller.abort();
    }

    fail(stream) {
      if (this.stream !== stream) return;
      this.end(stream);
      this.showError(this.text.error);
    }

    /* Follows the reply to its end, reconnecting from its last event after a break or a stall. */
    async follow(stream, response) {
      const { backoff, attempts } = ChatWidget.timing;
      for (let failures = 0; ; ) {
        const seen = stream.events;
        if (response && response.ok && (await this.read(stream, response))) return;
        if (this.stream !== stream) return;
        failures = stream.events > seen ? 1 : failures + 1;
        if (!stream.id || failures > attempts) break;
        await new Promise((resolve) => setTimeout(resolve, backoff * 2 ** Math.min(failures - 1, 4) * (0.5 + random())));
        if (this.stream !== stream) return;
        const headers = stream.lastEventId ? { 'Last-Event-ID': stream.lastEventId } : {};
        try {
          response = await this.connect(stream, (signal) => fetch(this.url(`/messages/${stream.id}/stream`, { session_id: this.sessionId }), { headers, signal }));
        } catch (error) {
          response = null;
        }
      }
      this.fail(stream);
    }

    /* Shows one connection's events; true once the reply has ended (or the stream is dropped). */
    async read(stream, response) {
      let item = stream.id ? this.replyItem(stream.id) : null;
      try {
        for await (const event of readEvents(response, stream.alive)) {
          if (this.stream !== stream) return true;
          stream.events += 1;
          const data = event.data;
          if (event.event === 'start') {
            stream.id = data.assistant_message_id;
            item = this.replyItem(stream.id);
            this.setStatus(item, 'streaming');
            /* From the reply's start (a new turn, a retry replaying it): it replaces what was shown */
            if (/:0$/.test(event.id || ':0')) this.render(item, '');
            if (stream.stopRequested) this.stop();
          } else if (event.event === 'delta' && item) {
            this.typing.hidden = true;
            stream.lastEventId = event.id;
            this.render(item, item.content + data.text);
          } else if (event.event === 'done' && item) {
            this.setStatus(item, data.status);
            this.live.textContent = item.content;
            this.pending = null;
            this.end(stream);
            this.setBusy(false);
            return true;
          } else if (event.event === 'error') {
            if (item) this.setStatus(item, 'error');
            this.fail(stream);
            return true;
          }
        }
      } catch (error) {
        /* broken, or stalled and aborted by the watchdog */
      }
      clearTimeout(stream.timer);
      return false;
    }

    render(item, content) {
      item.content = content;
      renderMarkdown(item.querySelector('.scw__bubble'), content);
      this.scrollDown();
    }

    async resume(id) {
      const stream = (this.stream = { id, events: 0 });
      this.setBusy(true);
      this.replyItem(id);
      let response = null;
      try {
        response = await this.connect(stream, (signal) => fetch(this.url(`/messages/${id}/stream`, { session_id: this.sessionId }), { signal }));
      } catch (error) {
        /* reconnected by follow */
      }
      if (this.stream === stream) await this.follow(stream, response);
    }

    stop() {
      if (!this.stream) return;
      if (!this.stream.id) {
        this.stream.stopRequested = true;
        return;
      }
      this.post(`/messages/${this.stream.id}/stop`, { session_id: this.sessionId }).catch(() => {});
    }

    /* ---- sessions ---- */

    async restore() {
      const saved = this.storage.read();
      if (!saved.sessionId) return this.showFresh();
      this.sessionId = saved.sessionId;
      let page;
      try {
        const response = await fetch(this.url('/history', { session_id: this.sessionId, limit: 30 }));
        if (!response.ok) return;
        page = await response.json();
      } catch (error) {
        return;
      }
      if (page.status !== 'active') {
        /* ended or abandoned: start fresh; unknown: nothing saved yet, keep the id for the first message */
        if (page.status !== 'unknown') this.storage.update({ sessionId: null });
        return this.showFresh();
      }
      this.cancel();
      this.setBusy(false);
      this.error.hidden = true;
      this.pending = null;
      this.list.replaceChildren();
      this.replies.clear();
      this.renderPage(page);
      const [asked, last] = page.messages.slice(-2);
      if (!last || last.role !== 'assistant' || (last.status !== 'streaming' && last.status !== 'error')) return;
      /* An unfinished last turn: its Retry sends the same message with the same id */
      if (asked && asked.role === 'user' && asked.client_message_id) this.pending = { text: asked.content, clientMessageId: asked.client_message_id };
      if (last.status === 'streaming') this.resume(last.id);
      else if (this.pending) this.showError(this.text.error);
    }

    renderPage(page, before) {
      for (const message of page.messages) {
        const item = this.addMessage(message.role, message.content, { id: message.id, status: message.status, before });
        if (message.role === 'assistant') this.replies.set(message.id, item);
        else if (message.client_message_id) item.dataset.client = message.client_message_id;
      }
      this.nextBefore = page.next_before;
      this.earlier.hidden = !this.nextBefore;
    }

    async loadEarlier() {
      if (!this.nextBefore) return;
      const body = this.list.parentElement;
      const height = body.scrollHeight;
      try {
        const response = await fetch(this.url('/history', { session_id: this.sessionId, limit: 30, before: this.nextBefore }));
        if (!response.ok) return;
        this.renderPage(await response.json(), this.list.firstElementChild);
      } catch (error) {
        return;
      }
      body.scrollTop = body.scrollHeight - height;
    }

    showFresh() {
      this.cancel();
      this.pending = null;
      this.sessionId = null;
      this.replies.clear();
      this.error.hidden = true;
      this.setBusy(false);
      this.showGreeting();
    }

    reset(end) {
      const sessionId = this.storage.read().sessionId;
      if (sessionId) this.post('/sessions/end', { session_id: sessionId }).catch(() => {});
      this.storage.update({ sessionId: null });
      this.broadcast('reset');
      this.showFresh();
      this.confirm.hidden = true;
      if (end) {
        this.live.textContent = this.text.ended;
        this.close();
      } else this.input.focus();
    }

    /* ---- other tabs ---- */

    broadcast(type) {
      if (this.channel) this.channel.postMessage({ type, sessionId: this.sessionId });
    }

    onBroadcast(message) {
      if (message.type === 'reset') this.showFresh();
      else if (message.type === 'turn' && !this.stream) setTimeout(() => this.restore(), 150);
    }

    sync() {
      const sessionId = this.storage.read().sessionId || null;
      if (sessionId === (this.sessionId || null)) return;
      if (!sessionId) this.showFresh();
      else this.restore();
    }
  }

  Object.assign(ChatWidget.prototype, window.ScwPanel);
  customElements.define('chat-widget', ChatWidget);
})();
