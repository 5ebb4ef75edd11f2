import KeelApp

/// The status page: one self-contained document (inline CSS and script, no external assets) that reads the JSON
/// beside it every second. Elements carry stable ids and data attributes (`data-busy-workers`, `data-state`) for
/// tests and scrapers. Client-sent text (request lines) only ever reaches the page through `textContent`.
enum StatusPageHTML {
    static func page(jsonPath: String) -> String {
        guard let slot = template.firstRange(of: "__JSON_PATH__") else { return template }
        return template.replacingCharacters(in: slot, with: JSON.quote(jsonPath))
    }

    private static let template = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>keel status</title>
        <link rel="icon" href="data:,">
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1d232a; background: #f6f7f9; }
        h1 { font-size: 20px; margin: 0 0 12px; }
        h2 { font-size: 17px; margin: 0 0 6px; }
        .summary { display: flex; gap: 12px; margin-bottom: 16px; flex-wrap: wrap; }
        .stat { background: #fff; border: 1px solid #d8dde3; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
        .stat b { display: block; font-size: 22px; }
        .stat span.label { color: #5b6673; font-size: 12px; }
        .pool { background: #fff; border: 1px solid #d8dde3; border-radius: 6px; padding: 12px 14px; margin-bottom: 16px; }
        .meta { color: #5b6673; margin-bottom: 8px; }
        .error { color: #b00020; font-weight: 600; }
        .worker { display: flex; align-items: stretch; gap: 6px; margin: 4px 0; }
        .wlabel { width: 210px; flex: none; font-size: 12px; color: #3b4550; padding-top: 3px; }
        .threads { display: flex; gap: 4px; flex-wrap: wrap; flex: 1; }
        .thread { width: 190px; min-height: 34px; border-radius: 4px; padding: 2px 6px; font-size: 11px; overflow: hidden;
          white-space: nowrap; text-overflow: ellipsis; border: 1px solid transparent; box-sizing: border-box; }
        .thread .req { display: block; font-family: ui-monospace, monospace; overflow: hidden; text-overflow: ellipsis; }
        .thread .ms { display: block; font-weight: 600; }
        .thread[data-state=idle] { background: #e3f4e6; border-color: #b9e0c0; color: #2d6a3a; }
        .thread[data-state=busy] { background: #ffd8a8; border-color: #f0a04b; color: #5a3000; }
        .thread[data-state=stopping] { background: #f7c6c7; border-color: #d9686c; color: #6b0f13; }
        .thread[data-state=starting] { background: #dbe7ff; border-color: #94b3f0; color: #1d3f80; }
        .legend { margin-bottom: 10px; }
        .legend .thread { display: inline-block; width: auto; min-height: 0; padding: 1px 8px; margin-right: 6px; font-size: 12px; }
        ul.sockets, ol.recycles { margin: 4px 0 8px; padding-left: 20px; }
        .small { font-size: 12px; color: #5b6673; }
        </style>
        </head>
        <body>
        <h1>keel status</h1>
        <div class="summary">
          <div class="stat"><b id="keel-connections">–</b><span class="label">connections</span></div>
          <div class="stat"><b id="keel-h2">–</b><span class="label">HTTP/2 connections · streams</span></div>
          <div class="stat"><b id="keel-rps">–</b><span class="label">requests/s</span></div>
          <div class="stat"><b id="keel-requests">–</b><span class="label">requests</span></div>
          <div class="stat"><b id="keel-uptime">–</b><span class="label">uptime</span></div>
        </div>
        <div class="legend small">
          <span class="thread" data-state="idle">idle</span><span class="thread" data-state="busy">busy</span>
          <span class="thread" data-state="stopping">stopping</span><span class="thread" data-state="starting">starting</span>
          <span id="updated" data-updates="0">waiting for data…</span>
        </div>
        <div id="pools"></div>
        <script>
        (function () {
          "use strict";
          var jsonPath = __JSON_PATH__;
          var updates = 0;
          function el(tag, cls, text) {
            var node = document.createElement(tag);
            if (cls) node.className = cls;
            if (text !== undefined && text !== null) node.textContent = String(text);
            return node;
          }
          function seconds(ms) { return ms >= 1000 ? (ms / 1000).toFixed(1) + " s" : ms + " ms"; }
          function poolSection(pool) {
            var section = el("section", "pool");
            section.id = "pool-" + pool.name;
            section.setAttribute("data-pool", pool.name);
            section.appendChild(el("h2", null, "pool " + pool.name));
            var stats = pool.stats;
            if (!stats) {
              section.setAttribute("data-error", pool.error || "no data");
              section.appendChild(el("div", "error", "stats unavailable from " + pool.stats_address + ": " + (pool.error || "no data")));
              return section;
            }
            var workers = stats.workers || [];
            var busyWorkers = 0, busyThreads = 0, threadCount = 0;
            workers.forEach(function (w) {
              if (w.status === "busy") busyWorkers++;
              (w.threads || []).forEach(function (t) { threadCount++; if (t.status === "busy") busyThreads++; });
            });
            section.setAttribute("data-workers", workers.length);
            section.setAttribute("data-busy-workers", busyWorkers);
            section.setAttribute("data-busy-threads", busyThreads);
            var perWorker = stats.threads_per_worker || (workers[0] && workers[0].threads ? workers[0].threads.length : 0);
            var meta = workers.length + " workers × " + perWorker + " threads" + (stats.async ? " (async)" : "") +
              " · busy workers " + busyWorkers + " · busy threads " + busyThreads + " of " + threadCount +
              " · master pid " + stats.pid;
            if (stats.cheaper) {
              meta += " · cheaper " + stats.cheaper.algo + " " + stats.cheaper.min + "–" + stats.cheaper.max +
                (stats.cheaper.target !== undefined ? " (target " + stats.cheaper.target + ")" : "");
            }
            section.appendChild(el("div", "meta", meta));
            var sockets = el("ul", "sockets");
            (stats.sockets || []).forEach(function (s) {
              var item = el("li", "socket", s.name + " (" + s.proto + "): accept queue " + (s.queue === null ? "?" : s.queue));
              item.setAttribute("data-socket", s.name);
              item.setAttribute("data-queue", s.queue === null ? "" : s.queue);
              sockets.appendChild(item);
            });
            section.appendChild(sockets);
            workers.forEach(function (w) {
              var row = el("div", "worker");
              row.setAttribute("data-worker-id", w.id);
              row.setAttribute("data-pid", w.pid);
              row.setAttribute("data-status", w.status);
              var label = "worker " + w.id + " · pid " + w.pid + " · " + w.status + " · " + (w.requests || 0) + " req";
              if (w.rss_mib !== undefined && w.rss_mib !== null) label += " · " + w.rss_mib + " MiB";
              row.appendChild(el("div", "wlabel", label));
              var cells = el("div", "threads");
              (w.threads || []).forEach(function (t) {
                var state = t.status;
                if (state !== "busy" && (w.status === "stopping" || w.status === "starting")) state = w.status;
                var cell = el("div", "thread");
                cell.setAttribute("data-state", state);
                cell.setAttribute("data-worker-id", w.id);
                cell.setAttribute("data-thread-id", t.id);
                if (t.status === "busy") {
                  cell.appendChild(el("span", "req", t.request));
                  cell.appendChild(el("span", "ms", seconds(t.running_ms)));
                  cell.title = t.request + " (" + seconds(t.running_ms) + ")";
                } else {
                  cell.appendChild(el("span", "req", "thread " + t.id + " " + state));
                }
                cells.appendChild(cell);
              });
              row.appendChild(cells);
              section.appendChild(row);
            });
            var recycles = stats.recent_recycles || [];
            section.appendChild(el("div", "small", recycles.length ? "recent recycles" : "no recent recycles"));
            var list = el("ol", "recycles");
            recycles.forEach(function (r) {
              var item = el("li", null, "worker " + r.id + " (pid " + r.pid + "): " + r.reason + ", " + seconds(r.ago_ms) + " ago");
              item.setAttribute("data-recycle-id", r.id);
              item.setAttribute("data-pid", r.pid);
              list.appendChild(item);
            });
            section.appendChild(list);
            return section;
          }
          function render(data) {
            var keel = data.keel || {};
            document.getElementById("keel-connections").textContent = keel.connections;
            document.getElementById("keel-h2").textContent = keel.http2_connections + " · " + keel.http2_streams;
            document.getElementById("keel-rps").textContent = keel.requests_per_s;
            document.getElementById("keel-requests").textContent = keel.requests;
            document.getElementById("keel-uptime").textContent = keel.uptime_s + " s";
            var pools = document.getElementById("pools");
            var fresh = document.createDocumentFragment();
            (data.pools || []).forEach(function (p) { fresh.appendChild(poolSection(p)); });
            pools.replaceChildren(fresh);
            updates++;
            var stamp = document.getElementById("updated");
            stamp.setAttribute("data-updates", updates);
            stamp.textContent = "updated " + new Date().toLocaleTimeString();
          }
          function refresh() {
            fetch(jsonPath, { cache: "no-store" }).then(function (r) {
              if (!r.ok) throw new Error("HTTP " + r.status);
              return r.json();
            }).then(render).catch(function (e) {
              document.getElementById("updated").textContent = "cannot read " + jsonPath + ": " + e.message;
            });
          }
          refresh();
          setInterval(refresh, 1000);
        })();
        </script>
        </body>
        </html>

        """#
}
