'use strict';
// viewer.js — the page of `loom view`: fetches the JSON endpoints, keeps the view state, draws
// the graph on a canvas (viewport culling, three levels of detail) and fills the panes. The
// hierarchy and the layout come from the server (/api/groups, /api/layout: tools/loom/layout.cpp);
// this file only draws. window.loomViewer exposes the state to the browser tests.

(() => {
  const $ = id => document.getElementById(id);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'onclick' || k === 'ondblclick') e[k] = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  };
  const fmtBytes = b => {
    const u = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (b >= 1024 && i < 3) { b /= 1024; ++i; }
    return (i ? b.toFixed(1) : b) + ' ' + u[i];
  };
  const fmtNum = v => typeof v === 'number' ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ?
      v.toExponential(3) : +v.toFixed(5) + '') : String(v);
  const shapeStr = t => t.dtype + '[' + t.shape.map(d => d < 0 ? '?' : d).join(',') + ']';
  const NODE_H = 34, HEADER = 26;

  // The hierarchy from /api/groups: containers, the container of every node (-1: a constant drawn
  // as a chip in its consumers), stubs of shared values, members of fused regions.
  const Layout = {
    buildModel(g, t) {
      const N = g.nodes.length;
      for (const v of t.virtual_nodes) g.nodes.push({...v, attrs: {}, fusion: 'member', virtual: true});
      const users = Array.from({length: g.nodes.length}, () => []);
      for (const n of g.nodes)
        for (const [p] of n.inputs) { const u = users[p]; if (u[u.length - 1] !== n.id) u.push(n.id); }
      const chip = new Uint8Array(g.nodes.length);
      const stubs = Array.from({length: g.nodes.length}, () => []);
      const chips = Array.from({length: g.nodes.length}, () => []);
      for (const [k, v] of Object.entries(t.chips)) { chips[+k] = v; for (const c of v) chip[c] = 1; }
      for (const [k, v] of Object.entries(t.stubs)) stubs[+k] = v;
      const containers = t.containers.map(c => ({...c}));
      for (const c of containers) c.parentC = c.parent >= 0 ? containers[c.parent] : null;
      return {graph: g, numGraphNodes: N, users, chip, chips, stubs, containers, root: containers[0],
              nodeContainer: t.node_container, hubs: new Set(t.hubs), expanded: new Set([0])};
    },
    ancestorsOf(m, id) {
      const a = [];
      const cid = m.nodeContainer[id];
      if (cid === undefined || cid < 0) return a;
      for (let c = m.containers[cid]; c && c.parentC; c = c.parentC) a.push(c.id);
      return a;
    },
  };

  const S = {
    summary: null, view: 'asis', graph: null, model: null, lay: null,
    selOps: new Set(), selNode: -1, selGroup: -1, searchHits: [], profile: null,
    cam: {x: 0, y: 0, k: 1}, ready: false, timings: {}, constants: null, passDiff: null,
  };
  window.loomViewer = S;

  async function api(path) {
    const r = await fetch(path);
    const j = await r.json();
    if (!r.ok || j.error) throw new Error(j.error || ('HTTP ' + r.status));
    return j;
  }
  function showError(msg) {
    const e = $('error');
    e.hidden = !msg;
    e.textContent = msg || '';
  }
  function status(msg) { $('status').textContent = msg; }

  // ---- loading ------------------------------------------------------------------------------

  async function start() {
    try {
      const r = await fetch('/api/summary');
      const s = await r.json();
      S.summary = s;
      $('pkg-name').textContent = s.path + (s.kind ? ` — ${s.kind}, v${s.version}, ${s.num_nodes} ops, ${fmtBytes(s.file_bytes)}` : '');
      if (s.error) { showError(s.error); status('error'); S.ready = true; return; }
      const sel = $('view-select');
      for (const d of s.devices) sel.append(el('option', {value: d, text: 'optimized for ' + d}));
      if (s.diff) { document.querySelector('[data-tab=diff]').hidden = false; loadDiff(); }
      if (s.profile_error) showError(s.profile_error);
      else if (s.profile) S.profileFile = await api('/api/profile?source=file');
      const params = new URLSearchParams(location.search);
      S.view = params.get('view') || s.default_view || 'asis';
      sel.value = S.view;
      await loadView(S.view);
    } catch (e) {
      showError('[view] ' + e.message);
      S.ready = true;
    }
  }

  async function loadView(view) {
    const keepName = S.selNode >= 0 && S.graph ? S.graph.nodes[S.selNode].name : null;
    status('loading ' + view + '…');
    if (!(S.summary && S.summary.profile_error)) showError('');
    const t0 = performance.now();
    S.ready = false;
    let g, t;
    try {
      const v = encodeURIComponent(view);
      [g, t] = await Promise.all([api('/api/graph?view=' + v), api('/api/groups?view=' + v)]);
    } catch (e) {
      showError(e.message);
      status('error');
      S.ready = true;
      return;
    }
    const t1 = performance.now();
    S.view = view;
    S.graph = g;
    S.model = Layout.buildModel(g, t);
    S.selOps.clear(); S.selNode = -1; S.selGroup = -1; S.passDiff = null;
    $('crumbs').innerHTML = '';
    const t2 = performance.now();
    try {
      await relayout();
    } catch (e) {
      showError(e.message);
      status('error');
      S.ready = true;
      return;
    }
    S.timings = {fetch_ms: t1 - t0, model_ms: t2 - t1, layout_ms: S.lay.ms, layout_server_ms: S.lay.server_ms,
                 groups_build_ms: t.build_ms};
    // The variables and constants panes fill in the background: the overview is interactive first.
    S.panesReady = false;
    fillOps(); fillPasses();
    Promise.all([fillVariables(), fillConstants()]).then(() => { S.panesReady = true; },
        e => { showError(e.message); S.panesReady = true; });
    $('profile-list').innerHTML = '';
    $('profile-summary').textContent = '';
    if (S.profileFile) applyProfile(S.profileFile); else S.profile = null;
    fit();
    // Switching views keeps the same op in view when it still exists (matched by name).
    if (keepName) {
      const n = g.nodes.find(n => n.name === keepName);
      if (n) await select(n.id, true);
    }
    status(`${S.model.numGraphNodes} ops · ${S.lay.nodes.length} drawn · layout ${S.lay.ms.toFixed(0)} ms`);
    S.ready = true;
  }

  // Asks the server for the layout of the current expansion state (only groups whose layout
  // changed are laid out there; identical ones are shared).
  let layoutSeq = 0;
  async function relayout() {
    const t0 = performance.now();
    const seq = ++layoutSeq;
    const ids = [...S.model.expanded].filter(x => x !== 0).sort((a, b) => a - b);
    // The shorter of the expanded list and "all but the collapsed ones" (URL length limit).
    let q = 'expanded=' + ids.join(',');
    if (2 * ids.length > S.model.containers.length)
      q = 'expanded=all&collapsed=' + S.model.containers.filter(c => c.id && !S.model.expanded.has(c.id)).map(c => c.id).join(',');
    const L = await api(`/api/layout?view=${encodeURIComponent(S.view)}&${q}`);
    if (seq !== layoutSeq) return;  // a newer request superseded this one
    const lay = {w: L.w, h: L.h, nodes: [], groups: [], edges: [], nodeBox: new Map(), groupBox: new Map(),
                 server_ms: L.ms, laid_out: L.laid_out, reused: L.reused};
    for (let i = 0; i < L.nodes.length; i += 5) {
      const b = {id: L.nodes[i], x: L.nodes[i + 1], y: L.nodes[i + 2], w: L.nodes[i + 3], h: L.nodes[i + 4]};
      lay.nodes.push(b); lay.nodeBox.set(b.id, b);
    }
    for (let i = 0; i < L.groups.length; i += 6) {
      const b = {gid: L.groups[i], x: L.groups[i + 1], y: L.groups[i + 2], w: L.groups[i + 3], h: L.groups[i + 4],
                 expanded: !!L.groups[i + 5]};
      lay.groups.push(b); lay.groupBox.set(b.gid, b);
    }
    for (const e of L.edges) {
      const n = S.graph.nodes[e[0]];
      lay.edges.push({pts: e.slice(3), e: {from: e[0], to: e[1], type: n && n.outputs[e[2]]}});
    }
    lay.ms = performance.now() - t0;
    S.lay = lay;
    draw();
  }

  // ---- panes ------------------------------------------------------------------------------

  function fillOps() {
    const ul = $('op-list');
    ul.innerHTML = '';
    const byOp = new Map();
    for (const n of S.graph.nodes) {
      if (n.virtual) continue;  // members of fused regions are not ops of this graph
      if (!byOp.has(n.op)) byOp.set(n.op, []);
      byOp.get(n.op).push(n.id);
    }
    const ops = [...byOp.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
    for (const [op, ids] of ops) {
      const tw = el('span', {class: 'tw', text: '▸'});
      const li = el('li', {'data-testid': 'op-type', 'data-op': op},
          tw, el('span', {class: 'swatch', style: 'background:' + opColor(op)}),
          el('span', {text: op}), el('span', {class: 'count', 'data-testid': 'op-count', text: ids.length}));
      const sub = el('ul', {hidden: ''});
      tw.onclick = ev => {
        ev.stopPropagation();
        if (!sub.childElementCount)
          for (const id of ids.slice(0, 2000))
            sub.append(el('li', {'data-testid': 'op-instance', onclick: e => { e.stopPropagation(); select(id, true); }},
                el('span', {text: S.graph.nodes[id].name || '#' + id})));
        sub.hidden = !sub.hidden;
        tw.textContent = sub.hidden ? '▸' : '▾';
      };
      li.onclick = ev => {
        if (!(ev.ctrlKey || ev.metaKey || ev.shiftKey)) {
          const only = S.selOps.size === 1 && S.selOps.has(op);
          S.selOps.clear();
          if (!only) S.selOps.add(op);
        } else if (S.selOps.has(op)) S.selOps.delete(op);
        else S.selOps.add(op);
        for (const x of ul.querySelectorAll('li[data-op]')) x.classList.toggle('sel', S.selOps.has(x.dataset.op));
        draw();
      };
      const wrap = el('div');
      ul.append(li, sub);
      void wrap;
    }
  }

  // Pass before/after: the compile pipeline records per pass the ops it removed, added and
  // rewritten (by name; docs/FORMAT.md "pass_changes"). Selecting a pass colours them in the
  // graph: added green, rewritten amber (in the graph after the passes); removed red (in the
  // as-is graph, where they still exist) and listed.
  function showPassChange(i) {
    const c = (S.graph.pass_changes || [])[i];
    if (!c) { S.passDiff = null; draw(); return; }
    S.passView = S.view;
    renderPassDiff(c, i);
  }
  function renderPassDiff(c, i) {
    const kind = new Map();
    for (const n of c.removed) kind.set(n, 'removed');
    for (const n of c.rewritten) kind.set(n, 'rewritten');
    for (const n of c.added) kind.set(n, 'added');
    S.passDiff = {index: i, change: c, kind};
    for (const li of document.querySelectorAll('[data-testid=pass-change]')) li.classList.toggle('sel', +li.dataset.index === i);
    const box = $('inspector');
    box.innerHTML = '';
    box.append(el('h2', {'data-testid': 'inspector-title', text: 'pass ' + c.pass}));
    // Before: the as-is graph (the removed ops still exist there); after: the compiled view.
    // Before / after: the graph after the pipeline's first `slot` passes and after this one too
    // ("cpu@K" views, recomputed by the server from the graph package).
    const dev = (S.passView || 'cpu').split('@')[0];
    const go = async (v, label) => {
      const keep = c;
      const sel = $('view-select');
      if (![...sel.options].some(o => o.value === v)) sel.append(el('option', {value: v, text: label}));
      await loadView(v);
      sel.value = v;
      renderPassDiff(keep, -1);
    };
    const hasSlot = typeof c.slot === 'number';
    const before = hasSlot ? `${dev}@${c.slot}` : 'asis', after = hasSlot ? `${dev}@${c.slot + 1}` : dev;
    if (S.summary.kind === 'executable')  // the file holds the graph after the passes only
      box.append(el('p', {class: 'hint', 'data-testid': 'pass-no-before',
          text: 'This package stores the compiled graph: the graph before the passes is not in the file (removed ops are listed, not drawn).'}));
    else
      box.append(el('p', {},
          el('button', {'data-testid': 'pass-before', onclick: () => go(before, `${dev}: before ${c.pass}`), text: 'before'}), ' ',
          el('button', {'data-testid': 'pass-after', onclick: () => go(after, `${dev}: after ${c.pass}`), text: 'after'})));
    const present = new Set(S.graph.nodes.filter(n => !n.virtual).map(n => n.name));
    box.append(el('p', {class: 'hint', 'data-testid': 'pass-summary', text: `${c.nodes_before} ops before, ${c.nodes_after} after. ` +
        'Before: removed ops outlined red, rewritten amber. After: added green, rewritten amber.'}));
    for (const [title, list, tid] of [['removed', c.removed, 'pass-removed'], ['added', c.added, 'pass-added'],
                                      ['rewritten', c.rewritten, 'pass-rewritten']]) {
      box.append(el('h3', {text: `${title} (${list.length})`}));
      const ul = el('ul', {class: 'list mono', 'data-testid': tid});
      for (const name of list.slice(0, 300)) {
        const id = present.has(name) ? S.graph.nodes.find(n => n.name === name && !n.virtual).id : -1;
        ul.append(el('li', {'data-name': name}, id >= 0 ? nodeLink(id) : el('span', {text: name + ' (not in this view)'})));
      }
      box.append(ul);
    }
    const first = S.graph.nodes.find(n => !n.virtual && kind.has(n.name) && kind.get(n.name) !== 'removed') ||
                  S.graph.nodes.find(n => !n.virtual && kind.has(n.name));
    if (first && S.lay.nodeBox.has(first.id)) { const b = S.lay.nodeBox.get(first.id); centreOn(b.x + b.w / 2, b.y + b.h / 2); }
    draw();
  }
  // Drawn ops the selected pass touched: as boxes, or as constant chips inside their consumers.
  S.passHighlighted = () => S.lay.nodes.filter(b => {
    if (!S.passDiff) return false;
    const n = S.graph.nodes[b.id];
    return S.passDiff.kind.has(n.name) || (S.model.chips[b.id] || []).some(p => S.passDiff.kind.has(S.graph.nodes[p].name));
  }).map(b => b.id);
  S.passRemovedShown = () => {  // removed ops visible in this view (boxes or chips)
    if (!S.passDiff) return 0;
    const shown = new Set();
    for (const b of S.lay.nodes) {
      const n = S.graph.nodes[b.id];
      if (S.passDiff.kind.get(n.name) === 'removed') shown.add(n.name);
      for (const p of S.model.chips[b.id] || [])
        if (S.passDiff.kind.get(S.graph.nodes[p].name) === 'removed') shown.add(S.graph.nodes[p].name);
    }
    return shown.size;
  };

  function fillPasses() {
    const ul = $('pass-list');
    ul.innerHTML = '';
    (S.graph.pass_changes || []).forEach((c, i) => {
      ul.append(el('li', {'data-testid': 'pass-change', 'data-index': i, 'data-pass': c.pass, onclick: () => showPassChange(i)},
          el('b', {text: c.pass}), el('span', {class: 'meta', text: `−${c.removed.length} +${c.added.length} ~${c.rewritten.length}`})));
    });
    const names = new Map(S.graph.nodes.filter(n => n.name).map(n => [n.name, n.id]));
    for (const line of S.graph.pass_log) {
      ul.append(el('li', {'data-testid': 'pass-line', onclick: () => {
        const ids = (line.match(/[A-Za-z_][\w.\/:]*/g) || []).filter(w => names.has(w)).map(w => names.get(w));
        S.searchHits = ids;
        if (ids.length) select(ids[0], true); else draw();
      }}, el('span', {text: line})));
    }
    if (!S.graph.pass_log.length) ul.append(el('li', {text: '(no passes ran for this view)'}));
  }

  async function fillVariables() {
    const ul = $('var-list');
    ul.innerHTML = '';
    const {variables} = await api('/api/variables?view=' + S.view);
    S.variables = variables;
    for (const v of variables)
      ul.append(el('li', {'data-testid': 'variable', onclick: () => inspectVariable(v)},
          el('span', {text: v.name}), el('span', {class: 'meta', text: shapeStr(v.type) + ' · ' + v.uses.length + ' uses'})));
    if (!variables.length) ul.append(el('li', {text: '(no variables)'}));
  }

  async function fillConstants() {
    const ul = $('const-list');
    ul.innerHTML = '';
    const {constants} = await api('/api/constants?view=' + S.view);
    S.constants = constants;
    for (const c of constants.slice(0, 3000))
      ul.append(el('li', {'data-testid': 'constant', 'data-bytes': c.nbytes,
          onclick: () => inspectConstant(c), ondblclick: () => openConstant(c.node)},
          el('span', {text: c.name || 'constant #' + c.node}), el('span', {class: 'meta', text: fmtBytes(c.nbytes)})));
    if (constants.length > 3000) ul.append(el('li', {text: `… ${constants.length - 3000} more`}));
  }

  async function loadDiff() {
    try {
      const d = await api('/api/diff');
      const body = $('diff-body');
      body.innerHTML = '';
      body.append(el('p', {class: 'hint', text: `${d.a} (${d.nodes_a} ops) vs ${d.b} (${d.nodes_b} ops)`}));
      const t = el('table', {class: 'diff', 'data-testid': 'diff-table'});
      t.append(el('tr', {}, el('th', {text: 'op'}), el('th', {text: 'a'}), el('th', {text: 'b'})));
      for (const o of d.ops)
        t.append(el('tr', {}, el('td', {text: o.op}), el('td', {text: o.a}),
            el('td', {text: o.b, class: o.a !== o.b ? 'd' : ''})));
      body.append(t);
      for (const [title, list] of [['changed', d.changed], ['only in a', d.removed], ['only in b', d.added]]) {
        body.append(el('h4', {text: `${title} (${list.length})`}));
        const ul = el('ul', {class: 'list mono'});
        for (const x of list.slice(0, 500)) ul.append(el('li', {text: x.name + ' ' + (x.op || x.a + ' → ' + x.b)}));
        body.append(ul);
      }
    } catch (e) { $('diff-body').textContent = e.message; }
  }

  // ---- inspector ----------------------------------------------------------------------------

  const nodeLink = id => {
    const n = S.graph.nodes[id];
    return el('a', {class: 'link', 'data-node': id, onclick: () => select(id, true),
        text: (n.name || '#' + id) + ' (' + n.op + ')'});
  };
  const row = (k, ...v) => el('tr', {}, el('td', {text: k}), el('td', {}, ...v));

  function inspectNode(id) {
    const n = S.graph.nodes[id];
    const m = S.model;
    const box = $('inspector');
    box.innerHTML = '';
    box.append(el('h2', {'data-testid': 'inspector-title', text: n.name || '#' + id}));
    const t = el('table');
    t.append(row('op', el('b', {text: n.op})), row('id', String(id)), row('fusion class', n.fusion));
    const anc = Layout.ancestorsOf(m, id).map(c => m.containers[c].label).reverse();
    if (anc.length) t.append(row('group', anc.join(' › ')));
    if (S.profile && S.profile.byName.has(n.name)) t.append(row('time', S.profile.byName.get(n.name).us.toFixed(1) + ' µs / run'));
    box.append(t);
    if (n.fusion === 'fused' || n.fusion === 'inplace')
      box.append(el('p', {class: 'tag', text: n.fusion === 'fused' ? 'fused kernel: one launch for a composite op' : 'in place: writes input 0\'s memory'}));
    const keys = Object.keys(n.attrs);
    if (keys.length) {
      box.append(el('h3', {text: 'attributes'}));
      const at = el('table', {'data-testid': 'inspector-attrs'});
      for (const k of keys) at.append(row(k, String(n.attrs[k])));
      box.append(at);
    }
    box.append(el('h3', {text: 'inputs'}));
    const it = el('table', {'data-testid': 'inspector-inputs'});
    n.inputs.forEach(([p, k], i) => {
      const src = S.graph.nodes[p];
      const kids = [nodeLink(p), ' ', el('span', {class: 'tag', text: shapeStr(src.outputs[k])})];
      if (src.op === 'constant') kids.push(' ', el('a', {class: 'link', 'data-testid': 'open-constant', onclick: () => openConstant(p), text: 'view values'}));
      it.append(row('#' + i, ...kids));
    });
    if (!n.inputs.length) it.append(row('', 'none'));
    box.append(it);
    box.append(el('h3', {text: 'outputs'}));
    const ot = el('table', {'data-testid': 'inspector-outputs'});
    n.outputs.forEach((o, i) => ot.append(row('#' + i, el('span', {class: 'tag', text: shapeStr(o)}))));
    box.append(ot);
    const users = m.users[id];
    box.append(el('h3', {text: `consumers (${users.length})`}));
    const ct = el('div');
    for (const u of users.slice(0, 200)) ct.append(nodeLink(u), el('br'));
    box.append(ct);
    if (n.op === 'constant')
      box.append(el('p', {}, el('button', {'data-testid': 'open-constant', onclick: () => openConstant(id), text: 'Open constant viewer'})));
    if (n.variable) {
      const v = (S.variables || []).find(v => v.name === n.variable);
      if (v) { box.append(el('h3', {text: 'variable ' + v.name})); appendVariable(box, v); }
    }
  }

  function appendVariable(box, v) {
    const t = el('table', {'data-testid': 'variable-info'});
    t.append(row('type', shapeStr(v.type)), row('bytes', fmtBytes(v.nbytes)), row('created', v.created));
    box.append(t);
    box.append(el('h3', {text: `uses (${v.uses.length})`}));
    const ul = el('ul', {class: 'list', 'data-testid': 'variable-uses'});
    for (const u of v.uses)
      ul.append(el('li', {}, el('span', {class: 'tag', text: u.kind}), nodeLink(u.node)));
    box.append(ul);
  }

  function inspectVariable(v) {
    const box = $('inspector');
    box.innerHTML = '';
    box.append(el('h2', {'data-testid': 'inspector-title', text: 'variable ' + v.name}));
    appendVariable(box, v);
    S.searchHits = v.uses.map(u => u.node);
    draw();
  }

  function inspectConstant(c) {
    if (S.model.chip[c.node] && c.uses.length) {
      S.searchHits = c.uses;
      select(c.uses[0], true);
    } else select(c.node, true);
    const box = $('inspector');
    box.innerHTML = '';
    box.append(el('h2', {'data-testid': 'inspector-title', text: c.name || 'constant #' + c.node}));
    const t = el('table');
    t.append(row('type', shapeStr(c.type)), row('bytes', fmtBytes(c.nbytes)));
    box.append(t);
    box.append(el('h3', {text: `used by (${c.uses.length})`}));
    for (const u of c.uses.slice(0, 200)) box.append(nodeLink(u), el('br'));
    box.append(el('p', {}, el('button', {'data-testid': 'open-constant', onclick: () => openConstant(c.node), text: 'Open constant viewer'})));
  }

  function inspectGroup(gid) {
    const c = S.model.containers[gid];
    const box = $('inspector');
    box.innerHTML = '';
    box.append(el('h2', {'data-testid': 'inspector-title', text: c.label}));
    const hist = new Map();
    let us = 0;
    for (const n of S.graph.nodes) {
      if (S.model.chip[n.id] || !Layout.ancestorsOf(S.model, n.id).includes(gid)) continue;
      hist.set(n.op, (hist.get(n.op) || 0) + 1);
      if (S.profile && S.profile.byName.has(n.name)) us += S.profile.byName.get(n.name).us;
    }
    const t = el('table');
    t.append(row('kind', c.kind), row('ops', String(c.count)));
    if (c.identical > 1) t.append(row('identical', `${c.identical} ${c.kind === 'region' ? 'regions' : 'blocks'} share this structure (laid out once)`));
    if (c.kind === 'region') {
      const n = S.graph.nodes[c.region_node];
      t.append(row('kernel', n.op + ' (one launch)'), row('node', nodeLink(c.region_node)));
    }
    if (S.profile) t.append(row('time', us.toFixed(1) + ' µs / run'));
    box.append(t);
    box.append(el('h3', {text: 'ops by type'}));
    const ht = el('table');
    for (const [op, k] of [...hist].sort((a, b) => b[1] - a[1])) ht.append(row(op, String(k)));
    box.append(ht);
    box.append(el('p', {}, el('button', {onclick: () => toggleGroup(gid), text: S.model.expanded.has(gid) ? 'Collapse' : 'Expand'})));
  }

  // ---- constant viewer ----------------------------------------------------------------------

  async function openConstant(node, offset = 0, slice = 0) {
    const cv = $('const-viewer');
    const body = $('cv-body');
    cv.hidden = false;
    body.textContent = 'loading…';
    let c;
    try {
      c = await api(`/api/constant?view=${S.view}&node=${node}&offset=${offset}&count=256&slice=${slice}`);
    } catch (e) { body.textContent = e.message; return; }
    body.innerHTML = '';
    body.append(el('h2', {'data-testid': 'cv-title', text: c.name || 'constant #' + node}));
    const t = el('table', {'data-testid': 'cv-stats'});
    const st = c.stats;
    t.append(row('type', shapeStr(c.type)), row('bytes', fmtBytes(c.nbytes)),
        row('min / max', fmtNum(st.min) + ' / ' + fmtNum(st.max)),
        row('mean / std', fmtNum(st.mean) + ' / ' + fmtNum(st.std)),
        row('zeros · NaN · Inf', `${st.zeros} · ${st.nan} · ${st.inf} of ${st.count}`));
    for (const u of c.consumers.slice(0, 4))
      if (Object.keys(u.attrs).length)
        t.append(row('used by ' + u.op, Object.entries(u.attrs).map(([k, v]) => k + '=' + v).join(', ')));
    body.append(t);
    const grid = el('div', {class: 'cv-grid'});
    // Histogram.
    const hc = el('canvas', {width: 480, height: 200, 'data-testid': 'cv-histogram'});
    {
      const g = hc.getContext('2d');
      const bins = c.histogram.bins;
      const mx = Math.max(1, ...bins);
      const bw = 460 / bins.length;
      g.fillStyle = '#2563eb';
      bins.forEach((b, i) => { const h = 170 * Math.sqrt(b / mx); g.fillRect(10 + i * bw, 180 - h, bw - 1, h); });
      g.fillStyle = '#333'; g.font = '11px sans-serif';
      g.fillText(fmtNum(c.histogram.lo), 10, 195);
      const hi = fmtNum(c.histogram.hi);
      g.fillText(hi, 470 - g.measureText(hi).width, 195);
      g.fillText('histogram (√count)', 10, 12);
    }
    const left = el('div', {}, el('h3', {text: 'histogram'}), hc);
    grid.append(left);
    // Heat map of a 2-D slice.
    const right = el('div', {}, el('h3', {text: 'heat map'}));
    const hm = c.heatmap;
    if (hm) {
      const scale = Math.max(1, Math.floor(256 / Math.max(hm.out_rows, hm.out_cols)));
      const cnv = el('canvas', {width: hm.out_cols * scale, height: hm.out_rows * scale, 'data-testid': 'cv-heatmap'});
      const g = cnv.getContext('2d');
      const span = Math.max(Math.abs(hm.lo), Math.abs(hm.hi)) || 1;
      for (let r = 0; r < hm.out_rows; ++r)
        for (let q = 0; q < hm.out_cols; ++q) {
          const v = hm.cells[r * hm.out_cols + q] / span;  // diverging: blue < 0 < red
          const a = Math.min(1, Math.abs(v));
          g.fillStyle = v >= 0 ? `rgb(255,${255 - 200 * a},${255 - 220 * a})` : `rgb(${255 - 220 * a},${255 - 170 * a},255)`;
          g.fillRect(q * scale, r * scale, scale, scale);
        }
      right.append(cnv, el('p', {class: 'hint', text: `${hm.rows}×${hm.cols} slice` +
          (hm.out_rows < hm.rows || hm.out_cols < hm.cols ? `, averaged to ${hm.out_rows}×${hm.out_cols}` : '') +
          `; colour range ±${fmtNum(span)}`}));
      if (hm.slices > 1) {
        const inp = el('input', {type: 'number', min: 0, max: hm.slices - 1, value: hm.slice});
        inp.onchange = () => openConstant(node, offset, +inp.value);
        right.append(el('label', {}, `slice (of ${hm.slices}) `, inp));
      }
    }
    grid.append(right);
    body.append(grid);
    // Values, paged.
    body.append(el('h3', {text: `values ${c.values.offset}…${c.values.offset + c.values.data.length - 1} of ${st.count} (row-major)`}));
    const vals = el('div', {class: 'values', 'data-testid': 'cv-values'});
    for (const v of c.values.data) vals.append(el('span', {text: fmtNum(v)}));
    body.append(vals);
    const prev = el('button', {text: '◀ previous', onclick: () => openConstant(node, Math.max(0, offset - 256), slice)});
    const next = el('button', {text: 'next ▶', onclick: () => openConstant(node, offset + 256, slice)});
    if (offset === 0) prev.disabled = true;
    if (offset + 256 >= st.count) next.disabled = true;
    body.append(el('p', {}, prev, ' ', next));
  }
  $('cv-close').onclick = () => { $('const-viewer').hidden = true; };
  $('const-viewer').onclick = e => { if (e.target.id === 'const-viewer') $('const-viewer').hidden = true; };

  // ---- selection, groups, search -------------------------------------------------------------

  async function select(id, centre) {
    const m = S.model;
    // Reveal: expand the groups holding the node.
    let changed = false;
    for (const g of Layout.ancestorsOf(m, id))
      if (!m.expanded.has(g)) { m.expanded.add(g); changed = true; }
    if (changed) await relayout();
    S.selNode = id; S.selGroup = -1;
    crumbs(m.nodeContainer[id], S.graph.nodes[id].name || S.graph.nodes[id].op);
    const b = S.lay.nodeBox.get(id);
    if (centre && b) centreOn(b.x + b.w / 2, b.y + b.h / 2);
    inspectNode(id);
    draw();
  }
  function selectGroup(gid) {
    S.selGroup = gid; S.selNode = -1;
    inspectGroup(gid);
    crumbs(S.model.containers[gid].parentC ? S.model.containers[gid].parentC.id : -1, S.model.containers[gid].label);
    draw();
  }
  // Breadcrumbs: the groups holding the selection, outermost first; a click selects the group
  // and centres it.
  function crumbs(cid, last) {
    const nav = $('crumbs');
    nav.innerHTML = '';
    const chain = [];
    for (let c = cid >= 0 ? S.model.containers[cid] : null; c; c = c.parentC) chain.unshift(c);
    for (const c of chain) {
      nav.append(el('a', {'data-testid': 'crumb', 'data-gid': c.id, text: c.label, onclick: () => {
        if (c.id) {
          selectGroup(c.id);
          const b = S.lay.groupBox.get(c.id);
          if (b) { centreOn(b.x + b.w / 2, b.y + Math.min(b.h / 2, 200)); draw(); }
        } else fit();
      }}), ' › ');
    }
    if (last !== undefined) nav.append(el('b', {text: last}));
  }
  async function toggleGroup(gid) {
    const m = S.model;
    const b = S.lay.groupBox.get(gid);
    const before = b ? {x: b.x, y: b.y} : null;
    const t0 = performance.now();
    if (m.expanded.has(gid)) {
      m.expanded.delete(gid);
      for (const c of m.containers) if (isInside(c, gid)) m.expanded.delete(c.id);
    } else m.expanded.add(gid);
    await relayout();
    S.timings.last_toggle_ms = performance.now() - t0;
    // Keep the toggled group where it was on screen.
    const a = S.lay.groupBox.get(gid);
    if (a && before) { S.cam.x += (a.x - before.x) * S.cam.k; S.cam.y += (a.y - before.y) * S.cam.k; }
    if (S.selGroup === gid) inspectGroup(gid);
    draw();
  }
  function isInside(c, gid) {
    for (let p = c.parentC; p; p = p.parentC) if (p.id === gid) return true;
    return false;
  }
  async function setAll(expand) {
    const m = S.model;
    const t0 = performance.now();
    m.expanded = new Set([m.root.id]);
    if (expand) for (const c of m.containers) m.expanded.add(c.id);
    await relayout();
    S.timings.last_toggle_ms = performance.now() - t0;
    fit();
  }

  function runSearch(q) {
    q = q.trim().toLowerCase();
    const ul = $('search-list');
    ul.innerHTML = '';
    S.searchHits = [];
    if (!q) { draw(); return; }
    for (const n of S.graph.nodes) {
      const text = (n.name + ' ' + n.op + ' ' + Object.entries(n.attrs).map(([k, v]) => k + '=' + v).join(' ') +
          ' ' + n.outputs.map(shapeStr).join(' ')).toLowerCase();
      if (text.includes(q)) S.searchHits.push(n.id);
    }
    for (const id of S.searchHits.slice(0, 500))
      ul.append(el('li', {'data-testid': 'search-hit', onclick: () => select(id, true)},
          el('span', {text: S.graph.nodes[id].name || '#' + id}), el('span', {class: 'meta', text: S.graph.nodes[id].op})));
    showTab('search');
    $('status').textContent = `${S.searchHits.length} matches`;
    draw();
  }
  let searchIdx = 0;
  $('search').addEventListener('keydown', e => {
    if (e.key !== 'Enter') return;
    if (!S.searchHits.length) return runSearch(e.target.value);
    select(S.searchHits[searchIdx++ % S.searchHits.length], true);
  });
  $('search').addEventListener('input', e => { searchIdx = 0; runSearch(e.target.value); });

  // ---- profile -------------------------------------------------------------------------------

  async function runProfile() {
    const runs = +$('profile-runs').value || 5;
    status('profiling…');
    try {
      applyProfile(await api(`/api/profile?view=${S.view}&runs=${runs}`));
    } catch (e) { showError(e.message); status('error'); }
  }
  // A profile (from a run here or from `loom run --profile-json`, matched by op name): colours
  // ops by time, sums it into groups and lists the top 30.
  function applyProfile(p) {
    {
      p.byName = new Map(p.nodes.map(n => [n.name, n]));
      p.max = Math.max(1e-9, ...p.nodes.map(n => n.us));
      S.profile = p;
      $('profile-summary').textContent = `${p.view}: ${p.ms_per_run.toFixed(3)} ms per run over ${p.runs} runs; inputs ` +
          p.inputs.map(i => i.name + ' ' + shapeStr(i.type)).join(', ');
      const ol = $('profile-list');
      ol.innerHTML = '';
      const names = new Map(S.graph.nodes.filter(n => !n.virtual).map(n => [n.name, n.id]));
      for (const n of [...p.nodes].sort((a, b) => b.us - a.us).slice(0, 30)) {
        const id = names.get(n.name);
        ol.append(el('li', {'data-testid': 'profile-row', onclick: () => id !== undefined && select(id, true)},
            el('span', {text: `${n.us.toFixed(1)} µs  ${n.name} (${n.op})`})));
      }
      const matched = p.nodes.filter(n => names.has(n.name)).length;
      $('profile-summary').dataset.matched = matched;
      if (p.source) $('profile-summary').textContent += ` (from ${p.source}; ${matched} of ${p.nodes.length} ops found in this view)`;
      status('profile: ' + p.ms_per_run.toFixed(3) + ' ms / run');
      draw();
    }
  }
  $('btn-profile').onclick = runProfile;

  // ---- drawing -------------------------------------------------------------------------------

  const canvas = $('graph'), ctx = canvas.getContext('2d');
  const mini = $('minimap'), mctx = mini.getContext('2d');
  const OP_COLORS = {source: '#e8f5e9', effect: '#fde2e2', elementwise: '#e8eefc', reduction: '#fdf1dc',
    normalization: '#f3e8fd', contraction: '#fde7d6', view: '#eeeeee', movement: '#e6f4f1', creation: '#eef7e1',
    inplace: '#fbe3f1', fused: '#ffe9c7', custom: '#f0f0f0'};
  const opColorCache = new Map();
  function opColor(op) {
    if (!opColorCache.has(op)) {
      let h = 0;
      for (const ch of op) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
      opColorCache.set(op, `hsl(${h % 360},55%,55%)`);
    }
    return opColorCache.get(op);
  }
  function heat(t) {  // 0..1 → white..red
    t = Math.max(0, Math.min(1, t));
    return `rgb(255,${Math.round(245 - 200 * t)},${Math.round(235 - 215 * t)})`;
  }

  function resize() {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, r.width * dpr);
    canvas.height = Math.max(1, r.height * dpr);
    draw();
  }
  window.addEventListener('resize', resize);

  function fit() {
    if (!S.lay) return;
    const r = canvas.getBoundingClientRect();
    const k = Math.min(r.width / S.lay.w, r.height / S.lay.h, 1.2);
    // Tall graphs (a chain of 30 blocks) would shrink to nothing: keep them legible, top first.
    S.cam.k = Math.max(k, Math.min(0.5, r.width / S.lay.w));
    S.cam.x = (r.width - S.lay.w * S.cam.k) / 2;
    S.cam.y = S.lay.h * S.cam.k < r.height ? (r.height - S.lay.h * S.cam.k) / 2 : 10;
    draw();
  }
  function centreOn(x, y) {
    const r = canvas.getBoundingClientRect();
    if (S.cam.k < 0.6) S.cam.k = 0.9;
    S.cam.x = r.width / 2 - x * S.cam.k;
    S.cam.y = r.height / 2 - y * S.cam.k;
  }

  let raf = 0;
  function draw() {
    if (raf) return;
    raf = requestAnimationFrame(() => { raf = 0; paint(); });
  }

  function nodeHighlighted(id) {
    return S.selOps.has(S.graph.nodes[id].op) || S.searchHits.includes(id);
  }

  function paint() {
    if (!S.lay) return;
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.width / dpr, H = canvas.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const {x: cx, y: cy, k} = S.cam;
    ctx.setTransform(dpr * k, 0, 0, dpr * k, dpr * cx, dpr * cy);
    const vx0 = -cx / k, vy0 = -cy / k, vx1 = (W - cx) / k, vy1 = (H - cy) / k;
    const inView = b => b.x < vx1 && b.x + b.w > vx0 && b.y < vy1 && b.y + b.h > vy0;
    const m = S.model, g = S.graph;
    const dim = S.selOps.size > 0 || S.searchHits.length > 0;
    const hiSet = dim ? new Set(S.searchHits) : null;
    const isHi = id => S.selOps.has(g.nodes[id].op) || hiSet.has(id);
    const hiCount = new Map();
    if (dim)
      for (let id = 0; id < g.nodes.length; ++id) {
        if (m.chip[id] || !isHi(id)) continue;
        for (const c of Layout.ancestorsOf(m, id)) hiCount.set(c, (hiCount.get(c) || 0) + 1);
      }
    const groupTime = new Map();
    if (S.profile)
      for (const n of g.nodes) {
        const p = S.profile.byName.get(n.name);
        if (p && !m.chip[n.id]) for (const c of Layout.ancestorsOf(m, n.id)) groupTime.set(c, (groupTime.get(c) || 0) + p.us);
      }
    const lod = k > 0.45 ? 2 : k > 0.12 ? 1 : 0;
    // Groups (frames first, so nodes draw on top).
    ctx.lineWidth = 1 / Math.max(k, 0.2);
    for (const b of S.lay.groups) {
      if (!inView(b)) continue;
      const c = m.containers[b.gid];
      const hc = hiCount.get(b.gid) || 0;
      const region = c.kind === 'region';
      if (region) { ctx.save(); ctx.setLineDash([5, 3]); }
      if (b.expanded) {
        ctx.fillStyle = region ? 'rgba(234,88,12,0.05)' : c.kind === 'section' ? 'rgba(120,120,140,0.04)' : 'rgba(37,99,235,0.045)';
        ctx.strokeStyle = S.selGroup === b.gid ? '#2563eb' : region ? '#ea580c' : '#b9c3d6';
        ctx.fillRect(b.x, b.y, b.w, b.h);
        ctx.strokeRect(b.x, b.y, b.w, b.h);
        if (lod > 0) {
          ctx.fillStyle = region ? '#9a3412' : '#44506a'; ctx.font = 'bold 12px sans-serif';
          ctx.fillText(clip('▾ ' + (region ? groupTitle(c) : c.label + '  (' + c.count + ' ops)'), b.w - 8), b.x + 6, b.y + 16);
        }
        if (region) ctx.restore();
      } else {
        let fill = region ? '#ffedd5' : '#e4e9f5';
        if (S.profile && S.profile.max) fill = heat((groupTime.get(b.gid) || 0) / groupMaxTime(groupTime));
        if (dim && !hc) fill = '#f1f2f4';
        ctx.fillStyle = fill;
        ctx.strokeStyle = S.selGroup === b.gid ? '#2563eb' : hc ? '#d97706' : region ? '#ea580c' : '#8d9ab3';
        ctx.lineWidth = (hc || S.selGroup === b.gid ? 2.5 : 1) / Math.max(k, 0.2);
        roundRect(b.x, b.y, b.w, b.h, 6);
        ctx.fill(); ctx.stroke();
        ctx.lineWidth = 1 / Math.max(k, 0.2);
        if (lod > 0 || k > 0.05) {
          ctx.fillStyle = '#1d2430'; ctx.font = 'bold 13px sans-serif';
          ctx.fillText(clip('▸ ' + c.label, b.w - 10), b.x + 8, b.y + 18);
          ctx.font = '11px sans-serif'; ctx.fillStyle = '#4b5563';
          let sub = c.count + ' ops';
          if (region) sub = 'fused kernel · ' + sub;
          if (c.identical > 1) sub += ' · ×' + c.identical + ' identical';
          if (hc) sub += ' · ' + hc + ' highlighted';
          if (S.profile) sub += ' · ' + (groupTime.get(b.gid) || 0).toFixed(0) + ' µs';
          ctx.fillText(clip(sub, b.w - 10), b.x + 8, b.y + 35);
        }
        if (region) ctx.restore();
      }
    }
    // Edges.
    ctx.strokeStyle = dim ? 'rgba(100,110,130,0.25)' : 'rgba(90,100,120,0.7)';
    ctx.beginPath();
    for (const e of S.lay.edges) {
      const p = e.pts;
      let x0 = Infinity, x1 = -Infinity, y0 = p[1], y1 = p[p.length - 1];
      for (let i = 0; i < p.length; i += 2) { x0 = Math.min(x0, p[i]); x1 = Math.max(x1, p[i]); }
      if (x0 > vx1 || x1 < vx0 || Math.min(y0, y1) > vy1 || Math.max(y0, y1) < vy0) continue;
      ctx.moveTo(p[0], p[1]);
      if (p.length === 4) {
        const my = (p[1] + p[3]) / 2;
        ctx.bezierCurveTo(p[0], my, p[2], my, p[2], p[3]);
      } else for (let i = 2; i < p.length; i += 2) ctx.lineTo(p[i], p[i + 1]);
    }
    ctx.stroke();
    if (lod === 2) {  // edge labels: dtype and shape
      ctx.fillStyle = '#6b7280'; ctx.font = '9px sans-serif';
      for (const e of S.lay.edges) {
        const p = e.pts;
        if (p[0] < vx0 || p[0] > vx1 || p[1] < vy0 || p[1] > vy1 || !e.e.type) continue;
        ctx.fillText(shapeStr(e.e.type), p[0] + 3, p[1] + 10);
      }
    }
    // Nodes.
    for (const b of S.lay.nodes) {
      if (!inView(b)) continue;
      const n = g.nodes[b.id];
      const st = nodeStyle(n, dim, hiSet);
      ctx.fillStyle = st.fill;
      ctx.strokeStyle = st.stroke;
      ctx.lineWidth = st.width / Math.max(k, 0.25);
      if (lod === 0) { ctx.fillRect(b.x, b.y, b.w, b.h); ctx.strokeRect(b.x, b.y, b.w, b.h); continue; }
      roundRect(b.x, b.y, b.w, b.h, 4);
      ctx.fill(); ctx.stroke();
      // Fused kernels and in-place updates: a dashed region box with the kernel kind.
      if (n.fusion === 'fused' || n.fusion === 'inplace') {
        ctx.save();
        ctx.setLineDash([5, 3]);
        ctx.strokeStyle = n.fusion === 'fused' ? '#ea580c' : '#c026d3';
        ctx.strokeRect(b.x - 5, b.y - 5, b.w + 10, b.h + 10);
        if (lod === 2) {
          ctx.fillStyle = ctx.strokeStyle; ctx.font = '9px sans-serif';
          ctx.fillText(n.fusion === 'fused' ? 'fused kernel' : 'in place', b.x - 4, b.y - 7);
        }
        ctx.restore();
      }
      ctx.fillStyle = '#111827'; ctx.font = 'bold 12px sans-serif';
      ctx.fillText(n.op, b.x + 7, b.y + 14);
      if (lod === 2) {
        ctx.font = '10px sans-serif'; ctx.fillStyle = '#4b5563';
        const sub = (n.name && n.name !== n.op ? n.name + '  ' : '') + (n.outputs[0] ? shapeStr(n.outputs[0]) : '');
        ctx.fillText(clip(sub, b.w - 12), b.x + 7, b.y + 27);
        // Chips: constants (green) and stubs of shared values (blue) consumed by this op.
        let x = b.x + 6;
        const y = b.y + NODE_H - 2;
        const chips = [];
        for (const [p] of n.inputs) if (m.chip[p]) chips.push([p, '#16a34a']);
        for (const p of m.stubs[b.id]) chips.push([p, '#2563eb']);
        for (const [p, col] of chips.slice(0, 4)) {
          const pn = g.nodes[p];
          ctx.fillStyle = col;
          roundRect(x, y, 54, 12, 3); ctx.fill();
          // A constant the selected pass removed (folded, merged): outlined red.
          if (S.passDiff && S.passDiff.kind.get(pn.name) === 'removed') {
            ctx.save(); ctx.strokeStyle = '#dc2626'; ctx.lineWidth = 2.5 / Math.max(k, 0.25); ctx.stroke(); ctx.restore();
          }
          ctx.fillStyle = '#fff'; ctx.font = '8px sans-serif';
          // The block is the group's label already: show the rest ("attn_q.weight").
          const label = (pn.name || pn.op).replace(/^(blk|layers?|blocks?|h)[._\/]\d+[._\/]/, '');
          ctx.fillText(clip(label, 50), x + 3, y + 9);
          x += 58;
        }
      }
    }
    paintMinimap(W, H);
  }
  // Fill and outline of a node: op class, profile heat, highlight (navigator, search, a pass's
  // changes) and selection. Shared by the canvas and the SVG export.
  function nodeStyle(n, dim, hiSet) {
    const hi = dim && (S.selOps.has(n.op) || (hiSet ? hiSet.has(n.id) : S.searchHits.includes(n.id)));
    let fill = OP_COLORS[n.fusion] || '#f0f0f0';
    if (S.profile) {
      const p = S.profile.byName.get(n.name);
      fill = p ? heat(Math.log1p(p.us) / Math.log1p(S.profile.max)) : '#fafafa';
    }
    if (dim && !hi) fill = '#f4f4f5';
    const sel = S.selNode === n.id;
    let stroke = sel ? '#2563eb' : hi ? '#d97706' : dim ? '#d4d4d8' : opColor(n.op);
    let width = sel || hi ? 2.5 : 1.2;
    const pc = S.passDiff && S.passDiff.kind.get(n.name);
    if (pc) {  // what the selected pass did to this op
      fill = pc === 'added' ? '#dcfce7' : pc === 'rewritten' ? '#fef3c7' : '#fee2e2';
      stroke = pc === 'added' ? '#16a34a' : pc === 'rewritten' ? '#d97706' : '#dc2626';
      width = 3;
    }
    return {fill, stroke, width};
  }
  function groupTitle(c) {
    if (c.kind === 'region') return c.label + ' · ' + c.count + ' ops';
    return c.label + (c.identical > 1 ? ' ×' + c.identical : '');
  }
  let gmt = 0;
  function groupMaxTime(gt) { gmt = 0; for (const v of gt.values()) gmt = Math.max(gmt, v); return gmt || 1; }
  function clip(s, w) {
    const max = Math.floor(w / 5.6);
    return s.length > max ? s.slice(0, Math.max(0, max - 1)) + '…' : s;
  }
  function roundRect(x, y, w, h, r) {
    ctx.beginPath();
    ctx.moveTo(x + r, y); ctx.arcTo(x + w, y, x + w, y + h, r); ctx.arcTo(x + w, y + h, x, y + h, r);
    ctx.arcTo(x, y + h, x, y, r); ctx.arcTo(x, y, x + w, y, r); ctx.closePath();
  }
  function paintMinimap(W, H) {
    const L = S.lay;
    const s = Math.min(mini.width / L.w, mini.height / L.h);
    mctx.setTransform(1, 0, 0, 1, 0, 0);
    mctx.clearRect(0, 0, mini.width, mini.height);
    mctx.fillStyle = '#9aa7c0';
    for (const b of L.groups) if (!b.expanded) mctx.fillRect(b.x * s, b.y * s, Math.max(1, b.w * s), Math.max(1, b.h * s));
    mctx.fillStyle = '#6b7280';
    for (const b of L.nodes) mctx.fillRect(b.x * s, b.y * s, Math.max(1, b.w * s), Math.max(1, b.h * s));
    if (S.selOps.size || S.searchHits.length) {
      mctx.fillStyle = '#d97706';
      for (const b of L.nodes) if (nodeHighlighted(b.id)) mctx.fillRect(b.x * s - 1, b.y * s - 1, Math.max(3, b.w * s), 3);
    }
    const {x, y, k} = S.cam;
    mctx.strokeStyle = '#2563eb';
    mctx.strokeRect(-x / k * s, -y / k * s, W / k * s, H / k * s);
  }

  // ---- interaction ---------------------------------------------------------------------------

  function hit(px, py) {
    const {x, y, k} = S.cam;
    const gx = (px - x) / k, gy = (py - y) / k;
    for (const b of S.lay.nodes) if (gx >= b.x && gx <= b.x + b.w && gy >= b.y && gy <= b.y + b.h) return {node: b.id};
    let best = null;
    for (const b of S.lay.groups)
      if (gx >= b.x && gx <= b.x + b.w && gy >= b.y && gy <= b.y + b.h &&
          (!best || S.model.containers[b.gid].depth > S.model.containers[best.gid].depth)) best = b;
    if (best) return {group: best.gid, header: !best.expanded || gy - best.y < HEADER};
    return null;
  }
  let drag = null;
  canvas.addEventListener('mousedown', e => { drag = {x: e.clientX, y: e.clientY, cx: S.cam.x, cy: S.cam.y, moved: false}; });
  window.addEventListener('mousemove', e => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    S.cam.x = drag.cx + dx; S.cam.y = drag.cy + dy;
    draw();
  });
  window.addEventListener('mouseup', e => {
    if (drag && !drag.moved && e.target === canvas) {
      const r = canvas.getBoundingClientRect();
      const h = hit(e.clientX - r.left, e.clientY - r.top);
      if (h && h.node !== undefined) select(h.node, false);
      else if (h && h.group !== undefined) {
        if (h.header) toggleGroup(h.group);
        selectGroup(h.group);
      }
    }
    drag = null;
  });
  canvas.addEventListener('wheel', e => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    const f = Math.exp(-e.deltaY * 0.0015);
    const k = Math.max(0.01, Math.min(4, S.cam.k * f));
    S.cam.x = px - (px - S.cam.x) * (k / S.cam.k);
    S.cam.y = py - (py - S.cam.y) * (k / S.cam.k);
    S.cam.k = k;
    draw();
  }, {passive: false});
  mini.addEventListener('click', e => {
    const r = mini.getBoundingClientRect();
    const s = Math.min(mini.width / S.lay.w, mini.height / S.lay.h);
    centreOn((e.clientX - r.left) / s, (e.clientY - r.top) / s);
    draw();
  });

  function showTab(name) {
    for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
    for (const p of document.querySelectorAll('.panel')) p.classList.toggle('active', p.id === 'panel-' + name);
  }
  for (const b of document.querySelectorAll('#tabs button')) b.onclick = () => showTab(b.dataset.tab);
  $('view-select').onchange = e => loadView(e.target.value);
  $('btn-fit').onclick = fit;
  $('btn-expand').onclick = () => setAll(true);
  $('btn-collapse').onclick = () => setAll(false);
  $('btn-png').onclick = () => download('loom-view.png', canvas.toDataURL('image/png'));
  $('legend').textContent = 'green chips: constants · blue chips: shared values (drawn at each use) · dashed: fused kernel / in place · ▸ click a group header to expand';

  // Test hooks.
  // ---- export ------------------------------------------------------------------------------

  // The current view (what the canvas shows: expansion state, highlights, profile colours) as
  // SVG, from the same layout boxes; one element per visible box, so large views stay usable.
  function exportSvg() {
    const L = S.lay, g = S.graph, m = S.model;
    const esc = t => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
    const f = v => Math.round(v * 10) / 10;
    const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${f(L.w)}" height="${f(L.h)}" viewBox="0 0 ${f(L.w)} ${f(L.h)}" font-family="sans-serif">`,
      `<rect width="100%" height="100%" fill="#fbfbfc"/>`];
    for (const b of L.groups) {
      const c = m.containers[b.gid];
      const region = c.kind === 'region';
      out.push(`<g data-group="${b.gid}"><rect x="${f(b.x)}" y="${f(b.y)}" width="${f(b.w)}" height="${f(b.h)}" rx="6" ` +
          `fill="${b.expanded ? (region ? '#fff7ed' : '#eef3fd') : (region ? '#ffedd5' : '#e4e9f5')}" stroke="${region ? '#ea580c' : '#8d9ab3'}"` +
          `${region ? ' stroke-dasharray="5 3"' : ''}/><text x="${f(b.x + 8)}" y="${f(b.y + 17)}" font-size="12" font-weight="bold">` +
          `${esc((b.expanded ? '▾ ' : '▸ ') + groupTitle(c))}</text></g>`);
    }
    const paths = L.edges.map(e => {
      const p = e.pts;
      let d = `M${f(p[0])} ${f(p[1])}`;
      for (let i = 2; i < p.length; i += 2) d += `L${f(p[i])} ${f(p[i + 1])}`;
      return `<path d="${d}"/>`;
    });
    out.push(`<g fill="none" stroke="#5a6478" stroke-width="1">${paths.join('')}</g>`);
    const dim = S.selOps.size > 0 || S.searchHits.length > 0;
    for (const b of L.nodes) {
      const n = g.nodes[b.id];
      const st = nodeStyle(n, dim);
      out.push(`<g data-node="${b.id}"><rect x="${f(b.x)}" y="${f(b.y)}" width="${f(b.w)}" height="${f(b.h)}" rx="4" ` +
          `fill="${st.fill}" stroke="${st.stroke}"/><text x="${f(b.x + 7)}" y="${f(b.y + 14)}" font-size="12" font-weight="bold">${esc(n.op)}</text>` +
          `<text x="${f(b.x + 7)}" y="${f(b.y + 27)}" font-size="10" fill="#4b5563">${esc(clip((n.name && n.name !== n.op ? n.name + '  ' : '') +
          (n.outputs[0] ? shapeStr(n.outputs[0]) : ''), b.w - 12))}</text>` + svgChips(n, b, f, esc) + '</g>');
    }
    out.push('</svg>');
    return out.join('\n');
  }
  // Constants (green) and stubs of shared values (blue) as chips, as on the canvas.
  function svgChips(n, b, f, esc) {
    const m = S.model, chips = [];
    for (const p of m.chips[n.id] || []) chips.push([p, '#16a34a']);
    for (const p of m.stubs[n.id] || []) chips.push([p, '#2563eb']);
    let x = b.x + 6, out = '';
    const y = b.y + NODE_H - 2;
    for (const [p, col] of chips.slice(0, 4)) {
      const pn = S.graph.nodes[p];
      const label = (pn.name || pn.op).replace(/^(blk|layers?|blocks?|h)[._\/]\d+[._\/]/, '');
      out += `<rect x="${f(x)}" y="${f(y)}" width="54" height="12" rx="3" fill="${col}"/>` +
          `<text x="${f(x + 3)}" y="${f(y + 9)}" font-size="8" fill="#fff">${esc(clip(label, 50))}</text>`;
      x += 58;
    }
    return out;
  }
  function download(name, href) {
    const a = document.createElement('a');
    a.download = name;
    a.href = href;
    document.body.append(a);
    a.click();
    a.remove();
  }
  $('btn-svg').onclick = () => {
    const url = URL.createObjectURL(new Blob([exportSvg()], {type: 'image/svg+xml'}));
    download('loom-view.svg', url);
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  Object.assign(S, {select, selectGroup, toggleGroup, setAll, openConstant, loadView, runProfile,
    applyProfile, exportSvg, showPassChange, fit,
    visibleNodes: () => S.lay.nodes.map(b => b.id),
    highlightedNodes: () => S.lay.nodes.filter(b => nodeHighlighted(b.id)).map(b => b.id)});

  // Whatever goes wrong, the page says so instead of going blank.
  window.addEventListener('error', e => { showError('[view] page error: ' + e.message); S.ready = true; });
  window.addEventListener('unhandledrejection', e => {
    showError('[view] ' + (e.reason && e.reason.message || e.reason)); S.ready = true;
  });

  resize();
  start();
})();
