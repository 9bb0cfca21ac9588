// Live pages: the server re-renders the page body when the store changes and sends it as a
// server-sent event; the body is server-made, escaped HTML, swapped in place.
(function () {
  "use strict";
  var dot = function (on) {
    var d = document.getElementById("live-dot");
    if (d) { d.className = on ? "on" : ""; }
  };
  function busy(main) {
    var a = document.activeElement;
    return a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(a.tagName);
  }
  function start() {
    if (!document.body.hasAttribute("data-live") || !window.EventSource) { return; }
    var main = document.getElementById("main");
    var content = document.getElementById("content");
    var hash = content ? content.getAttribute("data-hash") : "";
    var path = location.pathname + location.search;
    var pending = null;
    var src = new EventSource("/events?path=" + encodeURIComponent(path) + "&h=" + encodeURIComponent(hash));
    function apply(data) {
      if (busy(main)) { pending = data; return; }
      pending = null;
      var c = document.getElementById("content");
      c.innerHTML = data.html;
      c.setAttribute("data-hash", data.hash);
      document.body.setAttribute("data-updated", String(Date.now()));
    }
    src.addEventListener("open", function () { dot(true); });
    src.addEventListener("error", function () { dot(false); });
    src.addEventListener("update", function (ev) { apply(JSON.parse(ev.data)); });
    main.addEventListener("focusout", function () { if (pending) { setTimeout(function () { if (pending) { apply(pending); } }, 0); } });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
