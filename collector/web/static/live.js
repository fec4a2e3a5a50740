// Live updates for the dashboard (progressive: every page works without this script).
// Fleet: polls /fleet.json and updates each customer's cells. Run: polls the run's JSON
// until it finishes, then reloads once to show the results.
(function () {
  "use strict";
  var SEV = ["CRIT", "UNKNOWN", "WARN", "OK"];
  function get(url, done) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok || r.redirected) { throw new Error(String(r.status)); } return r.json(); })
      .then(done).catch(function () { /* keep the page as it is */ });
  }
  function fleet(table) {
    var url = table.getAttribute("data-live");
    get(url, function (data) {
      data.customers.forEach(function (c) {
        update(table.querySelector('tr[data-customer="' + CSS.escape(c.customer) + '"]'), c);
      });
      update(table.querySelector("tr[data-total]"), data.total);
      var stamp = document.getElementById("fleet-updated");
      if (stamp) { stamp.setAttribute("data-updated", String(data.generated_at)); }
    });
  }
  // One row (a customer's, or the totals) from its JSON.
  function update(row, c) {
    if (!row || !c) { return; }
    Object.keys(c.layers).forEach(function (layer) {
      var cell = row.querySelector('td[data-layer="' + layer + '"]');
      if (!cell) { return; }
      var worst = c.layers[layer].worst;
      cell.className = "cell sev-bg-" + (worst ? worst.toLowerCase() : "none");
      var badge = cell.querySelector(".sev");
      if (badge) { badge.className = "sev sev-" + (worst ? worst.toLowerCase() : "none"); }
      var counts = cell.querySelectorAll(".counts .c");
      counts.forEach(function (el) {
        SEV.forEach(function (s) {
          if (el.classList.contains("c-" + s.toLowerCase())) {
            el.textContent = el.textContent.replace(/\d+/, String(c.layers[layer].counts[s] || 0));
          }
        });
      });
    });
    ["agents_silent", "spool_backlog", "gaps_recent"].forEach(function (field) {
      var cell = row.querySelector('td[data-field="' + field + '"]');
      if (cell) {
        var text = field === "agents_silent" ? c.agents_silent + " / " + c.agents_active : String(c[field]);
        cell.textContent = text;
      }
    });
  }
  function run(section) {
    var url = section.getAttribute("data-run");
    get(url, function (p) {
      var bar = section.querySelector('[data-field="percent"]');
      if (bar && p.percent !== null) { bar.value = p.percent; bar.textContent = p.percent + " %"; }
      var cov = section.querySelector('[data-field="coverage"]');
      if (cov && p.hosts_selected) { cov.textContent = (p.hosts_answered || 0) + " / " + p.hosts_selected; }
      var state = section.querySelector('[data-field="state"] .state');
      if (state) { state.setAttribute("data-state", p.state); }
      if (p.finished && !section.hasAttribute("data-finished-at-load")) {
        window.location.reload();
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("table[data-live]");
    if (table) { setInterval(function () { fleet(table); }, 15000); }
    var section = document.querySelector("section[data-run]");
    if (section && !section.hasAttribute("data-finished-at-load")) {
      setInterval(function () { run(section); }, 1000);
    }
  });
})();
