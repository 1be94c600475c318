// Live events over /ws: first-message auth, wait for ready, reconnect with exponential back-off.
import { getToken } from './api.js';

export class LiveSocket {
  constructor() {
    this.handlers = new Map();
    this.stateListeners = new Set();
    this.state = 'off';
    this.delay = 1000;
    this.retryAt = 0;
    this.timer = null;
    this.sock = null;
    this.stopped = true;
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }

  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state, this);
    return () => this.stateListeners.delete(fn);
  }

  setState(s) {
    this.state = s;
    this.stateListeners.forEach((fn) => fn(s, this));
  }

  start() {
    this.stopped = false;
    this.delay = 1000;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.sock) { this.sock.onclose = null; this.sock.close(1000); this.sock = null; }
    this.setState('off');
  }

  connect() {
    clearTimeout(this.timer);
    const token = getToken();
    if (this.stopped || !token) { this.setState('off'); return; }
    this.setState('connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let sock;
    try {
      sock = new WebSocket(`${proto}//${location.host}/ws`);
    } catch {
      this.retry();
      return;
    }
    this.sock = sock;
    sock.onopen = () => sock.send(JSON.stringify({ type: 'auth', token }));
    sock.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === 'ready') {
        this.delay = 1000;
        this.setState('live');
        this.emit('ready', msg);
        return;
      }
      this.emit(msg.type, msg);
      this.emit('*', msg);
    };
    sock.onerror = () => {};
    sock.onclose = (ev) => {
      this.sock = null;
      if (this.stopped) return;
      this.emit('closed', ev);
      this.retry();
    };
  }

  retry() {
    this.retryAt = Date.now() + this.delay;
    this.setState('retrying');
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 30000);
  }

  emit(type, msg) {
    const set = this.handlers.get(type);
    if (set) set.forEach((fn) => { try { fn(msg); } catch (e) { console.warn(e); } });
  }
}

export const live = new LiveSocket();
