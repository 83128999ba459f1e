/* The report's charts, filters and drill-down (runner/demo/report/page.py inlines this file).

   Reads the JSON of <script id="report-data">: meta {first, last, services: [{name, label,
   color}]} and charts {NAME: {kind, ...}}, and draws each chart into <div data-slot="NAME">,
   again whenever a filter changes. Renderers and their data:
   - lines: series [{label, color, shade, service, points: [[x, y, low, high, n]]}], with x a
     date or timestamp (or a number when x: "number"); options yScale ("log"), yMin, yMax,
     xMin, xMax, yFormat ("percent"), yLabel, xLabel, thresholds [[value, label, color]],
     band (low..high shaded), counts (n as grey bars), stacked, diagonal, robust (axis from
     the values, not the bands), markers (false: none), drill {service: series}, noTimeFilter.
   - multiples: panels [{title, service, chart: {kind: "lines", ...}}], empty.
   - drift_bins: groups [{service, title, color, days: [{date, reference_start, psi, status,
     bins: [[lower, upper, reference_share, current_share]]}]}]: the newest day in the range.
   - tiles: tiles [{label, value, tone, fmt}].
   - table: columns [{key, label, num, fmt}], rows [{..., _service}], title, empty.
   Every drawn chart carries data-chart="NAME" and data-points="N" (N shown under the filters).
   The filters live in location.hash (#service=oracle&from=2026-11-01&to=2026-11-30), so a
   filtered view can be linked to. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var META = DATA.meta;
  var DAY = 86400000;
  var state = { service: "all", from: null, to: null };

  // -- formatting ------------------------------------------------------------------------------
  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }
  function toMs(value) {
    if (typeof value === "number") return value;
    return Date.parse(value.length === 10 ? value + "T00:00:00Z" : value);
  }
  function isoDay(ms) { return new Date(ms).toISOString().slice(0, 10); }
  function fmtTime(value) {
    if (value == null) return "";
    var d = new Date(toMs(value));
    return d.toISOString().slice(0, 16).replace("T", " ");
  }
  function fmtDuration(seconds) {
    if (seconds == null) return "";
    var minutes = Math.max(0, Math.round(seconds / 60));
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60);
    if (days) return days + " d " + hours + " h";
    if (hours) return hours + " h " + (minutes % 60) + " min";
    return minutes + " min";
  }
  function fmtNumber(value, format) {
    if (value == null || isNaN(value)) return "";
    if (format === "percent") {
      var pct = value * 100;
      return (Math.abs(pct) >= 10 || pct === Math.round(pct) ? pct.toFixed(0) : pct.toFixed(1)) + "%";
    }
    if (format === "count") return Math.round(value).toLocaleString("en-US");
    if (format === "bytes") {
      var units = ["B", "kB", "MB", "GB", "TB"], i = 0;
      while (Math.abs(value) >= 1000 && i < units.length - 1) { value /= 1000; i += 1; }
      return value.toFixed(value >= 100 || i === 0 ? 0 : 1) + " " + units[i];
    }
    if (format === "minutes") return fmtDuration(value * 60);
    if (format === "share") return fmtNumber(value, "percent");
    var abs = Math.abs(value);
    if (abs >= 1000) return Math.round(value).toLocaleString("en-US");
    if (abs >= 10 || value === Math.round(value)) return String(Math.round(value * 10) / 10);
    if (abs >= 0.01) return value.toPrecision(3).replace(/\.?0+$/, "");
    return String(Number(value.toPrecision(2)));
  }
  // a version's colour: the service's own for the first version, lighter for later ones
  function shade(color, index) {
    if (!index) return color;
    var mix = Math.min(0.3 + 0.2 * (index - 1), 0.7);
    var rgb = [1, 3, 5].map(function (i) { return parseInt(color.slice(i, i + 2), 16); });
    return "#" + rgb.map(function (c) {
      return Math.round(c + (255 - c) * mix).toString(16).padStart(2, "0");
    }).join("");
  }

  // -- filters ---------------------------------------------------------------------------------
  function serviceShown(service) {
    return state.service === "all" || !service || service === state.service;
  }
  function dayShown(x) {
    var t = toMs(x);
    return (state.from == null || t >= state.from) && (state.to == null || t < state.to + DAY);
  }
  function timeDomain() {
    var first = toMs(META.first), last = toMs(META.last) + DAY;
    if (state.from != null) first = Math.max(first, state.from);
    if (state.to != null) last = Math.min(last, state.to + DAY);
    return [first, Math.max(last, first + DAY)];
  }

  // -- axes ------------------------------------------------------------------------------------
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) hi = lo + 1;
    var raw = (hi - lo) / (count || 5);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * mag; })
      .filter(function (s) { return s >= raw; })[0];
    var ticks = [];
    for (var v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      ticks.push(Math.round(v / step) * step);
    }
    return ticks;
  }
  function quantile(sorted, q) {
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(q * (sorted.length - 1))))];
  }
  // A linear y domain that one outlier cannot flatten: beyond three spreads of the middle 90%,
  // a value is drawn at the edge, marked, with its true value in the tooltip.
  function linearDomain(values, spec) {
    var sorted = values.slice().sort(function (a, b) { return a - b; });
    var lo = sorted[0], hi = sorted[sorted.length - 1];
    var p05 = quantile(sorted, 0.05), p95 = quantile(sorted, 0.95);
    var spread = Math.max(p95 - p05, Math.abs(p95) * 0.05, 1e-9);
    if (sorted.length >= 8) {
      hi = Math.min(hi, p95 + 3 * spread);
      lo = Math.max(lo, p05 - 3 * spread);
    }
    if (spec.robust) {
      var pad = Math.max((hi - lo) * 0.15, Math.abs(hi) * 0.02, 1e-6);
      lo -= pad; hi += pad;
      if (spec.yFormat === "percent") { lo = Math.max(lo, 0); hi = Math.min(hi, 1); }
    } else {
      hi = hi > 0 ? hi * 1.08 : hi + 1;
      lo = Math.min(lo, 0);
    }
    if (spec.yMin != null) lo = spec.yMin;
    if (spec.yMax != null) hi = spec.yMax;
    (spec.thresholds || []).forEach(function (t) { hi = Math.max(hi, t[0] * 1.1); });
    var ticks = niceTicks(lo, hi, 5);
    if (spec.yMin == null && !spec.robust) lo = Math.min(lo, ticks[0]);
    if (spec.yMax == null && !spec.robust) hi = Math.max(hi, ticks[ticks.length - 1]);
    ticks = ticks.filter(function (t) { return t >= lo - 1e-12 && t <= hi + 1e-12; });
    return { lo: lo, hi: hi, ticks: ticks, map: function (y) { return (y - lo) / (hi - lo); } };
  }
  function logDomain(values, spec) {
    var positive = values.filter(function (v) { return v > 0; });
    (spec.thresholds || []).forEach(function (t) { positive.push(t[0]); });
    var lo = Math.pow(10, Math.floor(Math.log10(Math.min.apply(null, positive.concat([1])))));
    var hi = Math.pow(10, Math.ceil(Math.log10(Math.max.apply(null, positive.concat([lo * 10])))));
    lo = Math.max(lo, 1e-4);
    var ticks = [];
    for (var t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
    var a = Math.log10(lo), b = Math.log10(hi);
    return { lo: lo, hi: hi, ticks: ticks, log: true,
             map: function (y) { return (Math.log10(Math.max(y, lo)) - a) / (b - a); } };
  }

  // -- lines -----------------------------------------------------------------------------------
  function visibleSeries(spec) {
    var series = spec.series;
    if (spec.drill && state.service !== "all" && spec.drill[state.service]) {
      series = spec.drill[state.service];
    }
    var isTime = spec.x !== "number";
    return series.filter(function (s) { return serviceShown(s.service); }).map(function (s) {
      var points = s.points.filter(function (p) {
        return !isTime || spec.noTimeFilter || dayShown(p[0]);
      }).map(function (p) {
        return { x: isTime ? toMs(p[0]) : p[0], raw: p[0], y: p[1], lo: p[2], hi: p[3], n: p[4] };
      });
      points.sort(function (a, b) { return a.x - b.x; });
      return { s: s, points: points };
    });
  }

  function linesSvg(name, spec, size) {
    var W = size.width, H = size.height;
    var PL = 52, PR = 14, PT = 12, PB = spec.xLabel ? 44 : 30;
    var isTime = spec.x !== "number";
    var shown = visibleSeries(spec);
    var count = shown.reduce(function (a, v) { return a + v.points.length; }, 0);
    var fmtY = function (v) { return fmtNumber(v, spec.yFormat); };
    var x0, x1;
    if (isTime && !spec.noTimeFilter) {
      var dom = timeDomain(); x0 = dom[0]; x1 = dom[1] - DAY;
    } else {
      var xs = [];
      shown.forEach(function (v) { v.points.forEach(function (p) { xs.push(p.x); }); });
      x0 = spec.xMin != null ? spec.xMin : Math.min.apply(null, xs.concat(xs.length ? [] : [0]));
      x1 = spec.xMax != null ? spec.xMax : Math.max.apply(null, xs.concat(xs.length ? [] : [1]));
    }
    if (x1 <= x0) { x0 -= isTime ? DAY / 2 : 0.5; x1 += isTime ? DAY / 2 : 0.5; }
    // stacked series: each point's y becomes its band between the previous series and itself
    if (spec.stacked) {
      var base = {};
      shown.forEach(function (v) {
        v.points.forEach(function (p) {
          var b = base[p.x] || 0;
          p.y0 = b; p.share = p.y; p.y = b + p.y; base[p.x] = p.y;
        });
      });
    }
    var values = [];
    shown.forEach(function (v) { v.points.forEach(function (p) { values.push(p.y); }); });
    if (!values.length) values = [0, 1];
    var yd = spec.yScale === "log" ? logDomain(values, spec) : linearDomain(values, spec);
    var pw = W - PL - PR, ph = H - PT - PB;
    var sx = function (x) { return PL + (x - x0) / (x1 - x0) * pw; };
    // with sample sizes, the lines keep the top three quarters and the counts the strip below
    var lineH = spec.counts ? ph * 0.74 : ph;
    var sy = function (y) {
      return PT + lineH - Math.max(0, Math.min(1, yd.map(y))) * lineH;
    };
    var out = [];
    out.push('<svg ' + (size.panel ? "data-panel" : "data-chart") + '="' + esc(name) +
             '" data-points="' + count + '" viewBox="0 0 ' +
             W + " " + H + '" role="img" xmlns="http://www.w3.org/2000/svg" class="chart">');
    yd.ticks.forEach(function (t) {
      var y = sy(t).toFixed(1);
      out.push('<line class="grid" x1="' + PL + '" x2="' + (W - PR) + '" y1="' + y + '" y2="' + y + '"/>');
      out.push('<text class="tick" x="' + (PL - 5) + '" y="' + (+y + 4) + '" text-anchor="end">' +
               esc(fmtY(t)) + "</text>");
    });
    // x ticks
    if (isTime) {
      var span = (x1 - x0) / DAY;
      var maxLabels = Math.max(2, Math.floor(pw / 70));
      var step = span >= 2 ? Math.max(1, Math.ceil(span / maxLabels)) * DAY
                           : Math.max(1, Math.ceil(span * 24 / maxLabels)) * 3600000;
      for (var t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
        var d = new Date(t);
        var label = step >= DAY ? d.toUTCString().slice(8, 11) + " " + d.getUTCDate()
                                : String(d.getUTCHours()).padStart(2, "0") + ":00";
        // a label at either edge stays inside the chart
        var anchor = sx(t) > W - PR - 24 ? "end" : sx(t) < PL + 16 ? "start" : "middle";
        out.push('<text class="tick" x="' + sx(t).toFixed(1) + '" y="' + (H - PB + 15) +
                 '" text-anchor="' + anchor + '">' + label + "</text>");
      }
    } else {
      niceTicks(x0, x1, 5).forEach(function (t) {
        if (t < x0 || t > x1) return;
        out.push('<text class="tick" x="' + sx(t).toFixed(1) + '" y="' + (H - PB + 15) +
                 '" text-anchor="middle">' + esc(fmtNumber(t)) + "</text>");
      });
    }
    out.push('<line class="axis" x1="' + PL + '" x2="' + (W - PR) + '" y1="' + (PT + ph) +
             '" y2="' + (PT + ph) + '"/>');
    // sample sizes: grey bars along the bottom fifth
    if (spec.counts) {
      var perX = {};
      shown.forEach(function (v) { v.points.forEach(function (p) { perX[p.x] = (perX[p.x] || 0) + (p.n || 0); }); });
      var maxN = Math.max.apply(null, Object.values(perX).concat([1]));
      var barW = Math.max(2, Math.min(14, pw / Math.max(1, (x1 - x0) / DAY + 1) * 0.6));
      var stripH = ph - lineH - 8;
      out.push('<line class="axis" x1="' + PL + '" x2="' + (W - PR) + '" y1="' + (PT + lineH) +
               '" y2="' + (PT + lineH) + '"/><text class="tick" x="' + (PL - 5) + '" y="' +
               (PT + ph - stripH / 2 + 4).toFixed(1) + '" text-anchor="end">n</text>');
      Object.keys(perX).forEach(function (k) {
        var h = perX[k] / maxN * stripH;
        out.push('<rect class="counts" x="' + (sx(+k) - barW / 2).toFixed(1) + '" y="' +
                 (PT + ph - h).toFixed(1) + '" width="' + barW.toFixed(1) + '" height="' +
                 h.toFixed(1) + '"><title>' + fmtTime(+k).slice(0, 10) + ": n = " +
                 fmtNumber(perX[k], "count") + "</title></rect>");
      });
      out.push('<text class="tick" x="' + (W - PR) + '" y="' + (PT + lineH + 11).toFixed(1) +
               '" text-anchor="end">n up to ' + fmtNumber(maxN, "count") + "</text>");
    }
    if (spec.diagonal) {
      out.push('<line class="diagonal" x1="' + sx(x0) + '" y1="' + sy(x0) + '" x2="' + sx(x1) +
               '" y2="' + sy(x1) + '"><title>perfect calibration</title></line>');
    }
    (spec.thresholds || []).forEach(function (t) {
      var y = sy(t[0]).toFixed(1);
      out.push('<line class="threshold" stroke="' + t[2] + '" x1="' + PL + '" x2="' + (W - PR) +
               '" y1="' + y + '" y2="' + y + '"/>');
      out.push('<text class="threshold-label" fill="' + t[2] + '" x="' + (W - PR - 4) + '" y="' +
               (y - 4) + '" text-anchor="end">' + esc(t[1]) + "</text>");
    });
    shown.forEach(function (v) {
      var color = shade(v.s.color, v.s.shade), pts = v.points;
      if (!pts.length) return;
      var path = pts.map(function (p) { return sx(p.x).toFixed(1) + "," + sy(p.y).toFixed(1); });
      if (spec.stacked) {
        var lower = pts.slice().reverse().map(function (p) {
          return sx(p.x).toFixed(1) + "," + sy(p.y0).toFixed(1);
        });
        out.push('<polygon fill="' + color + '" fill-opacity="0.85" stroke="#fff" stroke-width="0.5" points="' +
                 path.concat(lower).join(" ") + '"><title>' + esc(v.s.label) + "</title></polygon>");
      }
      if (spec.band) {
        var withBand = pts.filter(function (p) { return p.lo != null && p.hi != null; });
        if (withBand.length > 1) {
          var up = withBand.map(function (p) { return sx(p.x).toFixed(1) + "," + sy(p.hi).toFixed(1); });
          var down = withBand.slice().reverse().map(function (p) {
            return sx(p.x).toFixed(1) + "," + sy(p.lo).toFixed(1);
          });
          out.push('<polygon class="band" fill="' + color + '" fill-opacity="0.16" points="' +
                   up.concat(down).join(" ") + '"><title>' + esc(v.s.label) +
                   ": 95% interval</title></polygon>");
        }
      }
      if (!spec.stacked && pts.length > 1) {
        out.push('<polyline fill="none" stroke="' + color + '" stroke-width="2"' +
                 (v.s.shade ? ' stroke-dasharray="6 3"' : "") + ' points="' + path.join(" ") +
                 '"><title>' + esc(v.s.label) + "</title></polyline>");
      }
      if (spec.markers !== false || pts.length === 1) {
        pts.forEach(function (p) {
          var when = isTime ? fmtTime(p.raw).replace(" 00:00", "") : fmtNumber(p.x);
          var value = spec.stacked ? p.share : p.y;
          var tip = v.s.label + " " + when + ": " + fmtY(value) +
            (p.lo != null ? " (95%: " + fmtY(p.lo) + " to " + fmtY(p.hi) + ")" : "") +
            (p.n != null ? ", n = " + fmtNumber(p.n, "count") : "");
          var outside = yd.map(p.y) > 1 || yd.map(p.y) < 0;
          if (outside) {
            var top = yd.map(p.y) > 1, yy = top ? PT + 8 : PT + lineH - 2;
            out.push('<text class="clipped" fill="' + color + '" x="' + sx(p.x).toFixed(1) + '" y="' +
                     yy + '" text-anchor="middle">' + (top ? "\u25B2" : "\u25BC") + "<title>" +
                     esc(tip) + " (off the axis)</title></text>");
          } else {
            out.push('<circle cx="' + sx(p.x).toFixed(1) + '" cy="' + sy(p.y).toFixed(1) +
                     '" r="' + (spec.stacked ? 1.5 : 2.4) + '" fill="' + color + '"><title>' +
                     esc(tip) + "</title></circle>");
          }
        });
      }
    });
    if (spec.yLabel) {
      out.push('<text class="axis-label" x="12" y="' + (PT + lineH / 2) + '" transform="rotate(-90 12 ' +
               (PT + lineH / 2) + ')" text-anchor="middle">' + esc(spec.yLabel) + "</text>");
    }
    if (spec.xLabel) {
      out.push('<text class="axis-label" x="' + (PL + pw / 2) + '" y="' + (H - 4) +
               '" text-anchor="middle">' + esc(spec.xLabel) + "</text>");
    }
    if (!count) {
      out.push('<text class="empty" x="' + W / 2 + '" y="' + H / 2 +
               '" text-anchor="middle">no data in the range</text>');
    }
    out.push("</svg>");
    var legend = shown.map(function (v) {
      var color = shade(v.s.color, v.s.shade);
      return '<span class="key"' + (v.s.service ? ' data-drill="' + esc(v.s.service) + '"' : "") +
        '><i style="background:' + color + '"></i>' + esc(v.s.label) + "</span>";
    }).join("");
    return { html: '<div class="legend">' + legend + "</div>" + out.join(""), points: count };
  }

  // -- drift histograms ------------------------------------------------------------------------
  function binsSvg(day, color) {
    var W = 380, H = 200, PL = 44, PR = 8, PT = 10, PB = 30;
    var pw = W - PL - PR, ph = H - PT - PB, bins = day.bins;
    var top = Math.max.apply(null, bins.map(function (b) { return Math.max(b[2], b[3]); }).concat([0.01]));
    var yd = linearDomain([0, top], { yMin: 0 });
    var sy = function (y) { return PT + ph - yd.map(y) * ph; };
    var slot = pw / bins.length, bar = slot * 0.38;
    var out = ['<svg data-points="' + bins.length + '" viewBox="0 0 ' + W + " " + H +
               '" role="img" xmlns="http://www.w3.org/2000/svg" class="chart">'];
    yd.ticks.forEach(function (t) {
      out.push('<line class="grid" x1="' + PL + '" x2="' + (W - PR) + '" y1="' + sy(t).toFixed(1) +
               '" y2="' + sy(t).toFixed(1) + '"/><text class="tick" x="' + (PL - 5) + '" y="' +
               (sy(t) + 4).toFixed(1) + '" text-anchor="end">' + fmtNumber(t, "percent") + "</text>");
    });
    bins.forEach(function (b, i) {
      var x = PL + i * slot + slot * 0.1;
      var range = (b[0] == null ? "below " + fmtNumber(b[1]) : b[1] == null ? fmtNumber(b[0]) +
                   " and above" : fmtNumber(b[0]) + " to " + fmtNumber(b[1]));
      [[b[2], "#9aa5b1", "reference"], [b[3], color, "flagged day"]].forEach(function (v, j) {
        out.push('<rect x="' + (x + j * bar).toFixed(1) + '" y="' + sy(v[0]).toFixed(1) +
                 '" width="' + bar.toFixed(1) + '" height="' + (PT + ph - sy(v[0])).toFixed(1) +
                 '" fill="' + v[1] + '"><title>' + esc(range + ": " + v[2] + " " +
                 fmtNumber(v[0], "percent")) + "</title></rect>");
      });
      if (i > 0 && b[0] != null && (bins.length <= 6 || i % 2 === 1)) {
        out.push('<text class="tick" x="' + (PL + i * slot).toFixed(1) + '" y="' + (H - PB + 14) +
                 '" text-anchor="middle">' + esc(fmtNumber(b[0])) + "</text>");
      }
    });
    out.push('<line class="axis" x1="' + PL + '" x2="' + (W - PR) + '" y1="' + (PT + ph) + '" y2="' +
             (PT + ph) + '"/><text class="axis-label" x="' + (PL + pw / 2) + '" y="' + (H - 2) +
             '" text-anchor="middle">value (bin edges: the reference deciles)</text></svg>');
    return out.join("");
  }
  function renderDriftBins(name, spec) {
    var panels = [], points = 0;
    spec.groups.forEach(function (g) {
      if (!serviceShown(g.service)) return;
      var days = g.days.filter(function (d) { return dayShown(d.date); });
      if (!days.length) return;
      var day = days[days.length - 1];
      points += day.bins.length;
      panels.push('<div class="panel"><h3>' + drillLink(g.service, g.title) + "</h3>" +
        '<div class="legend"><span class="key"><i style="background:#9aa5b1"></i>reference ' + esc(day.reference_start) +
        " to the day before</span>" +
        '<span class="key"><i style="background:' + g.color + '"></i>' + esc(day.date) + " · PSI " +
        fmtNumber(day.psi) + ' · <span class="sev sev-' + esc(day.status) + '">' + esc(day.status) +
        "</span></span>" + (days.length > 1 ? '<span class="muted">' + (days.length - 1) +
        " earlier flagged day(s) in the range</span>" : "") + "</div>" + binsSvg(day, g.color) + "</div>");
    });
    return wrapMultiples(name, panels, points, spec.empty);
  }

  // -- multiples, tiles, tables ----------------------------------------------------------------
  function drillLink(service, text) {
    return '<a data-drill="' + esc(service) + '" title="show ' + esc(service) + ' alone">' +
           esc(text) + "</a>";
  }
  function wrapMultiples(name, panels, points, empty) {
    var large = state.service !== "all" ? " large" : "";
    return '<div class="multiples' + large + '" data-chart="' + esc(name) + '" data-points="' +
      points + '">' +
      (panels.length ? panels.join("") : '<p class="muted">' + esc(empty || "no data in the range") + "</p>") +
      "</div>";
  }
  function renderMultiples(name, spec) {
    var panels = [], points = 0;
    spec.panels.forEach(function (panel) {
      if (!serviceShown(panel.service)) return;
      // one service's panels are drawn larger: they have the row to themselves
      var size = state.service === "all" ? { width: 380, height: 230 } : { width: 620, height: 280 };
      size.panel = true;
      var drawn = linesSvg(name + ":" + panel.title, panel.chart, size);
      if (!drawn.points) return;
      points += drawn.points;
      panels.push('<div class="panel"><h3>' + drillLink(panel.service, panel.title) + "</h3>" +
                  drawn.html + "</div>");
    });
    return wrapMultiples(name, panels, points, spec.empty);
  }
  function renderTiles(name, spec) {
    return '<div class="tiles" data-chart="' + esc(name) + '" data-points="' + spec.tiles.length + '">' +
      spec.tiles.map(function (t) {
        var value = t.fmt === "time" ? fmtTime(t.value) : typeof t.value === "number" ?
          fmtNumber(t.value, "count") : t.value;
        return '<div class="tile ' + esc(t.tone || "") + '"><b>' + esc(value) + "</b><span>" +
               esc(t.label) + "</span></div>";
      }).join("") + "</div>";
  }
  function cell(column, value) {
    switch (column.fmt) {
      case "badge": return '<span class="sev sev-' + esc(value) + '">' + esc(value) + "</span>";
      case "service": {
        var service = String(value).split(" ")[0];
        var known = META.services.filter(function (s) { return s.name === service; })[0];
        return known ? '<i style="display:inline-block;width:9px;height:9px;border-radius:50%;' +
          "margin-right:5px;background:" + known.color + '"></i>' + drillLink(service, service) +
          esc(String(value).slice(service.length)) : esc(value);
      }
      case "measure": {
        var text = fmtNumber(value[0], value[2]);
        return esc(text + (value[1] != null ? " (" + fmtNumber(value[1], value[2]) + ")" : ""));
      }
      case "time": return esc(fmtTime(value));
      case "long": {
        var full = String(value == null ? "" : value);
        return full.length > 160 ? '<span title="' + esc(full) + '">' + esc(full.slice(0, 157)) +
          "...</span>" : esc(full);
      }
      case "duration": return esc(fmtDuration(value));
      case "percent": case "count": case "number": return esc(fmtNumber(value, column.fmt));
      default: return esc(typeof value === "number" ? fmtNumber(value) : value);
    }
  }
  function renderTable(name, spec) {
    // rows about a service follow the service filter; rows about no service (null) are
    // hidden under it; tables whose rows carry no _service at all are not filtered
    var rows = spec.rows.filter(function (r) {
      return state.service === "all" || !("_service" in r) || r._service === state.service;
    });
    var title = spec.title ? "<h3>" + esc(spec.title) + "</h3>" : "";
    if (!rows.length) {
      return title + '<p class="muted" data-chart="' + esc(name) + '" data-points="0">' +
             esc(spec.empty || "Nothing for this selection.") + "</p>";
    }
    var head = spec.columns.map(function (c) {
      return "<th" + (c.num ? ' class="num"' : "") + ">" + esc(c.label) + "</th>";
    }).join("");
    var body = rows.map(function (r) {
      return "<tr>" + spec.columns.map(function (c) {
        return "<td" + (c.num ? ' class="num"' : "") + ">" + cell(c, r[c.key]) + "</td>";
      }).join("") + "</tr>";
    }).join("");
    return title + '<table data-chart="' + esc(name) + '" data-points="' + rows.length +
           '"><thead><tr>' + head + "</tr></thead><tbody>" + body + "</tbody></table>";
  }

  var RENDERERS = {
    lines: function (name, spec) {
      return linesSvg(name, spec, { width: spec.tall ? 1200 : 760, height: spec.tall ? 320 : 300 }).html;
    },
    multiples: renderMultiples,
    drift_bins: renderDriftBins,
    tiles: renderTiles,
    table: renderTable,
  };

  // -- the filter bar and the page -------------------------------------------------------------
  function readHash() {
    var params = new URLSearchParams(location.hash.slice(1));
    state.service = params.get("service") || "all";
    state.from = params.get("from") ? toMs(params.get("from")) : null;
    state.to = params.get("to") ? toMs(params.get("to")) : null;
  }
  function writeHash() {
    var params = new URLSearchParams();
    if (state.service !== "all") params.set("service", state.service);
    if (state.from != null) params.set("from", isoDay(state.from));
    if (state.to != null) params.set("to", isoDay(state.to));
    var hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }
  function filterBar() {
    var chips = [{ name: "all", label: "All services", color: "#9aa5b1" }].concat(META.services)
      .map(function (s) {
        return '<button type="button" class="chip' + (state.service === s.name ? " on" : "") +
          '" data-service="' + esc(s.name) + '"><i style="background:' + s.color + '"></i>' +
          esc(s.name === "all" ? s.label : s.name) + "</button>";
      }).join("");
    var from = state.from != null ? isoDay(state.from) : META.first;
    var to = state.to != null ? isoDay(state.to) : META.last;
    var presets = [7, 14].map(function (n) {
      return '<button type="button" data-days="' + n + '">' + n + " days</button>";
    }).join("") + '<button type="button" data-days="all">all</button>';
    return '<label>Service</label><span class="chips">' + chips + "</span>" +
      '<label for="filter-from">From</label><input type="date" id="filter-from" min="' + META.first +
      '" max="' + META.last + '" value="' + from + '">' +
      '<label for="filter-to">to</label><input type="date" id="filter-to" min="' + META.first +
      '" max="' + META.last + '" value="' + to + '">' + presets +
      '<span class="muted" id="filter-state">' + esc(describe()) + "</span>";
  }
  function describe() {
    var range = (state.from != null ? isoDay(state.from) : META.first) + " to " +
                (state.to != null ? isoDay(state.to) : META.last);
    return (state.service === "all" ? "all services" : state.service) + ", " + range;
  }
  function render() {
    document.getElementById("filters").innerHTML = filterBar();
    Object.keys(DATA.charts).forEach(function (name) {
      var slot = document.querySelector('[data-slot="' + name + '"]');
      var spec = DATA.charts[name];
      if (slot) slot.innerHTML = RENDERERS[spec.kind](name, spec);
    });
    writeHash();
  }
  function setService(service) { state.service = service; render(); }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-service], [data-drill], [data-days]");
    if (!target) return;
    if (target.dataset.days) {
      if (target.dataset.days === "all") { state.from = null; state.to = null; }
      else {
        state.to = null;
        state.from = toMs(META.last) - (Number(target.dataset.days) - 1) * DAY;
      }
      render();
    } else {
      var service = target.dataset.service || target.dataset.drill;
      setService(target.dataset.drill && state.service === service ? "all" : service);
    }
  });
  document.addEventListener("change", function (event) {
    if (event.target.id === "filter-from") {
      state.from = event.target.value ? toMs(event.target.value) : null;
    } else if (event.target.id === "filter-to") {
      state.to = event.target.value ? toMs(event.target.value) : null;
    } else return;
    render();
  });
  window.addEventListener("hashchange", function () { readHash(); render(); });
  readHash();
  render();
})();
