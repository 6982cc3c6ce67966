// Planning Hub UI behaviour: charts from the JSON next to each chart box, htmx settings. No build step.
(function () {
  "use strict";

  var COLORS = ["#1f5fbf", "#2f9e44", "#e8590c", "#9c36b5", "#0b7285"];

  function fmt(v) {
    if (v == null) return "";
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : String(Math.round(v * 100) / 100);
  }

  function drawChart(box) {
    if (box.dataset.drawn || typeof uPlot === "undefined") return;
    var source = document.getElementById(box.dataset.chart);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var labels = data.labels;
    var names = data.series.map(function (s) { return s.name; });
    var kinds = (box.dataset.kinds || "").split(",");
    var xs = labels.map(function (_, i) { return i; });
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars : null;
    var stepped = uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped : null;
    var barCount = kinds.filter(function (k) { return k === "bar"; }).length;
    var barIndex = 0;
    var series = [{ label: "bucket", value: function (u, i) { return i == null ? "" : labels[i]; } }];
    names.forEach(function (name, i) {
      var kind = kinds[i] || "line";
      var color = COLORS[i % COLORS.length];
      var s = { label: name, stroke: color, width: 2, value: function (u, v) { return fmt(v); } };
      if (kind === "bar" && bars) {
        var slot = barIndex++;
        s.fill = color + "cc";
        s.width = 0;
        // Two bar series stand side by side: the first left of the bucket's centre, the second right.
        var align = barCount === 1 ? 0 : slot === 0 ? -1 : 1;
        s.paths = bars({ size: [barCount === 1 ? 0.6 : 0.36, 48], align: align, gap: 1 });
        s.points = { show: false };
      } else if (kind === "step" && stepped) {
        s.paths = stepped({ align: 1 });
        s.dash = [6, 4];
        s.points = { show: false };
      }
      series.push(s);
    });
    var width = Math.max(320, box.clientWidth || 600);
    // Label every n-th bucket so that labels (about 8 characters) never overlap.
    var every = Math.max(1, Math.ceil((labels.length * 72) / Math.max(1, width - 90)));
    var opts = {
      width: width,
      height: 300,
      series: series,
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] } },
      axes: [
        { values: function (u, splits) { return splits.map(function (v) {
            return Number.isInteger(v) && v % every === 0 && labels[v] != null ? labels[v] : ""; }); },
          splits: function () { return xs; }, grid: { show: false } },
        { values: function (u, splits) { return splits.map(fmt); }, size: 64 },
      ],
      legend: { live: true },
      // Without a hovered bucket the legend names the series only: no "bucket:" entry, no empty values.
      hooks: { setLegend: [function (u) { u.root.classList.toggle("u-idle", u.cursor.idx == null); }] },
    };
    var columns = [xs].concat(data.series.map(function (s) { return s.values; }));
    box.dataset.drawn = "1";
    new uPlot(opts, columns, box);
  }

  // --- the PSI grid: keyboard moves, block paste, projected inventory and cover as cells are typed ---

  function num(text) {
    var v = parseFloat(String(text).replace(/,/g, "").trim());
    return isFinite(v) ? v : null;
  }

  function gridInput(table, r, c) {
    return table.querySelector('input.g[data-r="' + r + '"][data-c="' + c + '"]');
  }

  // A grid input names little itself: its field is its row's class, its SKU its tbody's, its week and
  // period the table's column list, and what the server sent is its default value.
  function recompute(table) {
    var edits = [];
    var delta = { demand: {}, supply: {} };
    var columns = JSON.parse(table.dataset.columns || "[]");
    table.querySelectorAll("input.g").forEach(function (el) {
      var v = num(el.value), orig = num(el.defaultValue);
      var changed = v !== null && v !== orig;
      el.classList.toggle("dirty", changed);
      el.classList.toggle("bad", v === null || v < 0);
      if (changed) {
        var c = +el.dataset.c, field = el.closest("tr").className;
        delta[field][c] = (delta[field][c] || 0) + v - orig;
        edits.push({ sku: el.closest("tbody").dataset.sku, week: columns[c][0], period: columns[c][1],
                     field: field, value: v });
      }
    });
    table.querySelectorAll("td.total").forEach(function (td) {
      var d = delta[td.dataset.field][td.dataset.c] || 0;
      td.textContent = fmtQty(num(td.dataset.base) + d);
      td.classList.toggle("dirty", d !== 0);
    });
    var shares = JSON.parse(table.dataset.shares || "[]");
    table.querySelectorAll("tbody.sku").forEach(function (body) {
      var receipts = JSON.parse(body.dataset.receipts || "[]");
      var safety = num(body.dataset.safety) || 0;
      var cols = receipts.length;
      var dem = [], sup = [];
      for (var c = 0; c < cols; c++) {
        var d = body.querySelector('tr.demand input[data-c="' + c + '"]');
        var s = body.querySelector('tr.supply input[data-c="' + c + '"]');
        dem.push(d ? num(d.value) || 0 : 0);
        sup.push(s ? num(s.value) || 0 : 0);
      }
      var inv = num(body.dataset.opening) || 0;
      var invs = [];
      for (c = 0; c < cols; c++) { inv += receipts[c] + sup[c] - dem[c]; invs.push(inv); }
      body.querySelectorAll("td.inv").forEach(function (td) {
        var v = invs[+td.dataset.c];
        td.textContent = fmtQty(v);
        td.classList.toggle("short", v < 0);
        td.classList.toggle("below", v >= 0 && v < safety);
      });
      body.querySelectorAll("td.cov").forEach(function (td) {
        var c = +td.dataset.c, left = invs[c], weeks = 0;
        for (var k = c + 1; k < cols && left > 0; k++) {
          var share = shares.length > k ? shares[k] : 1;  // a split week's bucket is part of a week
          if (dem[k] <= left) { left -= dem[k]; weeks += share; } else { weeks += share * left / dem[k]; left = 0; }
        }
        td.textContent = invs[c] <= 0 ? "0" : (k >= cols && left > 0 ? weeks.toFixed(1) + "+" : weeks.toFixed(1));
      });
    });
    var form = document.getElementById("grid-form");
    if (form) {
      form.querySelector("#grid-edits").value = JSON.stringify(edits);
      var bad = table.querySelector("input.g.bad");
      form.querySelector("#grid-save").disabled = !edits.length || !!bad;
      form.querySelector("#grid-changes").textContent = bad ? "a cell is not a number"
        : edits.length ? edits.length + " changed cell" + (edits.length === 1 ? "" : "s") : "no changes";
    }
  }

  function fmtQty(v) {
    return v == null || !isFinite(v) ? "" : Math.round(v).toLocaleString("en");
  }

  var MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], Enter: [1, 0] };

  function initGrid(table) {
    if (table.dataset.ready) return;
    table.dataset.ready = "1";
    recompute(table);
    table.addEventListener("input", function () { recompute(table); });
    table.addEventListener("keydown", function (evt) {
      var el = evt.target;
      if (!el.matches || !el.matches("input.g")) return;
      var move = MOVES[evt.key];
      if (!move || (evt.key === "Enter" && evt.shiftKey)) return;
      var next = gridInput(table, +el.dataset.r + move[0], +el.dataset.c + move[1]);
      evt.preventDefault();
      if (next) { next.focus(); next.select(); }
    });
    table.addEventListener("paste", function (evt) {
      var el = evt.target;
      if (!el.matches || !el.matches("input.g")) return;
      var text = (evt.clipboardData || window.clipboardData).getData("text");
      if (!/[\t\n]/.test(text.trim())) return;
      evt.preventDefault();
      text.replace(/\r/g, "").replace(/\n+$/, "").split("\n").forEach(function (line, i) {
        line.split("\t").forEach(function (value, j) {
          var target = gridInput(table, +el.dataset.r + i, +el.dataset.c + j);
          if (target && !target.readOnly) target.value = value.trim();
        });
      });
      recompute(table);
    });
  }

  function initGrids(root) {
    (root || document).querySelectorAll("table.psi-sheet").forEach(initGrid);
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(drawChart);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document);
    initGrids(document);
    if (window.htmx) {
      // Error answers (409 locked cell, 422 bad value, 503 intake paused) carry a page fragment that
      // explains the problem: swap them in like any other answer.
      htmx.config.responseHandling = [{ code: "204", swap: false }, { code: "...", swap: true }];
      document.body.addEventListener("htmx:afterSettle", function (evt) { drawAll(evt.target); initGrids(evt.target); });
    }
  });
})();
