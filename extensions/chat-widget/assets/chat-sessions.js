/* The session: restoring, paging back, starting afresh, ending, other tabs (docs/widget.md). */
(() => {
  if (window.ScwSessions) return;

  window.ScwSessions = {
    /* the live stream waits for the history, which would draw over it */
    async restore() {
      this.restoring = true;
      try {
        await this.load();
      } finally {
        this.restoring = false;
        this.hold();
      }
    },

    /* a customer's conversation follows them across devices */
    follows() {
      return Boolean(this.dataset.customerId) && !this.productConversation;
    },

    async load() {
      const saved = this.storage.read();
      if (!saved.sessionId && !this.follows()) return this.showFresh();
      const id = saved.sessionId || (this.tried = this.tried || window.ScwStorage.uuid4());
      this.sessionId = saved.sessionId;
      let page;
      try {
        const response = await fetch(this.url('/history', { session_id: id, limit: 30, customer: this.follows() ? 1 : 0 }));
        if (!response.ok) return;
        page = await response.json();
      } catch (error) {
        return;
      }
      /* the shopper wrote meanwhile: their session stands */
      if (this.sessionId !== saved.sessionId) return;
      if (page.status !== 'active') {
        /* ended or abandoned: start fresh; unknown: nothing saved yet, keep the id for the first message */
        if (page.status !== 'unknown' && saved.sessionId) this.storage.update({ sessionId: null });
        return this.showFresh();
      }
      if (page.session_id !== saved.sessionId) this.storage.update({ sessionId: page.session_id });
      this.sessionId = page.session_id;
      this.cancel();
      this.setBusy(false);
      this.error.hidden = true;
      this.pending = null;
      this.list.replaceChildren();
      this.replies.clear();
      this.renderPage(page);
      this.setState(Object.assign({}, this.state, { handler: page.handler }));
      const [asked, last] = page.messages.slice(-2);
      if (!last || last.role !== 'assistant' || (last.status !== 'streaming' && last.status !== 'error')) return;
      /* an unfinished last turn: Retry sends it again with the same id */
      if (asked && asked.role === 'user' && asked.client_message_id) this.pending = { text: asked.content, clientMessageId: asked.client_message_id };
      if (last.status === 'streaming') this.resume(last.id);
      else if (this.pending) this.showError(this.text.error);
    },

    renderPage(page, before) {
      for (const message of page.messages) {
        const item = this.addMessage(message.role, message.content, { id: message.id, status: message.status, author: message.author, before });
        if (message.role === 'assistant') {
          this.replies.set(message.id, item);
          this.showProducts(item, message.products);
        }
        else if (message.client_message_id) item.dataset.client = message.client_message_id;
      }
      this.nextBefore = page.next_before;
      this.earlier.hidden = !this.nextBefore;
    },

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
    },

    showFresh() {
      this.cancel();
      this.pending = null;
      this.sessionId = null;
      this.replies.clear();
      this.error.hidden = true;
      this.setBusy(false);
      this.showGreeting();
      this.setState({});
    },

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
    },

    broadcast(type) {
      if (this.channel) this.channel.postMessage({ type, sessionId: this.sessionId });
    },

    onBroadcast(message) {
      if (message.type === 'reset') this.showFresh();
      /* a connected live stream brings the turn itself */
      else if (message.type === 'turn' && !this.stream && !(this.liveStream && this.liveStream.open)) setTimeout(() => this.restore(), 150);
    },

    sync() {
      const sessionId = this.storage.read().sessionId || null;
      if (sessionId === (this.sessionId || null)) return;
      if (!sessionId) this.showFresh();
      else this.restore();
    },
  };
})();
