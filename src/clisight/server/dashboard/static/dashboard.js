// clisight dashboard: live updates over Server-Sent Events (the log tail, the overview's numbers).  Every value goes in
// through textContent, never as HTML: messages, services and components come from anyone who can
// send OTLP to the server.
"use strict";
(function () {
  const status = document.getElementById("live");
  const rows = document.getElementById("log-rows");
  if (!status || !rows || !window.EventSource) return;
  const MAX_ROWS = 2000;
  const source = new EventSource(status.dataset.stream);
  source.addEventListener("open", function () {
    status.textContent = "Live: new lines appear at the top.";
    status.className = "on";
  });
  source.addEventListener("error", function () {
    status.textContent = "Live updates interrupted; reconnecting…";
    status.className = "off";
  });
  source.addEventListener("log", function (event) {
    let line;
    try { line = JSON.parse(event.data); } catch (e) { return; }
    const empty = rows.querySelector(".empty-row");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.className = "fresh sev-" + String(line.level || "").toLowerCase().replace(/[^a-z]/g, "");
    for (const value of [line.time, line.level, line.service, line.component]) {
      const td = document.createElement("td");
      td.textContent = value == null ? "" : String(value);
      tr.appendChild(td);
    }
    tr.firstChild.className = "t";
    const msg = document.createElement("td");
    msg.className = "msg";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = line.message == null ? "" : String(line.message);
    msg.appendChild(text);
    if (line.trace_id && /^[0-9a-f]{32}$/.test(line.trace_id)) {
      const a = document.createElement("a");
      a.href = "/traces/" + line.trace_id;
      a.className = "trace";
      a.textContent = "trace";
      msg.append(" ", a);
    }
    tr.appendChild(msg);
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > MAX_ROWS) rows.removeChild(rows.lastChild);
  });
})();

(function () {
  const status = document.getElementById("overview-live");
  if (!status || !window.EventSource) return;
  const source = new EventSource(status.dataset.stream);
  source.addEventListener("open", function () {
    status.textContent = "Live: the numbers update every 5 s.";
    status.className = "on";
  });
  source.addEventListener("error", function () {
    status.textContent = "Live updates interrupted; reconnecting…";
    status.className = "off";
  });
  source.addEventListener("overview", function (event) {
    let numbers;
    try { numbers = JSON.parse(event.data); } catch (e) { return; }
    for (const el of document.querySelectorAll("[data-key]")) {
      const value = numbers[el.dataset.key];
      if (value != null) el.textContent = String(value);
    }
  });
})();
