(function () {
  'use strict';
  var table = document.getElementById('scans');
  var tbody = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var flagSel = document.getElementById('flag-filter');
  var reviewSel = document.getElementById('review-filter');
  var search = document.getElementById('search');
  var shown = document.getElementById('shown');
  var state = {sort: '', dir: 'asc', flag: 'all', review: 'all', q: '', pics: ''};
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
      var text = [r.dataset.subject, r.dataset.session, r.dataset.file, r.dataset.dataset, r.dataset.model,
                  r.dataset.command, r.dataset.note].join(' ').toLowerCase();
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
    if (state.pics) p.set('pics', state.pics);
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
    state.pics = p.get('pics') || '';
    setSize(state.pics || storedSize(), false);
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

  // reviews: a verdict and a note per row, in localStorage under PREFIX + key and PREFIX + 'note:' + key
  var VERDICTS = ['pass', 'fail', 'unsure'];
  function reviewKey(r) { return r.querySelector('td.review select').dataset.key; }
  function setReview(r, value, keep) {
    var sel = r.querySelector('td.review select');
    sel.value = value; r.dataset.review = value; sel.parentNode.dataset.sort = value;
    r.classList.remove('review-pass', 'review-fail', 'review-unsure');
    if (value) r.classList.add('review-' + value);
    if (!keep) store(reviewKey(r), value);
  }
  function setNote(r, text, keep) {
    var input = r.querySelector('td.review input.note');
    input.value = text; r.dataset.note = input.value;  // the value as the input keeps it (one line)
    if (!keep) store('note:' + reviewKey(r), input.value);
  }
  rows().forEach(function (r) {
    var sel = r.querySelector('td.review select'), input = r.querySelector('td.review input.note');
    setReview(r, stored(reviewKey(r)), true);
    setNote(r, stored('note:' + reviewKey(r)), true);
    sel.addEventListener('change', function () { setReview(r, sel.value); });
    input.addEventListener('input', function () { setNote(r, input.value); });
  });

  // reviews as CSV: export, and import of that CSV (rows matched by id, else image path, else name)
  var CSV_COLUMNS = ['id', 'dataset', 'subject', 'session', 'file', 'image_path', 'task', 'model', 'demo', 'created',
                     'lesion_count', 'lesion_volume_mm3', 'flags', 'review', 'note'];
  function csvValues(d) {
    return [d.id, d.dataset, d.subject, d.session, d.file, d.path, d.task, d.model, d.demo ? 'yes' : '', d.created,
            d.lesions, d.lesionVolume, d.flags, d.review, d.note];
  }
  // a cell a spreadsheet would run as a formula (= + - @, tab, CR first) is written with a leading apostrophe,
  // which the import takes off again
  var FORMULA = /^[=+\-@\t\r]/;
  function neutralise(v) { v = String(v || ''); return FORMULA.test(v) ? "'" + v : v; }
  function restore(v) { return v.charAt(0) === "'" && FORMULA.test(v.slice(1)) ? v.slice(1) : v; }
  function reviewsCSV() {
    var list = rows().sort(function (a, b) { return (+a.dataset.order) - (+b.dataset.order); });
    return [CSV_COLUMNS.join(',')].concat(list.map(function (r) {
      return csvValues(r.dataset).map(function (v) { return '"' + neutralise(v).replace(/"/g, '""') + '"'; })
        .join(',');
    })).join('\n') + '\n';
  }
  function parseCSV(text) {  // {rows} or {error}: a malformed quote is an error, never a silent cut
    text = text.replace(/^\ufeff/, '');
    var first = text.split(/\r?\n/, 1)[0], sep = first.indexOf(',') < 0 && first.indexOf(';') >= 0 ? ';' : ',';
    var out = [], row = [], field = '', quoted = false, closed = false, line = 1, start = 1, c;
    function bad(what) { return {error: 'malformed CSV: ' + what + ' (line ' + line + '); nothing imported'}; }
    for (var i = 0; i < text.length; i++) {
      c = text[i];
      if (quoted) {
        if (c === '\n') line++;
        if (c !== '"') field += c;
        else if (text[i + 1] === '"') { field += '"'; i++; } else { quoted = false; closed = true; }
      } else if (c === sep) { row.push(restore(field)); field = ''; closed = false; }
      else if (c === '\n' || c === '\r') {
        if (c === '\r' && text[i + 1] === '\n') i++;
        row.push(restore(field)); out.push(row); row = []; field = ''; closed = false; start = ++line;
      } else if (closed) return bad('text after a closing quote');
      else if (c === '"') { if (field) return bad('a quote inside an unquoted cell'); quoted = true; }
      else field += c;
    }
    if (quoted) { line = start; return bad('a quoted cell is never closed'); }
    if (field || row.length) { row.push(restore(field)); out.push(row); }
    var rows = out.filter(function (r) { return r.length > 1 || r[0] !== ''; });
    var wide = rows.findIndex(function (r) { return rows.length && r.length > rows[0].length; });
    if (wide >= 0) { line = wide + 1; return bad('more cells than the header'); }
    return {rows: rows};
  }
  function nameKey(dataset, subject, session, file) {
    return file ? [dataset || '', subject || '', session || '', file].join('\u0000') : '';
  }
  function pick(list, model) {  // the one row of a match; several: the one with the same model, else none
    if (!list) return null;
    if (list.length === 1) return list[0];
    var same = list.filter(function (r) { return r.dataset.model === model; });
    return same.length === 1 ? same[0] : null;
  }
  function importReviews(text) {
    var parsed = parseCSV(text);
    if (parsed.error) return parsed;
    var table = parsed.rows;
    var head = (table.shift() || []).map(function (h) { return h.trim().toLowerCase(); });
    function col(name) { return head.indexOf(name); }
    if (col('review') < 0 || (col('id') < 0 && col('image_path') < 0 && col('file') < 0)) {
      return {error: 'not a review CSV (it needs a review column and an id, image_path or file column)'};
    }
    var index = {id: new Map(), path: new Map(), name: new Map()};  // any text is a key (__proto__ too)
    function add(map, k, r) { if (k) { if (!map.has(k)) map.set(k, []); map.get(k).push(r); } }
    rows().forEach(function (r) {
      var d = r.dataset;
      add(index.id, d.id, r); add(index.path, d.path, r);
      add(index.name, nameKey(d.dataset, d.subject, d.session, d.file), r);
    });
    var got = {imported: 0, byFile: 0, unmatched: 0, invalid: 0};
    table.forEach(function (rec) {
      function get(name) { var i = col(name); return i < 0 ? '' : (rec[i] || ''); }
      var verdict = get('review').trim().toLowerCase(), note = get('note'), model = get('model');
      if (verdict && VERDICTS.indexOf(verdict) < 0) { got.invalid++; return; }
      if (!verdict && !note) return;
      var r = pick(index.id.get(get('id')), model), byFile = !r;
      r = r || pick(index.path.get(get('image_path')), model) ||
        pick(index.name.get(nameKey(get('dataset'), get('subject'), get('session'), get('file'))), model);
      if (!r) { got.unmatched++; return; }
      setReview(r, verdict); setNote(r, note);
      got.imported++; if (byFile) got.byFile++;
    });
    return got;
  }
  document.getElementById('export').addEventListener('click', function () {
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([reviewsCSV()], {type: 'text/csv'}));
    a.download = 'qc_reviews.csv'; document.body.appendChild(a); a.click(); a.remove();
  });
  var importInput = document.getElementById('import'), importResult = document.getElementById('import-result');
  importInput.addEventListener('change', function () {
    var file = importInput.files[0];
    if (!file) return;
    var reader = new FileReader();
    reader.onload = function () {
      var got;
      try { got = importReviews(String(reader.result)); } catch (e) { got = {error: 'cannot import: ' + e}; }
      importInput.value = '';
      importResult.textContent = got.error ? file.name + ': ' + got.error :
        'imported ' + got.imported + ' review(s)' + (got.byFile ? ' (' + got.byFile + ' matched by file)' : '') +
        (got.unmatched ? ', ' + got.unmatched + ' not matched' : '') +
        (got.invalid ? ', ' + got.invalid + ' with an unknown verdict' : '');
      var b = document.body.dataset;
      b.imported = got.error ? -1 : got.imported; b.importedByFile = got.byFile || 0;
      b.importUnmatched = got.unmatched || 0; b.importInvalid = got.invalid || 0;
      filter();
    };
    reader.readAsText(file);
  });

  // picture size: the thumbnails at three heights (s, m, l) or the full mosaics, loaded as they come into view
  // (xl); remembered by the browser
  var SIZE_KEY = 'sciseg-qc-pref:pictures', sizeSel = document.getElementById('pic-size');
  function setSize(v, remember) {
    if (['s', 'm', 'l', 'xl'].indexOf(v) < 0) v = 'l';
    sizeSel.value = v; document.body.dataset.pics = v;
    var big = v === 'xl';
    Array.prototype.forEach.call(tbody.querySelectorAll('a.thumb img'), function (img) {
      var want = big ? img.dataset.big : img.dataset.thumb;
      if (big) img.loading = 'lazy';
      if (want && img.getAttribute('src') !== want) img.setAttribute('src', want);
    });
    if (remember) {
      try { localStorage.setItem(SIZE_KEY, v); } catch (e) { /* not remembered */ }
    }
  }
  sizeSel.addEventListener('change', function () { state.pics = ''; setSize(sizeSel.value, true); writeHash(); });
  function storedSize() { try { return localStorage.getItem(SIZE_KEY) || ''; } catch (e) { return ''; } }

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
    } else return;
    ev.preventDefault(); show();
  });

  function fitHeader() {
    document.documentElement.style.setProperty('--hh', document.querySelector('header').offsetHeight + 'px');
  }
  window.addEventListener('resize', fitHeader);
  fitHeader();
  var failed = 0;  // pictures that failed to load (counted as they fail: large pictures load lazily)
  tbody.addEventListener('error', function (ev) {
    if (ev.target.tagName !== 'IMG') return;
    failed++; document.body.dataset.imagesFailed = failed;
    document.getElementById('missing').textContent = failed + ' picture(s) missing';
  }, true);
  readHash();
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(tbody.querySelectorAll('img'));
    document.body.dataset.imagesLoaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    document.body.dataset.imagesFailed = failed;
    document.body.dataset.ready = '1';
  });
})();
