'use strict';
// layout.js — groups and layered layout for `loom view`.
//
// Why per group: a flat layered layout of a 20 000-op LLM graph takes tens of seconds to minutes
// in every engine (docs: shared/reference/viewer.md §4). Here the graph becomes a hierarchy
// (blocks named `blk.N` / `layers.N` / ..., then `section i/N` slices of any level with more than
// SECTION_MAX children), each container is laid out on its own with its expanded children as
// fixed boxes, identical containers (32 transformer blocks) share one layout through a
// structural key, constants are drawn as chips inside their consumer and high fan-out values
// (positions, masks, RoPE tables) as stubs at each use, so no edge spans the whole graph.
// Deterministic: the same graph and expansion state always give the same coordinates.

const Layout = (() => {
  const NODE_H = 32, CHIP_ROW = 16, GROUP_H = 48;
  const LAYER_GAP = 30, NODE_GAP = 16, PAD = 14, HEADER = 26;
  const SECTION_MAX = 400, SECTION_SIZE = 300, HUB_FANOUT = 8;
  const SWEEPS = 4;

  const BLOCK_RE =
      /(?:^|[\/._:])((?:blk|layers?|blocks?|h|encoder[._]layer|decoder[._]layer)[._\/](\d+))(?=[._\/:]|$)/;
  function blockOf(name) {
    const m = BLOCK_RE.exec(name || '');
    return m ? m[1].replace(/\//g, '.') : null;
  }
  function textWidth(s) { return 6.6 * s.length; }
  function shapeStr(t) { return t.dtype + '[' + t.shape.map(d => d < 0 ? '?' : d).join(',') + ']'; }

  // ---- model: users, chips, stubs, groups -----------------------------------------------------

  function buildModel(g) {
    const N = g.nodes.length;
    const nodes = g.nodes;
    const users = Array.from({length: N}, () => []);
    for (const n of nodes)
      for (const [p] of n.inputs) {
        const u = users[p];
        if (u[u.length - 1] !== n.id) u.push(n.id);
      }
    const isOutput = new Set(g.outputs.map(o => o[0]));
    // Constants with users are drawn as chips inside each consumer (MPSGraph's inline previews).
    const chip = new Uint8Array(N);
    for (const n of nodes)
      if (n.op === 'constant' && users[n.id].length > 0 && !isOutput.has(n.id)) chip[n.id] = 1;

    // Block of each node: from its name, else from the names of the constants it consumes, else
    // from its consumers (the block it feeds), else its producers, else the top level.
    const blockNames = [], blockIndex = new Map();
    const ROOT = -2, NONE = -1;
    const explicitOf = name => {
      const b = blockOf(name);
      if (!b) return NONE;
      if (!blockIndex.has(b)) { blockIndex.set(b, blockNames.length); blockNames.push(b); }
      return blockIndex.get(b);
    };
    const grp = new Int32Array(N).fill(NONE);
    for (const n of nodes) {
      if (chip[n.id]) continue;
      // Reads and assigns carry their variable's name (`blk.3.k_cache`).
      let b = explicitOf(n.name);
      if (b === NONE && n.variable) b = explicitOf(n.variable);
      if (b === NONE)
        for (const [p] of n.inputs)
          if (chip[p]) {
            const c = explicitOf(nodes[p].name);
            if (c !== NONE) { b = c; break; }
            if (nodes[p].name && !/^constant_\d+$/.test(nodes[p].name)) b = ROOT;
          }
      // Inputs and values shared by many ops (positions, masks, RoPE tables) belong to no block.
      if (b === NONE && (n.op === 'placeholder' || users[n.id].length > HUB_FANOUT)) b = ROOT;
      grp[n.id] = b;
    }
    for (let i = N - 1; i >= 0; --i) {
      if (chip[i] || grp[i] !== NONE) continue;
      let best = NONE;
      for (const u of users[i]) {
        const v = grp[u];
        if (v >= 0 && (best < 0 || v < best)) best = v;
        else if (v === ROOT && best === NONE) best = ROOT;
      }
      grp[i] = best === NONE ? -3 : best;  // -3: decided by producers below
    }
    for (let i = 0; i < N; ++i) {
      if (chip[i] || grp[i] !== -3) continue;
      let best = ROOT;
      for (const [p] of nodes[i].inputs)
        if (!chip[p] && grp[p] >= 0 && grp[p] > best) best = grp[p];
      grp[i] = best;
    }

    // Hubs: values with many users become stubs at each use instead of long edges.
    const hub = new Uint8Array(N);
    for (const n of nodes)
      if (!chip[n.id] && users[n.id].length > HUB_FANOUT) hub[n.id] = 1;

    // Containers.
    const containers = [];
    const mk = (label, kind, parent) => {
      const c = {id: containers.length, label, kind, parent, items: [], edges: [], depth: 0,
                 minId: Infinity, count: 0, sig: ''};
      if (parent) c.depth = parent.depth + 1;
      containers.push(c);
      return c;
    };
    const root = mk('graph', 'root', null);
    const blocks = blockNames.map(b => mk(b, 'block', root));
    const nodeContainer = new Int32Array(N).fill(-1);
    for (let i = 0; i < N; ++i) {
      if (chip[i]) continue;
      const c = grp[i] >= 0 ? blocks[grp[i]] : root;
      c.items.push({type: 'node', id: i, key: 'n' + i});
      nodeContainer[i] = c.id;
    }
    for (const b of blocks) b.minId = b.items.length ? b.items[0].id : Infinity;
    // Blocks take the place of their first op in the parent's program order.
    const rootItems = root.items.map(it => ({...it, order: it.id}));
    for (const b of blocks)
      if (b.items.length) rootItems.push({type: 'group', gid: b.id, key: 'g' + b.id, order: b.minId});
    rootItems.sort((a, b) => a.order - b.order);
    root.items = rootItems;

    // Oversized levels are split into `section i/N` groups in program order.
    const split = c => {
      if (c.items.length <= SECTION_MAX) return;
      const n = Math.ceil(c.items.length / SECTION_SIZE);
      const old = c.items;
      c.items = [];
      for (let s = 0; s < n; ++s) {
        const sec = mk(c.label + ' · section ' + (s + 1) + '/' + n, 'section', c);
        sec.items = old.slice(s * SECTION_SIZE, (s + 1) * SECTION_SIZE);
        for (const it of sec.items) {
          if (it.type === 'node') nodeContainer[it.id] = sec.id;
          else { containers[it.gid].parent = sec; }
        }
        c.items.push({type: 'group', gid: sec.id, key: 'g' + sec.id});
      }
    };
    split(root);
    for (const b of blocks) split(b);
    for (const c of containers) c.depth = c.parent ? c.parent.depth + 1 : 0;
    // Depth changed for groups moved into sections: recompute top-down.
    const fixDepth = c => {
      for (const it of c.items)
        if (it.type === 'group') {
          containers[it.gid].parent = c;
          containers[it.gid].depth = c.depth + 1;
          fixDepth(containers[it.gid]);
        }
    };
    fixDepth(root);

    // Op counts per container (for collapsed boxes and the navigator's highlights).
    const countOps = c => {
      let k = 0, min = Infinity;
      for (const it of c.items) {
        if (it.type === 'node') { ++k; min = Math.min(min, it.id); }
        else { const s = countOps(containers[it.gid]); k += s.k; min = Math.min(min, s.min); }
      }
      c.count = k;
      c.minId = min;
      return {k, min};
    };
    countOps(root);

    // Every edge belongs to the lowest container holding both ends; it joins two of its items.
    const itemKeyIn = (cid, node) => {
      let c = containers[nodeContainer[node]];
      if (c.id === cid) return 'n' + node;
      while (c.parent && c.parent.id !== cid) c = c.parent;
      return c.parent ? 'g' + c.id : null;
    };
    const ancestors = node => {
      const a = [];
      for (let c = containers[nodeContainer[node]]; c; c = c.parent) a.push(c.id);
      return a;
    };
    const stubs = Array.from({length: N}, () => []);
    const edgeSets = containers.map(() => new Map());
    for (const n of nodes) {
      if (chip[n.id]) continue;
      for (const [p, k] of n.inputs) {
        if (chip[p]) continue;
        if (hub[p]) { if (!stubs[n.id].includes(p)) stubs[n.id].push(p); continue; }
        const ap = ancestors(p), an = new Set(ancestors(n.id));
        const lca = ap.find(c => an.has(c));
        const a = itemKeyIn(lca, p), b = itemKeyIn(lca, n.id);
        if (a === b) continue;
        const key = a + '>' + b;
        const m = edgeSets[lca];
        if (!m.has(key)) m.set(key, {a, b, from: p, to: n.id, type: nodes[p].outputs[k]});
      }
    }
    containers.forEach((c, i) => { c.edges = [...edgeSets[i].values()]; });

    // Structural signature of each container: identical blocks get equal signatures.
    const sig = c => {
      const idx = new Map(c.items.map((it, i) => [it.key, i]));
      const parts = c.items.map(it => it.type === 'node'
          ? nodes[it.id].op + ':' + nodes[it.id].inputs.filter(([p]) => chip[p]).length + ':' +
            stubs[it.id].length
          : sig(containers[it.gid]));
      const es = c.edges.map(e => idx.get(e.a) + '-' + idx.get(e.b)).join(',');
      c.sig = '(' + parts.join(' ') + '|' + es + ')';
      return c.sig;
    };
    sig(root);
    const sigCount = new Map();
    for (const c of containers) sigCount.set(c.sig, (sigCount.get(c.sig) || 0) + 1);
    for (const c of containers) c.identical = c.kind === 'block' ? sigCount.get(c.sig) : 1;

    return {graph: g, nodes, users, chip, hub, stubs, containers, root, nodeContainer, isOutput,
            cache: new Map(), expanded: new Set([root.id])};
  }

  // ---- sizes -------------------------------------------------------------------------------

  function nodeSize(m, id) {
    const n = m.nodes[id];
    const title = n.op + (n.name && n.name !== n.op ? '  ' + n.name : '');
    let w = Math.max(110, textWidth(title) + 16);
    const chips = n.inputs.filter(([p]) => m.chip[p]).length + m.stubs[id].length;
    if (chips) w = Math.max(w, Math.min(chips, 4) * 58 + 12);
    return {w: Math.min(w, 320), h: NODE_H + (chips ? CHIP_ROW : 0)};
  }

  // ---- layered layout of one container -----------------------------------------------------

  // items: [{w, h}], edges: [[i, j]] with items in program order. Returns {x[], y[], w, h,
  // routes: [[x, y, ...]] per edge}. Longest-path layering (sources placed just above their
  // first user), dummy nodes for long edges, SWEEPS barycenter sweeps with program order as tie
  // break, then median placement with separation constraints.
  function layered(items, edges) {
    const n = items.length;
    const preds = Array.from({length: n}, () => []), succs = Array.from({length: n}, () => []);
    for (const [a, b] of edges) {
      if (a < b) { preds[b].push(a); succs[a].push(b); }
      else { preds[a].push(b); succs[b].push(a); }  // back edge (cycle between groups): reversed
    }
    const layer = new Int32Array(n);
    for (let i = 0; i < n; ++i)
      for (const p of preds[i]) layer[i] = Math.max(layer[i], layer[p] + 1);
    for (let i = n - 1; i >= 0; --i)
      if (!preds[i].length && succs[i].length) {
        let lo = Infinity;
        for (const s of succs[i]) lo = Math.min(lo, layer[s]);
        layer[i] = Math.max(0, lo - 1);
      }
    let L = 0;
    for (let i = 0; i < n; ++i) L = Math.max(L, layer[i] + 1);
    // Vertices: items then dummies.
    const vw = items.map(it => it.w), vh = items.map(it => it.h), vl = Array.from(layer);
    const vp = Array.from({length: n}, () => []), vs = Array.from({length: n}, () => []);
    const chains = [];
    for (const [a0, b0] of edges) {
      const [a, b] = a0 < b0 ? [a0, b0] : [b0, a0];
      const chain = [a];
      let prev = a;
      for (let l = layer[a] + 1; l < layer[b]; ++l) {
        const d = vw.length;
        vw.push(8); vh.push(0); vl.push(l); vp.push([prev]); vs.push([]);
        vs[prev].push(d);
        chain.push(d);
        prev = d;
      }
      vs[prev].push(b); vp[b].push(prev);
      chain.push(b);
      chains.push(a0 < b0 ? chain : chain.reverse());
    }
    const V = vw.length;
    const layers = Array.from({length: L}, () => []);
    for (let v = 0; v < V; ++v) layers[vl[v]].push(v);
    const pos = new Float64Array(V);
    const renumber = row => row.forEach((v, i) => { pos[v] = i; });
    layers.forEach(renumber);
    const sweep = (row, nb) => {
      const key = new Float64Array(row.length);
      row.forEach((v, i) => {
        const ns = nb[v];
        if (!ns.length) { key[i] = pos[v]; return; }
        let s = 0;
        for (const u of ns) s += pos[u];
        key[i] = s / ns.length;
      });
      const idx = row.map((_, i) => i);
      idx.sort((a, b) => key[a] - key[b] || a - b);
      const out = idx.map(i => row[i]);
      renumber(out);
      return out;
    };
    for (let it = 0; it < SWEEPS; ++it) {
      for (let l = 1; l < L; ++l) layers[l] = sweep(layers[l], vp);
      for (let l = L - 2; l >= 0; --l) layers[l] = sweep(layers[l], vs);
    }
    // x: pack, then pull each vertex towards the median centre of its neighbours.
    const x = new Float64Array(V);
    for (const row of layers) {
      let cx = 0;
      for (const v of row) { x[v] = cx; cx += vw[v] + NODE_GAP; }
    }
    const centre = v => x[v] + vw[v] / 2;
    const place = (row, nb) => {
      const want = row.map(v => {
        const ns = nb[v];
        if (!ns.length) return x[v];
        const cs = ns.map(centre).sort((a, b) => a - b);
        const m = cs.length & 1 ? cs[cs.length >> 1] : (cs[cs.length / 2 - 1] + cs[cs.length / 2]) / 2;
        return m - vw[v] / 2;
      });
      const k = row.length;
      const nx = want.slice();
      for (let i = 1; i < k; ++i)
        nx[i] = Math.max(nx[i], nx[i - 1] + vw[row[i - 1]] + NODE_GAP);
      for (let i = k - 2; i >= 0; --i)
        nx[i] = Math.min(nx[i], nx[i + 1] - vw[row[i]] - NODE_GAP);
      // The right-to-left pass may have pushed the row left of where it should be: shift back
      // so that the row's mean displacement is zero.
      let shift = 0;
      for (let i = 0; i < k; ++i) shift += want[i] - nx[i];
      shift /= Math.max(k, 1);
      row.forEach((v, i) => { x[v] = nx[i] + shift; });
    };
    for (let it = 0; it < 3; ++it) {
      for (let l = 1; l < L; ++l) place(layers[l], vp);
      for (let l = L - 2; l >= 0; --l) place(layers[l], vs);
    }
    let minX = Infinity, maxX = -Infinity;
    for (let v = 0; v < V; ++v) { minX = Math.min(minX, x[v]); maxX = Math.max(maxX, x[v] + vw[v]); }
    if (!V) minX = maxX = 0;
    const ly = new Float64Array(L + 1);
    for (let l = 0; l < L; ++l) {
      let h = 0;
      for (const v of layers[l]) h = Math.max(h, vh[v]);
      ly[l + 1] = ly[l] + h + LAYER_GAP;
    }
    const X = [], Y = [];
    for (let i = 0; i < n; ++i) { X.push(x[i] - minX); Y.push(ly[layer[i]]); }
    const routes = chains.map(ch => {
      const pts = [];
      ch.forEach((v, k) => {
        const cx = x[v] - minX + vw[v] / 2;
        if (k === 0) pts.push(cx, ly[vl[v]] + vh[v]);
        else if (k === ch.length - 1) pts.push(cx, ly[vl[v]]);
        else pts.push(cx, ly[vl[v]] + (ly[vl[v] + 1] - ly[vl[v]] - LAYER_GAP) / 2);
      });
      return pts;
    });
    return {x: X, y: Y, w: maxX - minX, h: Math.max(ly[L] - LAYER_GAP, 0), routes};
  }

  // Size and inner layout of container `c` in the current expansion state (memoized by
  // signature + expansion of its descendants).
  function layoutContainer(m, c) {
    const sizes = c.items.map(it => {
      if (it.type === 'node') return nodeSize(m, it.id);
      const g = m.containers[it.gid];
      if (!m.expanded.has(g.id))
        return {w: Math.max(170, textWidth(g.label) + 60), h: GROUP_H};
      const inner = layoutContainer(m, g);
      return {w: Math.max(inner.w + 2 * PAD, textWidth(g.label) + 60), h: inner.h + HEADER + PAD};
    });
    const expKey = c.items.map(it => it.type === 'group' && m.expanded.has(it.gid) ?
        (m.containers[it.gid].cacheKey || '') : '').join('|');
    const key = c.sig + '#' + expKey;
    c.cacheKey = String(hashStr(key));
    let lay = m.cache.get(key);
    if (!lay) {
      const idx = new Map(c.items.map((it, i) => [it.key, i]));
      lay = layered(sizes, c.edges.map(e => [idx.get(e.a), idx.get(e.b)]));
      lay.sizes = sizes;
      m.cache.set(key, lay);
    }
    c.layout = lay;
    return lay;
  }

  function hashStr(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; ++i) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return h >>> 0;
  }

  // Lays out from the root and returns absolute boxes: nodes, groups (collapsed or expanded
  // frames) and edges (polylines), ready for drawing and hit testing.
  function layout(m) {
    const t0 = performance.now();
    const rootLay = layoutContainer(m, m.root);
    const out = {nodes: [], groups: [], edges: [], nodeBox: new Map(), groupBox: new Map(),
                 w: rootLay.w + 2 * PAD, h: rootLay.h + 2 * PAD};
    const place = (c, ox, oy) => {
      const lay = c.layout;
      c.items.forEach((it, i) => {
        const x = ox + lay.x[i], y = oy + lay.y[i], s = lay.sizes[i];
        if (it.type === 'node') {
          const b = {id: it.id, x, y, w: s.w, h: s.h};
          out.nodes.push(b);
          out.nodeBox.set(it.id, b);
        } else {
          const g = m.containers[it.gid];
          const exp = m.expanded.has(g.id);
          const b = {gid: g.id, x, y, w: s.w, h: s.h, expanded: exp};
          out.groups.push(b);
          out.groupBox.set(g.id, b);
          if (exp) place(g, x + PAD, y + HEADER);
        }
      });
      lay.routes.forEach((r, k) => {
        const pts = new Float64Array(r.length);
        for (let i = 0; i < r.length; i += 2) { pts[i] = r[i] + ox; pts[i + 1] = r[i + 1] + oy; }
        out.edges.push({pts, e: c.edges[k]});
      });
    };
    place(m.root, PAD, PAD);
    out.ms = performance.now() - t0;
    return out;
  }

  // The visible box of a node: itself, or the innermost collapsed group holding it.
  function visibleKey(m, id) {
    let key = 'n' + id;
    const chain = [];
    for (let c = m.containers[m.nodeContainer[id]]; c && c.parent; c = c.parent) chain.push(c);
    for (let i = chain.length - 1; i >= 0; --i)
      if (!m.expanded.has(chain[i].id)) return 'g' + chain[i].id;
    return key;
  }
  function ancestorsOf(m, id) {
    const a = [];
    const cid = m.nodeContainer[id];
    if (cid < 0) return a;
    for (let c = m.containers[cid]; c && c.parent; c = c.parent) a.push(c.id);
    return a;
  }

  return {buildModel, layout, visibleKey, ancestorsOf, shapeStr, blockOf, layered,
          consts: {NODE_H, CHIP_ROW, HEADER, PAD}};
})();
