(function () {
  'use strict';
  var table = document.getElementById('scans');
  var tbody = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var flagSel = document.getElementById('flag-filter');
  var reviewSel = document.getElementById('review-filter');
  var search = document.getElementById('search');
  var shown = document.getElementById('shown');
  var state = {sort: '', dir: 'asc', flag: 'all', review: 'all', q: ''};
  var PREFIX = 'sciseg-qc-review:';

  function store(key, value) {
    try { if (value) localStorage.setItem(PREFIX + key, value); else localStorage.removeItem(PREFIX + key); }
    catch (e) { /* storage unavailable: reviews last for this page only */ }
  }
  function stored(key) { try { return localStorage.getItem(PREFIX + key) || ''; } catch (e) { return ''; } }

  function rows() { return Array.prototype.slice.call(tbody.rows); }

  function sortBy(key, dir) {
    var th = null;
    heads.forEach(function (h) { if (h.dataset.key === key) th = h; });
    if (!th || th.dataset.type === 'none') return false;
    var col = th.cellIndex, num = th.dataset.type === 'num', sign = dir === 'desc' ? -1 : 1;
    var list = rows();
    list.sort(function (a, b) {
      var x = a.cells[col].dataset.sort || '', y = b.cells[col].dataset.sort || '', c;
      if (num) {
        var fx = parseFloat(x), fy = parseFloat(y);
        fx = isNaN(fx) ? -Infinity : fx; fy = isNaN(fy) ? -Infinity : fy;
        c = fx < fy ? -1 : fx > fy ? 1 : 0;
      } else {
        c = x.localeCompare(y, undefined, {numeric: true, sensitivity: 'base'});
      }
      return c !== 0 ? sign * c : (+a.dataset.order) - (+b.dataset.order);
    });
    list.forEach(function (r) { tbody.appendChild(r); });
    heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 'desc' ? 'descending' : 'ascending');
    return true;
  }

  function matches(r) {
    var flags = r.dataset.flags ? r.dataset.flags.split(' ') : [];
    var f = state.flag;
    if (f === 'any' && !flags.length) return false;
    if (f === 'none' && flags.length) return false;
    if (f !== 'all' && f !== 'any' && f !== 'none' && flags.indexOf(f) < 0) return false;
    var rv = r.dataset.review || '';
    if (state.review === 'todo' && rv) return false;
    if (state.review !== 'all' && state.review !== 'todo' && rv !== state.review) return false;
    if (state.q) {
      var text = [r.dataset.subject, r.dataset.session, r.dataset.file, r.dataset.dataset, r.dataset.model]
        .join(' ').toLowerCase();
      if (text.indexOf(state.q.toLowerCase()) < 0) return false;
    }
    return true;
  }

  function filter() {
    var n = 0;
    rows().forEach(function (r) { var ok = matches(r); r.hidden = !ok; if (ok) n++; });
    shown.textContent = n + ' of ' + tbody.rows.length + ' shown';
    document.body.dataset.visibleRows = n;
  }

  function writeHash() {
    var p = new URLSearchParams();
    if (state.sort) { p.set('sort', state.sort); p.set('dir', state.dir); }
    if (state.flag !== 'all') p.set('flag', state.flag);
    if (state.review !== 'all') p.set('review', state.review);
    if (state.q) p.set('q', state.q);
    var h = p.toString();
    try { history.replaceState(null, '', h ? '#' + h : location.pathname + location.search); }
    catch (e) { /* some browsers refuse on file:// */ }
  }

  function readHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ''));
    state.sort = p.get('sort') || '';
    state.dir = p.get('dir') === 'desc' ? 'desc' : 'asc';
    state.flag = p.get('flag') || 'all';
    state.review = p.get('review') || 'all';
    state.q = p.get('q') || '';
    if (!Array.prototype.some.call(flagSel.options, function (o) { return o.value === state.flag; })) {
      state.flag = 'all';
    }
    flagSel.value = state.flag; reviewSel.value = state.review; search.value = state.q;
    if (state.sort && !sortBy(state.sort, state.dir)) state.sort = '';
    filter();
  }

  heads.forEach(function (th) {
    if (th.dataset.type === 'none' || th.dataset.type === 'review') return;
    th.classList.add('sortable');
    th.tabIndex = 0;
    function go() {
      var dir = (state.sort === th.dataset.key && state.dir === 'asc') ? 'desc' : 'asc';
      state.sort = th.dataset.key; state.dir = dir;
      sortBy(state.sort, dir); writeHash();
    }
    th.addEventListener('click', go);
    th.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') go(); });
  });
  flagSel.addEventListener('change', function () { state.flag = flagSel.value; filter(); writeHash(); });
  reviewSel.addEventListener('change', function () { state.review = reviewSel.value; filter(); writeHash(); });
  search.addEventListener('input', function () { state.q = search.value; filter(); writeHash(); });
  window.addEventListener('hashchange', readHash);

  // reviews
  function setReview(r, value) {
    var sel = r.querySelector('td.review select');
    sel.value = value; r.dataset.review = value;
    r.classList.remove('review-pass', 'review-fail', 'review-unsure');
    if (value) r.classList.add('review-' + value);
    store(sel.dataset.key, value);
  }
  rows().forEach(function (r) {
    var sel = r.querySelector('td.review select');
    var v = stored(sel.dataset.key);
    r.dataset.review = v; sel.value = v; if (v) r.classList.add('review-' + v);
    sel.parentNode.dataset.sort = v;
    sel.addEventListener('change', function () { setReview(r, sel.value); sel.parentNode.dataset.sort = sel.value; });
  });
  document.getElementById('export').addEventListener('click', function () {
    var lines = [['dataset', 'subject', 'session', 'file', 'model', 'lesion_count', 'lesion_volume_mm3', 'flags',
                  'review'].join(',')];
    rows().forEach(function (r) {
      var d = r.dataset;
      var vals = [d.dataset, d.subject, d.session, d.file, d.model, d.lesions, d.lesionVolume, d.flags,
                  d.review || ''];
      lines.push(vals.map(function (v) { return '"' + String(v || '').replace(/"/g, '""') + '"'; }).join(','));
    });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], {type: 'text/csv'}));
    a.download = 'qc_reviews.csv'; document.body.appendChild(a); a.click(); a.remove();
  });

  // full-size viewer
  var viewer = document.getElementById('viewer'), vimg = document.getElementById('vimg');
  var vtitle = document.getElementById('vtitle'), vcur = null, vkind = 'sagittal', vplain = false;
  function visible() { return rows().filter(function (r) { return !r.hidden; }); }
  function show() {
    if (!vcur) return;
    var a = vcur.querySelector('a.thumb[data-kind="' + vkind + '"]');
    if (!a) return;
    vimg.src = (vplain && a.dataset.plain) ? a.dataset.plain : a.dataset.full;
    var list = visible();
    vtitle.textContent = [vcur.dataset.dataset, vcur.dataset.subject, vcur.dataset.session, vcur.dataset.file]
      .filter(Boolean).join(' / ') + '  (' + (list.indexOf(vcur) + 1) + ' of ' + list.length + ')';
    document.getElementById('vflags').textContent = vcur.dataset.flags || 'no flag';
    document.getElementById('vreview').textContent = vcur.dataset.review || 'not reviewed';
    ['sagittal', 'axial'].forEach(function (k) {
      document.getElementById('v-' + k).classList.toggle('on', k === vkind);
    });
    document.getElementById('v-plain').classList.toggle('on', vplain);
    rows().forEach(function (r) { r.classList.toggle('current', r === vcur); });
  }
  function open(r, kind) { vcur = r; vkind = kind; vplain = false; viewer.hidden = false; show(); }
  function close() { viewer.hidden = true; if (vcur) vcur.scrollIntoView({block: 'nearest'}); }
  function step(d) {
    var list = visible(), i = list.indexOf(vcur);
    if (list.length) { vcur = list[Math.max(0, Math.min(list.length - 1, i + d))]; show(); }
  }
  tbody.addEventListener('click', function (ev) {
    var a = ev.target.closest ? ev.target.closest('a.thumb') : null;
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault(); open(a.closest('tr'), a.dataset.kind);
  });
  document.getElementById('v-sagittal').onclick = function () { vkind = 'sagittal'; show(); };
  document.getElementById('v-axial').onclick = function () { vkind = 'axial'; show(); };
  document.getElementById('v-plain').onclick = function () { vplain = !vplain; show(); };
  document.getElementById('v-prev').onclick = function () { step(-1); };
  document.getElementById('v-next').onclick = function () { step(1); };
  document.getElementById('v-close').onclick = close;
  document.addEventListener('keydown', function (ev) {
    if (viewer.hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var k = ev.key;
    if (k === 'Escape') close();
    else if (k === 'o' || k === ' ') vplain = !vplain;
    else if (k === 's') vkind = 'sagittal';
    else if (k === 'a') vkind = 'axial';
    else if (k === 'ArrowRight' || k === 'ArrowDown' || k === 'n') { step(1); ev.preventDefault(); return; }
    else if (k === 'ArrowLeft' || k === 'ArrowUp') { step(-1); ev.preventDefault(); return; }
    else if (k === 'p' || k === 'f' || k === 'u') {
      setReview(vcur, {p: 'pass', f: 'fail', u: 'unsure'}[k]);
      vcur.querySelector('td.review').dataset.sort = vcur.dataset.review;
    } else return;
    ev.preventDefault(); show();
  });

  function fitHeader() {
    document.documentElement.style.setProperty('--hh', document.querySelector('header').offsetHeight + 'px');
  }
  window.addEventListener('resize', fitHeader);
  fitHeader();
  readHash();
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(tbody.querySelectorAll('img'));
    var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    document.body.dataset.imagesLoaded = ok;
    document.body.dataset.imagesFailed = imgs.length - ok;
    if (imgs.length - ok) {
      document.getElementById('missing').textContent = (imgs.length - ok) + ' picture(s) missing';
    }
    document.body.dataset.ready = '1';
  });
})();
