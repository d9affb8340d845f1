/* The team's live inbox (docs/live.md): its event stream, the three queues, and the name a team
   member shows shoppers. The stream's Authorization header carries the session token, which
   EventSource cannot send: it is read with fetch, and parsed here. */
(() => {
  const { api, call, make, toast, when, pages } = window.scwDashboard;
  const $ = (selector, root = document) => root.querySelector(selector);
  const SILENT_FOR = 45000; /* the server says something every 20 s: past this the connection is dead */

  /* Calls `read` for a burst of events at most twice: one read in flight, one more after it. */
  function coalesce(read) {
    let running = null;
    let again = false;
    return function schedule() {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          do {
            again = false;
            await read();
          } while (again);
        } finally {
          running = null;
        }
      })();
      return running;
    };
  }

  /* One server-sent event per blank line: `event:`, `data:` (joined by newlines), `id:`. */
  async function readEvents(response, onEvent, alive) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = { type: 'message', data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      alive();
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop(); /* a line not yet ended */
      for (const line of lines) {
        if (line === '') {
          if (event.data.length) {
            let data = null;
            try {
              data = JSON.parse(event.data.join('\n'));
            } catch (error) {
              data = null;
            }
            onEvent(event.type, data);
          }
          event = { type: 'message', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue; /* a keep-alive */
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event.type = text;
        else if (field === 'data') event.data.push(text);
      }
    }
  }

  /* Holds the inbox's event stream for as long as the page is open. The server ends it after
     LIVE_STREAM_SECONDS (its session token expires): then again at once, with a fresh token;
     after a failure with a growing, jittered wait. `onState` hears 'live' and 'reconnecting'. */
  function followInbox(onEvent, onState = () => {}) {
    let failures = 0;
    let controller = null;
    let stopped = false;
    const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

    async function connectOnce() {
      controller = new AbortController();
      let watchdog = null;
      const alive = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), SILENT_FOR);
      };
      let ready = false;
      try {
        alive();
        const response = await call('/api/admin/inbox/events', { signal: controller.signal, headers: { Accept: 'text/event-stream' } });
        if (!response.ok || !response.body) throw new Error('inbox stream refused (' + response.status + ')');
        await readEvents(response, (type, data) => {
          if (type === 'ready') {
            ready = true;
            failures = 0;
            onState('live');
          }
          onEvent(type, data || {});
        }, alive);
      } finally {
        clearTimeout(watchdog);
      }
      /* A stream that ends before it said `ready` is a failure, not the server's timeout. */
      if (!ready) throw new Error('inbox stream ended early');
    }

    (async () => {
      while (!stopped) {
        try {
          await connectOnce();
          continue; /* ended by the server: again at once */
        } catch (error) {
          if (stopped) return;
          failures += 1;
          onState('reconnecting');
        }
        const ceiling = Math.min(30000, 1000 * 2 ** Math.min(failures - 1, 5));
        await wait(ceiling / 2 + Math.random() * (ceiling / 2));
      }
    })();
    const stop = () => {
      stopped = true;
      if (controller) controller.abort();
    };
    window.addEventListener('pagehide', stop);
    return stop;
  }

  /* "less than a minute", "4 min", "2 h 5 min", "3 days" */
  function waited(seconds) {
    const minutes = Math.floor(seconds / 60);
    if (minutes < 1) return 'less than a minute';
    if (minutes < 60) return minutes + ' min';
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + ' h' + (minutes % 60 ? ' ' + (minutes % 60) + ' min' : '');
    const days = Math.floor(hours / 24);
    return days + (days === 1 ? ' day' : ' days');
  }

  /* A time today, a date before */
  function recent(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    const today = date.toDateString() === new Date().toDateString();
    return today ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : date.toLocaleDateString();
  }

  const hidden = (text) => make('span', text, 'visually-hidden');
  const speakers = { user: 'Shopper', assistant: 'Assistant', team: 'Team' };

  function preview(conversation) {
    const last = conversation.last_message;
    if (!last) return make('span', 'No messages yet', 'inbox__preview subdued');
    const node = make('span', null, 'inbox__preview');
    const text = last.content || (last.role === 'assistant' ? 'Replying…' : '');
    node.append(make('strong', (speakers[last.role] || last.role) + ': '), text);
    return node;
  }

  /* One conversation of a queue: all of it a link to the conversation. Shopper text goes in
     as text only. */
  function item(conversation, queue, started) {
    const li = make('li', null, 'inbox__item' + (conversation.unread ? ' inbox__item--unread' : ''));
    const link = make('a', null, 'inbox__link');
    link.href = '/conversations/' + encodeURIComponent(conversation.id) + '?from=inbox';
    link.dataset.id = conversation.id;
    const top = make('span', null, 'inbox__top');
    const who = make('span', null, 'inbox__who');
    if (conversation.unread) who.append(make('span', null, 'dot dot--unread'), hidden('Unread: '));
    who.append(make('span', conversation.first_question || 'A conversation', 'inbox__title'));
    const meta = make('span', null, 'inbox__meta');
    if (queue === 'waiting' && conversation.waiting_seconds !== null) {
      const since = make('span', 'waiting ' + waited(conversation.waiting_seconds), 'inbox__waited');
      since.dataset.seconds = conversation.waiting_seconds;
      since.dataset.started = started;
      since.title = 'Since ' + when(conversation.waiting_since);
      meta.append(since);
    } else if (queue === 'team' && conversation.assignee) {
      meta.append(make('span', 'With ' + conversation.assignee.name, 'inbox__holder'));
    } else {
      const active = make('span', recent(conversation.last_activity_at), 'subdued');
      active.title = when(conversation.last_activity_at);
      meta.append(active);
    }
    top.append(who, meta);
    const details = make('span', null, 'inbox__details');
    const shopper = make('span', null, 'inbox__shopper');
    if (conversation.online) shopper.append(make('span', null, 'dot dot--online'), 'Online');
    else shopper.append(make('span', null, 'dot dot--offline'), 'Offline');
    shopper.append(' · ' + (conversation.customer_id ? 'Customer ' + conversation.customer_id : 'Guest'));
    details.append(shopper);
    if (conversation.contact_email) details.append(make('span', conversation.contact_email, 'inbox__email'));
    link.append(top, preview(conversation), details);
    li.append(link);
    return li;
  }

  function tick() {
    const now = performance.now();
    for (const node of document.querySelectorAll('[data-seconds]')) {
      const seconds = Number(node.dataset.seconds) + (now - Number(node.dataset.started)) / 1000;
      node.textContent = 'waiting ' + waited(seconds);
    }
  }

  function inbox() {
    const queues = ['waiting', 'team', 'assistant'];
    const announce = $('[data-announce]');
    const liveState = $('[data-live-state]');
    let lastWaiting = null;
    let replying = 0;
    let lookAgain = null;
    const title = document.title;

    async function read() {
      const data = await api('/api/admin/inbox');
      const started = performance.now();
      const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
      for (const queue of queues) {
        const section = $(`[data-queue=${queue}]`);
        const list = $('[data-list]', section);
        const count = data.counts[queue];
        $('[data-count]', section).textContent = count;
        list.replaceChildren(...data[queue].map((conversation) => item(conversation, queue, started)));
        $('[data-empty]', section).hidden = data[queue].length > 0;
        const more = $('[data-more-than-shown]', section);
        if (more) {
          more.hidden = count <= data[queue].length;
          more.textContent = 'Showing the latest ' + data[queue].length + ' of ' + count + '.';
        }
      }
      if (focused) {
        const again = document.querySelector(`.inbox__link[data-id="${CSS.escape(focused)}"]`);
        if (again) again.focus();
      }
      const online = data.team_online;
      $('[data-team-online]').textContent = online === 1 ? '1 team member online' : online + ' team members online';
      if (lastWaiting !== null && data.counts.waiting > lastWaiting) {
        announce.textContent = data.counts.waiting === 1 ? 'A shopper is waiting for a person.' : data.counts.waiting + ' shoppers are waiting for a person.';
      }
      lastWaiting = data.counts.waiting;
      /* A tab in the background still says someone waits */
      document.title = (lastWaiting ? '(' + lastWaiting + ') ' : '') + title;
      /* A reply being written is not announced when it ends: look again shortly, a few times. */
      const writing = queues.some((queue) => data[queue].some((c) => c.last_message && c.last_message.role === 'assistant' && !c.last_message.content));
      replying = writing ? replying + 1 : 0;
      clearTimeout(lookAgain);
      if (writing && replying <= 10) lookAgain = setTimeout(() => refresh(), 2000);
    }

    const refresh = coalesce(() => read().catch((error) => toast(error.message)));
    followInbox((type) => {
      if (type === 'ready' || type === 'inbox') refresh(); /* after `ready`: what the gap missed */
    }, (state) => {
      liveState.dataset.state = state;
      liveState.lastChild.textContent = state === 'live' ? 'Live' : 'Reconnecting…';
    });
    setInterval(tick, 15000);
    /* Who is online is not announced: it is read again every so often. */
    setInterval(() => document.visibilityState === 'visible' && refresh(), 30000);
    refresh();
    nameForm();
  }

  /* "Your name shown to shoppers": GET and PUT /api/admin/me. */
  function nameForm() {
    const form = $('[data-me]');
    if (!form) return;
    const input = form.elements.display_name;
    const error = $('[data-me-error]', form);
    api('/api/admin/me').then((me) => {
      input.value = me.display_name || '';
    }).catch((failure) => toast(failure.message));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const name = input.value.trim();
      if (!name) {
        error.textContent = 'Enter the name shoppers see when you reply.';
        error.hidden = false;
        input.focus();
        return;
      }
      try {
        const me = await api('/api/admin/me', { method: 'PUT', body: JSON.stringify({ display_name: name }) });
        input.value = me.display_name;
        toast('Shoppers now see your replies from ' + me.display_name);
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
  }

  Object.assign(window.scwDashboard, { coalesce, followInbox });
  pages.inbox = inbox;
})();
