// Aegis dashboard: the daily chart (uPlot), the world map (jsVectorMap) and
// the live table of latest events. Stored values only ever reach the page as
// text (textContent), never as HTML.
(function () {
  'use strict';

  function json(el, name) {
    try { return JSON.parse(el.dataset[name]); } catch (e) { return null; }
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // The smallest of 2, 4, 6, 8, 10 times a power of ten at least `peak`: even,
  // so that the middle gridline is a whole number too.
  function roundTop(peak) {
    for (var scale = 1; ; scale *= 10) {
      for (var step = 2; step <= 10; step += 2) if (step * scale >= peak) return step * scale;
    }
  }

  // ---- Bans per day --------------------------------------------------------
  function dailyChart(el) {
    var days = json(el, 'daily') || [];
    var scope = el.dataset.scope || '';
    var tip = document.createElement('div');
    tip.className = 'chart-tip';
    el.style.position = 'relative';
    el.appendChild(tip);

    function columns(rows) {
      return [
        rows.map(function (d) { return Date.parse(d.day + 'T00:00:00Z') / 1000; }),
        rows.map(function (d) { return d.bans; })
      ];
    }

    var showTip = function (u) {
      var i = u.cursor.idx;
      if (i == null || u.data[0][i] == null) { tip.style.display = 'none'; return; }
      var day = new Date(u.data[0][i] * 1000).toISOString().slice(0, 10);
      var n = u.data[1][i];
      tip.textContent = day + ': ' + n + ' ban' + (n === 1 ? '' : 's');
      tip.style.display = 'block';
      var left = u.valToPos(u.data[0][i], 'x') + u.over.offsetLeft;
      tip.style.left = Math.max(0, Math.min(left - tip.offsetWidth / 2, el.clientWidth - tip.offsetWidth)) + 'px';
      tip.style.top = '0px';
    };

    // The report's chart uses the same scale, colours and labels (aegis-report's chart.rs).
    var bar = css('--accent');
    var opts = {
      width: Math.max(280, el.clientWidth),
      height: 240,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'); },
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: { range: function (u, min, max) { var top = roundTop(max); el.dataset.top = top; return [0, top]; } }
      },
      axes: [
        {
          stroke: css('--muted'), grid: { stroke: css('--line') }, ticks: { stroke: css('--line') },
          values: function (u, ticks) {
            return ticks.map(function (t) { return new Date(t * 1000).toISOString().slice(5, 10); });
          }
        },
        {
          stroke: css('--muted'), grid: { stroke: css('--line') }, ticks: { stroke: css('--line') }, size: 50,
          label: 'bans', labelSize: 20,
          splits: function (u) { var top = u.scales.y.max; return [0, top / 2, top]; }
        }
      ],
      series: [
        {},
        {
          label: 'Bans',
          stroke: bar,
          fill: bar,
          width: 1,
          points: { show: false },
          paths: uPlot.paths.bars({ size: [0.8, 40] })
        }
      ],
      hooks: { setCursor: [showTip] }
    };
    var chart = new uPlot(opts, columns(days), el);
    el.dataset.rendered = days.length;

    window.addEventListener('resize', function () {
      chart.setSize({ width: Math.max(280, el.clientWidth), height: 240 });
    });

    document.querySelectorAll('[data-days]').forEach(function (button) {
      button.addEventListener('click', function () {
        var n = button.dataset.days;
        fetch('/api/v1/daily?days=' + n + (scope ? '&' + scope : ''))
          .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
          .then(function (body) {
            chart.setData(columns(body.days));
            el.dataset.rendered = body.days.length;
            document.querySelectorAll('[data-days]').forEach(function (b) {
              b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
            });
          })
          .catch(function (e) { console.warn('daily chart not updated: ' + e); });
      });
    });
  }

  // ---- World map -----------------------------------------------------------
  function worldMap(el) {
    var data = json(el, 'map') || { countries: {}, points: [] };
    var shade = {};
    Object.keys(data.countries).forEach(function (cc) { shade[cc] = Math.log1p(data.countries[cc]); });
    var map = new jsVectorMap({
      selector: '#' + el.id,
      map: 'world',
      backgroundColor: 'transparent',
      zoomButtons: true,
      zoomOnScroll: false,
      regionStyle: { initial: { fill: css('--line'), stroke: css('--card'), strokeWidth: 0.4 } },
      visualizeData: Object.keys(shade).length ? { scale: ['#fbd5b5', '#b91c1c'], values: shade } : undefined,
      markers: data.points.map(function (p) { return { name: p.label, coords: [p.lat, p.lon] }; }),
      markerStyle: { initial: { fill: '#1d4ed8', stroke: '#ffffff', strokeWidth: 1, r: 3.5 } },
      onRegionTooltipShow: function (event, tooltip, code) {
        var n = data.countries[code] || 0;
        tooltip.text(tooltip.text() + ': ' + n + ' ban' + (n === 1 ? '' : 's'));
      },
      onMarkerTooltipShow: function (event, tooltip, index) {
        var p = data.points[index];
        if (p) tooltip.text(p.label + ': ' + p.bans + ' ban' + (p.bans === 1 ? '' : 's'));
      },
      onRegionClick: function (event, code) {
        if (data.countries[code]) window.location.href = '/country/' + encodeURIComponent(code);
      }
    });
    el.dataset.rendered = Object.keys(data.countries).length;
    // A resize can pass through a moment with no room for the map (a full-page
    // screenshot does); scaling to zero would write NaN into every shape.
    window.addEventListener('resize', function () {
      if (el.clientWidth > 0 && el.clientHeight > 0) map.updateSize();
    });
  }

  // ---- Latest events, refreshed -------------------------------------------
  function cell(row, text, href, cls) {
    var td = document.createElement('td');
    if (cls) td.className = cls;
    if (href) {
      var a = document.createElement('a');
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
    return td;
  }

  function liveTable(table, scope) {
    var status = document.getElementById('live');
    function refresh() {
      fetch('/api/v1/events?limit=15&total=false' + (scope ? '&' + scope : ''))
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (page) {
          var body = document.createElement('tbody');
          page.events.forEach(function (e) {
            var tr = document.createElement('tr');
            var t = cell(tr, '');
            var time = document.createElement('time');
            time.dateTime = e.time_iso;
            time.textContent = e.time;
            t.appendChild(time);
            var k = cell(tr, '');
            var kind = document.createElement('span');
            kind.className = 'kind kind-' + e.kind;
            kind.textContent = e.kind;
            k.appendChild(kind);
            cell(tr, e.ip, '/ip/' + encodeURIComponent(e.ip), 'ip');
            cell(tr, e.country || '–', e.country ? '/country/' + encodeURIComponent(e.country) : null);
            cell(tr, e.jail, '/jail/' + encodeURIComponent(e.jail));
            cell(tr, e.host, '/host/' + encodeURIComponent(e.host));
            cell(tr, e.failures == null ? '' : String(e.failures), null, 'num');
            body.appendChild(tr);
          });
          if (page.events.length) table.replaceChild(body, table.tBodies[0]);
          if (status) status.textContent = 'updated ' + new Date().toLocaleTimeString();
        })
        .catch(function (e) { if (status) status.textContent = 'not updated (' + e.message + ')'; });
    }
    setInterval(refresh, 10000);
  }

  var daily = document.getElementById('daily');
  if (daily && window.uPlot) dailyChart(daily);
  var map = document.getElementById('map');
  if (map && window.jsVectorMap) worldMap(map);
  var latest = document.getElementById('latest');
  if (latest) liveTable(latest, daily ? daily.dataset.scope : '');
})();
