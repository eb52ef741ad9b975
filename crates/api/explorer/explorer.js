// powchain explorer: a read-only view of the node serving this file. Plain ES2020, no
// dependencies. Data reaches the DOM only as text nodes and attributes (see `h`), never
// through innerHTML, so nothing a peer puts in a block or agent string can inject markup.
'use strict';

const API = 'api/v1/'; // relative, so the page also works behind a proxy under a sub-path
const ROWS = 15; // latest-blocks rows: about the height of the charts beside them
const CHART = 100; // blocks behind the interval chart: the API's page maximum
const FORK_HEIGHTS = 20;

const $ = (id) => document.getElementById(id);

// h(tag, attrs, ...children): strings become text nodes, arrays are flattened, null/false skipped.
function build(el, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) if (v != null && v !== false) el.setAttribute(k, v);
  for (const k of kids.flat(9)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}
const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
const s = (tag, attrs, ...kids) => build(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, kids);
const fill = (el, ...kids) => (el.replaceChildren(), build(el, null, kids));
const row = (n, ...kids) => h('tr', null, h('td', { colspan: n }, ...kids));

// ---- formatting

const short = (x) => (x.length > 16 ? x.slice(0, 8) + '…' + x.slice(-6) : x);
// A block hash or a transaction id as the session prints it: its first 16 digits, which
// find it again in the search box (a block's first ones are zeros; the rest tell it apart).
const shortId = (x) => x.slice(0, 16);
const mono = (x) => h('span', { class: 'mono' }, x);
const link = (path, text) => h('a', { href: '#/' + path, class: 'mono' }, text);
const blockLink = (id, text) => link('block/' + id, text ?? shortId(id));
const txLink = (id) => link('tx/' + id, shortId(id));
const acctLink = (a, full) => link('account/' + a, full ? a : short(a));
const muted = (x) => h('span', { class: 'muted' }, x);
const tag = (cls, x) => h('span', { class: 'tag ' + cls }, x);
const num = (n) => (n == null ? '—' : String(n)); // amounts are integers: shown exactly

function unit(v, base, names) {
  let i = 0;
  while (v >= base && i < names.length - 1) { v /= base; i++; }
  return (i ? v.toFixed(v < 10 ? 2 : 1) : Math.round(v)) + ' ' + names[i];
}
const rate = (v) => (v == null ? '—' : unit(v, 1000, ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s']));
const bytes = (v) => (v == null ? '—' : unit(v, 1024, ['B', 'KiB', 'MiB', 'GiB']));

function duration(sec) {
  sec = Math.max(0, Math.round(sec));
  const two = (a, an, b, bn) => a + ' ' + an + (b ? ' ' + b + ' ' + bn : '');
  if (sec < 60) return sec + ' s';
  if (sec < 3600) return two(Math.floor(sec / 60), 'min', sec % 60, 's');
  if (sec < 86400) return two(Math.floor(sec / 3600), 'h', Math.floor(sec / 60) % 60, 'min');
  return two(Math.floor(sec / 86400), 'd', Math.floor(sec / 3600) % 24, 'h');
}
// A duration in ms: milliseconds below a second (a fast devnet mines many blocks a second).
const secs = (ms) => (Math.abs(ms) < 1000 ? +ms.toFixed(1) + ' ms' : (ms / 1000).toFixed(2) + ' s');
const ago = (ms) => duration((Date.now() - ms) / 1000) + ' ago';
// The one-second ticker keeps the text of every [data-t] element current.
const age = (ms) => h('span', { 'data-t': ms, title: new Date(ms).toLocaleString() }, ago(ms));

// ---- the API

class ApiError extends Error {}

// GET JSON; every failure becomes an ApiError whose message can go straight into the page.
async function api(path) {
  let res, body = null;
  try {
    res = await fetch(API + path, { cache: 'no-store' });
  } catch (e) {
    throw new ApiError('cannot reach the node');
  }
  // Nonces are u64 and often above 2^53, where a JS number would round them: they are kept
  // as their exact digits (the reviver's source text, where the browser gives it).
  try { body = JSON.parse(await res.text(), (k, v, ctx) => (k === 'nonce' && ctx && ctx.source ? ctx.source : v)); } catch (e) { /* reported below */ }
  if (!res.ok) throw new ApiError(body?.error?.message || 'HTTP ' + res.status + ' for ' + path);
  if (body == null) throw new ApiError(path + ': the answer is not JSON');
  return body;
}
// Listings come wrapped ({"blocks": […]}) so they can grow fields; a bare array works too.
const list = (body, key) => (Array.isArray(body) ? body : body[key] || []);
// Anything else is a bug in this page: shown, and kept in window.explorerErrors for tests.
window.explorerErrors = [];
function msg(e) {
  if (e instanceof ApiError) return e.message;
  explorerErrors.push(String(e?.stack || e));
  return 'error: ' + e;
}
const errorBox = (e) => h('p', { class: 'error' }, msg(e));

const state = {
  tip: null, // the status' height
  blocks: null, // newest first, CHART of them (null: not loaded yet)
  forks: null,
  shown: null, // hashes in the table last time: new rows get a highlight
  reorg: null, // the last reorg seen: {at, height, disconnected, connected, from, hashes}
  route: null,
  token: 0, // bumped per navigation, so a slow answer cannot paint over a newer view
};

// ---- header

async function loadStatus() {
  const err = $('global-error');
  try {
    const st = await api('status');
    state.tip = st.height;
    const set = (id, ...x) => fill($(id), ...x);
    set('network', st.network).title = 'genesis ' + st.genesis;
    set('tip-height', String(st.height)); // exactly the decimal height: scripts read it
    set('stat-tip-age', age(st.tip_time), st.downloading ? ` · ${st.downloading} to fetch` : '');
    set('stat-difficulty', st.difficulty_bits.toFixed(2) + ' bits');
    set('stat-net-rate', rate(st.network_hash_rate));
    // `mining` and `miner_hash_rate` are newer than `automine`: use them when present.
    const mining = st.mining ?? st.automine;
    set('stat-miner', h('span', { class: mining ? 'on' : 'muted' }, mining ? 'mining' : 'idle'),
      mining && st.miner_hash_rate != null ? ' · ' + rate(st.miner_hash_rate) : '');
    set('stat-peers', String(st.peers));
    set('stat-mempool', st.mempool_count + ' tx · ' + bytes(st.mempool_bytes));
    err.hidden = true;
  } catch (e) {
    fill(err, 'Status: ', msg(e));
    err.hidden = false;
  }
}

// ---- latest blocks

async function loadBlocks() {
  try {
    state.blocks = list(await api('blocks?count=' + CHART), 'blocks');
  } catch (e) {
    return fill($('latest-blocks'), row(5, errorBox(e)));
  }
  // The tip event of a reorg gives heights; mark the blocks that came in by hash, so a later
  // reorg of the same heights does not inherit the mark.
  const r = state.reorg;
  if (r && r.from != null) {
    for (const b of state.blocks) if (b.height >= r.from && b.height <= r.height) r.hashes.add(b.hash);
    r.from = null;
  }
  const bs = state.blocks, shown = state.shown, rows = [];
  for (const [i, b] of bs.slice(0, ROWS).entries()) {
    const reorged = r && r.hashes.has(b.hash);
    rows.push(h('tr', { class: [shown && !shown.has(b.hash) && 'new', reorged && 'reorged'].filter(Boolean).join(' ') },
      h('td', null, blockLink(b.hash, String(b.height)), reorged && tag('warn', 'reorg')),
      h('td', null, blockLink(b.hash)),
      h('td', { class: 'num' }, num(b.tx_count)),
      h('td', { class: 'num' }, age(b.time)),
      h('td', { class: 'num' }, bs[i + 1] && bs[i + 1].height > 0 ? secs(b.time - bs[i + 1].time) : '—')));
  }
  fill($('latest-blocks'), rows.length ? rows : row(5, muted('No blocks.')));
  state.shown = new Set(bs.map((b) => b.hash));
  $('reorg-note').hidden = !r;
  if (r) fill($('reorg-note'), tag('warn', 'reorg'), ` at ${r.height}: ${r.disconnected} out, ${r.connected} in, `, age(r.at));
  drawIntervals();
}

// ---- block interval chart

// A round axis top: 1, 2 or 5 times a power of ten, at least v.
function niceCeil(v) {
  v = Math.max(v, 0.0001); // clocks may step back: intervals can be 0 or negative
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= v);
}

// Bars of seconds between consecutive best-chain blocks, oldest left, the mean dashed across.
function drawIntervals() {
  const box = $('interval-chart'), bs = state.blocks;
  if (!bs) return;
  // Genesis's time is a constant of the chain's rules, not a moment anyone mined at: the gap
  // after it says nothing about block intervals, so it is left out.
  const iv = bs.slice(0, -1)
    .map((b, i) => ({ b, parent: bs[i + 1], sec: (b.time - bs[i + 1].time) / 1000 }))
    .filter((d) => d.parent.height > 0).reverse();
  if (iv.length < 2) return fill(box, muted('Not enough blocks yet.'));
  const W = Math.max(280, box.clientWidth || 460), H = 190, L = 56, R = 8, T = 10, B = 24;
  const sorted = iv.map((d) => d.sec).sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / iv.length;
  // Scale to the 95th percentile, so one long gap does not flatten the rest; it is drawn
  // clipped at the top, in another colour.
  const top = niceCeil(Math.max(sorted[Math.floor(iv.length * 0.95)], mean * 1.5));
  const y = (v) => T + (H - T - B) * (1 - Math.min(Math.max(v, 0), top) / top);
  const bw = (W - L - R) / iv.length;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'block intervals' });
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'gl' }),
      s('text', { x: L - 5, y: y(v) + 4, 'text-anchor': 'end' }, secs(v * 1000)));
  }
  iv.forEach(({ b, sec }, i) => svg.append(s('a', { href: '#/block/' + b.hash },
    s('rect', { x: L + (i + 0.1) * bw, y: y(sec), width: Math.max(1, bw * 0.8), height: y(0) - y(sec), class: sec > top ? 'bar over' : 'bar' },
      s('title', null, `block ${b.height}: ${secs(sec * 1000)} after its parent`)))));
  for (const i of new Set([0, iv.length >> 1, iv.length - 1])) {
    svg.append(s('text', { x: L + (i + 0.5) * bw, y: H - 6, 'text-anchor': 'middle' }, String(iv[i].b.height)));
  }
  svg.append(s('line', { x1: L, x2: W - R, y1: y(mean), y2: y(mean), class: 'mean' }),
    s('text', { x: W - R - 2, y: y(mean) - 4, 'text-anchor': 'end', class: 'mean-label' }, 'mean ' + secs(mean * 1000)));
  fill(box, svg);
  $('interval-note').textContent = `last ${iv.length} · median ${secs(sorted[iv.length >> 1] * 1000)}`;
}

// ---- fork tree

async function loadForks() {
  try {
    state.forks = (await api('forks?count=' + FORK_HEIGHTS)).blocks || [];
  } catch (e) {
    return fill($('fork-tree'), errorBox(e));
  }
  drawForks();
}

// Heights run left to right. The best chain is lane 0; a side branch takes the first lane
// below that is free from the height before it starts, and keeps it while it grows, so
// branches are straight lines and never cross a node.
function drawForks() {
  const box = $('fork-tree'), bs = state.forks;
  if (!bs) return;
  if (!bs.length) return fill(box, muted('No blocks.'));
  const lo = bs[0].height, cols = bs[bs.length - 1].height - lo + 1;
  const at = new Map(); // hash -> {lane, col}
  const laneEnd = [Infinity]; // the last height each lane holds
  for (const b of bs) {
    let lane = 0;
    if (!b.best) {
      const p = at.get(b.parent);
      lane = p && p.lane && laneEnd[p.lane] === b.height - 1 ? p.lane
        : laneEnd.findIndex((end) => end < b.height - 1);
      if (lane < 0) lane = laneEnd.length;
      laneEnd[lane] = b.height;
    }
    at.set(b.hash, { lane, col: b.height - lo });
  }
  const W = Math.max(280, box.clientWidth || 460), L = 16, T = 14, H = T + laneEnd.length * 22 + 18;
  const cw = cols > 1 ? (W - 2 * L) / (cols - 1) : 0;
  const X = (p) => L + p.col * cw, Y = (p) => T + p.lane * 22;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'fork tree' });
  const edges = s('g', { class: 'edges' }), nodes = s('g');
  for (const b of bs) {
    const p = at.get(b.hash), q = at.get(b.parent);
    // A parent below the window gets a dashed stub: the chain goes on to the left.
    edges.append(s('path', q ? { d: `M${X(q)},${Y(q)}L${X(p)},${Y(p)}` }
      : { d: `M${X(p) - Math.min(cw, 14)},${Y(p)}h${Math.min(cw, 14)}`, class: 'stub' }));
    const kind = b.status === 'invalid' ? 'bad' : b.best ? 'best' : b.status === 'connected' ? 'was' : 'side';
    nodes.append(s('a', { href: '#/block/' + b.hash }, s('circle', { cx: X(p), cy: Y(p), r: 5, class: 'k-' + kind },
      s('title', null, `${b.height} · ${shortId(b.hash)} · ${b.best ? 'best chain' : 'side branch'} · ${b.status}`))));
  }
  for (let c = cols - 1; c >= 0; c -= Math.ceil(44 / (cw || 44))) { // labels 44 px apart at least
    svg.append(s('text', { x: L + c * cw, y: H - 4, 'text-anchor': 'middle' }, String(lo + c)));
  }
  fill(box, build(svg, null, [edges, nodes]));
}

// ---- peers

async function loadPeers() {
  const td = (x, cls = 'num') => h('td', { class: cls }, x);
  try {
    const rows = list(await api('peers'), 'peers').map((p) => h('tr', null,
      td(p.number == null ? p.address : `node ${p.number} · ${p.address}`, 'mono'), td([p.direction, p.feeler && tag('', 'feeler')], ''),
      h('td', { class: 'muted clip', title: p.agent }, p.agent),
      td(blockLink(p.tip, String(p.tip_height))), td(p.rtt_ms == null ? '—' : p.rtt_ms + ' ms'),
      td(bytes(p.bytes_in)), td(bytes(p.bytes_out)), td(duration(p.connected_seconds))));
    fill($('peers'), rows.length ? rows : row(8, muted('No peers.')));
  } catch (e) {
    fill($('peers'), row(8, errorBox(e)));
  }
}

// ---- detail views

// A definition list of [label, value] pairs; false entries are left out.
const fields = (pairs) => h('dl', { class: 'fields' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));

// `self`: the account whose history this is (its own address is not a link, in/out is shown);
// `inBlock`: a block's own list, where a Block column would repeat the block.
function txTable(txs, self, inBlock) {
  if (!txs.length) return muted('None.');
  const who = (a) => (a === self ? muted('this account') : acctLink(a));
  const cols = ['Id', 'Kind', 'From', 'To', 'Amount', 'Fee', !inBlock && 'Block'].filter(Boolean);
  return h('div', { class: 'scroll' }, h('table', null,
    h('thead', null, h('tr', null, cols.map((c, i) => h('th', { class: i == 4 || i == 5 ? 'num' : null }, c)))),
    h('tbody', null, txs.map((t) => h('tr', null,
      h('td', null, txLink(t.id)),
      h('td', null, t.kind, self && tag('', t.to === self ? 'in' : 'out')),
      h('td', null, t.from ? who(t.from) : muted('new coins')),
      h('td', null, who(t.to)),
      h('td', { class: 'num' }, num(t.amount)), h('td', { class: 'num' }, num(t.fee)),
      !inBlock && h('td', null, t.block ? blockLink(t.block.hash, '#' + t.block.height) : t.pending ? tag('warn', 'pending') : '—'))))));
}

async function showBlock(id) {
  const b = await api('blocks/' + encodeURIComponent(id));
  return [h('h2', null, 'Block ' + b.height, h('span', { class: 'nav' },
    b.height > 0 && blockLink(b.prev_hash, '← ' + (b.height - 1)),
    b.on_best_chain && b.height < state.tip && blockLink(String(b.height + 1), b.height + 1 + ' →'))),
  fields([
    ['Hash', mono(b.hash)],
    ['Chain', b.on_best_chain ? tag('ok', 'best chain') : tag('warn', 'side branch: not on the best chain')],
    ['Confirmations', num(b.confirmations)],
    ['Time', [new Date(b.time).toLocaleString(), ' (', age(b.time), ')']],
    ['Parent', b.height > 0 ? blockLink(b.prev_hash, b.prev_hash) : mono(b.prev_hash)],
    ['Difficulty', b.difficulty_bits.toFixed(2) + ' bits'],
    ['Target', mono(b.target)],
    ['Nonce', num(b.nonce)],
    ['Tx root', mono(b.tx_root)],
  ]),
  h('h3', null, `Transactions (${b.tx_count})`),
  txTable(b.txs || [], null, true)];
}

// A hex memo as text too, when it is printable UTF-8.
function memoText(hex) {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(hex.match(/../g).map((x) => parseInt(x, 16))));
    return /^[^\p{C}]+$/u.test(text) ? ' “' + text + '”' : '';
  } catch (e) { return ''; }
}

async function showTx(id) {
  const t = await api('tx/' + encodeURIComponent(id));
  return [h('h2', null, 'Transaction'), fields([
    ['Id', mono(t.id)],
    ['Status', t.pending ? tag('warn', 'pending in the mempool') : !t.block ? muted('only in a side branch')
      : [tag('ok', t.confirmations + (t.confirmations === 1 ? ' confirmation' : ' confirmations')), ' in block ',
        blockLink(t.block.hash, '#' + t.block.height)]],
    ['Kind', t.kind],
    ['From', t.from ? acctLink(t.from, true) : muted('none: a coinbase makes new coins')],
    ['To', acctLink(t.to, true)],
    ['Amount', num(t.amount)],
    t.fee != null && ['Fee', num(t.fee)],
    t.nonce != null && ['Nonce', num(t.nonce)],
    t.memo != null && ['Memo', t.memo ? [mono(t.memo), muted(memoText(t.memo))] : muted('empty')],
  ])];
}

async function showAccount(who) {
  const dev = /^dev:(\d+)$/i.exec(who); // #/account/dev:3 reads better than #/account/3
  const a = await api('accounts/' + encodeURIComponent(dev ? dev[1] : who));
  return [h('h2', null, a.dev_index != null ? 'Dev account ' + a.dev_index : 'Account'), fields([
    ['Address', mono(a.address)],
    a.dev_index != null && ['Dev index', String(a.dev_index)],
    ['Balance', h('span', { id: 'account-balance', class: 'big' }, String(a.balance))],
    ['Pending balance', [String(a.pending_balance), a.pending_balance !== a.balance && muted(' once pending transfers are mined')]],
    ['Nonce', a.nonce + (a.next_nonce !== a.nonce ? ` (next ${a.next_nonce})` : '')],
    !a.exists && ['Known', muted('not on the best chain yet')],
  ]), h('h3', null, 'Recent transactions'), txTable(a.recent, a.address)];
}

// #/find/<hex>: at least 8 hex digits of a block hash or a transaction id (a whole one, or
// a short id as the session prints it). One match: its page, replacing this history entry
// so the back button skips it. Several: the list. None: 64 digits may be an address.
async function find(hex) {
  const r = await api('search?q=' + encodeURIComponent(hex));
  const hits = [...r.blocks.map((id) => ['block', id]), ...r.transactions.map((id) => ['tx', id])];
  const more = r.more_blocks || r.more_transactions;
  if (hits.length === 1 && !more) return location.replace(`#/${hits[0][0]}/${hits[0][1]}`);
  if (!hits.length) {
    if (hex.length === 64) return location.replace('#/account/' + hex);
    throw new ApiError(`no block or transaction beginning with ${hex} on this node`);
  }
  return [h('h2', null, 'Search'),
    h('p', null, `${more ? 'More than these' : 'These ' + hits.length} begin with `, mono(hex), ': pick one, or give more digits.'),
    h('ul', { id: 'search-matches', class: 'matches' }, hits.map(([kind, id]) => h('li', null,
      kind === 'block' ? 'block ' : 'transaction ', link(kind + '/' + id, id.slice(0, 24) + '…'))))];
}

// ---- routing and search

const VIEWS = { block: ['block-view', showBlock], tx: ['tx-view', showTx], account: ['account-view', showAccount], find: ['block-view', find] };

// Shows the view the hash names (#/block/…, #/tx/…, #/account/…; anything else: the
// dashboard). `quiet`, for live refreshes, keeps the old content until the new arrives.
async function route(quiet) {
  const m = /^#\/(block|tx|account|find)\/([^/]+)$/.exec(location.hash);
  const [id, load] = m ? VIEWS[m[1]] : [];
  const token = ++state.token;
  for (const v of ['block-view', 'tx-view', 'account-view']) {
    $(v).hidden = v !== id;
    if (v !== id) $(v).replaceChildren(); // no stale #account-balance left behind
  }
  const wasHome = !state.route;
  $('home').hidden = !!m;
  state.route = m;
  if (!m) return wasHome || schedule(0); // back on the dashboard: bring it up to date
  const box = $(id);
  if (!quiet) { fill(box, muted('Loading…')); scrollTo(0, 0); $('search-error').hidden = true; }
  let content;
  try {
    content = await load(decodeURIComponent(m[2]));
  } catch (e) {
    content = [h('h2', null, { block: 'Block', tx: 'Transaction', account: 'Account', find: 'Search' }[m[1]]), errorBox(e)];
  }
  if (token === state.token && content) fill(box, content, h('p', null, h('a', { href: '#/' }, '← latest blocks')));
}

// The search rule (the placeholder says it too): digits with no leading zero are a block
// height; dev:N is dev account N; 8 to 128 hex digits the beginning of a block hash or a
// transaction id (a hash with work begins with 0, so a short id is never a height), and 64
// that match neither an address.
function target(text) {
  const q = text.trim().replace(/^0x/i, '').toLowerCase();
  const dev = /^dev:\s*(\d+)$/.exec(q);
  const height = /^\d+$/.test(q) && (q === '0' || q[0] !== '0' || q.length < 8);
  const to = height ? 'block/' + q : dev ? 'account/dev:' + dev[1]
    : /^[0-9a-f]{8,128}$/.test(q) ? 'find/' + q : null;
  $('search-error').hidden = !!to || !q;
  return to && '#/' + to;
}
function search(ev) {
  ev.preventDefault();
  const to = target($('search').value);
  if (to === location.hash) route(); // the same view again: reload it
  else if (to) location.hash = to;
}

// ---- live updates

// Events only say that something changed; refresh() asks again. need: 1 = the status (a
// transaction came or went), 2 = everything. However many events arrive within 250 ms, one
// refresh runs; one arriving during a refresh starts another afterwards.
let need = 0, timer = null, running = false;
function schedule(delay = 250, what = 2) {
  need = Math.max(need, what);
  if (!timer) timer = setTimeout(refresh, delay);
}
async function refresh() {
  timer = null;
  if (running) return schedule(250, 0); // keeps what was asked for
  const what = need;
  need = 0;
  running = true;
  try {
    // Only what is on screen: the dashboard's lists, or the open view (its confirmations).
    await Promise.all([loadStatus(), what > 1 && (state.route
      ? state.route[1] !== 'find' && route(true) : [loadBlocks(), loadForks(), loadPeers()])].flat());
  } finally {
    running = false;
  }
}

function connect() {
  const es = new EventSource(API + 'events');
  const conn = (st, text) => { $('conn').dataset.state = st; $('conn').lastChild.textContent = text; };
  // On every (re)open: refetch, since events may have been missed while it was closed.
  es.onopen = () => { conn('live', 'live'); schedule(0); };
  es.onerror = () => {
    conn('down', 'reconnecting');
    // The browser retries by itself, unless the answer was not a stream: then retry here.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  };
  es.addEventListener('tip', (ev) => {
    let d = {};
    try { d = JSON.parse(ev.data); } catch (e) { /* refresh anyway */ }
    if (d.disconnected > 0) {
      state.reorg = { at: Date.now(), height: d.height, disconnected: d.disconnected,
        connected: d.connected, from: d.height - d.connected + 1, hashes: new Set() };
    }
    schedule();
  });
  es.addEventListener('transaction', () => schedule(1000, 1));
  es.addEventListener('dropped', () => schedule(1000, 1));
  es.addEventListener('lagged', () => schedule(0)); // missed events: start over
}

// ---- start

$('search-form').addEventListener('submit', search);
addEventListener('hashchange', () => route());
// Charts are drawn at the pixel width of their box, for crisp text: redraw when it changes
// (in the next frame: redrawing inside the callback resizes the box again, a layout loop).
let drawnWidth = 0;
new ResizeObserver(([e]) => {
  const w = Math.round(e.contentRect.width);
  if (w && w !== drawnWidth) { drawnWidth = w; requestAnimationFrame(() => { drawIntervals(); drawForks(); }); }
}).observe($('interval-chart'));
setInterval(() => { for (const el of document.querySelectorAll('[data-t]')) el.textContent = ago(+el.dataset.t); }, 1000);
// Peer traffic and round trips change without any event.
setInterval(() => document.hidden || state.route || loadPeers(), 10000);
// Nothing should throw; should something do so anyway, the page says it (and msg records it).
for (const kind of ['error', 'unhandledrejection']) {
  addEventListener(kind, (ev) => {
    if (/^ResizeObserver loop/.test(ev.message)) return; // a browser notice, not an error
    fill($('global-error'), msg(ev.error || ev.reason || ev.message)).hidden = false;
  });
}
// A form submitted without this script's handler (before it loaded, say) arrives as /?q=…:
// turn it into the view it asks for.
const asked = new URLSearchParams(location.search).get('q');
if (asked != null) {
  $('search').value = asked;
  history.replaceState(null, '', location.pathname + (target(asked) || location.hash));
}

route();
schedule(0);
connect();
