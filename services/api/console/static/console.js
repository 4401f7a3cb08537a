/* FinFocus console: charts (Apache ECharts) from the JSON the page was rendered with,
   sortable tables, and decisions sent to the REST API with the session's CSRF token.
   No build step: plain ES2017, loaded with defer after echarts.min.js. */
(function () {
  "use strict";
  var data = {};
  try { data = JSON.parse(document.getElementById("page-data").textContent || "{}"); } catch (e) { data = {}; }
  var charts = [];
  var SEV = { low: "#5b6470", medium: "#a86200", high: "#c2410c", critical: "#b3261e" };

  function num(v) { var n = parseFloat(v); return isNaN(n) ? null : n; }
  function say(text, isError) {
    var el = document.getElementById("status");
    if (!el) { return; }
    el.textContent = text;
    el.className = isError ? "status error" : "status";
    if (isError) { el.setAttribute("role", "alert"); }
  }
  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split("=");
      if (kv[0] === name) { return decodeURIComponent(kv.slice(1).join("=")); }
    }
    return "";
  }
  function send(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": cookie("finfocus_csrf") },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (t) {
        var parsed = null;
        try { parsed = t ? JSON.parse(t) : null; } catch (e) { parsed = null; }
        return { status: r.status, body: parsed };
      });
    });
  }
  function detail(res) {
    var d = res.body && res.body.detail;
    if (Array.isArray(d)) { return d.map(function (x) { return x.msg || JSON.stringify(x); }).join("; "); }
    return d || ("HTTP " + res.status);
  }

  function chart(el, option) {
    if (!window.echarts || !el) { return; }
    var c = window.echarts.init(el, null, { renderer: "canvas" });
    c.setOption(Object.assign({ animation: false, grid: { left: 56, right: 16, top: 36, bottom: 40 },
      tooltip: { trigger: "axis" } }, option));
    charts.push(c);
    return c;
  }

  function trendChart(el) {
    var trend = data.trend || [];
    var byCur = {}; var days = {};
    trend.forEach(function (p) { (byCur[p.currency] = byCur[p.currency] || {})[p.date] = num(p.cost); days[p.date] = 1; });
    var xs = Object.keys(days).sort();
    var marks = data.marks || [];
    var series = Object.keys(byCur).map(function (cur, i) {
      var s = { name: cur, type: "bar", barMaxWidth: 48, data: xs.map(function (d) { return byCur[cur][d] || 0; }) };
      if (i === 0) {
        s.markPoint = { symbol: "pin", symbolSize: 38, data: marks.filter(function (m) { return days[m.date]; }).map(function (m) {
          return { name: m.severity + " anomaly", coord: [m.date, byCur[cur][m.date] || 0], value: "!", id: m.id,
            itemStyle: { color: SEV[m.severity] || "#b3261e" } };
        }) };
      }
      return s;
    });
    var c = chart(el, { legend: { top: 4 }, xAxis: { type: "category", data: xs }, yAxis: { type: "value" }, series: series });
    if (c) {
      c.on("click", function (p) {
        if (p.componentType === "markPoint" && p.data && p.data.id) { location.href = "/anomalies/" + encodeURIComponent(p.data.id); }
      });
    }
  }

  function stackedChart(el) {
    var ch = data.chart || { x: [], series: [] };
    chart(el, {
      legend: { type: "scroll", bottom: 0 }, grid: { left: 56, right: 16, top: 30, bottom: 60 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "category", data: ch.x }, yAxis: { type: "value", name: ch.currency || "" },
      series: ch.series.map(function (s) { return { name: s.name, type: "bar", stack: "cost", barMaxWidth: 48, data: s.data.map(num) }; })
    });
  }

  function anomalyChart(el) {
    var a = data.anomaly || {}; var pts = data.series || [];
    var xs = pts.map(function (p) { return p.date; });
    var start = (a.window_start || "").slice(0, 10); var end = (a.window_end || "").slice(0, 10);
    var inWin = xs.filter(function (d) { return d >= start && (d < end || d === start); });
    var perDay = inWin.length ? num(a.expected_cost) / inWin.length : null;
    var expected = xs.map(function (d) { return inWin.indexOf(d) >= 0 ? perDay : null; });
    chart(el, {
      legend: { top: 4 }, xAxis: { type: "category", data: xs }, yAxis: { type: "value", name: a.currency || "" },
      series: [
        { name: "actual", type: "line", data: pts.map(function (p) { return num(p.actual); }),
          markArea: { itemStyle: { color: "rgba(179,38,30,0.10)" }, data: inWin.length ? [[{ xAxis: inWin[0] }, { xAxis: inWin[inWin.length - 1] }]] : [] } },
        { name: "expected", type: "line", lineStyle: { type: "dashed" }, data: expected, connectNulls: false }
      ]
    });
  }

  function forecastChart(el) {
    var f = (data.forecasts || [])[parseInt(el.getAttribute("data-index"), 10)];
    if (!f) { return; }
    var hist = {};
    if (!f.group || Object.keys(f.group).length === 0) {
      var hc = {}; (data.history || []).forEach(function (r) { hc[r.currency] = 1; });
      (data.history || []).forEach(function (r) {
        if (f.currency ? r.currency === f.currency : Object.keys(hc).length === 1) { hist[r.group.daily] = num(r.cost); }
      });
    }
    var pts = f.points || [];
    var xs = Object.keys(hist).sort().concat(pts.map(function (p) { return p.date; }).filter(function (d) { return !(d in hist); }));
    var at = {}; pts.forEach(function (p) { at[p.date] = p; });
    function col(fn) { return xs.map(function (d) { return at[d] ? fn(at[d]) : null; }); }
    function band(lo, hi, name, color) {
      return [
        { name: name, type: "line", stack: name, stackStrategy: "all", symbol: "none", lineStyle: { opacity: 0 }, color: color, data: col(function (p) { return num(p[lo]); }), tooltip: { show: false } },
        { name: name, type: "line", stack: name, stackStrategy: "all", symbol: "none", lineStyle: { opacity: 0 }, areaStyle: { color: color }, color: color,
          data: col(function (p) { return num(p[hi]) - num(p[lo]); }) }
      ];
    }
    chart(el, {
      legend: { top: 4, data: ["actual", "forecast", "95 %", "80 %"] },
      xAxis: { type: "category", data: xs }, yAxis: { type: "value", name: f.currency || "" },
      series: band("lo_95", "hi_95", "95 %", "rgba(29,95,191,0.12)").concat(band("lo_80", "hi_80", "80 %", "rgba(29,95,191,0.22)")).concat([
        { name: "actual", type: "line", symbol: "none", data: xs.map(function (d) { return d in hist ? hist[d] : null; }) },
        { name: "forecast", type: "line", symbol: "none", lineStyle: { type: "dashed" }, data: col(function (p) { return num(p.mean); }) }
      ])
    });
  }

  function savingsChart(el) {
    var rows = (data.savings || []).slice().sort(function (a, b) { return String(a.executed_at).localeCompare(String(b.executed_at)); });
    var xs = [], exp = [], real = [], e = 0, r = 0;
    rows.forEach(function (s) {
      e += num(s.expected_monthly) || 0; r += num(s.realised_monthly) || 0;
      xs.push(String(s.executed_at || "").slice(0, 10)); exp.push(e); real.push(r);
    });
    chart(el, { legend: { top: 4 }, xAxis: { type: "category", data: xs }, yAxis: { type: "value", name: "per month" },
      series: [{ name: "expected", type: "line", step: "end", data: exp }, { name: "realised", type: "line", step: "end", data: real }] });
  }

  var KINDS = { trend: trendChart, stacked: stackedChart, anomaly: anomalyChart, forecast: forecastChart, savings: savingsChart };
  Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), function (el) {
    var draw = KINDS[el.getAttribute("data-chart")];
    if (draw) { draw(el); }
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });

  /* sortable tables: a button in each header; numbers sort by data-value */
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable th button"), function (btn) {
    btn.addEventListener("click", function () {
      var th = btn.closest("th"); var table = btn.closest("table"); var body = table.tBodies[0];
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var numeric = btn.getAttribute("data-sort") === "num";
      var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
      Array.prototype.forEach.call(th.parentNode.children, function (h) { h.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", dir);
      var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return r.cells.length > index; });
      rows.sort(function (a, b) {
        var x = a.cells[index], y = b.cells[index], c;
        if (numeric) { c = (num(x.getAttribute("data-value")) || 0) - (num(y.getAttribute("data-value")) || 0); }
        else { c = x.textContent.trim().localeCompare(y.textContent.trim()); }
        return dir === "ascending" ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });

  /* decisions: a confirmation that states what will happen, then the API call */
  var dialog = document.getElementById("confirm");
  function confirmThen(text, noteLabel, needNote, go) {
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(text)) { go(""); }
      return;
    }
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-note-label").textContent = noteLabel + (needNote ? " (required)" : " (optional)");
    var note = document.getElementById("confirm-note");
    note.value = ""; note.required = !!needNote;
    dialog.returnValue = "";
    dialog.onclose = function () { if (dialog.returnValue === "ok") { go(note.value); } };
    dialog.showModal();
    note.focus();
  }
  function bodyFor(btn, note) {
    var action = btn.getAttribute("data-action");
    if (action === "feedback") { return { verdict: btn.getAttribute("data-verdict"), note: note || null }; }
    if (action === "dismiss") { return { reason: note }; }
    if (action === "snooze") { return { reason: note, until: new Date(Date.now() + 30 * 86400000).toISOString() }; }
    return { reason: note || null };
  }
  Array.prototype.forEach.call(document.querySelectorAll("button[data-action]"), function (btn) {
    btn.addEventListener("click", function () {
      var action = btn.getAttribute("data-action");
      var needNote = btn.hasAttribute("data-need-note");
      confirmThen(btn.getAttribute("data-confirm") || action, action === "feedback" ? "Note" : "Reason", needNote, function (note) {
        btn.disabled = true;
        say(action + ": sending ...");
        send("POST", btn.getAttribute("data-url"), bodyFor(btn, note)).then(function (res) {
          if (res.status === 200 || res.status === 202) {
            say(action + (res.status === 200 ? ": done." : ": accepted, being applied."));
            setTimeout(function () { location.reload(); }, 800);
          } else {
            btn.disabled = false;
            say(action + " refused: " + detail(res), true);
          }
        }, function () { btn.disabled = false; say(action + " failed: the console cannot reach the API", true); });
      });
    });
  });

  /* the explorer: submit as the canonical URL (/costs?from&to&metric&group_by&filter) */
  var explorer = document.getElementById("explorer-form");
  if (explorer) {
    explorer.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = explorer.elements; var q = new URLSearchParams();
      q.set("from", f["from"].value); q.set("to", f["to"].value); q.set("metric", f["metric"].value);
      var groups = [];
      if (f["granularity"].value !== "none") { groups.push(f["granularity"].value); }
      ["dim1", "dim2"].forEach(function (n) { var v = f[n].value.trim(); if (v && groups.indexOf(v) < 0) { groups.push(v); } });
      q.set("group_by", groups.join(","));
      if (f["granularity"].value === "none") { q.set("granularity", "none"); }
      Array.prototype.forEach.call(explorer.querySelectorAll("input[name=filter]"), function (i) { if (i.value.trim()) { q.append("filter", i.value.trim()); } });
      location.href = "/costs?" + q.toString();
    });
  }
  var saveView = document.getElementById("save-view");
  if (saveView) {
    saveView.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = saveView.elements["name"].value.trim();
      send("POST", saveView.getAttribute("data-url"), { name: name, path: location.pathname + location.search }).then(function (res) {
        if (res.status === 200) { say("Saved the view “" + name + "”."); setTimeout(function () { location.reload(); }, 600); }
        else { say("Could not save the view: " + detail(res), true); }
      });
    });
  }

  /* the assistant: POST /api/v1/ai/query, the answer, its rows and its SQL, all as text */
  var MONEY_COLUMN = /cost|impact|^lo_|^hi_|projected$|forecast|saving|monthly|^change$|amount|actual|spend/;
  function plusOne(digits) {
    var out = "", carry = 1;
    for (var i = digits.length - 1; i >= 0; i--) {
      var d = digits.charCodeAt(i) - 48 + carry;
      carry = d > 9 ? 1 : 0; out = String(d % 10) + out;
    }
    return carry ? "1" + out : out;
  }
  /* "5843.675" -> "5,843.68": cents rounded half up on the decimal text (no float), as view.money */
  function money(text, currency) {
    var m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(String(text));
    if (!m) { return String(text); }
    var frac = (m[3] || "") + "000";
    var digits = m[2] + frac.slice(0, 2);
    if (frac.charAt(2) >= "5") { digits = plusOne(digits); }
    digits = digits.replace(/^0+(?=\d{3})/, "");
    while (digits.length < 3) { digits = "0" + digits; }
    var whole = digits.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return m[1] + whole + "." + digits.slice(-2) + (currency ? " " + currency : "");
  }
  function cellText(column, value, row, columns) {
    if (value === null || value === undefined) { return "–"; }
    if (typeof value === "object") { return JSON.stringify(value); }
    if (MONEY_COLUMN.test(column) && !/_pct$|lines$|count$/.test(column) && /^-?\d+(\.\d+)?$/.test(String(value))) {
      var at = columns.indexOf("currency");
      return money(value, at >= 0 ? row[at] : "");
    }
    return String(value);
  }
  var askForm = document.getElementById("ask-form");
  if (askForm) {
    var askInput = document.getElementById("ask-question");
    var askButton = document.getElementById("ask-submit");
    var askError = document.getElementById("ask-error");
    var askResult = document.getElementById("ask-result");
    var showError = function (text) {
      askResult.hidden = true;
      askError.textContent = text; askError.hidden = false;
      say("");
    };
    var showAnswer = function (doc) {
      askError.hidden = true; askError.textContent = "";
      document.getElementById("ask-answer").textContent = doc.answer || "(no answer)";
      var columns = doc.columns || [], rows = doc.rows || [];
      var table = document.getElementById("ask-table");
      var head = table.tHead.rows[0], body = table.tBodies[0];
      head.textContent = ""; body.textContent = "";
      columns.forEach(function (c) {
        var th = document.createElement("th"); th.scope = "col"; th.textContent = c;
        if (MONEY_COLUMN.test(c)) { th.className = "num"; }
        head.appendChild(th);
      });
      rows.forEach(function (r) {
        var tr = document.createElement("tr");
        columns.forEach(function (c, i) {
          var td = document.createElement("td"); td.textContent = cellText(c, r[i], r, columns);
          if (MONEY_COLUMN.test(c)) { td.className = "num"; }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      document.getElementById("ask-rows").hidden = rows.length === 0;
      document.getElementById("ask-sql").textContent = doc.sql || "";
      document.getElementById("ask-sql-details").hidden = !doc.sql;
      askResult.hidden = false;
      say("");
    };
    var ask = function () {
      var question = askInput.value.trim();
      if (!question) { askInput.focus(); return; }
      askButton.disabled = true;
      say("Asking ...");
      try { history.replaceState(null, "", "/ask?q=" + encodeURIComponent(question)); } catch (e) { /* file:// or old browser */ }
      send("POST", askForm.getAttribute("data-url"), { question: question }).then(function (res) {
        askButton.disabled = false;
        var doc = res.body || {};
        if (res.status === 200 && doc.error === "not-understood") {
          showError("Not understood: " + (doc.answer || "the question could not be read."));
        } else if (res.status === 200 && doc.error) {
          showError("No answer (" + doc.error + "): " + (doc.answer || ""));
        } else if (res.status === 200) {
          showAnswer(doc);
        } else if (res.status === 401) {
          showError("Your session has ended: sign in again.");
        } else {
          showError("The assistant could not answer (HTTP " + res.status + "): " + detail(res));
        }
      }, function () { askButton.disabled = false; showError("The console cannot reach the API."); });
    };
    askForm.addEventListener("submit", function (ev) { ev.preventDefault(); ask(); });
    if (askInput.value.trim()) { ask(); }
  }

  /* budgets (admins): PUT /api/v1/budgets/NAME */
  var budget = document.getElementById("budget-form");
  if (budget) {
    Array.prototype.forEach.call(document.querySelectorAll("button[data-fill-budget]"), function (btn) {
      btn.addEventListener("click", function () {
        var b = JSON.parse(btn.getAttribute("data-fill-budget"));
        var f = budget.elements;
        f["name"].value = b.name; f["amount"].value = b.amount; f["currency"].value = b.currency; f["period"].value = b.period;
        f["scope"].value = Object.keys(b.scope || {}).map(function (k) { return k + "=" + b.scope[k]; }).join(", ");
        f["amount"].focus();
      });
    });
    budget.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = budget.elements; var scope = {};
      f["scope"].value.split(",").forEach(function (part) {
        var kv = part.split("="); if (kv.length >= 2 && kv[0].trim()) { scope[kv[0].trim()] = kv.slice(1).join("=").trim(); }
      });
      var name = f["name"].value.trim();
      var text = "Save the budget " + name + ": " + f["amount"].value + " " + f["currency"].value.toUpperCase() + " per " + f["period"].value.replace(/ly$/, "") + ".";
      confirmThen(text, "Note", false, function () {
        send("PUT", "/api/v1/budgets/" + encodeURIComponent(name), { amount: f["amount"].value, currency: f["currency"].value.toUpperCase(),
          period: f["period"].value, scope: scope }).then(function (res) {
          if (res.status === 200 || res.status === 201 || res.status === 202) { say("Budget " + name + " saved."); setTimeout(function () { location.reload(); }, 800); }
          else { say("Budget refused: " + detail(res), true); }
        });
      });
    });
  }
})();
