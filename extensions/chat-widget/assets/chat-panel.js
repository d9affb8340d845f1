/* The panel: opening, closing, the keyboard (a dialog's focus trap, a menu, Escape). */
(() => {
  if (window.ScwPanel) return;
  window.ScwPanel = {
    /* from the block's template, in the shop's language */
    build() {
      this.append(this.querySelector('template[data-scw-panel]').content.cloneNode(true));
      const q = (selector) => this.querySelector(selector);
      Object.assign(this, {
        launcher: q('.scw__launcher'),
        badge: q('.scw__badge'),
        panel: q('.scw__panel'),
        menu: q('.scw__menu'),
        confirm: q('.scw__confirm'),
        banner: q('.scw__banner'),
        contactForm: q('.scw__contact'),
        contactNote: q('.scw__contact-note'),
        earlier: q('.scw__earlier'),
        list: q('.scw__messages'),
        typing: q('.scw__typing'),
        typist: q('.scw__typist'),
        error: q('.scw__error'),
        form: q('.scw__composer'),
        input: q('textarea'),
        sendButton: q('.scw__send'),
        stopButton: q('.scw__stop'),
        live: q('[aria-live]'),
      });
    },

    open(focus = true) {
      this.panel.hidden = false;
      this.launcher.setAttribute('aria-expanded', 'true');
      this.classList.add('scw--open');
      this.storage.update({ open: true });
      this.markRead();
      if (!this.sessionId && this.follows() && !this.tried && !this.restoring) this.restore();
      this.hold();
      this.scrollDown();
      if (focus) this.input.focus();
    },

    close() {
      this.toggleMenu(false);
      this.confirm.hidden = true;
      this.panel.hidden = true;
      this.launcher.setAttribute('aria-expanded', 'false');
      this.classList.remove('scw--open');
      this.storage.update({ open: false });
      this.hold();
      this.launcher.focus();
    },

    toggleMenu(show) {
      this.menu.hidden = !show;
      this.panel.querySelector('[data-action=menu]').setAttribute('aria-expanded', String(show));
      if (show) this.menu.querySelector('button:not([hidden])').focus();
    },

    handleClick(event) {
      const target = event.target.closest('[data-action]');
      const action = target && target.dataset.action;
      if (action !== 'menu' && !this.menu.hidden) this.toggleMenu(false);
      if (!action) return;
      const actions = {
        open: () => (this.panel.hidden ? this.open() : this.close()),
        close: () => this.close(),
        menu: () => this.toggleMenu(this.menu.hidden),
        reset: () => this.reset(),
        handover: () => this.handover(),
        end: () => {
          this.confirm.hidden = false;
          this.confirm.querySelector('button').focus();
        },
        'confirm-end': () => this.reset(true),
        'cancel-end': () => {
          this.confirm.hidden = true;
          this.input.focus();
        },
        stop: () => this.stop(),
        retry: () => this.pending && this.send(this.pending.text, this.pending.clientMessageId),
        earlier: () => this.loadEarlier(),
        add: () => this.addToCart(target),
      };
      actions[action]();
    },

    handleKey(event) {
      if (this.panel.hidden) return;
      if (event.key === 'Escape') {
        event.preventDefault();
        if (!this.menu.hidden) {
          this.toggleMenu(false);
          this.panel.querySelector('[data-action=menu]').focus();
        } else if (!this.confirm.hidden) {
          this.confirm.hidden = true;
          this.input.focus();
        } else this.close();
      } else if (event.key === 'Enter' && event.target === this.input && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      } else if ((event.key === 'ArrowDown' || event.key === 'ArrowUp') && !this.menu.hidden) {
        event.preventDefault();
        const items = [...this.menu.querySelectorAll('button:not([hidden])')];
        const next = items.indexOf(document.activeElement) + (event.key === 'ArrowDown' ? 1 : -1);
        items[(next + items.length) % items.length].focus();
      } else if (event.key === 'Tab') {
        const focusable = [...this.panel.querySelectorAll('button, textarea, input, a[href]')].filter((node) => !node.closest('[hidden]') && !node.disabled);
        const first = focusable[0];
        const last = focusable[focusable.length - 1];
        if (event.shiftKey && document.activeElement === first) {
          event.preventDefault();
          last.focus();
        } else if (!event.shiftKey && document.activeElement === last) {
          event.preventDefault();
          first.focus();
        }
      }
    }
  };
})();
