/* 舆情哨兵 console: the little JS there is. No framework; the pages work without it.
 * - queue: "N 条新预警" notice by light polling (the list is never replaced under the reader)
 * - queue: keyboard shortcuts j/k (move), Enter/o (open), a (claim), d (dismiss), / (search)
 * - forms: confirm where asked, no double submit, filters apply on change
 */
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf") || "";
  var POLL_MS = 60000;

  function post(action, fields) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = action;
    fields.csrf_token = csrf;
    fields.next = location.pathname + location.search;
    Object.keys(fields).forEach(function (k) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = k; input.value = fields[k];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }

  // Tables: each cell carries its column's name, which the phone layout shows in front of it
  // (there a row is a card and the header row is hidden). A cell's own data-label wins.
  Array.prototype.forEach.call(document.querySelectorAll("table.grid"), function (table) {
    var names = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    Array.prototype.forEach.call(table.querySelectorAll("tbody tr"), function (tr) {
      Array.prototype.forEach.call(tr.children, function (td, i) {
        if (!td.hasAttribute("data-label") && names[i]) td.setAttribute("data-label", names[i]);
      });
    });
  });

  // Digests: the frame grows to its content, so a phone scrolls one page, not a box inside it.
  // The frame runs no script (sandbox without allow-scripts); same-origin only lets us measure it.
  Array.prototype.forEach.call(document.querySelectorAll("iframe.digest-frame"), function (frame) {
    function fit() {
      try {
        var doc = frame.contentDocument;
        if (!doc || !doc.documentElement) return;
        frame.style.height = (doc.documentElement.scrollHeight + 2) + "px";
        frame.classList.add("fitted");
      } catch (e) { /* keep the CSS height */ }
    }
    frame.addEventListener("load", fit);
    fit();
  });

  // A response still holding a placeholder (【核实情况】) is refused by the server; say so before
  // sending, so the staff member's edits stay in the box. Headings such as 【辟谣】 are not placeholders.
  function unfilledPlaceholders(form) {
    var box = form.querySelector("textarea[data-placeholders]");
    if (!box) return [];
    var headings = (box.getAttribute("data-headings") || "").split(",");
    var found = [], re = /【([^【】\n]{1,30})】/g, m;
    while ((m = re.exec(box.value)) !== null) {
      var token = "【" + m[1] + "】";
      if (headings.indexOf(m[1].trim()) < 0 && found.indexOf(token) < 0) found.push(token);
    }
    return found;
  }

  // Forms: confirmation and no double submit.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var unfilled = unfilledPlaceholders(form);
    if (unfilled.length) {
      ev.preventDefault();
      var note = form.querySelector(".placeholder-note");
      if (!note) {
        note = document.createElement("div");
        note.className = "flash err placeholder-note";
        note.setAttribute("role", "alert");
        form.insertBefore(note, form.firstChild);
      }
      note.textContent = "回应里还有未填写的占位符：" + unfilled.join("、") + "。请换成实际内容后再记录发布";
      form.querySelector("textarea[data-placeholders]").focus();
      return;
    }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); return; }
    if (form.method.toLowerCase() === "post") {
      setTimeout(function () {
        Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) { b.disabled = true; });
      }, 0);
    }
  });

  // Filters apply as soon as a choice changes.
  Array.prototype.forEach.call(document.querySelectorAll("form.filters select, form.filters input[type=checkbox]"),
    function (el) { el.addEventListener("change", function () { el.form.submit(); }); });

  // "← 返回预警队列": go back in history when we came from the queue, so its filters, page
  // and scroll position are exactly as the reader left them.
  Array.prototype.forEach.call(document.querySelectorAll("a[data-back]"), function (a) {
    a.addEventListener("click", function (ev) {
      var ref = document.referrer;
      if (ref && ref.indexOf(location.origin + "/") === 0 && /^\/(\?|$)/.test(ref.slice(location.origin.length))
          && history.length > 1) {
        ev.preventDefault();
        history.back();
      }
    });
  });

  var queue = document.getElementById("queue");
  if (!queue) return;

  // ---- the "N 条新预警" notice
  var news = document.getElementById("news");
  var baseTitle = document.title;
  function poll() {
    if (document.hidden || !window.fetch) return Promise.resolve();
    return fetch(queue.getAttribute("data-news"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.redirected && r.url.indexOf("/login") >= 0) {
          news.textContent = "登录已过期，点击重新登录";
          news.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
          news.hidden = false;
          return null;
        }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        var parts = [];
        if (data["new"] > 0) parts.push(data["new"] + " 条新预警");
        if (data.rising > 0) parts.push(data.rising + " 条正在扩散");
        if (parts.length) {
          news.textContent = parts.join("，") + " · 点击刷新";
          news.hidden = false;
          document.title = "(" + (data["new"] + data.rising) + ") " + baseTitle;
        }
      })
      .catch(function () { /* offline for a moment: try again later */ });
  }
  setInterval(poll, POLL_MS);
  window.yuqingPoll = poll;  // "check now" (also used by the browser tests)
  document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });

  // A click anywhere on a row opens it (big targets on phones); links and buttons keep their own.
  queue.addEventListener("click", function (ev) {
    if (ev.target.closest("a, button, input, select")) return;
    var row = ev.target.closest("li.row");
    if (row && !(window.getSelection && String(window.getSelection()))) location.href = "/alerts/" + row.getAttribute("data-id");
  });

  // ---- keyboard shortcuts
  var rows = Array.prototype.slice.call(queue.querySelectorAll("li.row"));
  var canAct = queue.getAttribute("data-can-act") === "1";
  var current = -1;
  function select(i) {
    if (!rows.length) return;
    i = Math.max(0, Math.min(rows.length - 1, i));
    if (current >= 0) rows[current].classList.remove("selected");
    current = i;
    rows[i].classList.add("selected");
    rows[i].scrollIntoView({ block: "nearest" });
    try { sessionStorage.setItem("yq-sel", rows[i].getAttribute("data-id")); } catch (e) { /* private mode */ }
  }
  try {
    var remembered = sessionStorage.getItem("yq-sel");
    rows.forEach(function (r, i) { if (r.getAttribute("data-id") === remembered) select(i); });
  } catch (e) { /* private mode */ }

  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var row = current >= 0 ? rows[current] : null;
    var id = row && row.getAttribute("data-id");
    switch (ev.key) {
      case "j": select(current + 1); break;
      case "k": select(current < 0 ? 0 : current - 1); break;
      case "Enter": case "o": if (row) location.href = "/alerts/" + id; break;
      case "/": var q = document.querySelector("form.filters input[name=q]"); if (q) { q.focus(); ev.preventDefault(); } return;
      case "a": if (row && canAct) post("/alerts/" + id + "/claim", {}); break;
      case "d":
        if (row && canAct && window.confirm("确定排除这条预警吗？")) post("/alerts/" + id + "/status", { to: "dismissed" });
        break;
      default: return;
    }
    ev.preventDefault();
  });
})();
