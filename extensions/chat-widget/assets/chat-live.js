/* The conversation's live channel, the handover, the email offer, the badge (docs/widget.md). */
(() => {
  if (window.ScwLive || !window.ScwText || !window.ScwStorage) return;
  const { make, readEvents, random } = window.ScwText;
  const PERSON = ['waiting', 'team'];
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (match, key) => values[key] || '');
  const find = (list, name, value) => list.querySelector(`[data-${name}="${CSS.escape(String(value))}"]`);

  window.ScwLive = {
    connectLive() {
      this.sessionId = this.storage.read().sessionId;
      const live = this.liveState();
      this.handler = live.handler;
      this.unread = live.unread;
      this.showBadge();
      this.contactForm.addEventListener('submit', (event) => {
        event.preventDefault();
        this.saveContact(this.contactForm.email.value.trim());
      });
      this.beating = setInterval(() => document.visibilityState === 'visible' && this.sessionId && this.post('/sessions/heartbeat', { session_id: this.sessionId }).catch(() => {}), this.constructor.timing.heartbeat);
    },

    disconnectLive() {
      clearInterval(this.beating);
      this.unhold();
    },

    /* another session's is stale */
    liveState() {
      const live = this.storage.read().live;
      return live && live.sessionId === this.sessionId ? live : {};
    },

    keepLive(changes) {
      this.storage.update({ live: Object.assign(this.liveState(), changes, { sessionId: this.sessionId }) });
    },

    person() {
      return PERSON.includes(this.handler);
    },

    hold() {
      if (this.restoring) return;
      const want = this.sessionId && (!this.panel.hidden || this.person());
      if (this.liveStream && (!want || this.liveStream.sessionId !== this.sessionId)) this.unhold();
      if (want && !this.liveStream) this.listen();
    },

    unhold() {
      const live = this.liveStream;
      this.liveStream = null;
      if (live) live.controller.abort();
    },

    async listen() {
      const live = (this.liveStream = { sessionId: this.sessionId, lastId: this.liveState().id, failures: 0 });
      const { liveBackoff, liveCap, stall } = this.constructor.timing;
      while (this.liveStream === live) {
        let heard = false;
        let closed = null;
        const controller = (live.controller = new AbortController());
        /* the server pings every 20 s: a silent connection is a dead one */
        const alive = () => {
          clearTimeout(live.timer);
          live.timer = setTimeout(() => controller.abort(), stall);
        };
        try {
          alive();
          const headers = live.lastId ? { 'Last-Event-ID': live.lastId } : {};
          const response = await fetch(this.url('/sessions/events', { session_id: live.sessionId }), { headers, signal: controller.signal });
          live.open = response.ok;
          if (response.ok) {
            for await (const event of readEvents(response, alive)) {
              if (this.liveStream !== live) return;
              heard = true;
              if (event.id) live.lastId = event.id;
              if (event.event === 'closed') {
                closed = event.data.reason;
                break;
              }
              this.onLive(event);
              if (event.id && event.event !== 'delta' && this.liveStream === live) this.keepLive({ id: event.id });
            }
          }
        } catch (error) {}
        clearTimeout(live.timer);
        live.open = false;
        if (this.liveStream !== live) return;
        if (closed === 'replaced') return (this.liveStream = null);
        if (closed) continue;
        live.failures = heard ? 1 : live.failures + 1;
        await new Promise((resolve) => setTimeout(resolve, Math.min(liveCap, liveBackoff * 2 ** (live.failures - 1)) * (0.5 + random())));
      }
    },

    onLive({ event, data, id }) {
      if (event === 'state') return this.setState(data);
      if (event === 'message') return this.liveMessage(data);
      if (event === 'status') return this.liveStatus(data, id);
      if (event === 'typing') return this.showTypist(data.name);
      /* a reply this tab asked for comes over its own request */
      if (this.stream || !data.assistant_message_id) return;
      if (event !== 'reply' && !this.replies.has(data.assistant_message_id)) return;
      const item = this.replyItem(data.assistant_message_id);
      if (item.dataset.status !== 'streaming') return;
      if (event === 'delta') this.render(item, item.content + data.text);
      else if (event === 'products') this.showProducts(item, data.products);
    },

    liveMessage(message) {
      const stream = this.stream;
      if (stream && message.role === 'assistant' && (!stream.id || stream.id === message.id)) return;
      let item = find(this.list, 'id', message.id) || (message.client_message_id && find(this.list, 'client', message.client_message_id));
      if (item) {
        item.dataset.id = message.id;
        if (item.dataset.status === 'streaming') {
          this.render(item, message.content);
          this.setStatus(item, message.status);
          this.showProducts(item, message.products);
        }
        return;
      }
      item = this.addMessage(message.role, message.content, { id: message.id, status: message.status, author: message.author });
      if (message.role === 'assistant') {
        this.replies.set(message.id, item);
        this.showProducts(item, message.products);
      } else if (message.client_message_id) item.dataset.client = message.client_message_id;
      if (message.role === 'user') return;
      if (message.role === 'team') {
        this.typist.hidden = true;
        this.live.textContent = this.teamName(message.author) + ': ' + message.content;
      }
      if (this.panel.hidden) {
        this.unread = (this.unread || 0) + 1;
        this.keepLive({ unread: this.unread });
        this.showBadge();
      }
    },

    teamName(author) {
      return author ? fill(this.text.teamMember, { name: author }) : this.text.team;
    },

    liveStatus(data, id) {
      const text = this.text.status[data.kind];
      if (!text || (id && find(this.list, 'event', id))) return;
      const line = make('li', 'scw__event', { text: fill(text, { name: data.name }), 'data-event': id || '' });
      this.list.append(line);
      this.live.textContent = line.textContent;
      this.scrollDown();
    },

    showTypist(name) {
      this.typist.textContent = fill(this.text.teamTyping, { name });
      this.typist.hidden = false;
      clearTimeout(this.typistTimer);
      this.typistTimer = setTimeout(() => (this.typist.hidden = true), this.constructor.timing.typist);
      this.scrollDown();
    },

    setState(state) {
      if (state.status === 'ended' || state.status === 'abandoned') {
        /* the transcript stays, the next message starts afresh */
        this.storage.update({ sessionId: null });
        this.sessionId = null;
        state = {};
      }
      this.state = state;
      this.handler = state.handler || 'assistant';
      if (this.sessionId) this.keepLive({ handler: this.handler });
      this.showBanner();
      this.hold();
    },

    showBanner() {
      const t = this.text;
      const state = this.state || {};
      const person = this.person();
      const email = this.liveState().email;
      const offer = person && state.team_online === false && !state.contact_email;
      this.banner.hidden = !person;
      this.menu.querySelector('[data-action=handover]').hidden = person;
      this.banner.firstElementChild.textContent = t.personAnswers + (offer ? ' ' + t.nobodyOnline : '');
      this.contactForm.hidden = !offer;
      this.contactNote.hidden = !state.contact_email && !this.contactError;
      this.contactNote.textContent = this.contactError || (email ? fill(t.emailSaved, { email }) : t.emailKept);
    },

    async saveContact(email) {
      const response = await this.post('/sessions/contact', { session_id: this.sessionId, email }).catch(() => null);
      this.contactError = response && response.ok ? null : response && response.status === 400 ? this.text.emailInvalid : this.text.error;
      if (!this.contactError) {
        this.keepLive({ email });
        this.state = Object.assign({}, this.state, { contact_email: true });
      }
      this.showBanner();
    },

    async handover() {
      this.input.focus();
      if (!this.sessionId) this.sessionId = this.storage.update({ sessionId: window.ScwStorage.uuid4() }).sessionId;
      const response = await this.post('/sessions/handover', { session_id: this.sessionId }).catch(() => null);
      if (response && response.ok) this.setState(Object.assign({}, this.state, await response.json()));
      else this.showError(this.text.error);
    },

    showBadge() {
      this.badge.hidden = !this.unread;
      this.badge.firstElementChild.textContent = this.unread > 9 ? '9+' : this.unread;
      this.badge.lastElementChild.textContent = this.unread ? fill(this.text.unread, { n: this.unread }) : '';
    },

    markRead() {
      if (!this.unread) return;
      this.unread = 0;
      if (this.sessionId) this.keepLive({ unread: 0 });
      this.showBadge();
    },
  };
})();
