/* Product cards, built with DOM methods, and Shopify's Ajax Cart API (docs/widget.md). */
(() => {
  if (window.ScwCards || !window.ScwText) return;
  const { make } = window.ScwText;

  function money(price, locale) {
    if (!price) return '';
    const amount = Number(price.amount);
    try {
      return new Intl.NumberFormat(locale, { style: 'currency', currency: price.currency_code }).format(amount);
    } catch (error) {
      /* no or unknown currency code */
      return price.amount + (price.currency_code ? ' ' + price.currency_code : '');
    }
  }

  function root() {
    const routes = window.Shopify && window.Shopify.routes;
    return (routes && routes.root) || '/';
  }

  window.ScwCards = {
    locale() {
      return document.documentElement.lang || navigator.language || 'en';
    },

    showProducts(item, products) {
      let row = item.querySelector('.scw__cards');
      if (!products || !products.length) {
        if (row) row.remove();
        return;
      }
      if (!row) {
        row = make('ul', 'scw__cards', { 'aria-label': this.text.products });
        item.append(row);
      }
      row.replaceChildren(...products.map((product) => this.card(product)));
      this.scrollDown();
    },

    card(product) {
      const locale = this.locale();
      const card = make('li', 'scw__card');
      const link = make('a', 'scw__card-link', { href: product.url || '#' });
      if (product.image && product.image.url) {
        link.append(make('img', 'scw__card-image', { src: product.image.url, alt: product.image.alt || '', loading: 'lazy', width: '160', height: '160' }));
      } else link.append(make('span', 'scw__card-image scw__card-image--none', { 'aria-hidden': 'true' }));
      link.append(make('span', 'scw__card-title', { text: product.title }));
      card.append(link);
      const price = card.appendChild(make('p', 'scw__card-price'));
      if (product.compare_at_price) {
        price.append(make('span', 'scw__sr', { text: this.text.salePrice + ' ' }));
        price.append(make('span', 'scw__card-sale', { text: money(product.price, locale) }));
        price.append(make('span', 'scw__sr', { text: ' ' + this.text.regularPrice + ' ' }));
        price.append(make('s', 'scw__card-was', { text: money(product.compare_at_price, locale) }));
      } else price.textContent = money(product.price, locale);
      if (product.variant_title) card.append(make('p', 'scw__card-variant', { text: product.variant_title }));
      const button = make('button', 'scw__card-add', { type: 'button', text: product.available ? this.text.addToCart : this.text.soldOut });
      button.disabled = !product.available || !product.variant_id;
      button.dataset.variant = product.variant_id || '';
      button.dataset.action = 'add';
      card.append(button, make('p', 'scw__card-status', { role: 'status' }));
      return card;
    },

    async addToCart(button) {
      const status = button.parentElement.querySelector('.scw__card-status');
      const bubble = document.getElementById('cart-icon-bubble');
      button.disabled = true;
      status.textContent = '';
      status.classList.remove('scw__card-status--error');
      const body = { items: [{ id: Number(button.dataset.variant), quantity: 1 }] };
      if (bubble) {
        body.sections = 'cart-icon-bubble';
        body.sections_url = window.location.pathname;
      }
      let answer = {};
      let ok = false;
      try {
        const response = await fetch(root() + 'cart/add.js', { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' }, body: JSON.stringify(body) });
        answer = await response.json().catch(() => ({}));
        ok = response.ok;
      } catch (error) {
        ok = false;
      }
      if (!ok) {
        status.textContent = answer.description || answer.message || this.text.cartError;
        status.classList.add('scw__card-status--error');
        button.disabled = false;
        return;
      }
      status.textContent = this.text.added;
      button.disabled = false;
      const html = answer.sections && answer.sections['cart-icon-bubble'];
      if (bubble && html) {
        const section = new DOMParser().parseFromString(html, 'text/html').querySelector('.shopify-section');
        if (section) bubble.innerHTML = section.innerHTML;
      }
      document.dispatchEvent(new CustomEvent('scw:cart-added', { detail: answer }));
    },
  };
})();
