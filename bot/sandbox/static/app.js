// SocialOps sandbox page: a Slack-like window on the emulated workspace (docs/sandbox-contract.md).
// Vanilla JS, no build step, nothing fetched from outside this server.
//
// Safety rule: the only strings inserted as HTML are the server's rendered Block Kit `html` fields
// (see insertServerHtml); everything else (names, customer text, errors) goes through textContent.

const API = '/sandbox/ui';
const DEFAULT_PERSONAS = [
  { id: 'U0ALICE', name: 'Alice', role: 'team' },
  { id: 'U0BOB', name: 'Bob', role: 'team' },
  { id: 'U0CAROL', name: 'Carol', role: 'on call' },
];
const DEFAULT_CHANNELS = [
  { id: 'C0CASES', name: 'social-care', kind: 'channel' },
  { id: 'C0ESCAL', name: 'escalations', kind: 'channel' },
];
const TOPICS = { C0CASES: 'New cases from every platform', C0ESCAL: 'Escalated cases and on-call pings' };
const BOT_NAME = 'SocialOps';
const BRAND = 'Acme';
const BUTTON_PAUSE_MS = 1000;
const SUBMIT_CHECK_MS = 2000;
const NEAR_BOTTOM_PX = 160;
const REFUSED_SHOWN = 3;

// ---------------------------------------------------------------- storage helpers

function readStore(store, key) {
  try { return window[store].getItem(key); } catch { return null; }
}
function writeStore(store, key, value) {
  try { window[store].setItem(key, value); } catch { /* private mode: not remembered */ }
}

// ---------------------------------------------------------------- state

const S = {
  user: readStore('localStorage', 'sandbox.user') || 'U0ALICE',
  personas: DEFAULT_PERSONAS.slice(),
  channels: DEFAULT_CHANNELS.slice(),
  messages: new Map(), // "channel|ts" → Message
  ephemerals: new Map(), // id → Ephemeral, plus _at: a ts-like string for ordering
  views: new Map(), // id → View, plus _seq
  customer: new Map(), // id → CustomerMessage, plus _seq
  errors: [], // RefusedCall, plus _key
  feed: { running: false, available: false },
  channel: readStore('sessionStorage', 'sandbox.channel') || 'C0CASES',
  thread: null, // { channel, ts }
  customerOpen: readStore('localStorage', 'sandbox.customerOpen') === '1',
  customerSel: null,
  customerUnread: 0,
  unread: new Map(), // channel → count of new top-level messages
  mentioned: new Set(), // channels with a new message that mentions the current persona
  dismissedEphemerals: new Set(parseJson(readStore('sessionStorage', 'sandbox.dismissedEphemerals')) || []),
  dismissedRefused: new Set(parseJson(readStore('sessionStorage', 'sandbox.dismissedRefused')) || []),
  showAllRefused: false,
  newCustomerAt: 0, // when "New customer" was posted: its conversation gets selected when it shows up
  seq: 0,
};

const drafts = new Map(); // view id → Map("block\0action" → typed text)
const freshCustomer = new Set(); // customer message ids that arrived live: their bubble animates in
let replyCache = null; // "channel|parent ts" → { count, last }, rebuilt after messages change

function parseJson(text) {
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

// ---------------------------------------------------------------- small helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child); // strings become text nodes
  }
  return node;
}

/** Does this message mention the current persona? (read from the rendered mentions' data-user) */
function mentionsMe(m) {
  return typeof m.html === 'string' && m.html.includes(`data-user="${S.user}"`);
}

/** The one place server HTML enters the page: the rendered Block Kit produced (and escaped) by render.py. */
function insertServerHtml(node, html) {
  node.innerHTML = html;
  normalizeNewlines(node);
  // Mentions of the person you are now stand out, as in Slack.
  for (const mention of node.querySelectorAll('.bk-mention[data-user]')) {
    if (mention.dataset.user === S.user) mention.classList.add('bk-mention-me');
  }
  // Right-to-left text (Persian, Arabic…): each text container finds its own direction.
  for (const part of node.querySelectorAll(DIR_AUTO)) {
    if (!part.hasAttribute('dir')) part.setAttribute('dir', 'auto');
  }
}
const DIR_AUTO = '.bk-section, .bk-context, .bk-header, .bk-mrkdwn, .bk-plain, .bk-context-element, .bk-heading, '
  + '.bk-field, blockquote, .bk-quote, p, li, label, .bk-hint, .bk-text';

/** Mrkdwn line breaks: turn newlines inside text into <br> (a no-op when the renderer already did). */
function normalizeNewlines(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const hits = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.data.includes('\n') || !node.data.trim()) continue;
    if (node.parentElement && node.parentElement.closest('pre, textarea, select, option, script, style')) continue;
    hits.push(node);
  }
  for (const node of hits) {
    let text = node.data;
    const prev = node.previousSibling;
    const next = node.nextSibling;
    if (!prev || prev.nodeName === 'BR') text = text.replace(/^\r?\n/, '');
    if (!next || next.nodeName === 'BR') text = text.replace(/\r?\n$/, '');
    const frag = document.createDocumentFragment();
    text.split(/\r?\n/).forEach((part, i) => {
      if (i) frag.append(document.createElement('br'));
      if (part) frag.append(part);
    });
    node.replaceWith(frag);
  }
}

function cmpTs(a, b) {
  const [as, af = ''] = String(a).split('.');
  const [bs, bf = ''] = String(b).split('.');
  if (as.length !== bs.length) return as.length - bs.length;
  if (as !== bs) return as < bs ? -1 : 1;
  const pa = af.padEnd(6, '0');
  const pb = bf.padEnd(6, '0');
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}

function tsToDate(ts) {
  const [secs, frac = '0'] = String(ts).split('.');
  return new Date(Number(secs) * 1000 + Math.floor(Number(frac.padEnd(6, '0').slice(0, 6)) / 1000));
}

function nowTs(offsetMicros = 0) {
  const ms = Date.now();
  const micros = (ms % 1000) * 1000 + offsetMicros;
  const secs = Math.floor(ms / 1000) + Math.floor(micros / 1e6);
  return `${secs}.${String(micros % 1e6).padStart(6, '0')}`;
}

const pad2 = (n) => String(n).padStart(2, '0');
const hhmm = (date) => `${pad2(date.getHours())}:${pad2(date.getMinutes())}`;
const dayKey = (date) => `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}`;

function dayLabel(date) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(date) === dayKey(today)) return 'Today';
  if (dayKey(date) === dayKey(yesterday)) return 'Yesterday';
  return date.toLocaleDateString(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
}

function timeEl(date, cls = 'msg-time') {
  if (Number.isNaN(date.getTime())) return el('span', { class: cls, text: '' });
  return el('time', { class: cls, datetime: date.toISOString(), title: date.toLocaleString() }, hhmm(date));
}

function isoDate(text) {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? new Date(0) : date;
}

const msgKey = (m) => `${m.channel}|${m.ts}`;
const isTop = (m) => !m.thread_ts || m.thread_ts === m.ts;
const isDmId = (id) => typeof id === 'string' && /^[UW]/.test(id);

function persona(id) {
  return S.personas.find((p) => p.id === id) || { id, name: id, role: '' };
}

function roleLabel(role) {
  const text = String(role || '').replace(/[_-]+/g, ' ').trim().toLowerCase();
  return text === 'oncall' ? 'on call' : text;
}

function personaLabel(p) {
  const role = roleLabel(p.role);
  return role && role !== 'team' ? `${p.name} (${role})` : p.name;
}

const AVATAR_COLOURS = ['#2bac76', '#e8912d', '#1d9bd1', '#e01e5a', '#9a5ba6', '#4a8c8c'];
function colourFor(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return AVATAR_COLOURS[h % AVATAR_COLOURS.length];
}

function initial(name) {
  const first = String(name || '?').trim().charAt(0);
  return first ? first.toUpperCase() : '?';
}

function safeHttpUrl(text) {
  try {
    const url = new URL(String(text), window.location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function channelOf(id) {
  return S.channels.find((c) => c.id === id) || null;
}

function channelDisplay(id) {
  const ch = channelOf(id);
  if (ch && ch.kind === 'dm') return BOT_NAME;
  if (isDmId(id)) return BOT_NAME;
  return `#${ch ? ch.name : id}`;
}

// ---------------------------------------------------------------- server calls

class ApiError extends Error {
  constructor(message, status, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(`the sandbox server did not answer (${err.message})`, 0, null);
  }
  const data = parseJson(await res.text().catch(() => ''));
  if (!res.ok || (data && data.ok === false)) {
    throw new ApiError((data && data.error) || `HTTP ${res.status}`, res.status, data);
  }
  return data || {};
}

// ---------------------------------------------------------------- toasts

function toast(text, kind = 'info') {
  const node = el('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', dir: 'auto' }, text);
  $('toasts').append(node);
  setTimeout(() => node.classList.add('toast-out'), 5000);
  setTimeout(() => node.remove(), 5600);
}

// ---------------------------------------------------------------- loading state and live events

let loadSeq = 0;
let loading = false;
let eventBuffer = [];
let openSeq = 0;
let loadOpenSeq = -1;

async function loadState() {
  const mine = ++loadSeq;
  loading = true;
  eventBuffer = []; // events already received are in the snapshot we are about to get
  loadOpenSeq = openSeq;
  const user = S.user;
  let data = null;
  try {
    data = await api('GET', `${API}/state?user=${encodeURIComponent(user)}`);
  } catch (err) {
    if (mine !== loadSeq) return;
    toast(`Could not load the sandbox: ${err.message}`, 'error');
  }
  if (mine !== loadSeq) return; // a newer load (persona switch, reconnect) replaced this one
  if (data) applyState(data);
  loading = false;
  const pending = eventBuffer;
  eventBuffer = [];
  for (const ev of pending) applyEvent(ev, true);
  markAll();
  dirty.scrollBottom = true;
  renderNow();
}

function applyState(data) {
  S.personas = Array.isArray(data.personas) && data.personas.length ? data.personas : DEFAULT_PERSONAS.slice();
  S.channels = (Array.isArray(data.channels) && data.channels.length ? data.channels : DEFAULT_CHANNELS)
    .filter((c) => c && c.id && (c.kind !== 'dm' || !isDmId(c.id) || c.id === S.user))
    .map((c) => ({ ...c }));

  S.messages = new Map();
  replyCache = null;
  for (const m of data.messages || []) {
    if (!m || !m.channel || !m.ts || (isDmId(m.channel) && m.channel !== S.user)) continue;
    S.messages.set(msgKey(m), m);
    ensureChannel(m.channel);
  }

  const old = S.ephemerals;
  S.ephemerals = new Map();
  (data.ephemerals || []).forEach((e, i) => {
    if (!e || !e.id || (e.user && e.user !== S.user) || S.dismissedEphemerals.has(e.id)) return;
    const before = old.get(e.id);
    S.ephemerals.set(e.id, { ...e, _at: before ? before._at : nowTs(i) });
  });

  S.views = new Map();
  for (const v of data.views || []) {
    if (!v || !v.id || (v.user && v.user !== S.user)) continue;
    S.views.set(v.id, { ...v, _seq: ++S.seq });
  }

  const oldCustomer = S.customer;
  S.customer = new Map();
  (data.customer || []).forEach((c, i) => {
    if (!c) return;
    const id = c.id || `local-${i}`;
    const before = oldCustomer.get(id);
    S.customer.set(id, { ...c, id, _seq: before ? before._seq : ++S.seq });
  });

  S.errors = (data.errors || []).map(withRefusedKey);
  if (data.feed && typeof data.feed === 'object') {
    S.feed = { running: !!data.feed.running, available: data.feed.available !== false };
  }

  if (!channelOf(S.channel)) S.channel = (channelOf('C0CASES') || S.channels[0] || { id: 'C0CASES' }).id;
  if (S.thread && (S.thread.channel !== S.channel || !S.messages.has(`${S.thread.channel}|${S.thread.ts}`))) {
    S.thread = null;
  }
}

function ensureChannel(id) {
  if (channelOf(id)) return;
  if (isDmId(id)) {
    if (id === S.user) S.channels.push({ id, name: BOT_NAME, kind: 'dm' });
  } else {
    S.channels.push({ id, name: id, kind: 'channel' });
  }
}

function withRefusedKey(r) {
  return { ...r, _key: `${r.at}|${r.method}|${r.error}|${(r.details || []).join('\u0001')}` };
}

// --- EventSource with a reconnect that re-reads the state

let source = null;
let hadError = false;
let firstOpenWait = null;

function connect() {
  setConn('connecting');
  source = new EventSource(`${API}/events`);
  source.onopen = () => {
    openSeq += 1;
    setConn('live');
    if (firstOpenWait) {
      const resolve = firstOpenWait;
      firstOpenWait = null;
      resolve();
    } else if (hadError || loadOpenSeq < openSeq) {
      loadState();
    }
    hadError = false;
  };
  source.onerror = () => {
    hadError = true;
    setConn('reconnecting');
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. the server answered an error): try again ourselves.
      source.close();
      setTimeout(connect, 3000);
    }
  };
  source.onmessage = (msg) => {
    const ev = parseJson(msg.data);
    if (!ev || typeof ev !== 'object' || !ev.type) return;
    if (loading) eventBuffer.push(ev);
    else applyEvent(ev, false);
  };
}

function setConn(state) {
  const node = $('conn');
  node.dataset.state = state;
  node.textContent = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…' }[state] || state;
}

// ---------------------------------------------------------------- applying events

const dirty = {
  sidebar: false, channel: false, thread: false, modal: false, customer: false, refused: false, feed: false,
  persona: false, scrollBottom: false, added: false, flash: new Set(), threadAdded: false,
};
let renderQueued = false;

function markAll() {
  Object.assign(dirty, {
    sidebar: true, channel: true, thread: true, modal: true, customer: true, refused: true, feed: true, persona: true,
  });
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  const run = () => { renderQueued = false; renderNow(); };
  if (document.visibilityState === 'visible') requestAnimationFrame(run);
  else setTimeout(run, 200);
}

function applyEvent(ev, replay) {
  switch (ev.type) {
    case 'message': onMessage(ev, replay); break;
    case 'ephemeral': onEphemeral(ev); break;
    case 'view': onView(ev); break;
    case 'view_closed': onViewClosed(ev); break;
    case 'customer': onCustomer(ev, replay); break;
    case 'refused': onRefused(ev); break;
    case 'feed':
      S.feed.running = !!ev.running;
      if (typeof ev.available === 'boolean') S.feed.available = ev.available;
      dirty.feed = true;
      break;
    default: return;
  }
  if (!replay) scheduleRender();
}

function strip(ev) {
  const { type, ...rest } = ev; // eslint-disable-line no-unused-vars
  return rest;
}

function onMessage(ev, replay) {
  if (!ev.channel || !ev.ts) return;
  if (isDmId(ev.channel) && ev.channel !== S.user) return; // another persona's DM
  const m = strip(ev);
  const key = msgKey(m);
  const known = S.messages.has(key);
  S.messages.set(key, m);
  replyCache = null;
  if (!channelOf(m.channel)) {
    ensureChannel(m.channel);
    dirty.sidebar = true;
  }
  if (m.channel === S.channel) {
    dirty.channel = true;
    if (!known) dirty.added = true;
    if (isTop(m) && !replay) dirty.flash.add(`m:${key}`);
  } else if (!known && isTop(m)) {
    S.unread.set(m.channel, (S.unread.get(m.channel) || 0) + 1);
    if (mentionsMe(m)) S.mentioned.add(m.channel);
    dirty.sidebar = true;
  }
  if (S.thread && S.thread.channel === m.channel && (m.ts === S.thread.ts || m.thread_ts === S.thread.ts)) {
    dirty.thread = true;
    if (!known) dirty.threadAdded = true;
    if (!replay) dirty.flash.add(`t:${key}`);
  }
}

function onEphemeral(ev) {
  if (!ev.id || (ev.user && ev.user !== S.user) || S.dismissedEphemerals.has(ev.id)) return;
  const before = S.ephemerals.get(ev.id);
  S.ephemerals.set(ev.id, { ...strip(ev), _at: before ? before._at : nowTs() });
  if (ev.thread_ts) {
    if (S.thread && S.thread.channel === ev.channel && S.thread.ts === ev.thread_ts) {
      dirty.thread = true;
      dirty.threadAdded = true;
    }
  } else if (ev.channel === S.channel) {
    dirty.channel = true;
    dirty.added = true;
  } else {
    ensureChannel(ev.channel);
    S.unread.set(ev.channel, (S.unread.get(ev.channel) || 0) + 1);
    dirty.sidebar = true;
  }
}

function onView(ev) {
  if (!ev.id || (ev.user && ev.user !== S.user)) return;
  const before = S.views.get(ev.id);
  S.views.set(ev.id, { ...strip(ev), _seq: before ? before._seq : ++S.seq });
  dirty.modal = true;
}

function onViewClosed(ev) {
  if (!ev.id || !S.views.has(ev.id)) return;
  S.views.delete(ev.id);
  drafts.delete(ev.id);
  dirty.modal = true;
}

function onCustomer(ev, replay) {
  const c = strip(ev);
  c.id = c.id || `local-${++S.seq}`;
  const before = S.customer.get(c.id);
  const newConversation = ![...S.customer.values()].some((x) => x.conversation === c.conversation);
  S.customer.set(c.id, { ...c, _seq: before ? before._seq : ++S.seq });
  if (newConversation && c.direction === 'in' && Date.now() - S.newCustomerAt < 15000) {
    S.customerSel = c.conversation;
    S.newCustomerAt = 0;
  }
  if (!before && !replay) {
    freshCustomer.add(c.id);
    if (!S.customerOpen) S.customerUnread += 1;
  }
  dirty.customer = true;
}

function onRefused(ev) {
  const r = withRefusedKey(strip(ev));
  if (S.errors.some((x) => x._key === r._key)) return;
  S.errors.push(r);
  S.showAllRefused = false;
  dirty.refused = true;
}

// ---------------------------------------------------------------- rendering

function renderNow() {
  if (dirty.persona) renderPersona();
  if (dirty.sidebar || dirty.persona) renderSidebar();
  if (dirty.channel) renderChannel();
  if (dirty.thread) renderThread();
  if (dirty.modal) renderModal();
  if (dirty.customer) renderCustomer();
  if (dirty.refused) renderRefused();
  if (dirty.feed) renderFeed();
  Object.assign(dirty, {
    sidebar: false, channel: false, thread: false, modal: false, customer: false, refused: false, feed: false,
    persona: false, scrollBottom: false, added: false, threadAdded: false,
  });
  dirty.flash.clear();
}

/**
 * Keyed list update: keeps nodes whose signature did not change (so a half-used select or a
 * focused button survives a neighbour's update), replaces changed ones, fixes the order.
 * items: [{ key, sig, render() → Element }]. Returns the keys of nodes created or replaced.
 */
function reconcile(container, items) {
  const existing = new Map();
  for (const child of [...container.children]) {
    if (child.dataset.key) existing.set(child.dataset.key, child);
    else child.remove();
  }
  const changed = new Set();
  const wanted = items.map((item) => {
    let node = existing.get(item.key);
    if (!node || node._sig !== item.sig) {
      node = item.render();
      node.dataset.key = item.key;
      node._sig = item.sig;
      changed.add(item.key);
    }
    return node;
  });
  const keep = new Set(wanted);
  for (const node of existing.values()) if (!keep.has(node)) node.remove();
  wanted.forEach((node, i) => {
    if (container.children[i] !== node) container.insertBefore(node, container.children[i] || null);
  });
  return changed;
}

// --- persona and sidebar

function renderPersona() {
  const me = persona(S.user);
  const avatar = $('me-avatar');
  avatar.textContent = initial(me.name);
  avatar.style.background = colourFor(me.id);
  $('me-name').textContent = `You are ${me.name}`;
  const role = roleLabel(me.role);
  $('me-role').textContent = role ? role.charAt(0).toUpperCase() + role.slice(1) : '';
  const top = $('top-me');
  top.textContent = initial(me.name);
  top.style.background = colourFor(me.id);
  top.title = `You are ${personaLabel(me)}`;

  const list = $('persona-list');
  list.replaceChildren(...S.personas.map((p) => {
    const active = p.id === S.user;
    const dot = el('span', { class: 'avatar avatar-sm', 'aria-hidden': 'true' }, initial(p.name));
    dot.style.background = colourFor(p.id);
    return el('button', {
      type: 'button', class: `persona${active ? ' active' : ''}`, 'data-testid': `persona-${p.id}`,
      'aria-pressed': active ? 'true' : 'false', dataset: { persona: p.id },
    }, dot, el('span', { class: 'persona-name', dir: 'auto' }, personaLabel(p)),
    active ? el('span', { class: 'persona-you' }, 'you') : null);
  }));
}

function renderSidebar() {
  const item = (c, label, prefix) => {
    const unread = S.unread.get(c.id) || 0;
    const active = c.id === S.channel;
    return el('li', {},
      el('button', {
        type: 'button', class: `nav-item${active ? ' active' : ''}${unread ? ' unread' : ''}`,
        'data-testid': `channel-${c.id}`, dataset: { channel: c.id }, 'aria-current': active ? 'page' : null,
      }, prefix, el('span', { class: 'nav-label', dir: 'auto' }, label),
      c.kind === 'dm' ? el('span', { class: 'app-badge app-badge-dark' }, 'APP') : null,
      S.mentioned.has(c.id) ? el('span', { class: 'nav-mention', 'data-testid': `mention-${c.id}`,
        'aria-label': 'mentions you' }, '@') : null,
      unread ? el('span', { class: 'nav-count', 'aria-label': `${unread} new` }, String(unread)) : null));
  };
  const channels = S.channels.filter((c) => c.kind !== 'dm');
  const dms = S.channels.filter((c) => c.kind === 'dm');
  $('channel-list').replaceChildren(...channels.map((c) => item(c, c.name, el('span', { class: 'nav-hash', 'aria-hidden': 'true' }, '#'))));
  $('dm-list').replaceChildren(...dms.map((c) => {
    const dot = el('span', { class: 'avatar avatar-xs avatar-bot', 'aria-hidden': 'true' }, 'S');
    return item(c, BOT_NAME, dot);
  }));
  $('dm-empty').hidden = dms.length > 0;
}

// --- channel

function messageSig(m, inThreadPane) {
  const { count, last } = replyInfo(m);
  return JSON.stringify([m.html, m.text, !!m.edited, inThreadPane ? 0 : count, inThreadPane ? '' : last]);
}

function replyInfo(parent) {
  if (!replyCache) {
    replyCache = new Map();
    for (const m of S.messages.values()) {
      if (isTop(m)) continue;
      const key = `${m.channel}|${m.thread_ts}`;
      const info = replyCache.get(key) || { count: 0, last: '' };
      info.count += 1;
      if (!info.last || cmpTs(m.ts, info.last) > 0) info.last = m.ts;
      replyCache.set(key, info);
    }
  }
  const info = replyCache.get(msgKey(parent)) || { count: 0, last: '' };
  return { count: Math.max(info.count, Number(parent.reply_count) || 0), last: info.last };
}

function relativeDay(date) {
  const label = dayLabel(date);
  return label === 'Today' || label === 'Yesterday' ? label.toLowerCase() : label;
}

function avatarBot() {
  return el('div', { class: 'msg-avatar', 'aria-hidden': 'true' }, 'S');
}

function msgHead(date) {
  return el('div', { class: 'msg-head' },
    el('span', { class: 'msg-author' }, BOT_NAME), el('span', { class: 'app-badge' }, 'APP'), timeEl(date));
}

function msgBody(html, text) {
  const body = el('div', { class: 'msg-body', dir: 'auto' });
  if (html) insertServerHtml(body, html);
  else body.textContent = text || '';
  return body;
}

function messageNode(m, { threadParent = false, inThreadPane = false } = {}) {
  const content = el('div', { class: 'msg-content' }, msgHead(tsToDate(m.ts)), msgBody(m.html, m.text));
  if (m.edited) content.append(el('span', { class: 'msg-edited' }, '(edited)'));
  if (!inThreadPane) {
    const { count, last } = replyInfo(m);
    if (count > 0) {
      content.append(el('div', { class: 'msg-replies' },
        el('span', { class: 'avatar avatar-xs avatar-bot', 'aria-hidden': 'true' }, 'S'),
        el('button', {
          type: 'button', class: 'replies-link', 'data-testid': `thread-${m.ts}`,
          dataset: { threadTs: m.ts, threadChannel: m.channel }, 'aria-controls': 'thread-pane',
        }, `${count} ${count === 1 ? 'reply' : 'replies'}`),
        last ? el('span', { class: 'replies-last' }, `Last reply ${relativeDay(tsToDate(last))} at ${hhmm(tsToDate(last))}`) : null));
    }
  }
  return el('div', {
    class: 'msg', 'data-testid': threadParent ? 'thread-parent' : `message-${m.ts}`,
    dataset: { messageTs: m.ts, channel: m.channel },
  }, avatarBot(), content);
}

function ephemeralNode(e) {
  const head = el('div', { class: 'eph-note' },
    el('span', { class: 'eye', 'aria-hidden': 'true' }), 'Only visible to you');
  const content = el('div', { class: 'msg-content' }, head, msgHead(tsToDate(e._at)), msgBody(e.html, e.text),
    el('button', { type: 'button', class: 'link-btn eph-dismiss', dataset: { dismiss: e.id } }, 'Dismiss message'));
  return el('div', {
    class: 'msg msg-ephemeral', 'data-testid': 'ephemeral', dataset: { ephemeralId: e.id, channel: e.channel },
  }, avatarBot(), content);
}

function dayDivider(label) {
  return el('div', { class: 'day-divider', role: 'separator' }, el('span', {}, label));
}

function withDays(items) {
  const out = [];
  let last = null;
  for (const item of items) {
    const date = tsToDate(item.sortTs);
    const key = dayKey(date);
    if (key !== last) {
      const label = dayLabel(date);
      out.push({ key: `d:${key}`, sig: label, render: () => dayDivider(label) });
      last = key;
    }
    out.push(item);
  }
  return out;
}

function sortItems(items) {
  return items.sort((a, b) => cmpTs(a.sortTs, b.sortTs) || (a.order - b.order));
}

function channelItems() {
  const items = [];
  for (const m of S.messages.values()) {
    if (m.channel !== S.channel || !isTop(m)) continue;
    items.push({ key: `m:${msgKey(m)}`, sortTs: m.ts, order: 0, sig: messageSig(m, false), render: () => messageNode(m) });
  }
  for (const e of S.ephemerals.values()) {
    if (e.channel !== S.channel || e.thread_ts) continue;
    items.push({ key: `e:${e.id}`, sortTs: e._at, order: 1, sig: JSON.stringify([e.html, e.text]), render: () => ephemeralNode(e) });
  }
  return withDays(sortItems(items));
}

function nearBottom(node) {
  return node.scrollHeight - node.scrollTop - node.clientHeight < NEAR_BOTTOM_PX;
}

function renderChannel() {
  const ch = channelOf(S.channel);
  const title = $('channel-title');
  title.replaceChildren();
  if (ch && ch.kind === 'dm') {
    title.append(el('span', { class: 'avatar avatar-xs avatar-bot', 'aria-hidden': 'true' }, 'S'), BOT_NAME,
      el('span', { class: 'app-badge' }, 'APP'));
    $('channel-topic').textContent = 'Direct messages from the bot to you';
  } else {
    title.append(el('span', { class: 'channel-hash', 'aria-hidden': 'true' }, '#'), ch ? ch.name : S.channel);
    $('channel-topic').textContent = TOPICS[S.channel] || '';
  }
  $('composer').placeholder = `Message ${channelDisplay(S.channel)} — try /social stats`;

  const list = $('messages');
  const wasNearBottom = nearBottom(list);
  const items = channelItems();
  const changed = reconcile(list, items);
  if (!items.length) {
    list.append(el('div', { class: 'empty' },
      el('div', { class: 'empty-title' }, ch && ch.kind === 'dm' ? 'No direct messages yet' : 'Nothing here yet'),
      el('div', {}, 'Cases appear here when a customer writes: start the sample feed or post as a new customer.')));
  }
  for (const key of dirty.flash) {
    if (!key.startsWith('m:') || !changed.has(key)) continue;
    const node = [...list.children].find((n) => n.dataset.key === key);
    if (node) flash(node);
  }
  if (dirty.scrollBottom || (wasNearBottom && (dirty.added || changed.size))) {
    list.scrollTop = list.scrollHeight;
    $('new-pill').hidden = true;
  } else if (dirty.added) {
    $('new-pill').hidden = false;
  }
}

function flash(node) {
  node.classList.remove('flash');
  void node.offsetWidth; // restart the animation
  node.classList.add('flash');
  node.addEventListener('animationend', () => node.classList.remove('flash'), { once: true });
}

// --- thread pane

function renderThread() {
  const pane = $('thread-pane');
  const parent = S.thread && S.messages.get(`${S.thread.channel}|${S.thread.ts}`);
  if (!S.thread || !parent) {
    pane.hidden = true;
    $('workspace').classList.remove('with-thread');
    $('thread-messages').replaceChildren();
    return;
  }
  pane.hidden = false;
  $('workspace').classList.add('with-thread');
  $('thread-channel').textContent = channelDisplay(parent.channel);
  const list = $('thread-messages');
  const wasNearBottom = nearBottom(list);

  const rest = [];
  for (const m of S.messages.values()) {
    if (m.channel !== parent.channel || isTop(m) || m.thread_ts !== parent.ts) continue;
    rest.push({ key: `t:${msgKey(m)}`, sortTs: m.ts, order: 0, sig: messageSig(m, true), render: () => messageNode(m, { inThreadPane: true }) });
  }
  const replies = rest.length;
  for (const e of S.ephemerals.values()) {
    if (e.channel !== parent.channel || e.thread_ts !== parent.ts) continue;
    rest.push({ key: `e:${e.id}`, sortTs: e._at, order: 1, sig: JSON.stringify([e.html, e.text]), render: () => ephemeralNode(e) });
  }
  const count = Math.max(replies, Number(parent.reply_count) || 0);
  const label = `${count} ${count === 1 ? 'reply' : 'replies'}`;
  const items = [
    { key: `p:${msgKey(parent)}`, sig: messageSig(parent, true), render: () => messageNode(parent, { threadParent: true, inThreadPane: true }) },
    { key: 'sep', sig: label, render: () => el('div', { class: 'thread-sep', role: 'separator' }, el('span', {}, label)) },
    ...sortItems(rest),
  ];
  const changed = reconcile(list, items);
  for (const key of dirty.flash) {
    if (!changed.has(key)) continue;
    const node = [...list.children].find((n) => n.dataset.key === key);
    if (node) flash(node);
  }
  if (dirty.threadAdded && wasNearBottom) list.scrollTop = list.scrollHeight;
}

function openThread(channel, ts) {
  if (S.thread && S.thread.channel === channel && S.thread.ts === ts) return;
  S.thread = { channel, ts };
  $('thread-messages').replaceChildren();
  dirty.thread = true;
  renderNow();
  $('thread-messages').scrollTop = $('thread-messages').scrollHeight;
}

function closeThread() {
  S.thread = null;
  dirty.thread = true;
  renderNow();
}

// --- refused calls

function renderRefused() {
  const area = $('refused-area');
  const visible = S.errors.filter((r) => !S.dismissedRefused.has(r._key));
  const shown = S.showAllRefused ? visible : visible.slice(-REFUSED_SHOWN);
  const nodes = shown.map((r) => {
    const when = r.at ? isoDate(r.at) : null;
    const details = (r.details || []).map((d) => el('li', { dir: 'auto' }, String(d)));
    return el('div', { class: 'refused', 'data-testid': 'refused', role: 'alert' },
      el('div', { class: 'refused-icon', 'aria-hidden': 'true' }, '!'),
      el('div', { class: 'refused-body' },
        el('div', { class: 'refused-head' },
          el('span', {}, 'Slack would refuse '), el('code', { class: 'refused-method' }, String(r.method || '?')),
          el('span', {}, ': '), el('strong', { class: 'refused-error' }, String(r.error || 'error')),
          when && when.getTime() ? el('span', { class: 'refused-time' }, ` · ${hhmm(when)}`) : null),
        details.length ? el('ul', { class: 'refused-details' }, ...details) : null),
      el('button', { type: 'button', class: 'icon-btn refused-x', 'aria-label': 'Dismiss', dataset: { dismissRefused: r._key } }, '×'));
  });
  const hidden = visible.length - shown.length;
  if (hidden > 0) {
    nodes.unshift(el('button', { type: 'button', class: 'link-btn refused-more', dataset: { refusedMore: '1' } },
      `Show ${hidden} earlier refused ${hidden === 1 ? 'call' : 'calls'}`));
  }
  area.replaceChildren(...nodes);
}

// --- feed toggle

function renderFeed() {
  const btn = $('feed-toggle');
  const { running, available } = S.feed;
  $('feed-label').textContent = `Sample feed: ${running ? 'on' : 'off'}`;
  btn.setAttribute('aria-pressed', running ? 'true' : 'false');
  btn.classList.toggle('on', running);
  btn.disabled = !available;
  const tip = available
    ? (running ? 'Stop the sample feed of made-up customer messages' : 'Start a feed of made-up customer messages')
    : 'No sample feed in this sandbox configuration';
  btn.title = tip;
  $('feed-wrap').title = tip; // a disabled button shows no tooltip in every browser
}

// --- customer pane

function conversations() {
  const groups = new Map();
  for (const c of S.customer.values()) {
    const key = c.conversation == null ? '' : String(c.conversation);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(c);
  }
  const list = [...groups.entries()].map(([id, msgs]) => {
    msgs.sort((a, b) => (isoDate(a.at) - isoDate(b.at)) || (a._seq - b._seq));
    const last = msgs[msgs.length - 1];
    const first = msgs.find((m) => m.direction === 'in');
    return { id, msgs, name: (first && first.author) || 'Customer', lastAt: isoDate(last.at), lastSeq: Math.max(...msgs.map((m) => m._seq)) };
  });
  list.sort((a, b) => (b.lastAt - a.lastAt) || (b.lastSeq - a.lastSeq));
  return list;
}

function renderCustomer() {
  const pane = $('customer-pane');
  pane.hidden = !S.customerOpen;
  $('workspace').classList.toggle('with-customer', S.customerOpen);
  $('customer-toggle').setAttribute('aria-pressed', S.customerOpen ? 'true' : 'false');
  const badge = $('customer-badge');
  badge.hidden = S.customerOpen || !S.customerUnread;
  badge.textContent = S.customerUnread ? String(S.customerUnread) : '';

  const convs = conversations();
  if (!convs.some((c) => c.id === S.customerSel)) S.customerSel = convs.length ? convs[0].id : null;
  const list = $('customer-list');
  if (!convs.length) {
    list.replaceChildren(el('div', { class: 'cust-empty' }, 'No customer messages yet. Write as a new customer above.'));
  } else {
    list.replaceChildren(...convs.map(conversationNode));
  }
  freshCustomer.clear();

  const sel = convs.find((c) => c.id === S.customerSel);
  const label = $('customer-answer-label');
  label.replaceChildren();
  if (sel) {
    label.append('Answering as ', el('strong', { dir: 'auto' }, sel.name), ' · ', el('span', { class: 'cust-conv-id', dir: 'auto' }, sel.id));
  } else {
    label.append('Pick a conversation to answer as its customer');
  }
  $('customer-input').disabled = !sel;
  $('customer-send').disabled = !sel;
}

function conversationNode(conv) {
  const selected = conv.id === S.customerSel;
  const avatar = el('span', { class: 'avatar avatar-round', 'aria-hidden': 'true' }, initial(conv.name));
  avatar.style.background = colourFor(conv.name);
  const head = el('button', {
    type: 'button', class: 'conv-head', 'aria-pressed': selected ? 'true' : 'false',
    dataset: { conversation: conv.id }, title: 'Answer as this customer',
  }, avatar,
  el('span', { class: 'conv-who' }, el('span', { class: 'conv-name', dir: 'auto' }, conv.name),
    el('span', { class: 'conv-id', dir: 'auto' }, conv.id)),
  el('span', { class: 'conv-time' }, conv.lastAt.getTime() ? hhmm(conv.lastAt) : ''));
  const msgs = el('div', { class: 'conv-msgs' }, ...conv.msgs.map(customerMessageNode));
  return el('section', { class: `conv${selected ? ' selected' : ''}`, dataset: { conversation: conv.id } }, head, msgs);
}

function customerMessageNode(c) {
  const direction = c.direction === 'out' ? 'out' : 'in';
  const when = isoDate(c.at);
  const meta = el('div', { class: 'cmeta' },
    el('span', { class: 'cmeta-author', dir: 'auto' }, String(c.author || (direction === 'out' ? BRAND : 'Customer'))),
    when.getTime() ? el('span', { class: 'cmeta-time' }, ` · ${hhmm(when)}`) : null);
  const bubble = el('div', { class: 'cbubble', dir: 'auto' }, String(c.text || ''));
  const row = el('div', {
    class: `cmsg cmsg-${direction}${freshCustomer.has(c.id) ? ' cmsg-new' : ''}`,
    'data-testid': 'customer-message', 'data-direction': direction,
  }, meta, bubble);
  const url = c.case_url ? safeHttpUrl(c.case_url) : null;
  if (url) {
    row.append(el('a', { class: 'ccase', href: url, target: '_blank', rel: 'noopener noreferrer' }, 'Case ↗'));
  }
  return row;
}

// --- modal

let modal = null; // { id, sig, node, opener, submitting }

function topView() {
  let top = null;
  for (const v of S.views.values()) {
    if (!top || (Number(v.stack) || 0) > (Number(top.stack) || 0) ||
        ((Number(v.stack) || 0) === (Number(top.stack) || 0) && v._seq > top._seq)) top = v;
  }
  return top;
}

const viewSig = (v) => JSON.stringify([v.title, v.submit, v.close, v.html]);
const fieldKey = (input) => `${input.dataset.blockId}\u0000${input.dataset.actionId}`;

function captureDraft() {
  if (!modal) return;
  const values = new Map();
  for (const input of modal.node.querySelectorAll('.modal-body .bk-text')) values.set(fieldKey(input), input.value);
  drafts.set(modal.id, values);
}

function restoreDraft(id, node) {
  const values = drafts.get(id);
  if (!values) return;
  for (const input of node.querySelectorAll('.modal-body .bk-text')) {
    const key = fieldKey(input);
    if (values.has(key)) input.value = values.get(key); // same block id: keep what was typed
  }
}

function renderModal() {
  const view = topView();
  if (modal && (!view || view.id !== modal.id)) {
    if (S.views.has(modal.id)) captureDraft(); // pushed under another view: keep its text
    removeModalDom(!view);
  }
  if (!view) return;
  if (!modal) openModalDom(view);
  else if (modal.sig !== viewSig(view)) updateModalDom(view);
}

function openModalDom(view) {
  const opener = document.activeElement;
  const title = el('h2', { class: 'modal-title', id: `modal-title-${view.id}`, dir: 'auto' });
  const body = el('div', { class: 'modal-body' });
  const general = el('div', { class: 'modal-general-error', role: 'alert', hidden: true });
  const cancel = el('button', { type: 'button', class: 'btn', 'data-testid': 'modal-close' });
  const submit = el('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'modal-submit' });
  const x = el('button', { type: 'button', class: 'icon-btn modal-x', 'aria-label': 'Close' }, '×');
  const dialog = el('div', {
    class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': title.id, 'data-testid': 'modal',
    dataset: { viewId: view.id }, tabindex: '-1',
  },
  el('header', { class: 'modal-header' }, el('span', { class: 'modal-app', 'aria-hidden': 'true' }, 'S'), title, x),
  body, general, el('footer', { class: 'modal-footer' }, cancel, submit));
  const backdrop = el('div', { class: 'modal-backdrop' }, dialog);
  cancel.addEventListener('click', () => closeView(view.id));
  x.addEventListener('click', () => closeView(view.id));
  submit.addEventListener('click', () => submitModal());
  modal = { id: view.id, sig: '', node: dialog, backdrop, opener, submitting: false };
  fillModal(view);
  restoreDraft(view.id, dialog);
  $('modal-root').replaceChildren(backdrop);
  document.body.classList.add('modal-open');
  const first = dialog.querySelector('.modal-body .bk-text');
  (first || dialog).focus();
  if (first && typeof first.setSelectionRange === 'function') {
    const end = first.value.length;
    first.setSelectionRange(end, end);
  }
}

function fillModal(view) {
  const dialog = modal.node;
  dialog.dataset.viewId = view.id;
  dialog.querySelector('.modal-title').textContent = view.title || 'SocialOps';
  insertServerHtml(dialog.querySelector('.modal-body'), view.html || '');
  const cancel = dialog.querySelector('[data-testid="modal-close"]');
  cancel.textContent = view.close || 'Cancel';
  const submit = dialog.querySelector('[data-testid="modal-submit"]');
  submit.hidden = !view.submit;
  submit.textContent = view.submit || 'Submit';
  submit.disabled = false;
  modal.submitting = false;
  const general = dialog.querySelector('.modal-general-error');
  general.hidden = true;
  general.replaceChildren();
  modal.sig = viewSig(view);
}

function updateModalDom(view) {
  // views.update: re-render, but keep the text of fields whose block id did not change
  captureDraft();
  const focused = document.activeElement;
  const focusKey = focused && modal.node.contains(focused) && focused.classList.contains('bk-text') ? fieldKey(focused) : null;
  const selection = focusKey ? [focused.selectionStart, focused.selectionEnd] : null;
  fillModal(view);
  restoreDraft(view.id, modal.node);
  if (focusKey) {
    const again = [...modal.node.querySelectorAll('.modal-body .bk-text')].find((i) => fieldKey(i) === focusKey);
    if (again) {
      again.focus();
      try { again.setSelectionRange(...selection); } catch { /* not a text field */ }
    }
  }
}

function removeModalDom(restoreFocus) {
  const { opener } = modal;
  $('modal-root').replaceChildren();
  document.body.classList.remove('modal-open');
  modal = null;
  if (restoreFocus && opener && document.contains(opener) && typeof opener.focus === 'function') opener.focus();
}

async function closeView(id) {
  if (!S.views.has(id)) return;
  S.views.delete(id);
  drafts.delete(id);
  dirty.modal = true;
  renderNow();
  try {
    await api('POST', `${API}/close`, { user: S.user, view_id: id });
  } catch (err) {
    toast(`Closing the modal failed: ${err.message}`, 'error');
  }
}

function clearModalErrors() {
  if (!modal) return;
  for (const node of modal.node.querySelectorAll('.bk-error')) node.textContent = '';
  for (const node of modal.node.querySelectorAll('.bk-input-invalid')) node.classList.remove('bk-input-invalid');
  for (const node of modal.node.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  const general = modal.node.querySelector('.modal-general-error');
  general.hidden = true;
  general.replaceChildren();
}

function showModalErrors(errors) {
  const general = modal.node.querySelector('.modal-general-error');
  const leftover = [];
  let firstInvalid = null;
  for (const [blockId, message] of Object.entries(errors)) {
    const slot = [...modal.node.querySelectorAll('.bk-error')].find((n) => n.dataset.errorFor === blockId);
    if (!slot) {
      leftover.push(`${blockId}: ${message}`);
      continue;
    }
    slot.textContent = String(message);
    const wrap = slot.closest('.bk-input');
    if (wrap) wrap.classList.add('bk-input-invalid');
    const input = [...modal.node.querySelectorAll('.bk-text')].find((i) => i.dataset.blockId === blockId);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      firstInvalid = firstInvalid || input;
    }
  }
  if (leftover.length) showGeneralError(leftover);
  else general.hidden = true;
  if (firstInvalid) firstInvalid.focus();
}

function showGeneralError(lines) {
  const general = modal.node.querySelector('.modal-general-error');
  general.replaceChildren(...[].concat(lines).map((line) => el('div', { dir: 'auto' }, String(line))));
  general.hidden = false;
}

async function submitModal() {
  if (!modal || modal.submitting) return;
  const id = modal.id;
  const view = S.views.get(id);
  if (!view) return;
  const values = {};
  for (const input of modal.node.querySelectorAll('.modal-body .bk-text')) {
    const blockId = input.dataset.blockId;
    const actionId = input.dataset.actionId;
    if (!blockId || !actionId) continue;
    (values[blockId] = values[blockId] || {})[actionId] = input.value;
  }
  clearModalErrors();
  const submit = modal.node.querySelector('[data-testid="modal-submit"]');
  modal.submitting = true;
  submit.disabled = true;
  try {
    const answer = await api('POST', `${API}/submit`, { user: S.user, view_id: id, values });
    if (!modal || modal.id !== id) return; // already closed by the view_closed event
    if (answer.errors && Object.keys(answer.errors).length) {
      modal.submitting = false;
      submit.disabled = false;
      showModalErrors(answer.errors);
      return;
    }
    // Accepted: a view_closed (or a view update) event follows. If it got lost, ask for the state.
    setTimeout(async () => {
      if (!modal || modal.id !== id || !modal.submitting) return;
      await loadState();
      if (modal && modal.id === id && modal.submitting) { // still open: let the person try again
        modal.submitting = false;
        modal.node.querySelector('[data-testid="modal-submit"]').disabled = false;
      }
    }, SUBMIT_CHECK_MS);
  } catch (err) {
    if (!modal || modal.id !== id) return;
    modal.submitting = false;
    submit.disabled = false;
    showGeneralError(`Could not submit: ${err.message}`);
  }
}

function trapFocus(event) {
  const focusable = [...modal.node.querySelectorAll('button, a[href], input, select, textarea, [tabindex]:not([tabindex="-1"])')]
    .filter((n) => !n.disabled && !n.hidden && n.offsetParent !== null);
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (event.shiftKey && (document.activeElement === first || document.activeElement === modal.node)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

// ---------------------------------------------------------------- interactions

function actionContext(node) {
  const view = node.closest('[data-view-id]');
  if (view) {
    return { channel: S.channel, message_ts: null, ephemeral_id: null, view_id: view.dataset.viewId };
  }
  const eph = node.closest('[data-ephemeral-id]');
  if (eph) {
    return { channel: eph.dataset.channel, message_ts: null, ephemeral_id: eph.dataset.ephemeralId, view_id: null };
  }
  const msg = node.closest('[data-message-ts]');
  if (msg) {
    return { channel: msg.dataset.channel, message_ts: msg.dataset.messageTs, ephemeral_id: null, view_id: null };
  }
  return null;
}

async function sendAction(node, { value, selected }) {
  const context = actionContext(node);
  if (!context) return;
  const payload = {
    user: S.user, ...context, block_id: node.dataset.blockId || null, action_id: node.dataset.actionId || null,
    value, selected,
  };
  try {
    await api('POST', `${API}/action`, payload);
  } catch (err) {
    toast(`The click did not reach the bot: ${err.message}`, 'error');
  }
}

function onBkButton(button) {
  if (button.disabled) return;
  sendAction(button, { value: button.dataset.value ?? null, selected: null });
  button.disabled = true;
  button.classList.add('bk-busy');
  setTimeout(() => {
    button.disabled = false;
    button.classList.remove('bk-busy');
  }, BUTTON_PAUSE_MS);
}

function switchPersona(id) {
  if (id === S.user) return;
  S.user = id;
  writeStore('localStorage', 'sandbox.user', id);
  if (isDmId(S.channel)) S.channel = 'C0CASES';
  S.thread = null;
  S.unread.clear();
  S.mentioned.clear();
  S.views = new Map();
  S.ephemerals = new Map();
  drafts.clear();
  S.channels = S.channels.filter((c) => c.kind !== 'dm');
  S.messages = new Map([...S.messages].filter(([, m]) => !isDmId(m.channel)));
  replyCache = null;
  markAll();
  renderNow();
  loadState();
}

function selectChannel(id) {
  if (id !== S.channel) {
    S.channel = id;
    writeStore('sessionStorage', 'sandbox.channel', id);
    if (S.thread && S.thread.channel !== id) S.thread = null;
    $('messages').replaceChildren();
  }
  S.unread.delete(id);
  S.mentioned.delete(id);
  Object.assign(dirty, { sidebar: true, channel: true, thread: true, scrollBottom: true });
  renderNow();
  $('composer').focus();
}

let hintTimer = null;
function composerHint(text, kind = 'info') {
  const hint = $('composer-hint');
  hint.textContent = text;
  hint.dataset.kind = kind;
  hint.hidden = false;
  clearTimeout(hintTimer);
  hintTimer = setTimeout(() => { hint.hidden = true; }, 7000);
}

function autosize(area) {
  area.style.height = 'auto';
  area.style.height = `${Math.min(area.scrollHeight, 200)}px`;
}

async function sendComposer() {
  const box = $('composer');
  const text = box.value.trim();
  if (!text) return;
  box.value = '';
  autosize(box);
  $('composer-send').disabled = true;
  if (!text.startsWith('/')) {
    composerHint('Only slash commands are read by the bot — try /social stats or /social help.');
    return;
  }
  $('composer-hint').hidden = true;
  const channel = S.channel;
  try {
    await api('POST', `${API}/command`, { user: S.user, channel, text });
  } catch (err) {
    composerHint(`${text.split(/\s+/)[0]} failed: ${err.message}`, 'error');
    if (!box.value) {
      box.value = text;
      autosize(box);
      $('composer-send').disabled = false;
    }
  }
}

async function postCustomer(payload, onDone) {
  try {
    await api('POST', `${API}/customer`, payload);
    onDone();
  } catch (err) {
    toast(`The customer message was not taken: ${err.message}`, 'error');
  }
}

function setCustomerOpen(open) {
  S.customerOpen = open;
  if (open) S.customerUnread = 0;
  writeStore('localStorage', 'sandbox.customerOpen', open ? '1' : '0');
  dirty.customer = true;
  renderNow();
}

async function toggleFeed() {
  const running = !S.feed.running;
  const btn = $('feed-toggle');
  btn.disabled = true;
  try {
    const answer = await api('POST', `${API}/feed`, { running });
    S.feed.running = typeof answer.running === 'boolean' ? answer.running : running;
  } catch (err) {
    toast(`The sample feed did not ${running ? 'start' : 'stop'}: ${err.message}`, 'error');
  }
  dirty.feed = true;
  renderNow();
}

function wire() {
  document.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const bk = target.closest('.bk-button');
    if (bk && target.closest('.msg, .modal')) {
      onBkButton(bk);
      return;
    }
    const personaBtn = target.closest('[data-persona]');
    if (personaBtn) return switchPersona(personaBtn.dataset.persona);
    const channelBtn = target.closest('[data-channel].nav-item');
    if (channelBtn) return selectChannel(channelBtn.dataset.channel);
    const threadBtn = target.closest('[data-thread-ts]');
    if (threadBtn) return openThread(threadBtn.dataset.threadChannel, threadBtn.dataset.threadTs);
    const dismiss = target.closest('[data-dismiss]');
    if (dismiss) {
      S.dismissedEphemerals.add(dismiss.dataset.dismiss);
      writeStore('sessionStorage', 'sandbox.dismissedEphemerals', JSON.stringify([...S.dismissedEphemerals].slice(-200)));
      S.ephemerals.delete(dismiss.dataset.dismiss);
      Object.assign(dirty, { channel: true, thread: true });
      renderNow();
      return;
    }
    const refusedX = target.closest('[data-dismiss-refused]');
    if (refusedX) {
      S.dismissedRefused.add(refusedX.dataset.dismissRefused);
      writeStore('sessionStorage', 'sandbox.dismissedRefused', JSON.stringify([...S.dismissedRefused].slice(-200)));
      dirty.refused = true;
      renderNow();
      return;
    }
    if (target.closest('[data-refused-more]')) {
      S.showAllRefused = true;
      dirty.refused = true;
      renderNow();
      return;
    }
    const conv = target.closest('.conv-head[data-conversation]');
    if (conv) {
      S.customerSel = conv.dataset.conversation;
      dirty.customer = true;
      renderNow();
      $('customer-input').focus();
      return;
    }
    const chip = target.closest('[data-fill]');
    if (chip) {
      const box = $('composer');
      box.value = chip.dataset.fill;
      $('composer-send').disabled = false;
      box.focus();
    }
  });

  document.addEventListener('change', (event) => {
    const select = event.target instanceof Element ? event.target.closest('.bk-select') : null;
    if (!select || !select.closest('.msg, .modal') || !select.value) return;
    sendAction(select, { value: null, selected: select.value });
  });

  document.addEventListener('keydown', (event) => {
    if (!modal) return;
    if (event.key === 'Escape') {
      event.preventDefault();
      closeView(modal.id);
    } else if (event.key === 'Tab') {
      trapFocus(event);
    } else if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submitModal();
    }
  });

  const box = $('composer');
  box.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendComposer();
    }
  });
  box.addEventListener('input', () => {
    autosize(box);
    $('composer-send').disabled = !box.value.trim();
  });
  $('composer-form').addEventListener('submit', (event) => {
    event.preventDefault();
    sendComposer();
  });

  const list = $('messages');
  let stick = true;
  list.addEventListener('scroll', () => {
    stick = nearBottom(list);
    if (stick) $('new-pill').hidden = true;
  });
  if ('ResizeObserver' in window) {
    // The composer's hint or a taller card must not push the newest message out of sight.
    new ResizeObserver(() => { if (stick) list.scrollTop = list.scrollHeight; }).observe(list);
  }
  $('new-pill').addEventListener('click', () => {
    list.scrollTop = list.scrollHeight;
    $('new-pill').hidden = true;
  });

  $('thread-close').addEventListener('click', closeThread);
  $('feed-toggle').addEventListener('click', toggleFeed);
  $('customer-toggle').addEventListener('click', () => setCustomerOpen(!S.customerOpen));
  $('customer-close').addEventListener('click', () => setCustomerOpen(false));

  $('customer-answer').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('customer-input');
    const text = input.value.trim();
    if (!text || S.customerSel === null) return;
    postCustomer({ conversation: S.customerSel, text, name: null }, () => {
      if (input.value.trim() === text) input.value = '';
    });
  });
  $('customer-new').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('customer-new-name');
    const text = $('customer-new-text');
    if (!text.value.trim()) {
      text.focus();
      return;
    }
    const payload = { conversation: null, text: text.value.trim(), name: name.value.trim() || null };
    S.newCustomerAt = Date.now();
    postCustomer(payload, () => {
      name.value = '';
      text.value = '';
    });
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && renderQueued) renderNow();
  });
}

// ---------------------------------------------------------------- start

function start() {
  wire();
  markAll();
  renderNow();
  // Open the event stream first, then read the state, so nothing falls between the two.
  const opened = new Promise((resolve) => { firstOpenWait = resolve; });
  connect();
  Promise.race([opened, new Promise((resolve) => setTimeout(resolve, 1500))]).then(async () => {
    firstOpenWait = null;
    await loadState();
    followPermalink();
  });
}

/** A permalink (/sandbox/archives/… redirects to /sandbox?channel=…&ts=…[&thread_ts=…]): show that message. */
function followPermalink() {
  const params = new URLSearchParams(location.search);
  const channel = params.get('channel');
  if (!channel || !/^[CGDU][A-Z0-9]+$/.test(channel)) return;
  selectChannel(channel);
  const thread = params.get('thread_ts');
  const ts = params.get('ts');
  if (thread && /^\d+\.\d+$/.test(thread)) openThread(channel, thread);
  else if (ts && /^\d+\.\d+$/.test(ts)) {
    const node = document.querySelector(`[data-testid="message-${CSS.escape(ts)}"]`);
    if (node) {
      node.scrollIntoView({ block: 'center' });
      flash(node);
    }
  }
  history.replaceState(null, '', location.pathname);
}

start();
