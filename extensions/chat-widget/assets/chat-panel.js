/* The <chat-widget>'s panel: its markup, and opening, closing and keyboard use (a dialog with a
   focus trap, a menu, Escape). Methods of the element, added by chat-widget.js. */
(() => {
  if (window.ScwPanel || !window.ScwText) return;
  const { make } = window.ScwText;
  let counter = 0;

  window.ScwPanel = {
    build() {
      const id = 'scw-' + ++counter;
      const t = this.text;
      this.launcher = make('button', 'scw__launcher', { type: 'button', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', 'aria-controls': id, 'data-action': 'open' });
      this.launcher.append(make('span', 'scw__launcher-icon', { 'aria-hidden': 'true' }), make('span', '', { text: t.launcher }));
      this.panel = make('div', 'scw__panel', { id, role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': id + '-title' });
      this.panel.hidden = true;
      this.panel.innerHTML = `
        <div class="scw__header">
          <h2 class="scw__title" id="${id}-title"></h2>
          <button type="button" class="scw__icon" data-action="menu" aria-haspopup="menu" aria-expanded="false" aria-controls="${id}-menu">⋯</button>
          <div class="scw__menu" id="${id}-menu" role="menu" hidden>
            <button type="button" role="menuitem" data-action="reset"></button>
            <button type="button" role="menuitem" data-action="end"></button>
          </div>
          <button type="button" class="scw__icon" data-action="close">×</button>
        </div>
        <div class="scw__confirm" role="alertdialog" aria-labelledby="${id}-confirm" hidden>
          <p id="${id}-confirm"></p>
          <button type="button" class="scw__button" data-action="confirm-end"></button>
          <button type="button" class="scw__button scw__button--quiet" data-action="cancel-end"></button>
        </div>
        <div class="scw__body">
          <button type="button" class="scw__earlier" data-action="earlier" hidden></button>
          <ol class="scw__messages"></ol>
          <div class="scw__typing" hidden><span class="scw__sr"></span><i></i><i></i><i></i></div>
          <div class="scw__error" role="alert" hidden><span></span> <button type="button" class="scw__button" data-action="retry"></button></div>
        </div>
        <form class="scw__composer">
          <label class="scw__sr" for="${id}-input"></label>
          <textarea id="${id}-input" rows="1" maxlength="4000"></textarea>
          <button type="submit" class="scw__button scw__send"></button>
          <button type="button" class="scw__button scw__stop" data-action="stop" hidden></button>
        </form>
        <div class="scw__sr" aria-live="polite"></div>`;
      const q = (selector) => this.panel.querySelector(selector);
      const label = (selector, value, attribute) => {
        const node = q(selector);
        if (attribute) node.setAttribute(attribute, value);
        else node.textContent = value;
        return node;
      };
      label('.scw__title', t.title);
      label('[data-action=menu]', t.menu, 'aria-label');
      label('[data-action=close]', t.close, 'aria-label');
      label('[data-action=reset]', t.reset);
      label('[data-action=end]', t.end);
      label('.scw__confirm p', t.endConfirm);
      label('[data-action=confirm-end]', t.end);
      label('[data-action=cancel-end]', t.cancel);
      label('.scw__typing span', t.typing);
      label('[data-action=retry]', t.retry);
      label('.scw__composer label', t.inputLabel);
      label('.scw__send', t.send);
      label('.scw__stop', t.stop);
      this.earlier = label('.scw__earlier', t.loadEarlier);
      this.input = label('textarea', t.placeholder, 'placeholder');
      this.menu = q('.scw__menu');
      this.confirm = q('.scw__confirm');
      this.list = q('.scw__messages');
      this.typing = q('.scw__typing');
      this.error = q('.scw__error');
      this.form = q('form');
      this.sendButton = q('.scw__send');
      this.stopButton = q('.scw__stop');
      this.live = q('[aria-live]');
      this.append(this.launcher, this.panel);
    },


    /* ---- opening, closing, keyboard ---- */
    open(focus = true) {
      this.panel.hidden = false;
      this.launcher.setAttribute('aria-expanded', 'true');
      this.classList.add('scw--open');
      this.storage.update({ open: true });
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
      this.launcher.focus();
    },

    toggleMenu(show) {
      this.menu.hidden = !show;
      this.panel.querySelector('[data-action=menu]').setAttribute('aria-expanded', String(show));
      if (show) this.menu.querySelector('button').focus();
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
        const items = [...this.menu.querySelectorAll('button')];
        const next = items.indexOf(document.activeElement) + (event.key === 'ArrowDown' ? 1 : -1);
        items[(next + items.length) % items.length].focus();
      } else if (event.key === 'Tab') {
        const focusable = [...this.panel.querySelectorAll('button, textarea, a[href]')].filter((node) => !node.closest('[hidden]') && !node.disabled);
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
