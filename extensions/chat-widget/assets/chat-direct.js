/* Replies from the app's own host when the app proxy buffers them (docs/widget.md). */
(() => {
  if (window.ScwDirect) return;
  /* a buffering proxy: the first event late, the rest with it */
  const BUFFERED = { firstAfter: 250, spread: 60, deltas: 3 };

  window.ScwDirect = {
    directMode() {
      return this.dataset.directUrl ? this.dataset.directMode || 'auto' : 'never';
    },

    wantsDirect() {
      const mode = this.directMode();
      if (mode === 'never' || this.directDown) return false;
      return mode === 'always' || this.storage.read().direct === true;
    },

    async ticket(fresh) {
      const held = this.heldTicket;
      if (!fresh && held && held.sessionId === this.sessionId && held.until > Date.now()) return held.ticket;
      const response = await this.post('/sessions/ticket', { session_id: this.sessionId });
      if (!response.ok) throw new Error('no ticket: ' + response.status);
      const body = await response.json();
      this.heldTicket = { ticket: body.ticket, sessionId: this.sessionId, until: Date.now() + (body.expires_in - 60) * 1000 };
      return body.ticket;
    },

    async directFetch(path, init, params) {
      const url = this.dataset.directUrl + path + (params ? '?' + new URLSearchParams(params) : '');
      for (let attempt = 0; ; attempt += 1) {
        const headers = Object.assign({}, init.headers, { 'X-Chat-Ticket': await this.ticket(attempt > 0) });
        const response = await fetch(url, Object.assign({}, init, { headers, mode: 'cors', credentials: 'omit' }));
        if (response.status !== 401 || attempt > 0) return response;
        const body = await response.clone().json().catch(() => ({}));
        const code = (body.error && body.error.code) || '';
        if (!code.startsWith('ticket_')) return response;
      }
    },

    /* the same message id makes a retry through the proxy the same turn */
    async sendDirect(stream, body, signal) {
      if (this.wantsDirect()) {
        try {
          const response = await this.directFetch('/messages', { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream, application/json' }, body: JSON.stringify(body), signal });
          stream.via = 'direct';
          return response;
        } catch (error) {
          if (signal.aborted) throw error;
          this.directDown = true;
          console.info('[chat] the direct stream host cannot be reached; using the app proxy');
        }
      }
      stream.via = 'proxy';
      return this.post('/messages', body, signal);
    },

    async resumeDirect(stream, headers, signal) {
      const params = { session_id: this.sessionId };
      if (stream.via === 'direct' || (!stream.via && this.wantsDirect())) {
        try {
          const response = await this.directFetch(`/messages/${stream.id}/stream`, { headers, signal }, params);
          stream.via = 'direct';
          return response;
        } catch (error) {
          if (signal.aborted) throw error;
          this.directDown = true;
        }
      }
      stream.via = 'proxy';
      return fetch(this.url(`/messages/${stream.id}/stream`, params), { headers, signal });
    },

    timeEvent(stream, name) {
      const now = performance.now();
      if (name === 'start') stream.startedAt = now;
      else if (name === 'delta') stream.deltas = (stream.deltas || 0) + 1;
      else if (name === 'done' && stream.via === 'proxy' && stream.sentAt && this.directMode() === 'auto') {
        const late = stream.startedAt - stream.sentAt >= BUFFERED.firstAfter;
        const together = now - stream.startedAt <= BUFFERED.spread;
        if (late && together && stream.deltas >= BUFFERED.deltas && !this.storage.read().direct) {
          this.storage.update({ direct: true });
          console.info('[chat] the app proxy delivered a streamed reply all at once: streaming directly from now on');
        }
      }
    },
  };
})();
