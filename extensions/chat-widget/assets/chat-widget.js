/* <chat-widget>: the storefront chat (docs/widget.md). */
(() => {
  if (customElements.get('chat-widget') || !window.ScwStorage || !window.ScwText || !window.ScwPanel || !window.ScwCards || !window.ScwDirect || !window.ScwSessions || !window.ScwLive) return;
  const { ChatStorage, uuid4 } = window.ScwStorage;
  const { make, renderMarkdown, readEvents, random } = window.ScwText;

  class ChatWidget extends HTMLElement {
    /* ms (docs/widget.md); tests shorten them */
    static timing = { stall: 45000, backoff: 1000, attempts: 5, liveBackoff: 1000, liveCap: 30000, heartbeat: 30000, typist: 5000 };

    connectedCallback() {
      if (this.panel) return;
      this.text = JSON.parse(this.querySelector('[data-scw-text]').textContent);
      this.proxy = this.dataset.proxy;
      this.askButtons = [...document.querySelectorAll('[data-scw-ask]')];
      const own = this.askButtons.find((button) => button.dataset.conversation === 'product' && button.dataset.product);
      if (own) this.dataset.product = own.dataset.product;
      this.productConversation = own ? own.dataset.product : null;
      this.storage = new ChatStorage(this.dataset.shop + (own ? ':product:' + own.dataset.product : ''));
      this.onAsk = () => {
        this.open();
        this.input.focus();
      };
      for (const button of this.askButtons) {
        button.hidden = false;
        button.addEventListener('click', this.onAsk);
      }
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
      this.connectLive();
      const saved = this.storage.read();
      if (saved.sessionId) this.restore();
      else this.showGreeting();
      if (saved.open) this.open(false);
    }

    disconnectedCallback() {
      for (const button of this.askButtons) button.removeEventListener('click', this.onAsk);
      this.removeEventListener('click', this.onClick);
      this.removeEventListener('keydown', this.onKey);
      window.removeEventListener('storage', this.onStorage);
      if (this.channel) this.channel.close();
      this.disconnectLive();
      this.cancel();
    }

    url(path, params) {
      return this.proxy + path + (params ? '?' + new URLSearchParams(params) : '');
    }

    post(path, body, signal) {
      return fetch(this.url(path), { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream, application/json' }, body: JSON.stringify(body), signal, keepalive: !signal });
    }

    showGreeting() {
      this.list.replaceChildren();
      this.addMessage('assistant', this.text.greeting).classList.add('scw__message--greeting');
      this.earlier.hidden = true;
    }

    addMessage(role, content, options = {}) {
      const item = make('li', 'scw__message scw__message--' + role);
      if (role === 'team') item.append(make('span', 'scw__author', { text: this.teamName(options.author) }));
      else item.append(make('span', 'scw__sr', { text: (role === 'user' ? this.text.you : this.text.assistant) + ': ' }));
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
      const stream = (this.stream = { events: 0, sentAt: performance.now() });
      this.setBusy(true);
      /* handed over: the team answers, the assistant does not type */
      if (this.person()) this.typing.hidden = true;
      let response;
      try {
        const context = this.dataset.product ? { product: this.dataset.product, conversation: this.productConversation ? 'product' : 'shop' } : undefined;
        const body = { session_id: this.sessionId, message: text, client_message_id: clientMessageId, context };
        response = await this.connect(stream, (signal) => this.sendDirect(stream, body, signal));
      } catch (error) {
        return this.fail(stream);
      }
      if (!response.ok) {
        this.end(stream);
        const body = await response.json().catch(() => ({}));
        const code = body.error && body.error.code;
        if (!resent && (code === 'session_ended' || code === 'session_not_yours')) {
          /* ended elsewhere: a new session */
          this.storage.update({ sessionId: uuid4() });
          return this.send(text, clientMessageId, true);
        }
        const wait = response.headers.get('Retry-After') || '30';
        return this.showError(response.status === 429 ? this.text.rateLimited.replace('{s}', wait) : this.text.error);
      }
      this.broadcast('turn');
      this.hold();
      await this.follow(stream, response);
    }

    /* the watchdog aborts a connection silent for timing.stall */
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
          response = await this.connect(stream, (signal) => this.resumeDirect(stream, headers, signal));
        } catch (error) {
          response = null;
        }
      }
      this.fail(stream);
    }

    async read(stream, response) {
      let item = stream.id ? this.replyItem(stream.id) : null;
      try {
        for await (const event of readEvents(response, stream.alive)) {
          if (this.stream !== stream) return true;
          stream.events += 1;
          this.timeEvent(stream, event.event);
          const data = event.data;
          if (event.event === 'start') {
            if (!data.assistant_message_id) continue;
            stream.id = data.assistant_message_id;
            item = this.replyItem(stream.id);
            this.setStatus(item, 'streaming');
            /* a replay from the start replaces what was shown */
            if (/:0$/.test(event.id || ':0')) {
              this.render(item, '');
              this.showProducts(item, []);
            }
            if (stream.stopRequested) this.stop();
          } else if (event.event === 'delta' && item) {
            this.typing.hidden = true;
            stream.lastEventId = event.id;
            this.render(item, item.content + data.text);
          } else if (event.event === 'products' && item) {
            this.showProducts(item, data.products);
          } else if (event.event === 'done' && item) {
            this.setStatus(item, data.status);
            this.live.textContent = item.content;
            this.pending = null;
            this.end(stream);
            this.setBusy(false);
            return true;
          } else if (event.event === 'queued') {
            /* handed over: the message is saved for the team, no reply comes */
            this.pending = null;
            this.end(stream);
            this.setBusy(false);
            this.setState(Object.assign({}, this.state, data));
            return true;
          } else if (event.event === 'error') {
            if (item) this.setStatus(item, 'error');
            this.fail(stream);
            return true;
          }
        }
      } catch (error) {
        /* broken, or stalled */
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
        response = await this.connect(stream, (signal) => this.resumeDirect(stream, {}, signal));
      } catch (error) {}
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
  }

  Object.assign(ChatWidget.prototype, window.ScwPanel, window.ScwCards, window.ScwDirect, window.ScwSessions, window.ScwLive);
  customElements.define('chat-widget', ChatWidget);
})();
