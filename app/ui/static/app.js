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

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(drawChart);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document);
    if (window.htmx) {
      // Error answers (409 locked cell, 422 bad value, 503 intake paused) carry a page fragment that
      // explains the problem: swap them in like any other answer.
      htmx.config.responseHandling = [{ code: "204", swap: false }, { code: "...", swap: true }];
      document.body.addEventListener("htmx:afterSettle", function (evt) { drawAll(evt.target); });
    }
  });
})();
