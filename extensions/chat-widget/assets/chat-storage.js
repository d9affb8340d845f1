/* One key per shop: localStorage, else sessionStorage, else memory (docs/widget.md). */
(() => {
  if (window.ScwStorage) return;

  const memory = new Map();

  function area(name) {
    try {
      const store = window[name];
      const probe = '__scw_probe__';
      store.setItem(probe, '1');
      store.removeItem(probe);
      return store;
    } catch (error) {
      return null;
    }
  }

  class ChatStorage {
    constructor(shop) {
      this.key = 'scw:v1:' + shop;
      this.areas = [area('localStorage'), area('sessionStorage')].filter(Boolean);
    }

    read() {
      for (const store of this.areas) {
        try {
          const raw = store.getItem(this.key);
          if (raw) return JSON.parse(raw) || {};
        } catch (error) {}
      }
      try {
        return JSON.parse(memory.get(this.key) || '{}');
      } catch (error) {
        return {};
      }
    }

    write(data) {
      const raw = JSON.stringify(data);
      memory.set(this.key, raw);
      for (const store of this.areas) {
        try {
          store.setItem(this.key, raw);
          return;
        } catch (error) {
          /* full or blocked: no stale copy may win */
          try {
            store.removeItem(this.key);
          } catch (ignored) {}
        }
      }
    }

    update(changes) {
      const data = Object.assign(this.read(), changes);
      this.write(data);
      return data;
    }

    clear() {
      memory.delete(this.key);
      for (const store of this.areas) {
        try {
          store.removeItem(this.key);
        } catch (error) {}
      }
    }
  }

  /* never Math.random or the clock */
  function uuid4() {
    const cryptoApi = window.crypto;
    if (cryptoApi && typeof cryptoApi.randomUUID === 'function') return cryptoApi.randomUUID();
    const bytes = cryptoApi.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join('-');
  }

  window.ScwStorage = { ChatStorage, uuid4 };
})();
