/* One conversation: its transcript, kept live from the inbox's event stream, and the team's
   side of it (take, reply, hand back, end), as docs/live.md describes. */
(() => {
  const { api, call, make, toast, when, badge, pages, coalesce, followInbox } = window.scwDashboard;
  const $ = (selector, root = document) => root.querySelector(selector);
  const TYPING_EVERY = 3000;
  const WATCH_REPLY = 1500; /* a reply being written is not announced when it ends */
  const WATCH_REPLY_TIMES = 40;

  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  function speaker(message) {
    if (message.role === 'user') return 'Shopper';
    if (message.role === 'team') return (message.author || 'Team member') + ' · team';
    return 'Assistant';
  }

  /* A message as text only: what shoppers write is never read as HTML. */
  function render(message) {
    const item = make('li', message.content, message.role);
    item.dataset.id = message.id;
    const note = message.status === 'complete' ? '' : ' · ' + (message.status === 'streaming' ? 'writing…' : message.status);
    item.append(make('small', speaker(message) + ' · ' + when(message.created_at) + note));
    /* What the assistant looked up, and what it showed */
    for (const tool of message.tools || []) {
      const found = !tool.ok ? 'failed' : tool.matched ? 'found something' : 'found nothing';
      item.append(make('small', 'Used ' + tool.name + ' ' + tool.arguments + ' · ' + found, 'tool'));
    }
    if ((message.products || []).length) {
      const shown = make('ul', '', 'products');
      for (const product of message.products) {
        const price = product.price ? ' · ' + product.price.amount + ' ' + product.price.currency_code : '';
        shown.append(make('li', product.title + price + (product.available ? '' : ' · sold out')));
      }
      item.append(make('small', 'Showed these products:', 'tool'), shown);
    }
    return item;
  }

  function handlerText(conversation, me) {
    if (conversation.handler === 'waiting') {
      return 'Waiting for a person' + (conversation.waiting_since ? ' since ' + clock(conversation.waiting_since) : '');
    }
    if (conversation.handler === 'team' && conversation.assignee) {
      const name = conversation.assignee.name;
      return conversation.assignee.sub === me ? 'With you (' + name + ')' : 'With ' + name;
    }
    return 'With the assistant';
  }

  function conversation() {
    const id = document.body.dataset.conversationId;
    const path = '/api/admin/conversations/' + encodeURIComponent(id);
    const dialog = $('[data-confirm]');
    const list = $('[data-transcript]');
    const scroller = $('[data-transcript-scroll]');
    const more = $('[data-more]');
    const form = $('[data-reply]');
    const textarea = form.elements.message;
    const actionError = $('[data-live-error]');
    const replyError = $('[data-reply-error]');
    const order = [];
    const statuses = new Map();
    let settled = null; /* the last message that no longer changes: live reads go on from it */
    let pageAfter = null; /* "Load more": the next page of a long transcript */
    let me = null;
    let current = null;
    let watching = 0;
    let watchTimer = null;
    let unreadSeen = false;

    if (new URLSearchParams(location.search).get('from') === 'inbox') {
      const back = $('.back');
      back.href = '/inbox';
      back.textContent = '← Inbox';
      for (const tab of document.querySelectorAll('.tabs__tab')) {
        const inbox = tab.getAttribute('href') === '/inbox';
        tab.classList.toggle('tabs__tab--active', inbox);
        if (inbox) tab.setAttribute('aria-current', 'page');
        else tab.removeAttribute('aria-current');
      }
    }

    function show(c) {
      current = c;
      $('[data-meta]').replaceChildren(badge(c.status), ' Started ' + when(c.created_at) + ' · last activity ' + when(c.last_activity_at) + ' · ' + (c.customer_id ? 'customer ' + c.customer_id : 'guest') + (c.product_handle ? ' · about the product ' + c.product_handle : ''));
      const ended = c.status === 'ended';
      const mine = c.handler === 'team' && c.assignee && c.assignee.sub === me;
      const handler = $('[data-handler]');
      const said = ended ? 'Ended: the shopper starts a new conversation on their next page' : handlerText(c, me);
      if (handler.textContent !== said) handler.textContent = said;
      handler.dataset.handler = ended ? 'ended' : c.handler;
      const online = $('[data-online]');
      online.replaceChildren(make('span', null, 'dot dot--' + (c.online ? 'online' : 'offline')), c.online ? 'Shopper online' : 'Shopper offline');
      const contact = $('[data-contact]');
      contact.hidden = !c.contact_email;
      if (c.contact_email) {
        const link = make('a', c.contact_email);
        link.href = 'mailto:' + c.contact_email;
        contact.replaceChildren('Email for a reply: ', link);
      }
      $('[data-actions]').hidden = ended; /* nothing is left to do but read it, or delete it */
      $('[data-action=take]').hidden = Boolean(mine);
      $('[data-action=take]').disabled = ended;
      $('[data-action=hand-back]').disabled = ended || c.handler === 'assistant';
      $('[data-action=end]').disabled = ended;
      textarea.disabled = ended;
      $('button[type=submit]', form).disabled = ended;
      $('[data-reply-hint]').textContent = ended
        ? 'This conversation has ended.'
        : mine
          ? 'The shopper sees your reply at once, under your name.'
          : 'Sending takes the conversation: the assistant stops answering.';
    }

    function apply(messages) {
      const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
      let shopperWrote = false;
      for (const message of messages) {
        const node = render(message);
        const old = list.querySelector(`li[data-id="${CSS.escape(message.id)}"]`);
        if (old) old.replaceWith(node);
        else {
          list.append(node);
          order.push(message.id);
          if (message.role === 'user') shopperWrote = true;
        }
        statuses.set(message.id, message.status);
      }
      let index = settled === null ? 0 : order.indexOf(settled) + 1;
      while (index < order.length && statuses.get(order[index]) !== 'streaming') settled = order[index++];
      if (messages.length && atBottom) scroller.scrollTop = scroller.scrollHeight;
      return { writing: index < order.length, shopperWrote };
    }

    function markRead() {
      if (document.visibilityState !== 'visible') {
        unreadSeen = true;
        return;
      }
      unreadSeen = false;
      call(path + '/read', { method: 'POST' }).catch(() => {});
    }

    function watch(writing) {
      clearTimeout(watchTimer);
      watching = writing ? watching + 1 : 0;
      if (writing && watching <= WATCH_REPLY_TIMES) watchTimer = setTimeout(() => refresh(), WATCH_REPLY);
    }

    /* What changed since the last settled message (a page at most), and who answers now. */
    async function read(after) {
      const data = await api(path + (after ? '?after=' + encodeURIComponent(after) : ''));
      show(data.conversation);
      const seen = apply(data.messages);
      pageAfter = data.next_after;
      more.hidden = !pageAfter;
      watch(seen.writing);
      return seen;
    }

    /* A live read waits while a long transcript is still being paged through by hand. */
    const refresh = coalesce(async () => {
      if (pageAfter) return;
      try {
        if ((await read(settled)).shopperWrote) markRead();
      } catch (error) {
        toast(error.message);
      }
    });

    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        await read(pageAfter);
      } catch (error) {
        toast(error.message);
      } finally {
        more.disabled = false;
      }
    });

    async function act(action, body, errorNode) {
      errorNode.hidden = true;
      try {
        const answer = await api(path + '/' + action, { method: 'POST', body: body ? JSON.stringify(body) : undefined });
        return answer;
      } catch (error) {
        errorNode.textContent = error.message;
        errorNode.hidden = false;
        if (error.status === 409) refresh(); /* someone else has it, or it ended: show how it is */
        return null;
      }
    }

    for (const button of document.querySelectorAll('[data-action]')) {
      button.addEventListener('click', async () => {
        button.disabled = true;
        const answer = await act(button.dataset.action, null, actionError);
        if (answer) show(answer);
        else button.disabled = false;
        refresh();
      });
    }

    let lastTyping = 0;
    textarea.addEventListener('input', () => {
      const now = Date.now();
      if (!textarea.value.trim() || now - lastTyping < TYPING_EVERY) return;
      lastTyping = now;
      call(path + '/typing', { method: 'POST' }).catch(() => {});
    });
    textarea.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = textarea.value.trim();
      if (!text) {
        replyError.textContent = 'Write a reply first.';
        replyError.hidden = false;
        textarea.focus();
        return;
      }
      const send = $('button[type=submit]', form);
      send.disabled = true;
      const answer = await act('messages', { message: text }, replyError);
      send.disabled = false;
      if (answer) {
        textarea.value = '';
        lastTyping = 0;
        scroller.scrollTop = scroller.scrollHeight;
      }
      refresh();
    });

    document.addEventListener('visibilitychange', () => {
      if (unreadSeen && document.visibilityState === 'visible') markRead();
    });

    $('[data-delete]').addEventListener('click', () => {
      dialog.returnValue = ''; /* Escape must not repeat an earlier choice */
      dialog.showModal();
    });
    dialog.addEventListener('close', async () => {
      if (dialog.returnValue !== 'delete') return;
      try {
        await api(path, { method: 'DELETE' });
        window.location.href = '/?deleted=1';
      } catch (error) {
        toast(error.message);
      }
    });

    (async () => {
      try {
        me = (await api('/api/admin/me')).sub;
      } catch (error) {
        me = null;
      }
      try {
        await read(null);
        list.setAttribute('aria-live', 'polite'); /* from now on, what comes is read out */
        markRead();
        scroller.scrollTop = scroller.scrollHeight; /* the latest, where a reply goes on */
      } catch (error) {
        toast(error.message);
      }
      followInbox((type, data) => {
        if (type === 'ready' || (type === 'inbox' && data.conversation_id === id)) refresh();
      });
    })();
  }

  pages.conversation = conversation;
})();
