// The live dashboard: polls this server's own GET /metrics (Prometheus text) every
// two seconds and draws each figure's last two minutes as a sparkline; a keys admin
// also sees each key's requests and tokens (GET /admin/keys/usage).
"use strict";

(function () {
  const POINTS = 60;
  const $ = (id) => document.getElementById(id);
  const history = {};
  let previous = null;

  // Sum of every series of each metric name (labels are summed over).
  function parse(text) {
    const totals = {};
    for (const line of text.split("\n")) {
      if (!line || line[0] === "#") continue;
      const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
      if (!match) continue;
      const value = Number(match[3]);
      if (!Number.isFinite(value)) continue;
      totals[match[1]] = (totals[match[1]] || 0) + value;
    }
    return totals;
  }

  function rate(now, before, name, seconds) {
    return ((now[name] || 0) - (before[name] || 0)) / seconds;
  }

  function mean(now, before, name, scale) {
    const count = (now[name + "_count"] || 0) - (before[name + "_count"] || 0);
    if (count <= 0) return null;
    return (((now[name + "_sum"] || 0) - (before[name + "_sum"] || 0)) / count) * scale;
  }

  function figures(now, before, seconds) {
    return {
      throughput: rate(now, before, "luodi_generation_tokens_total", seconds),
      requests_s: rate(now, before, "luodi_requests_total", seconds),
      ttft: mean(now, before, "luodi_time_to_first_token_seconds", 1000),
      itl: mean(now, before, "luodi_inter_token_latency_seconds", 1000),
      queue: now.luodi_num_requests_waiting || 0,
      running: now.luodi_num_requests_running || 0,
      batch: mean(now, before, "luodi_batch_size", 1),
      prefix_hits: rate(now, before, "luodi_prefix_cache_hit_tokens_total", seconds),
      errors: rate(now, before, "luodi_request_errors_total", seconds),
    };
  }

  function draw(key) {
    const svg = $("spark-" + key);
    const values = history[key];
    const top = Math.max(1e-9, ...values.map((v) => v || 0));
    const points = values.map((v, i) => {
      const x = (i / (POINTS - 1)) * 120;
      const y = 29 - ((v || 0) / top) * 28;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    svg.textContent = "";
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("class", "spark-line");
    svg.appendChild(line);
  }

  async function poll() {
    try {
      const response = await fetch("/metrics", { credentials: "same-origin" });
      if (!response.ok) {
        $("status").textContent = "HTTP " + response.status;
        return;
      }
      const now = { at: performance.now(), totals: parse(await response.text()) };
      if (previous !== null) {
        const seconds = (now.at - previous.at) / 1000;
        const shown = figures(now.totals, previous.totals, seconds);
        for (const [key, value] of Object.entries(shown)) {
          $("value-" + key).textContent = value === null ? "–" : value.toFixed(value < 10 ? 2 : 0);
          history[key] = (history[key] || new Array(POINTS).fill(null)).concat([value]).slice(-POINTS);
          draw(key);
        }
      }
      previous = now;
      $("status").textContent = new Date().toLocaleTimeString();
    } catch (error) {
      $("status").textContent = String(error);
    }
  }

  // Per-key usage, from the audit log through the admin API (shown to keys admins only;
  // a tenant's admin sees its own tenant's keys). Every 10 s: it reads the database.
  async function pollUsage() {
    const table = $("usage");
    if (table === null) return;
    const hours = $("usage-hours").value;
    try {
      const response = await fetch("/admin/keys/usage?hours=" + encodeURIComponent(hours),
        { credentials: "same-origin" });
      if (!response.ok) {
        $("usage-status").textContent = "HTTP " + response.status;
        return;
      }
      const rows = table.querySelector("tbody");
      rows.textContent = "";
      for (const key of await response.json()) {
        const row = rows.insertRow();
        row.id = "usage-" + key.key_id;
        const last = new Date(key.last_us / 1000).toISOString().slice(0, 19).replace("T", " ");
        for (const value of [key.key_id, key.user, key.tenant, key.requests, key.denied,
          key.prompt_tokens, key.completion_tokens, last]) {
          row.insertCell().textContent = value === null ? "" : String(value);
        }
      }
      $("usage-status").textContent = new Date().toLocaleTimeString();
    } catch (error) {
      $("usage-status").textContent = String(error);
    }
  }

  poll();
  setInterval(poll, 2000);
  if ($("usage") !== null) {
    $("usage-hours").addEventListener("change", pollUsage);
    pollUsage();
    setInterval(pollUsage, 10000);
  }
})();
