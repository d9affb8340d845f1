/* The dashboard's pages: each reads /api/admin/ with an App Bridge session token. The live
   pages (inbox.js, conversation.js) add themselves to window.scwDashboard.pages. */
(() => {
  const body = document.body;
  const $ = (selector, root = document) => root.querySelector(selector);
  let cached = null;

  /* In the Shopify admin App Bridge issues session tokens; in development the dev login does. */
  async function sessionToken() {
    if (window.shopify && typeof window.shopify.idToken === 'function') return window.shopify.idToken();
    if (cached && cached.until > Date.now()) return cached.token;
    const response = await fetch('/dev/session-token', { credentials: 'same-origin' });
    if (!response.ok) {
      window.location.href = '/dev/login';
      throw new Error('not logged in');
    }
    const { token } = await response.json();
    cached = { token, until: Date.now() + 45000 };
    return token;
  }

  async function call(path, options = {}, retried = false) {
    const token = await sessionToken();
    const headers = Object.assign({ Authorization: 'Bearer ' + token }, options.body ? { 'Content-Type': 'application/json' } : {}, options.headers);
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401 && response.headers.get('X-Shopify-Retry-Invalid-Session-Request') && !retried) {
      cached = null;
      return call(path, options, true);
    }
    return response;
  }

  async function api(path, options) {
    const response = await call(path, options);
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || 'Request failed (' + response.status + ')');
      error.status = response.status;
      error.code = data.error && data.error.code;
      throw error;
    }
    return data;
  }

  function toast(message) {
    const node = $('.toast');
    node.textContent = message;
    node.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => (node.hidden = true), 4000);
  }

  function make(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');
  const badge = (status) => make('span', status, 'badge badge--' + status);

  function filterParams(form) {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) params.set(key, value);
    return params;
  }

  async function download(path, fallbackName) {
    const response = await call(path);
    if (!response.ok) return toast('Export failed (' + response.status + ')');
    const blob = await response.blob();
    const match = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
    const link = make('a');
    link.href = URL.createObjectURL(blob);
    link.download = match ? match[1] : fallbackName;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  /* ---- conversations ---- */
  function conversations() {
    const form = $('[data-filters]');
    const rows = $('[data-rows]');
    const more = $('[data-more]');
    let cursor = null;

    let generation = 0;

    async function load(append) {
      const params = filterParams(form);
      if (append && cursor) params.set('cursor', cursor);
      const mine = ++generation;
      try {
        const page = await api('/api/admin/conversations?' + params);
        if (mine !== generation) return; /* a newer filter was asked for meanwhile */
        if (!append) rows.replaceChildren();
        for (const item of page.conversations) {
          const row = make('tr');
          const link = make('a', when(item.created_at));
          link.href = '/conversations/' + item.id;
          row.append(make('td'), make('td', item.preview || '—', 'preview'), make('td'), make('td', item.customer_id || 'Guest'), make('td', item.message_count, 'num'));
          row.cells[0].append(link);
          row.cells[2].append(badge(item.status));
          row.addEventListener('click', (event) => event.target.tagName !== 'A' && link.click());
          rows.append(row);
        }
        cursor = page.next_cursor;
        more.hidden = !cursor;
        $('[data-empty]').hidden = rows.children.length > 0;
      } catch (error) {
        toast(error.message);
      }
    }

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      load(false);
    });
    more.addEventListener('click', () => load(true));
    for (const button of document.querySelectorAll('[data-export]')) {
      button.addEventListener('click', () => {
        const params = filterParams(form);
        params.set('format', button.dataset.export);
        download('/api/admin/export?' + params, 'conversations.' + button.dataset.export);
      });
    }
    api('/api/admin/data-requests').then((data) => {
      if (!data.data_requests.length) return;
      const banner = $('[data-requests]');
      for (const request of data.data_requests) {
        const item = make('li', 'Customer ' + request.customer_id + (request.customer_email ? ' (' + request.customer_email + ')' : '') + ', ' + when(request.created_at) + ' ');
        const button = make('button', 'Export their conversations', 'button button--plain');
        button.type = 'button';
        button.addEventListener('click', () => download('/api/admin/export?format=jsonl&customer_id=' + request.customer_id, 'customer.jsonl'));
        item.append(button);
        $('ul', banner).append(item);
      }
      banner.hidden = false;
    }).catch(() => {});
    load(false);
  }

  /* ---- statistics ---- */
  function chart(container, days) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    const width = Math.max(300, container.clientWidth || 600);
    const height = 180;
    const top = Math.max(1, ...days.map((d) => d.conversations));
    const step = width / days.length;
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    days.forEach((day, index) => {
      const bar = document.createElementNS(ns, 'rect');
      const h = (day.conversations / top) * (height - 30);
      bar.setAttribute('x', index * step + 2);
      bar.setAttribute('y', height - 20 - h);
      bar.setAttribute('width', step - 4);
      bar.setAttribute('height', h);
      const title = document.createElementNS(ns, 'title');
      title.textContent = day.date + ': ' + day.conversations;
      bar.append(title);
      svg.append(bar);
      if (index % 5 === 0 || index === days.length - 1) {
        const label = document.createElementNS(ns, 'text');
        label.setAttribute('x', index * step + 2);
        label.setAttribute('y', height - 4);
        label.textContent = day.date.slice(5);
        svg.append(label);
      }
    });
    container.replaceChildren(svg);
  }

  function stats() {
    api('/api/admin/stats').then((data) => {
      for (const node of document.querySelectorAll('[data-figure]')) {
        const value = data[node.dataset.figure];
        node.textContent = node.dataset.figure === 'abandonment_rate' ? Math.round(value * 100) + '%' : value;
      }
      chart($('[data-chart]'), data.per_day);
      const list = $('[data-questions]');
      for (const item of data.top_questions) list.append(make('li', item.question + ' (' + item.count + ')'));
      $('[data-no-questions]').hidden = data.top_questions.length > 0;
      const unanswered = $('[data-unanswered]');
      for (const item of data.unanswered_questions) unanswered.append(make('li', item.question + ' (' + item.count + ')'));
      $('[data-no-unanswered]').hidden = data.unanswered_questions.length > 0;
    }).catch((error) => toast(error.message));
    catalog();
  }

  /* ---- the catalog card: how many products, the last sync, an import under way or failed ---- */
  function catalog() {
    const card = $('[data-catalog]');
    if (!card) return;
    const button = $('[data-catalog-sync]', card);
    const error = $('[data-catalog-error]', card);
    const state = $('[data-catalog-state]', card);
    let timer = null;
    const show = (data) => {
      $('[data-catalog-count]', card).textContent = data.products.toLocaleString();
      const busy = data.status === 'pending' || data.status === 'running';
      const synced = data.last_synced_at ? 'Last synced ' + when(data.last_synced_at) + '.' : 'Not synced yet.';
      if (busy) {
        const total = data.products_total ? ' of ' + data.products_total.toLocaleString() : '';
        state.textContent = (data.status === 'pending' ? 'Import starting… ' : 'Importing ' + data.products_done.toLocaleString() + total + ' products… ') + synced;
      } else {
        state.textContent = synced;
      }
      error.hidden = data.status !== 'failed';
      error.textContent = data.status === 'failed' ? 'The last import failed: ' + (data.error || 'unknown error') : '';
      button.textContent = data.status === 'failed' ? 'Retry' : 'Sync catalog';
      button.disabled = busy;
      clearTimeout(timer);
      if (busy) timer = setTimeout(load, 2000);
    };
    const load = () => api('/api/admin/catalog').then(show).catch((failure) => toast(failure.message));
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        show(await api('/api/admin/catalog/sync', { method: 'POST' }));
        toast('Catalog import started');
      } catch (failure) {
        toast(failure.message);
        button.disabled = false;
      }
    });
    load();
  }

  /* ---- settings ---- */
  function settings() {
    const form = $('[data-settings]');
    const faq = $('[data-faq]');
    const template = $('[data-faq-row]');
    const picker = form.elements.accent_color_picker;
    const addRow = (entry = {}) => {
      const row = template.content.firstElementChild.cloneNode(true);
      row.querySelector('[name=question]').value = entry.question || '';
      row.querySelector('[name=answer]').value = entry.answer || '';
      row.querySelector('[data-remove-faq]').addEventListener('click', () => row.remove());
      faq.append(row);
      return row;
    };
    $('[data-add-faq]').addEventListener('click', () => addRow().querySelector('input').focus());
    picker.addEventListener('input', () => (form.elements.accent_color.value = picker.value));
    form.elements.accent_color.addEventListener('input', (event) => {
      if (/^#[0-9a-f]{6}$/i.test(event.target.value)) picker.value = event.target.value;
    });

    function fill(data) {
      for (const name of ['greeting', 'accent_color', 'system_prompt']) {
        form.elements[name].value = data[name] || '';
        form.elements[name].placeholder = data.defaults[name] || '';
      }
      const models = form.elements.ai_model;
      models.replaceChildren(make('option', 'Default (' + data.defaults.ai_model + ')'));
      models.firstElementChild.value = '';
      for (const name of data.ai_models.filter((model) => model !== data.defaults.ai_model)) {
        const option = models.appendChild(make('option', name));
        option.value = name;
      }
      models.value = data.ai_models.includes(data.ai_model) ? data.ai_model : '';
      form.elements.ai_provider.value = data.ai_provider;
      form.elements.retention_days.value = data.retention_days || '';
      const streaming = form.elements.direct_streams;
      streaming.firstElementChild.textContent = "The app's default (" + data.defaults.direct_streams + ')';
      streaming.value = data.direct_streams || '';
      picker.value = data.accent_color || data.defaults.accent_color;
      faq.replaceChildren();
      data.faq.forEach(addRow);
    }

    api('/api/admin/settings').then(fill).catch((error) => toast(error.message));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const error = $('[data-error]');
      error.hidden = true;
      const value = (name) => form.elements[name].value.trim() || null;
      const days = value('retention_days');
      const payload = {
        greeting: value('greeting'),
        accent_color: value('accent_color'),
        system_prompt: value('system_prompt'),
        ai_provider: form.elements.ai_provider.value,
        ai_model: value('ai_model'),
        retention_days: days === null ? null : Number(days),
        direct_streams: form.elements.direct_streams.value || null,
        faq: [...faq.children].map((row) => ({
          question: row.querySelector('[name=question]').value.trim(),
          answer: row.querySelector('[name=answer]').value.trim(),
        })).filter((entry) => entry.question || entry.answer),
      };
      try {
        const saved = await api('/api/admin/settings', { method: 'PUT', body: JSON.stringify(payload) });
        fill(saved);
        toast(saved.storefront_synced ? 'Settings saved and published to your storefront' : 'Settings saved');
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
  }

  const pages = { conversations, stats, settings };
  window.scwDashboard = { api, call, make, toast, when, badge, pages };
  const run = () => {
    if (new URLSearchParams(location.search).get('deleted')) toast('Conversation deleted');
    const page = body.dataset.conversationId ? 'conversation' : body.dataset.page;
    if (pages[page]) pages[page]();
  };
  /* Deferred, as every page script is: DOMContentLoaded comes once all of them have run. */
  if (document.readyState === 'complete') run();
  else document.addEventListener('DOMContentLoaded', run);
})();
