// Meterline dashboard: draws the charts (uPlot) from each .chart element's data-chart
// attribute, on load and after every htmx swap. No inline script anywhere (CSP).
(function () {
  "use strict";
  var COLORS = ["#1d4ed8", "#dc2626", "#ca8a04", "#059669", "#7c3aed", "#db2777", "#0891b2", "#4b5563"];

  function numbers(values) {
    return values.map(function (v) { return v === null ? null : parseFloat(v); });
  }

  function draw(el) {
    if (el.dataset.drawn) { return; }
    var spec = JSON.parse(el.getAttribute("data-chart"));
    var width = Math.max(el.clientWidth || 600, 300);
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : null;
    var series = [{}];
    var data = [spec.x];
    spec.series.forEach(function (s, i) {
      var color = s.limit ? "#991b1b" : COLORS[i % COLORS.length];
      var one = { label: s.label, stroke: color, width: s.limit ? 1.5 : 2 };
      if (s.limit) { one.dash = [6, 4]; }
      if (s.bars && bars) { one.paths = bars; one.fill = color + "55"; }
      series.push(one);
      data.push(numbers(s.values));
    });
    var opts = {
      width: width,
      height: 240,
      series: series,
      scales: { x: { time: true } },
      axes: [{}, { size: 60 }],
      legend: { show: true },
    };
    el.dataset.drawn = "1";
    el.chart = new uPlot(opts, data, el);
  }

  function init(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var found = scope.querySelectorAll(".chart[data-chart]");
    for (var i = 0; i < found.length; i++) { draw(found[i]); }
    if (scope.matches && scope.matches(".chart[data-chart]")) { draw(scope); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    if (window.htmx) { window.htmx.onLoad(init); }
  });
})();
