// powchain block explorer: a read-only view of the node that serves this file.
// Plain ES2020, no dependencies. Every string from the API reaches the DOM through
// textContent or setAttribute (see `h`), never innerHTML, so node data cannot inject markup.
'use strict';

const API = 'api/v1/'; // relative: works at / and behind a proxy under a sub-path
const LATEST_ROWS = 20; // rows in the latest-blocks table
const CHART_BLOCKS = 100; // blocks behind the interval chart (the API's page maximum)
const FORK_HEIGHTS = 20; // heights in the fork tree
const MEMPOOL_ROWS = 10;
const DEBOUNCE_MS = 250; // a burst of events (a reorg, a sync) makes one refresh

const $ = (id) => document.getElementById(id);
const SVG_NS = 'http://www.w3.org/2000/svg';

// ---- DOM helpers -----------------------------------------------------------------------

// h('a', {href: x, class: 'y'}, 'text', child…): children that are strings become text nodes.
function build(el, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v != null && v !== false) el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
const s = (tag, attrs, ...kids) => build(document.createElementNS(SVG_NS, tag), attrs, kids);
const fill = (el, ...kids) => { el.replaceChildren(); build(el, null, kids); return el; };

// ---- formatting ------------------------------------------------------------------------

const short = (hex) => (hex && hex.length > 16 ? hex.slice(0, 8) + '…' + hex.slice(-6) : hex);
const mono = (text, title) => h('span', { class: 'mono', title }, text);
const link = (route, text, cls) => h('a', { href: '#/' + route, class: cls }, text);
const blockLink = (id, text) => link('block/' + encodeURIComponent(id), text ?? short(String(id)), 'mono');
const txLink = (id) => link('tx/' + encodeURIComponent(id), short(id), 'mono');
const accountLink = (addr) => (addr ? link('account/' + encodeURIComponent(addr), short(addr), 'mono') : '—');
const num = (n) => (n == null ? '—' : String(n)); // integers are shown exactly, no grouping

function rate(hps) {
  if (hps == null || !isFinite(hps)) return '—';
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s'];
  let i = 0;
  while (hps >= 1000 && i < units.length - 1) { hps /= 1000; i++; }
  return (i ? hps.toFixed(2) : Math.round(hps)) + ' ' + units[i];
}

function bytes(n) {
  if (n == null) return '—';
  if (n < 1024) return n + ' B';
  if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1048576).toFixed(1) + ' MiB';
}

function duration(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return sec + ' s';
  if (sec < 3600) return Math.floor(sec / 60) + ' min ' + (sec % 60) + ' s';
  if (sec < 86400) return Math.floor(sec / 3600) + ' h ' + Math.floor((sec % 3600) / 60) + ' min';
  return Math.floor(sec / 86400) + ' d ' + Math.floor((sec % 86400) / 3600) + ' h';
}

const secs = (ms) => (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
const ago = (ms) => duration((Date.now() - ms) / 1000) + ' ago';
// An element whose text the one-second ticker keeps current ("12 s ago").
const age = (ms) => h('span', { 'data-t': ms, title: new Date(ms).toLocaleString() }, ago(ms));
const when = (ms) => [new Date(ms).toLocaleString(), ' (', age(ms), ')'];

// ---- the API ---------------------------------------------------------------------------

class ApiError extends Error {}

// GET a JSON document; any failure becomes an ApiError whose message is fit for the page.
async function api(path) {
  let res;
  try {
    res = await fetch(API + path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    throw new ApiError('cannot reach the node (' + e.message + ')');
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON: reported below */ }
  if (!res.ok) {
    const msg = body && body.error ? body.error.message : 'HTTP ' + res.status;
    throw new ApiError(msg);
  }
  if (body === null) throw new ApiError('the node answered ' + path + ' with something that is not JSON');
  return body;
}

// Listings are objects ({"blocks": […]}) so they can grow fields; accept a bare array too.
const list = (body, key) => (Array.isArray(body) ? body : body[key] || []);
const errorBox = (e) => h('p', { class: 'error' }, e instanceof ApiError ? e.message : 'error: ' + e);

// ---- state -----------------------------------------------------------------------------

const state = {
  status: null,
  blocks: null, // newest first, up to CHART_BLOCKS (null: not loaded yet)
  forks: null,
  shown: new Set(), // block hashes already in the table: new ones get a highlight
  mined: new Set(), // blocks this node mined while the page was open
  reorg: null, // the latest reorg seen: {at, height, disconnected, connected, hashes}
  route: null,
  token: 0, // bumped per navigation so a slow answer cannot paint over a newer view
};

// ---- header ----------------------------------------------------------------------------

async function loadStatus() {
  try {
    const st = await api('status');
    state.status = st;
    $('network').textContent = st.network;
    $('network').title = 'genesis ' + st.genesis;
    $('tip-height').textContent = String(st.height);
    fill($('stat-tip-age'), age(st.tip_time));
    $('stat-difficulty').textContent = st.difficulty_bits.toFixed(2) + ' bits';
    $('stat-net-rate').textContent = rate(st.network_hash_rate);
    // miner_hash_rate and mining are newer fields: fall back to automine on older nodes.
    const mining = st.mining ?? st.automine;
    fill($('stat-miner'), h('span', { class: mining ? 'on' : 'muted' }, mining ? 'mining' : 'idle'),
      st.miner_hash_rate != null && mining ? ' · ' + rate(st.miner_hash_rate) : '');
    $('stat-peers').textContent = String(st.peers);
    $('stat-mempool').textContent = st.mempool_count + ' tx · ' + bytes(st.mempool_bytes);
    if (st.downloading) $('stat-tip-age').append(' · ' + st.downloading + ' to download');
    showGlobalError(null);
  } catch (e) {
    showGlobalError(e);
  }
}

function showGlobalError(e) {
  const box = $('global-error');
  box.hidden = !e;
  if (e) box.textContent = 'Status: ' + (e instanceof ApiError ? e.message : e);
}

// ---- latest blocks and the interval chart ----------------------------------------------

async function loadBlocks() {
  try {
    state.blocks = list(await api('blocks?count=' + CHART_BLOCKS), 'blocks');
  } catch (e) {
    fill($('latest-blocks'), h('tr', null, h('td', { colspan: 5 }, errorBox(e))));
    return;
  }
  // After a reorg, mark the blocks that came in with it by hash (so a later reorg of the same
  // heights does not inherit the mark); the event gave only heights.
  const r = state.reorg;
  if (r && r.from != null) {
    for (const b of state.blocks) if (b.height >= r.from && b.height <= r.height) r.hashes.add(b.hash);
    r.from = null;
  }
  renderBlocks();
  renderIntervals();
}

function renderBlocks() {
  const blocks = state.blocks;
  const first = state.shown.size === 0; // no highlight on the first paint
  const r = state.reorg;
  const rows = blocks.slice(0, LATEST_ROWS).map((b, i) => {
    const prev = blocks[i + 1];
    const reorged = r && r.hashes.has(b.hash);
    const cls = [!first && !state.shown.has(b.hash) && 'new', reorged && 'reorged'].filter(Boolean).join(' ');
    return h('tr', { class: cls || null },
      h('td', null, blockLink(b.hash, String(b.height)),
        reorged && h('span', { class: 'tag warn', title: 'joined the best chain in a reorg' }, 'reorg'),
        state.mined.has(b.hash) && h('span', { class: 'tag', title: 'mined by this node' }, 'mined')),
      h('td', null, blockLink(b.hash)),
      h('td', { class: 'num' }, num(b.tx_count)),
      h('td', { class: 'num' }, age(b.time)),
      h('td', { class: 'num' }, prev ? secs(b.time - prev.time) : '—'));
  });
  fill($('latest-blocks'), rows.length ? rows : h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'No blocks.')));
  state.shown = new Set(blocks.slice(0, LATEST_ROWS).map((b) => b.hash));
  const note = $('reorg-note');
  note.hidden = !r;
  if (r) {
    fill(note, h('span', { class: 'tag warn' }, 'reorg'), ' at height ', String(r.height), ': ',
      r.disconnected + ' out, ' + r.connected + ' in, ', age(r.at));
  }
}

// A "nice" axis maximum: 1, 2 or 5 times a power of ten, at least `v`.
function niceCeil(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= v);
}

// Bars of seconds between consecutive best-chain blocks, the mean dashed across them.
function renderIntervals() {
  const box = $('interval-chart');
  if (!state.blocks) return; // not loaded yet: the box still says so
  const blocks = state.blocks.slice().reverse(); // oldest first, left to right
  const iv = [];
  for (let i = 1; i < blocks.length; i++) {
    iv.push({ height: blocks[i].height, hash: blocks[i].hash, sec: (blocks[i].time - blocks[i - 1].time) / 1000 });
  }
  if (iv.length < 2) { fill(box, h('p', { class: 'muted' }, 'Not enough blocks yet.')); return; }
  const W = Math.max(280, box.clientWidth || 460), H = 170;
  const L = 40, R = 8, T = 10, B = 24; // margins: room for the axis labels
  const mean = iv.reduce((a, b) => a + b.sec, 0) / iv.length;
  const sorted = iv.map((x) => x.sec).sort((a, b) => a - b);
  // Scale to the 95th percentile (one freak gap should not flatten the rest); taller bars clip.
  const top = niceCeil(Math.max(sorted[Math.floor(sorted.length * 0.95)], mean * 1.5));
  const y = (v) => T + (H - T - B) * (1 - Math.min(Math.max(v, 0), top) / top);
  const bw = (W - L - R) / iv.length;
  const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': 'seconds between the last ' + (iv.length + 1) + ' blocks' });
  for (let k = 0; k <= 4; k++) { // horizontal grid lines and the y axis labels
    const v = (top * k) / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'gl' }),
      s('text', { x: L - 5, y: y(v) + 4, 'text-anchor': 'end' }, +v.toFixed(2) + ' s'));
  }
  iv.forEach((d, i) => {
    const bar = s('rect', { x: L + i * bw + bw * 0.1, y: y(d.sec), width: Math.max(1, bw * 0.8),
      height: y(0) - y(d.sec), class: d.sec > top ? 'bar clip' : 'bar' },
    s('title', null, `block ${d.height}: ${d.sec.toFixed(2)} s after its parent`));
    svg.append(s('a', { href: '#/block/' + encodeURIComponent(d.hash) }, bar));
  });
  const labelAt = [0, Math.floor(iv.length / 2), iv.length - 1];
  for (const i of new Set(labelAt)) { // x axis: a few heights
    svg.append(s('text', { x: L + (i + 0.5) * bw, y: H - 6, 'text-anchor': 'middle' }, String(iv[i].height)));
  }
  svg.append(s('line', { x1: L, x2: W - R, y1: y(mean), y2: y(mean), class: 'mean' }),
    s('text', { x: W - R - 2, y: y(mean) - 4, 'text-anchor': 'end', class: 'mean-label' }, 'mean ' + mean.toFixed(2) + ' s'));
  fill(box, svg);
  $('interval-note').textContent = 'last ' + iv.length + ' · median ' + sorted[sorted.length >> 1].toFixed(2) + ' s';
}

// ---- fork tree -------------------------------------------------------------------------

async function loadForks() {
  try {
    state.forks = await api('forks?count=' + FORK_HEIGHTS);
  } catch (e) {
    fill($('fork-tree'), errorBox(e));
    return;
  }
  renderForks();
}

// Heights run left to right; the best chain is lane 0, each side branch gets the lowest free
// lane below it and keeps it while it grows, so branches stay straight and readable.
function renderForks() {
  const box = $('fork-tree');
  if (!state.forks) return;
  const blocks = state.forks.blocks || [];
  if (!blocks.length) { fill(box, h('p', { class: 'muted' }, 'No blocks.')); return; }
  const lo = blocks[0].height, hi = blocks[blocks.length - 1].height;
  const pos = new Map(); // hash -> {lane, col}
  const laneEnd = [Infinity]; // last height used per lane; lane 0 is reserved for the best chain
  for (const b of blocks) {
    let lane = 0;
    if (!b.best) {
      const parent = pos.get(b.parent);
      if (parent && parent.lane > 0 && laneEnd[parent.lane] === b.height - 1) {
        lane = parent.lane; // the branch continues in its lane
      } else {
        lane = laneEnd.findIndex((end, i) => i > 0 && end < b.height - 1);
        if (lane < 0) lane = laneEnd.length;
      }
      laneEnd[lane] = b.height;
    }
    pos.set(b.hash, { lane, col: b.height - lo });
  }
  const lanes = laneEnd.length, cols = hi - lo + 1;
  const W = Math.max(280, box.clientWidth || 460), L = 16, R = 16, T = 14, LH = 22;
  const H = T + lanes * LH + 18;
  const colW = cols > 1 ? (W - L - R) / (cols - 1) : 0;
  const X = (p) => L + p.col * colW, Y = (p) => T + p.lane * LH;
  const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `blocks at heights ${lo} to ${hi}` });
  const edges = s('g', { class: 'edges' }), nodes = s('g');
  for (const b of blocks) {
    const p = pos.get(b.hash), q = pos.get(b.parent);
    // A parent below the window: a short stub toward the left says "continues".
    edges.append(s('path', q ? { d: `M${X(q)},${Y(q)} L${X(p)},${Y(p)}` }
      : { d: `M${X(p) - Math.min(colW, 14)},${Y(p)} L${X(p)},${Y(p)}`, class: 'stub' }));
    const kind = b.status === 'invalid' ? 'bad' : b.best ? 'best' : b.status === 'connected' ? 'was' : 'side';
    nodes.append(s('a', { href: '#/block/' + encodeURIComponent(b.hash) },
      s('circle', { cx: X(p), cy: Y(p), r: b.best ? 5 : 4.5, class: 'k-' + kind },
        s('title', null, `height ${b.height} · ${short(b.hash)} · ${b.best ? 'best chain' : 'side branch'} · ${b.status}`))));
  }
  const step = Math.max(1, Math.ceil(44 / (colW || 44))); // height labels at least 44 px apart
  for (let c = cols - 1; c >= 0; c -= step) {
    svg.append(s('text', { x: L + c * colW, y: H - 4, 'text-anchor': 'middle' }, String(lo + c)));
  }
  svg.append(edges, nodes);
  fill(box, svg);
}

// ---- mempool and peers -----------------------------------------------------------------

async function loadMempool() {
  const body = $('mempool');
  try {
    const mp = await api('mempool');
    $('mempool-note').textContent = mp.count + ' tx · ' + bytes(mp.bytes);
    const rows = mp.txs.slice(0, MEMPOOL_ROWS).map((t) => h('tr', null,
      h('td', null, txLink(t.id)),
      h('td', null, accountLink(t.from), ' → ', accountLink(t.to)),
      h('td', { class: 'num' }, num(t.amount)), h('td', { class: 'num' }, num(t.fee))));
    fill(body, rows.length ? rows : h('tr', null, h('td', { colspan: 4, class: 'muted' }, 'Empty.')));
  } catch (e) {
    fill(body, h('tr', null, h('td', { colspan: 4 }, errorBox(e))));
  }
}

async function loadPeers() {
  const body = $('peers');
  try {
    const peers = list(await api('peers'), 'peers');
    const rows = peers.map((p) => h('tr', null,
      h('td', { class: 'mono', title: 'node ' + p.node_id + ' · connection ' + p.id }, p.address),
      h('td', null, p.direction, p.feeler && h('span', { class: 'tag' }, 'feeler')),
      h('td', { class: 'muted' }, p.agent),
      h('td', { class: 'num' }, blockLink(p.tip, String(p.tip_height))),
      h('td', { class: 'num' }, p.rtt_ms == null ? '—' : p.rtt_ms + ' ms'),
      h('td', { class: 'num' }, bytes(p.bytes_in)), h('td', { class: 'num' }, bytes(p.bytes_out)),
      h('td', { class: 'num' }, duration(p.connected_seconds))));
    fill(body, rows.length ? rows : h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'No peers.')));
  } catch (e) {
    fill(body, h('tr', null, h('td', { colspan: 8 }, errorBox(e))));
  }
}

// ---- detail views ----------------------------------------------------------------------

// A definition list from [label, value] pairs; falsy pairs are skipped.
const fields = (pairs) => h('dl', { class: 'fields' },
  pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
const yes = (ok, a, b) => h('span', { class: 'tag ' + (ok ? 'ok' : 'warn') }, ok ? a : b);

// `self`: the account whose history this is; `inBlock`: the block's own table (no Block column).
function txTable(txs, self, inBlock) {
  if (!txs.length) return h('p', { class: 'muted' }, 'None.');
  // In an account's history, its own address is plain text and the direction is shown.
  const who = (a) => (a && a === self ? h('span', { class: 'muted' }, 'this account') : accountLink(a));
  return h('div', { class: 'scroll' }, h('table', { class: 'list' },
    h('thead', null, h('tr', null, ['Id', 'Kind', 'From', 'To', 'Amount', 'Fee', !inBlock && 'Block'].filter(Boolean).map((c, i) =>
      h('th', { class: i > 3 && i < 6 ? 'num' : null }, c)))),
    h('tbody', null, txs.map((t) => h('tr', null,
      h('td', null, txLink(t.id)),
      h('td', null, t.kind, self && h('span', { class: 'tag' }, t.to === self ? 'in' : 'out')),
      h('td', null, t.from ? who(t.from) : h('span', { class: 'muted' }, 'new coins')),
      h('td', null, who(t.to)),
      h('td', { class: 'num' }, num(t.amount)), h('td', { class: 'num' }, num(t.fee)),
      !inBlock && h('td', null, t.block ? blockLink(t.block.hash, '#' + t.block.height) : yes(false, '', 'pending')))))));
}

async function showBlock(id) {
  const b = await api('blocks/' + encodeURIComponent(id));
  const tip = state.status ? state.status.height : null;
  const nav = h('span', { class: 'nav' },
    b.height > 0 && blockLink(b.prev_hash, '← ' + (b.height - 1)),
    b.on_best_chain && tip != null && b.height < tip && blockLink(String(b.height + 1), b.height + 1 + ' →'));
  return [h('h2', null, 'Block ' + b.height, nav),
    fields([
      ['Hash', mono(b.hash)],
      ['Chain', b.on_best_chain ? yes(true, 'best chain') : yes(false, '', 'side branch (not on the best chain)')],
      ['Confirmations', num(b.confirmations)],
      ['Time', when(b.time)],
      ['Parent', b.height > 0 ? blockLink(b.prev_hash, b.prev_hash) : mono(b.prev_hash)],
      ['Difficulty', b.difficulty_bits.toFixed(2) + ' bits'],
      ['Target', mono(b.target)],
      ['Nonce', num(b.nonce)],
      ['Tx root', mono(b.tx_root)],
    ]),
    h('h3', null, 'Transactions (' + b.tx_count + ')'),
    txTable(b.txs || [], null, true)];
}

async function showTx(id) {
  const t = await api('tx/' + encodeURIComponent(id));
  const memo = t.memo ? memoText(t.memo) : null;
  return [h('h2', null, 'Transaction'),
    fields([
      ['Id', mono(t.id)],
      ['Status', t.pending ? yes(false, '', 'pending in the mempool')
        : [yes(true, t.confirmations + ' confirmation' + (t.confirmations === 1 ? '' : 's')), ' in block ',
          blockLink(t.block.hash, '#' + t.block.height)]],
      ['Kind', t.kind],
      ['From', t.from ? link('account/' + t.from, t.from, 'mono') : h('span', { class: 'muted' }, 'none: a coinbase makes new coins')],
      ['To', link('account/' + t.to, t.to, 'mono')],
      ['Amount', num(t.amount)],
      t.fee != null && ['Fee', num(t.fee)],
      t.nonce != null && ['Nonce', num(t.nonce)],
      t.memo != null && ['Memo', t.memo ? [mono(t.memo), memo && h('span', { class: 'muted' }, ' “' + memo + '”')] : h('span', { class: 'muted' }, 'empty')],
    ])];
}

// A hex memo as text, when it is printable UTF-8 (otherwise only the hex is shown).
function memoText(hex) {
  try {
    const raw = new Uint8Array(hex.match(/../g).map((x) => parseInt(x, 16)));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    return /^[^\p{Cc}]*$/u.test(text) ? text : null;
  } catch (e) { return null; }
}

async function showAccount(who) {
  const dev = /^dev:(\d+)$/i.exec(who);
  const a = await api('accounts/' + encodeURIComponent(dev ? dev[1] : who));
  return [h('h2', null, a.dev_index != null ? 'Dev account ' + a.dev_index : 'Account'),
    fields([
      ['Address', mono(a.address)],
      a.dev_index != null && ['Dev index', String(a.dev_index)],
      ['Balance', h('span', { id: 'account-balance', class: 'big' }, String(a.balance))],
      ['Pending balance', a.pending_balance === a.balance ? String(a.pending_balance)
        : [String(a.pending_balance), h('span', { class: 'muted' }, ' once pending transfers are mined')]],
      ['Nonce', num(a.nonce) + (a.next_nonce !== a.nonce ? ' (next ' + a.next_nonce + ')' : '')],
      !a.exists && ['Known', h('span', { class: 'muted' }, 'not on the best chain yet')],
    ]),
    h('h3', null, 'Recent transactions'),
    txTable(a.recent, a.address)];
}

// #/find/<128 hex>: block hashes and transaction ids look alike; try a block, then a tx, and
// replace the history entry so the back button skips this step.
async function find(hex) {
  try {
    await api('blocks/' + hex);
    location.replace('#/block/' + hex);
  } catch (e) {
    try {
      await api('tx/' + hex);
      location.replace('#/tx/' + hex);
    } catch (e2) {
      throw new ApiError('no block or transaction ' + hex + ' on this node');
    }
  }
  return null;
}

// ---- routing ---------------------------------------------------------------------------

const VIEWS = { block: ['block-view', showBlock], tx: ['tx-view', showTx], account: ['account-view', showAccount], find: ['block-view', find] };

function parseRoute() {
  const m = /^#\/(block|tx|account|find)\/(.+)$/.exec(location.hash);
  if (!m) return null;
  try { return { kind: m[1], arg: decodeURIComponent(m[2]) }; } catch (e) { return null; }
}

// Shows the view the hash names; `quiet` (a live refresh) keeps the old content until the
// new one arrives instead of flashing "Loading".
async function route(quiet) {
  const r = parseRoute();
  const token = ++state.token;
  const [sectionId, load] = r ? VIEWS[r.kind] : [null, null];
  for (const id of ['block-view', 'tx-view', 'account-view']) {
    // Empty the views not shown, so no stale element (say #account-balance) lingers.
    if (id !== sectionId) { $(id).hidden = true; $(id).replaceChildren(); }
  }
  if (sectionId) $(sectionId).hidden = false;
  $('home').hidden = !!r;
  state.route = r;
  if (!r) return;
  const box = $(sectionId);
  if (!quiet) { fill(box, h('p', { class: 'muted' }, 'Loading…')); window.scrollTo(0, 0); }
  let content;
  try {
    content = await load(r.arg);
  } catch (e) {
    content = [h('h2', null, r.kind === 'find' ? 'Search' : r.kind[0].toUpperCase() + r.kind.slice(1)), errorBox(e)];
  }
  if (token === state.token && content) fill(box, content, h('p', null, link('', '← latest blocks')));
}

// The search rule, also shown as the box's placeholder:
//   digits -> a block height; dev:N -> dev account N; 64 hex -> an address;
//   128 hex -> a block hash or a transaction id (looked up in that order).
function search(ev) {
  ev.preventDefault();
  const q = $('search').value.trim().replace(/^0x/i, '');
  const err = $('search-error');
  let target = null;
  if (/^\d+$/.test(q)) target = 'block/' + q;
  else if (/^dev:\s*\d+$/i.test(q)) target = 'account/dev:' + q.replace(/\D/g, '');
  else if (/^[0-9a-f]{64}$/i.test(q)) target = 'account/' + q.toLowerCase();
  else if (/^[0-9a-f]{128}$/i.test(q)) target = 'find/' + q.toLowerCase();
  err.hidden = !!target || !q;
  err.textContent = 'Not a height, dev:N, address (64 hex digits) or block hash / transaction id (128 hex digits).';
  if (!target) return;
  if (location.hash === '#/' + target) route(false); // same view again: reload it
  else location.hash = '#/' + target;
}

// ---- live updates ----------------------------------------------------------------------

let timer = null, running = false, again = false;

// Refresh everything once, however many events asked for it within DEBOUNCE_MS; a request
// arriving mid-refresh runs one more pass afterwards.
function schedule(delay = DEBOUNCE_MS) {
  if (!timer) timer = setTimeout(refresh, delay);
}

async function refresh() {
  timer = null;
  if (running) { again = true; return; }
  running = true;
  try {
    await Promise.all([loadStatus(), loadBlocks(), loadForks(), loadPeers(), loadMempool(),
      state.route && state.route.kind !== 'find' ? route(true) : null]);
  } finally {
    running = false;
    if (again) { again = false; schedule(); }
  }
}

function setConn(st, text) {
  const c = $('conn');
  c.dataset.state = st;
  c.querySelector('b').textContent = text;
}

let source = null;

function connect() {
  source = new EventSource(API + 'events');
  source.onopen = () => { setConn('live', 'live'); schedule(0); }; // catch up on what was missed
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. a non-stream answer): try again ourselves.
      setConn('down', 'offline, retrying');
      setTimeout(connect, 5000);
    } else {
      setConn('down', 'reconnecting');
    }
  };
  const on = (name, fn) => source.addEventListener(name, (ev) => {
    let data = {};
    try { data = JSON.parse(ev.data); } catch (e) { /* keep {} */ }
    fn(data);
  });
  on('tip', (d) => {
    if (d.disconnected > 0) {
      // The blocks that joined are the tip and the ones under it: loadBlocks finds their hashes.
      state.reorg = { at: Date.now(), height: d.height, disconnected: d.disconnected,
        connected: d.connected, hashes: new Set(), from: d.height - d.connected + 1 };
    }
    schedule();
  });
  on('mined', (d) => { state.mined.add(d.hash); schedule(); });
  on('transaction', () => schedule(1000)); // the mempool is large: refresh it calmly
  on('dropped', () => schedule(1000));
  on('lagged', () => schedule(0));
}

// ---- start -----------------------------------------------------------------------------

$('search-form').addEventListener('submit', search);
window.addEventListener('hashchange', () => route(false));
// Charts are drawn at their box's pixel width (crisp text); redraw when that width changes.
// This also covers the dashboard coming back into view after a detail view hid it.
const drawnWidth = new Map();
const resized = new ResizeObserver((entries) => {
  for (const e of entries) {
    const w = Math.round(e.contentRect.width);
    if (!w || drawnWidth.get(e.target) === w) continue;
    drawnWidth.set(e.target, w);
    (e.target.id === 'fork-tree' ? renderForks : renderIntervals)();
  }
});
resized.observe($('interval-chart'));
resized.observe($('fork-tree'));
// Ages ("12 s ago") tick without refetching anything.
setInterval(() => {
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = ago(+el.dataset.t);
}, 1000);
// Peers' traffic and round trips change without tip events.
setInterval(() => { if (!document.hidden && !state.route) loadPeers(); }, 10000);
// Last resort: nothing should throw, but if something does, say so in the page.
window.addEventListener('unhandledrejection', (ev) => showGlobalError(ev.reason));

route(false);
schedule(0);
connect();
